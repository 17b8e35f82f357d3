//! Opening again, bare, a library this process has loaded before: what
//! `outlet bench` holds loading a plugin against (`dlopen` and `dlclose` of
//! the same file, with none of Outlet's checks), without `unsafe` on the
//! caller's side.
//!
//! `dlopen` runs a library's initializers, and `dlclose` its finalizers, so
//! opening a library is only as safe as the library. [`crate::open`] is the
//! one place this crate opens a library for its `unsafe fn`s, whose callers
//! vouch for it; it records the file here. [`Reopen`] opens only a file so
//! recorded, and opens it through a descriptor of its own, so that the file
//! opened is the very one found in the record.

use std::collections::BTreeSet;
use std::fs::{File, Metadata};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::DylibError;

/// A file as the filesystem identifies it, with its size and modification
/// time, so that a file rewritten since is not taken for the one recorded.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct FileId {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
}

impl FileId {
    /// The file at `path`.
    pub(crate) fn of(path: &Path) -> Result<FileId, DylibError> {
        let metadata = std::fs::metadata(path).map_err(|error| DylibError::Read {
            path: path.to_owned(),
            error,
        })?;
        Ok(FileId::from(&metadata))
    }
}

impl From<&Metadata> for FileId {
    fn from(metadata: &Metadata) -> FileId {
        FileId {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
        }
    }
}

/// The libraries [`crate::open`] opened in this process: files whose
/// initializers and finalizers a caller of an `unsafe fn` of this crate
/// vouched for. One small entry per distinct file, for the process's life.
static VOUCHED: Mutex<BTreeSet<FileId>> = Mutex::new(BTreeSet::new());

/// Records `file` as opened by [`crate::open`], whose caller vouched for it.
pub(crate) fn vouched_for(file: FileId) {
    // A set left by a panicking thread is still a set of vouched files.
    let mut vouched = VOUCHED.lock().unwrap_or_else(PoisonError::into_inner);
    vouched.insert(file);
}

fn is_vouched(file: &FileId) -> bool {
    let vouched = VOUCHED.lock().unwrap_or_else(PoisonError::into_inner);
    vouched.contains(file)
}

/// A library this process loaded before through [`crate::NativeLibrary::open`]
/// or [`crate::CabiLibrary::open`], held open as a file, to be `dlopen`ed and
/// closed again with nothing else: no ELF check, no symbols, no plugin.
///
/// ```no_run
/// # fn main() -> Result<(), outlet_dylib::DylibError> {
/// # let path = std::path::Path::new("libgreeter_native.so");
/// // After the host has loaded `path` as a native or cabi plugin:
/// let again = outlet_dylib::Reopen::new(path)?;
/// again.open_and_close()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Reopen {
    /// The library's file, kept open. Private, and set only by
    /// [`Reopen::new`] after finding it among the vouched files.
    file: File,
    /// The path it was found at, for errors.
    path: PathBuf,
}

impl Reopen {
    /// Opens the file at `path`, and checks that this process has loaded
    /// this very file (the same device, inode, size and modification time)
    /// as a native or cabi plugin before.
    ///
    /// # Errors
    /// [`DylibError::Read`] if the file cannot be opened;
    /// [`DylibError::NotVouched`] if this process has not loaded it.
    pub fn new(path: &Path) -> Result<Reopen, DylibError> {
        let read = |error| DylibError::Read {
            path: path.to_owned(),
            error,
        };
        let file = File::open(path).map_err(read)?;
        let id = FileId::from(&file.metadata().map_err(read)?);
        if !is_vouched(&id) {
            return Err(DylibError::NotVouched {
                path: path.to_owned(),
            });
        }
        Ok(Reopen {
            file,
            path: path.to_owned(),
        })
    }

    /// `dlopen`s the library and `dlclose`s it again, and nothing else.
    ///
    /// # Errors
    /// [`DylibError::Open`], with the dynamic loader's message.
    pub fn open_and_close(&self) -> Result<(), DylibError> {
        let failed = |error: libloading::Error| DylibError::Open {
            path: self.path.clone(),
            message: error.to_string(),
        };
        // Through the descriptor, whatever happens to `path` meanwhile.
        let file = format!("/proc/self/fd/{}", self.file.as_raw_fd());
        // SAFETY: `self.file` was found among the vouched files by
        // `Reopen::new`, the only maker of a `Reopen` (the fields are
        // private), and `file` names that open file, which `self` keeps
        // open: the library opened is one that `crate::open` opened before,
        // whose caller vouched for running its initializers and finalizers
        // in this process (its `# Safety` contract). Nothing of the library
        // is used but them: no symbol is looked up.
        let library = unsafe { libloading::Library::new(&file) }.map_err(failed)?;
        library.close().map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The C library this test binary runs with, as its memory map names it.
    fn c_library() -> PathBuf {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let path = maps
            .lines()
            .filter_map(|line| line.split_whitespace().nth(5))
            .find(|path| path.contains("/libc.so"))
            .expect("the test binary links the C library dynamically");
        PathBuf::from(path)
    }

    #[test]
    fn a_file_this_process_never_loaded_is_not_opened() {
        let exe = std::env::current_exe().unwrap();
        let error = Reopen::new(&exe).unwrap_err();
        assert!(matches!(error, DylibError::NotVouched { .. }), "{error}");
        assert!(error.to_string().contains("has not loaded"), "{error}");
    }

    #[test]
    fn a_library_loaded_before_opens_and_closes_again() {
        let libc = c_library();
        // SAFETY: the C library this process already runs with: loading it
        // again runs nothing (the loader finds it loaded).
        let library = unsafe { crate::open(&libc) }.unwrap();
        drop(library);
        let again = Reopen::new(&libc).unwrap();
        again.open_and_close().unwrap();
        again.open_and_close().unwrap();
    }
}
