//! The files a sandboxed process may execute: granted programs opened
//! safely, and the interpreters the kernel needs to run them (`#!`, the
//! ELF's `PT_INTERP`).

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Where an interpreter may be, once resolved: the system's folders.
pub(super) const SYSTEM_FOLDERS_FOR_INTERPRETERS: [&str; 6] =
    ["/usr", "/lib", "/lib64", "/bin", "/sbin", "/nix/store"];

/// `path` opened for a rule that grants executing it: a regular file,
/// checked before it is opened for reading (a FIFO would block the host,
/// a device run its driver), or why not. Without `follow`, no link on the
/// way is followed: the path is one the policy resolved at load.
pub(super) fn open_file(path: &Path, follow: bool) -> Result<File, String> {
    use rustix::fs::{Mode, OFlags};
    let failed = |e: rustix::io::Errno| format!("{}: {e}", path.display());
    let fd = super::landlock::open_place(path, follow).map_err(failed)?;
    let stat = rustix::fs::fstat(&fd).map_err(failed)?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(format!("{} is not a file", path.display()));
    }
    let again = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    let read = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
    Ok(rustix::fs::open(again, read, Mode::empty())
        .map_err(failed)?
        .into())
}

/// The interpreters `program` needs the kernel to run: the ELF's
/// `PT_INTERP` (the dynamic loader), or a script's `#!` line and its own,
/// as deep as the kernel follows them (`depth`, from 0, below 4).
pub(super) fn interpreters(program: &File, depth: u32) -> Vec<PathBuf> {
    if depth >= 4 {
        return Vec::new();
    }
    let mut head = [0u8; 256];
    let Ok(n) = program.read_at(&mut head, 0) else {
        return Vec::new();
    };
    let head = &head[..n];
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|b| *b == b'\n').next().unwrap_or_default();
        let Some(path) = std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.split_whitespace().next())
        else {
            return Vec::new();
        };
        // Resolved, so that where it lies is judged, not where it seems.
        let Ok(path) = Path::new(path).canonicalize() else {
            return Vec::new();
        };
        let mut found = open_file(&path, true)
            .map(|f| interpreters(&f, depth + 1))
            .unwrap_or_default();
        found.push(path);
        return found;
    }
    (elf_interpreter(program).and_then(|path| path.canonicalize().ok()))
        .into_iter()
        .collect()
}

/// The path in a 64-bit little-endian ELF file's `PT_INTERP`.
fn elf_interpreter(file: &File) -> Option<PathBuf> {
    let mut header = [0u8; 64];
    file.read_exact_at(&mut header, 0).ok()?;
    if &header[..6] != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    let (phoff, phentsize, phnum) = (
        u64_at(&header, 32),
        u16_at(&header, 54),
        u16_at(&header, 56),
    );
    if phentsize < 56 {
        return None;
    }
    for index in 0..u64::from(phnum.min(256)) {
        let mut ph = [0u8; 56];
        file.read_exact_at(&mut ph, phoff.checked_add(index * u64::from(phentsize))?)
            .ok()?;
        const PT_INTERP: u32 = 3;
        if u32::from_le_bytes([ph[0], ph[1], ph[2], ph[3]]) == PT_INTERP {
            let (offset, size) = (u64_at(&ph, 8), u64_at(&ph, 32).min(4096));
            let mut path = vec![0u8; usize::try_from(size).ok()?];
            file.read_exact_at(&mut path, offset).ok()?;
            let path = path.split(|b| *b == 0).next()?;
            return Some(PathBuf::from(std::ffi::OsStr::from_bytes(path)));
        }
    }
    None
}
