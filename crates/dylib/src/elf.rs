//! A look at a file's ELF header, so that a file that is not a shared
//! library for this machine is refused before `dlopen` runs any of it.

use std::io::Read;
use std::path::Path;

use crate::DylibError;

const ET_DYN: u16 = 3;

#[cfg(target_arch = "x86_64")]
const MACHINE: u16 = 62;
#[cfg(target_arch = "aarch64")]
const MACHINE: u16 = 183;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const MACHINE: u16 = 0;

/// Checks that `path` is a 64-bit little-endian ELF shared object for this
/// machine.
///
/// # Errors
/// [`DylibError::Read`] or [`DylibError::NotSharedLibrary`].
pub fn check(path: &Path) -> Result<(), DylibError> {
    let mut header = [0u8; 20];
    let read = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut header))
        .map_err(|error| DylibError::Read {
            path: path.to_owned(),
            error,
        })?;
    let not = |why: String| DylibError::NotSharedLibrary {
        path: path.to_owned(),
        why,
    };
    if read < header.len() || header[..4] != *b"\x7fELF" {
        let start = String::from_utf8_lossy(&header[..read.min(8)]).into_owned();
        return Err(not(format!(
            "it is not an ELF file (it starts with {start:?})"
        )));
    }
    if header[4] != 2 || header[5] != 1 {
        return Err(not("it is not a 64-bit little-endian ELF file".into()));
    }
    let e_type = u16::from_le_bytes([header[16], header[17]]);
    if e_type != ET_DYN {
        return Err(not(format!(
            "its ELF type is {e_type}, not a shared object (3); build it as a `cdylib` or with `-shared`"
        )));
    }
    let machine = u16::from_le_bytes([header[18], header[19]]);
    if MACHINE != 0 && machine != MACHINE {
        return Err(not(format!(
            "it is built for ELF machine {machine}, and this host is machine {MACHINE}"
        )));
    }
    Ok(())
}
