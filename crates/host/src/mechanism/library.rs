//! The path a shared library (native, cabi) is loaded from: the artifact,
//! or a private copy of the bytes checked, when the manifest pins a hash or
//! the dynamic loader would otherwise hand back a mapping it has already.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

use outlet_manifest::{Manifest, ManifestError};

use crate::error::LoadError;
use crate::private::{PrivateFolder, Purpose};

/// The path to load a shared library from: the artifact itself, or a
/// private copy, removed once it is mapped, when the manifest pins a hash
/// (the bytes loaded are then the bytes hashed, copied from the descriptor
/// checked as they are hashed), the artifact is open already in this
/// process (the dynamic loader would hand back the open mapping, statics
/// and all) or a fresh instance is wanted (a reload).
pub(crate) struct LibraryPath {
    pub path: PathBuf,
    /// The private folder holding the copy, if any.
    _copy: Option<PrivateFolder>,
    claim: Option<Claim>,
}

/// Counts this process's loads of an artifact by path; released on drop.
pub(crate) struct Claim(PathBuf);

static OPEN: Mutex<BTreeMap<PathBuf, usize>> = Mutex::new(BTreeMap::new());

impl Drop for Claim {
    fn drop(&mut self) {
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.0) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.0);
            }
        }
    }
}

impl LibraryPath {
    pub(crate) fn new(manifest: &Manifest, fresh: bool) -> Result<LibraryPath, LoadError> {
        let artifact_error = |error| ManifestError::Artifact {
            plugin: manifest.name.clone(),
            path: manifest.path.clone(),
            error,
        };
        let path = manifest.path.canonicalize().map_err(artifact_error)?;
        let in_use = {
            let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
            let count = open.entry(path.clone()).or_insert(0);
            *count += 1;
            *count > 1
        };
        let claim = Some(Claim(path.clone()));
        let mut artifact = manifest.clone();
        artifact.path = path.clone();
        if !fresh && !in_use && !manifest.pins_bytes() {
            // A regular file, within the size limit: loaded by its path,
            // as nothing pins its bytes (no hash, no signature).
            artifact.open_artifact()?;
            return Ok(LibraryPath {
                path,
                _copy: None,
                claim,
            });
        }
        // A folder of our own (mode 0700, random name), so nobody can swap
        // the copy between the copying and the loading.
        let dir = PrivateFolder::new(Purpose::Library).map_err(|error| LoadError::CopyFolder {
            plugin: manifest.name.clone(),
            error,
        })?;
        let copy = dir.path().join(format!("{}.so", manifest.name));
        let copy_error = |error| ManifestError::Artifact {
            plugin: manifest.name.clone(),
            path: copy.clone(),
            error,
        };
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .open(&copy)
            .map_err(copy_error)?;
        // The bytes loaded are the bytes checked: copied from the one
        // descriptor checked, as they are hashed.
        let mut failed = None;
        artifact.read_artifact(&mut |chunk| {
            if failed.is_none()
                && let Err(error) = out.write_all(chunk)
            {
                failed = Some(error);
            }
        })?;
        if let Some(error) = failed {
            return Err(copy_error(error).into());
        }
        drop(out);
        Ok(LibraryPath {
            path: copy,
            _copy: Some(dir),
            claim,
        })
    }

    /// What the loaded library keeps for as long as it is loaded; the copy
    /// (if any) goes with `self`.
    pub(crate) fn claim(&mut self) -> Option<Claim> {
        self.claim.take()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_copy_is_made_in_a_private_folder_named_for_this_process() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("libcopied.so"), "not really a library").unwrap();
        let manifest = Manifest::parse(
            "name = \"copied\"\nmechanism = \"cabi\"\npath = \"libcopied.so\"\n\
             interface = \"outlet.examples.greeter.v1.Greeter\"\ntrust = \"in-process\"\n",
            &dir.path().join("copied.toml"),
        )
        .unwrap();
        let copy = LibraryPath::new(&manifest, true).unwrap();
        let folder = copy.path.parent().unwrap().to_owned();
        let name = folder.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with(&format!("outlet-lib-{}-", std::process::id())),
            "{name}"
        );
        let mode = std::fs::symlink_metadata(&folder)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o700, "{}", folder.display());
        assert_eq!(std::fs::read(&copy.path).unwrap(), b"not really a library");
        drop(copy);
        assert!(!folder.exists());
    }
}
