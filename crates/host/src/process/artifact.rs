//! A plugin's program as it was checked, held open: what each start runs.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};

use outlet_manifest::{Manifest, ManifestError, Stamp};

/// The artifact as it was checked (`Manifest::open_artifact`), open: what
/// each start runs (exec: each call; rpc: each start and restart). A file
/// changed at the path (another file, or this one written to) is opened and
/// checked again before it runs, so `sha256` holds for every start, not just
/// the first; an unchanged one costs a `stat`, not a rehash.
pub(crate) struct Program {
    /// The manifest, its `path` made absolute: what `open_artifact` checks.
    manifest: Manifest,
    /// The file held, and its stamp if that was settled when it was
    /// checked (else the next start checks the path again).
    held: Mutex<(Option<Stamp>, Arc<File>)>,
}

impl Program {
    /// Opens and checks the manifest's artifact, its path made absolute
    /// and free of links first, so that every later check looks at the
    /// same place whatever the host's working folder.
    pub(crate) fn new(manifest: &Manifest) -> Result<Program, ManifestError> {
        let mut manifest = manifest.clone();
        manifest.path = manifest
            .path
            .canonicalize()
            .map_err(|error| ManifestError::Artifact {
                plugin: manifest.name.clone(),
                path: manifest.path.clone(),
                error,
            })?;
        let (stamp, file) = Program::open(&manifest)?;
        Ok(Program {
            manifest,
            held: Mutex::new((stamp, Arc::new(file))),
        })
    }

    fn open(manifest: &Manifest) -> Result<(Option<Stamp>, File), ManifestError> {
        let file = manifest.open_artifact()?;
        let meta = file.metadata().map_err(|error| ManifestError::Artifact {
            plugin: manifest.name.clone(),
            path: manifest.path.clone(),
            error,
        })?;
        let stamp = Stamp::from(&meta);
        Ok((stamp.settled().then_some(stamp), file))
    }

    /// The program's path, absolute.
    pub(crate) fn path(&self) -> &Path {
        &self.manifest.path
    }

    /// The file to run: the one held, when a `stat` of the path finds it
    /// unchanged since a settled check (`Stamp::settled`); else the path opened and checked again (hashed, when the
    /// manifest pins a hash), which is then held.
    ///
    /// # Errors
    /// As `Manifest::open_artifact`: [`ManifestError::Artifact`] when the
    /// path cannot be read, the others when what is there is refused.
    pub(crate) fn current(&self) -> Result<Arc<File>, ManifestError> {
        let now =
            std::fs::metadata(&self.manifest.path).map_err(|error| ManifestError::Artifact {
                plugin: self.manifest.name.clone(),
                path: self.manifest.path.clone(),
                error,
            })?;
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.0 == Some(Stamp::from(&now)) {
            return Ok(held.1.clone());
        }
        let (stamp, file) = Program::open(&self.manifest)?;
        *held = (stamp, Arc::new(file));
        Ok(held.1.clone())
    }
}
