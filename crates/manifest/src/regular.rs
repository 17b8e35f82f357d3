//! Opening a file Outlet reads whole (a manifest, a signature, a key): a
//! regular file of a bounded size, opened without waiting on a FIFO or
//! taking a terminal, checked on the descriptor opened.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens `path` for reading if it is a regular file of at most `most`
/// bytes (checked with `fstat` on the descriptor returned).
///
/// # Errors
/// If it cannot be opened, or is not such a file (a folder, a FIFO, a
/// device, or larger).
pub fn open_regular(path: &Path, most: u64) -> std::io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() > most {
        let size = match most {
            most if most >= 1024 && most % 1024 == 0 => format!("{} KiB", most >> 10),
            most => format!("{most} bytes"),
        };
        return Err(std::io::Error::other(format!(
            "it is not a regular file of at most {size}"
        )));
    }
    Ok(file)
}

/// The text of `path`, a regular file of at most `most` bytes
/// ([`open_regular`]).
///
/// # Errors
/// As [`open_regular`], or if reading fails or the text is not UTF-8.
pub fn read_regular(path: &Path, most: u64) -> std::io::Result<String> {
    let mut text = String::new();
    open_regular(path, most)?
        .take(most)
        .read_to_string(&mut text)?;
    Ok(text)
}
