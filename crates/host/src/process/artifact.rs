//! A plugin's program as it was checked, held open: what each start runs.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use outlet_manifest::{Manifest, ManifestError};

/// The artifact as it was checked (`Manifest::open_artifact`), open: what
/// each start runs (exec: each call; rpc: each start and restart). A file
/// changed at the path (another file, or this one written to) is opened and
/// checked again before it runs, so `sha256` holds for every start, not just
/// the first; an unchanged one costs a `stat`, not a rehash.
pub(crate) struct Program {
    /// The manifest, its `path` made absolute: what `open_artifact` checks.
    manifest: Manifest,
    held: Mutex<(Stamp, Arc<File>)>,
}

/// What `stat` tells of a file that changes when it is replaced or written
/// to: its identity (device, inode), size, and the modification and status
/// change times. The status change time cannot be set back from user
/// space, so a file rewritten in place with its size and modification
/// time restored still differs.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl From<&std::fs::Metadata> for Stamp {
    fn from(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

impl Program {
    /// Opens and checks the artifact at `path` (the manifest's, absolute).
    pub(crate) fn new(manifest: &Manifest, path: &Path) -> Result<Program, ManifestError> {
        let mut manifest = manifest.clone();
        manifest.path = path.to_owned();
        let (stamp, file) = Program::open(&manifest)?;
        Ok(Program {
            manifest,
            held: Mutex::new((stamp, Arc::new(file))),
        })
    }

    fn open(manifest: &Manifest) -> Result<(Stamp, File), ManifestError> {
        let file = manifest.open_artifact()?;
        let meta = file.metadata().map_err(|error| ManifestError::Artifact {
            plugin: manifest.name.clone(),
            path: manifest.path.clone(),
            error,
        })?;
        Ok((Stamp::from(&meta), file))
    }

    /// The program's path, absolute.
    pub(crate) fn path(&self) -> &Path {
        &self.manifest.path
    }

    /// The file to run: the one held, when a `stat` of the path finds it
    /// unchanged; else the path opened and checked again (hashed, when the
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
        if held.0 == Stamp::from(&now) {
            return Ok(held.1.clone());
        }
        let (stamp, file) = Program::open(&self.manifest)?;
        *held = (stamp, Arc::new(file));
        Ok(held.1.clone())
    }
}
