//! Opening a plugin's artifact: once, through one descriptor, checked as it
//! is read; and the files already checked in this process, by [`Stamp`].

use std::collections::HashMap;
use std::fs::{File, Metadata, OpenOptions};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Manifest, ManifestError};

/// The largest artifact Outlet opens, reads and hashes: 1 GiB. A larger
/// `path` is refused before anything is read.
pub const MAX_ARTIFACT_BYTES: u64 = 1 << 30;

/// What [`Manifest::read_artifact`] hands the bytes to.
type Sink<'a> = dyn FnMut(&[u8]) + 'a;

/// How much of an artifact is read at a time while it is hashed.
const CHUNK: usize = 256 << 10;

/// What `stat` tells of a file that changes whenever its bytes may have:
/// its identity (device, inode), size, and modification and status change
/// times. The status change time is set by the kernel on every write,
/// `chmod` or `utime`, and cannot be set back from user space, so a file
/// rewritten in place with its size and modification time restored still
/// has another stamp, unless the rewrite fell in the same tick of the
/// file system's clock: a stamp vouches for the bytes only once it is
/// [`Stamp::settled`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl From<&Metadata> for Stamp {
    fn from(meta: &Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// How long after its last change a stamp is settled: more than any file
/// system's timestamp granularity (FAT's is 2 s; ext4's, the kernel's tick).
const SETTLE: Duration = Duration::from_secs(3);

impl Stamp {
    /// Whether a change from now on would give the file another stamp: its
    /// last change is further back than the file system's clock ticks. A
    /// check of a file whose stamp is not settled says nothing of the next
    /// open with the same stamp.
    pub fn settled(&self) -> bool {
        let changed = UNIX_EPOCH
            + Duration::from_secs(u64::try_from(self.changed.0).unwrap_or(0))
            + Duration::from_nanos(u64::try_from(self.changed.1).unwrap_or(0));
        SystemTime::now()
            .duration_since(changed)
            .is_ok_and(|age| age > SETTLE)
    }
}

/// The files this process has hashed, by stamp, with the hash found: a
/// file opened again with the same stamp has the same bytes, and is not
/// hashed again. Bounded: emptied when full.
static HASHED: Mutex<Option<HashMap<Stamp, String>>> = Mutex::new(None);
const HASHED_MOST: usize = 1024;

fn hashed(stamp: &Stamp) -> Option<String> {
    let known = HASHED.lock().unwrap_or_else(|e| e.into_inner());
    known.as_ref()?.get(stamp).cloned()
}

fn remember(stamp: Stamp, sha256: String) {
    let mut known = HASHED.lock().unwrap_or_else(|e| e.into_inner());
    let known = known.get_or_insert_with(HashMap::new);
    if known.len() >= HASHED_MOST {
        known.clear();
    }
    known.insert(stamp, sha256);
}

impl Manifest {
    /// Opens the artifact (close-on-exec, no controlling terminal from a
    /// device, no waiting for a writer on a FIFO) and checks that it is a
    /// regular file of at most [`MAX_ARTIFACT_BYTES`].
    fn open_regular(&self) -> Result<(File, Metadata), ManifestError> {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        let unreadable = |error| ManifestError::Artifact {
            plugin: self.name.clone(),
            path: self.path.clone(),
            error,
        };
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&self.path)
            .map_err(unreadable)?;
        let meta = file.metadata().map_err(unreadable)?;
        let kind = meta.file_type();
        if !kind.is_file() {
            return Err(ManifestError::NotAFile {
                plugin: self.name.clone(),
                path: self.path.clone(),
                kind: if kind.is_dir() {
                    "a folder"
                } else if kind.is_char_device() {
                    "a character device"
                } else if kind.is_block_device() {
                    "a block device"
                } else if kind.is_fifo() {
                    "a FIFO"
                } else if kind.is_socket() {
                    "a socket"
                } else {
                    "something else"
                },
            });
        }
        if meta.len() > MAX_ARTIFACT_BYTES {
            return Err(ManifestError::TooLarge {
                plugin: self.name.clone(),
                path: self.path.clone(),
                size: meta.len(),
                limit: MAX_ARTIFACT_BYTES,
            });
        }
        if self.trust != crate::Trust::InProcess {
            self.check_writers(&meta)?;
        }
        Ok((file, meta))
    }

    /// Below `in-process`, as sshd holds key files: the artifact (as
    /// opened), and every folder on its resolved path, may be written only
    /// by root or the host's user. A folder with the sticky bit, owned by
    /// root (`/tmp`), passes: others cannot rename or remove what is in it.
    fn check_writers(&self, file: &Metadata) -> Result<(), ManifestError> {
        use std::os::unix::fs::MetadataExt;
        let me = rustix::process::geteuid().as_raw();
        let refuse = |path: &Path, meta: &Metadata| ManifestError::Writable {
            plugin: self.name.clone(),
            path: path.to_owned(),
            mode: meta.mode() & 0o7777,
            owner: meta.uid(),
        };
        let writable = |meta: &Metadata| {
            let sticky = meta.is_dir() && meta.mode() & 0o1000 != 0 && meta.uid() == 0;
            (meta.uid() != 0 && meta.uid() != me) || (meta.mode() & 0o022 != 0 && !sticky)
        };
        if writable(file) {
            return Err(refuse(&self.path, file));
        }
        let resolved = self
            .path
            .canonicalize()
            .map_err(|error| ManifestError::Artifact {
                plugin: self.name.clone(),
                path: self.path.clone(),
                error,
            })?;
        for folder in resolved.ancestors().skip(1) {
            if let Ok(meta) = std::fs::metadata(folder)
                && writable(&meta)
            {
                return Err(refuse(folder, &meta));
            }
        }
        Ok(())
    }

    /// Opens the artifact once and checks what that descriptor holds: a
    /// regular file (a folder, a device or a FIFO is refused at once, and
    /// the open does not wait on a FIFO), at most [`MAX_ARTIFACT_BYTES`],
    /// and, when `sha256` is given, that hash, read from the descriptor in
    /// chunks (never more than the size `fstat` gave). The file returned is
    /// the one checked: run or copy it, not the path, so that a file put at
    /// the path afterwards is not what runs.
    ///
    /// Costs an `open` and an `fstat`, and reading and hashing the whole
    /// artifact when `sha256` is given, unless this process hashed the
    /// same file (the same [`Stamp`]) before.
    ///
    /// # Errors
    /// [`ManifestError::Artifact`] (cannot be opened or read),
    /// [`ManifestError::NotAFile`], [`ManifestError::TooLarge`] or
    /// [`ManifestError::Checksum`], each naming the plugin and the path.
    pub fn open_artifact(&self) -> Result<File, ManifestError> {
        self.open_checked(None)
    }

    /// As [`Manifest::open_artifact`], handing every byte read to `sink`
    /// as it streams (the whole file is read, pinned or not): for a
    /// mechanism that loads the bytes, or copies them, rather than running
    /// the file. Check the result before using what `sink` got.
    ///
    /// # Errors
    /// As [`Manifest::open_artifact`].
    pub fn read_artifact(&self, sink: &mut dyn FnMut(&[u8])) -> Result<File, ManifestError> {
        self.open_checked(Some(sink))
    }

    fn open_checked(&self, mut sink: Option<&mut Sink<'_>>) -> Result<File, ManifestError> {
        use sha2::Digest;
        use std::io::Read;

        let unreadable = |error| ManifestError::Artifact {
            plugin: self.name.clone(),
            path: self.path.clone(),
            error,
        };
        // A signature is checked against the key the policy matched it to.
        if let (Some(file), None) = (&self.signature, &self.signed) {
            return Err(ManifestError::Signature {
                plugin: self.name.clone(),
                file: file.clone(),
                problem: "has not been checked against the keys the host trusts".into(),
                fix: "load the manifest through a host (`Host::load`), or admit it with \
                      `Policy::admit` first"
                    .into(),
            });
        }
        let (file, meta) = self.open_regular()?;
        // A signed artifact is read whole on every open: the signature is
        // checked against the bytes of this descriptor.
        let signed = self.signed.as_deref();
        if self.sha256.is_none() && sink.is_none() && signed.is_none() {
            return Ok(file);
        }
        let stamp = Stamp::from(&meta);
        if sink.is_none() && signed.is_none() && hashed(&stamp).as_ref() == self.sha256.as_ref() {
            return Ok(file);
        }
        let mut signature = signed.map(crate::signing::Signed::check);
        // Hashed only when pinned: an unpinned artifact read for `sink` is
        // copied, not hashed.
        let mut hasher = self.sha256.as_ref().map(|_| sha2::Sha256::new());
        let mut chunk = vec![
            0;
            CHUNK
                .min(usize::try_from(meta.len()).unwrap_or(CHUNK))
                .max(1)
        ];
        let mut left = meta.len();
        let mut reader = &file;
        while left > 0 {
            let want = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let read = match reader.read(&mut chunk[..want]) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(unreadable(error)),
            };
            if let Some(hasher) = hasher.as_mut() {
                hasher.update(&chunk[..read]);
            }
            if let Some(signature) = signature.as_mut() {
                signature.update(&chunk[..read]);
            }
            if let Some(sink) = sink.as_mut() {
                sink(&chunk[..read]);
            }
            left -= read as u64;
        }
        // What was read is the whole file, as it was when it was opened: a
        // file that shrank, grew or was written to meanwhile is refused.
        let more = reader.read(&mut chunk[..1]).map_err(unreadable)?;
        let now = file.metadata().map_err(unreadable)?;
        if left != 0 || more != 0 || Stamp::from(&now) != stamp {
            return Err(ManifestError::Changing {
                plugin: self.name.clone(),
                path: self.path.clone(),
            });
        }
        if let (Some(expected), Some(hasher)) = (&self.sha256, hasher) {
            let found = crate::hex(&hasher.finalize());
            // A settled stamp vouches for these bytes from now on.
            if stamp.settled() {
                remember(stamp, found.clone());
            }
            if &found != expected {
                return Err(ManifestError::Checksum {
                    plugin: self.name.clone(),
                    path: self.path.clone(),
                    expected: expected.clone(),
                    found,
                });
            }
        }
        if let Some(signature) = signature {
            signature.finish(self)?;
        }
        Ok(file)
    }
}
