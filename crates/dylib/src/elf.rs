//! A look at a file's ELF header, so that a file that is not a shared
//! library for this machine is refused before `dlopen` runs any of it; and
//! at its dynamic table, so that a library that would have the dynamic
//! loader look for its dependencies outside the system's library folders is
//! refused too.
//!
//! The dynamic table is found as the loader finds it: through the program
//! headers (`PT_DYNAMIC`, at its address in the image the `PT_LOAD`
//! segments make), never through the section headers, which the loader does
//! not read and a library may strip or retype. Only the parts needed are
//! read, each with a bounded read: the ELF header, the program headers, the
//! dynamic table and the string table.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use object::Endianness;
use object::elf::{Dyn64, FileHeader64, ProgramHeader64};
use object::read::elf::{Dyn as _, FileHeader as _, ProgramHeader as _};

use crate::DylibError;

const ET_DYN: u16 = 3;

#[cfg(target_arch = "x86_64")]
const MACHINE: u16 = 62;
#[cfg(target_arch = "aarch64")]
const MACHINE: u16 = 183;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const MACHINE: u16 = 0;

/// The most bytes read for the dynamic table, and for the string table: a
/// library's are a few KiB; a larger one is refused, not read.
const MAX_TABLE: u64 = 4 << 20;

/// How much of the file's start is read at once: the ELF header, and the
/// program headers that follow it in a library from a linker.
const START: usize = 1024;

/// The size of a program header and of a dynamic entry.
const PROGRAM_HEADER: usize = size_of::<ProgramHeader64<Endianness>>();
const ENTRY: u64 = size_of::<Dyn64<Endianness>>() as u64;

/// Checks that `path` is a 64-bit little-endian ELF shared object for this
/// machine, then its dependencies ([`check_dependencies`]).
///
/// # Errors
/// [`DylibError::Read`], [`DylibError::NotSharedLibrary`] or
/// [`DylibError::Dependency`].
pub fn check(path: &Path) -> Result<(), DylibError> {
    let file = open(path)?;
    let (header, read) = read_header(path, &file)?;
    check_header(path, &header[..read])?;
    dependencies(path, &file, &header[..read])
}

/// The folders a dependency may be found in: the system's, writable only by
/// its administrator. `DT_RUNPATH` and `DT_RPATH` may name these (or
/// folders under them) and nothing else.
pub const SYSTEM_FOLDERS: [&str; 8] = [
    "/lib",
    "/lib32",
    "/lib64",
    "/usr/lib",
    "/usr/lib32",
    "/usr/lib64",
    "/usr/local/lib",
    "/usr/local/lib64",
];

/// Checks the library's dynamic table, read as the dynamic loader reads it
/// (from the `PT_DYNAMIC` program header, through the `PT_LOAD` segments):
/// every folder in its `DT_RUNPATH` and `DT_RPATH` is a system folder
/// ([`SYSTEM_FOLDERS`]), named absolutely (no `$ORIGIN`, which for the
/// private copy the host loads is a folder of its own, and for the artifact
/// a folder no one checked; no empty entry, which means the current folder);
/// no `DT_NEEDED`, `DT_FILTER` or `DT_AUXILIARY` (which the loader loads
/// too) is a path (a name with a `/`) outside them, or holds a dynamic
/// string token (`$ORIGIN`, `$LIB`, `$PLATFORM`), which the loader expands
/// to a path. What the loader then finds by name in the system folders (or
/// through the host's own `LD_LIBRARY_PATH`) is the system's, as for the
/// host itself.
///
/// A file whose program headers, segments or tables are out of the ordinary
/// (overlapping segments, no or several `PT_DYNAMIC`, a table without its
/// end, a string table over 4 MiB, ...) is refused rather than guessed at.
///
/// # Errors
/// [`DylibError::Read`], [`DylibError::NotSharedLibrary`] (unreadable
/// program headers or dynamic table) or [`DylibError::Dependency`].
pub fn check_dependencies(path: &Path) -> Result<(), DylibError> {
    let file = open(path)?;
    let (header, read) = read_header(path, &file)?;
    dependencies(path, &file, &header[..read])
}

fn open(path: &Path) -> Result<File, DylibError> {
    File::open(path).map_err(|error| DylibError::Read {
        path: path.to_owned(),
        error,
    })
}

/// Reads the file's first bytes, up to [`START`].
fn read_header(path: &Path, file: &File) -> Result<([u8; START], usize), DylibError> {
    let mut header = [0u8; START];
    let mut read = 0;
    while read < header.len() {
        match file.read_at(&mut header[read..], read as u64) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                return Err(DylibError::Read {
                    path: path.to_owned(),
                    error,
                });
            }
        }
    }
    Ok((header, read))
}

/// A `PT_LOAD` segment: where its bytes from the file are in the image.
struct Segment {
    address: u64,
    offset: u64,
    file_size: u64,
}

/// The image the `PT_LOAD` segments make, for finding the file's bytes at
/// an address the way the loader maps them.
struct Image(Vec<Segment>);

impl Image {
    /// The segments, refused unless they are in ascending order and no two
    /// share a page, so that every address is mapped from one place.
    fn new(endian: Endianness, headers: &[ProgramHeader64<Endianness>]) -> Result<Self, String> {
        let page = rustix::param::page_size() as u64;
        let mut segments = Vec::new();
        let mut previous_end = 0u64;
        for header in headers {
            if header.p_type(endian) != object::elf::PT_LOAD {
                continue;
            }
            let (address, offset) = (header.p_vaddr(endian), header.p_offset(endian));
            let (file_size, memory_size) = (header.p_filesz(endian), header.p_memsz(endian));
            if file_size > memory_size {
                return Err(format!(
                    "a load segment (PT_LOAD at {address:#x}) has more bytes in the file \
                     ({file_size}) than in memory ({memory_size})"
                ));
            }
            if address.wrapping_sub(offset) % page != 0 {
                return Err(format!(
                    "a load segment's address ({address:#x}) and offset ({offset:#x}) differ \
                     by other than a whole number of pages"
                ));
            }
            let end = address
                .checked_add(memory_size)
                .and_then(|end| end.checked_next_multiple_of(page))
                .ok_or_else(|| format!("a load segment (PT_LOAD at {address:#x}) overflows"))?;
            if !segments.is_empty() && address - address % page < previous_end {
                return Err(format!(
                    "its load segments (PT_LOAD) are out of order or share a page (at \
                     {address:#x})"
                ));
            }
            previous_end = end;
            segments.push(Segment {
                address,
                offset,
                file_size,
            });
        }
        Ok(Self(segments))
    }

    /// The file offset of the bytes at `address`, and how many bytes from
    /// the file follow it in its segment.
    fn find(&self, address: u64) -> Option<(u64, u64)> {
        self.0.iter().find_map(|segment| {
            let into = address.checked_sub(segment.address)?;
            (into < segment.file_size)
                .then(|| Some((segment.offset.checked_add(into)?, segment.file_size - into)))
                .flatten()
        })
    }
}

/// Reads `len` bytes at `offset`, refusing a range past the file's end or
/// over [`MAX_TABLE`].
fn read_range(
    path: &Path,
    file: &File,
    offset: u64,
    len: u64,
    what: &str,
) -> Result<Vec<u8>, DylibError> {
    let not = |why: String| DylibError::NotSharedLibrary {
        path: path.to_owned(),
        why,
    };
    if len > MAX_TABLE {
        return Err(not(format!(
            "its {what} is {len} bytes, more than the {MAX_TABLE} this check reads"
        )));
    }
    let mut bytes = vec![0; len as usize];
    file.read_exact_at(&mut bytes, offset).map_err(|error| {
        if error.kind() == std::io::ErrorKind::UnexpectedEof {
            not(format!(
                "its {what} (at {offset:#x}, {len} bytes) is past the file's end"
            ))
        } else {
            DylibError::Read {
                path: path.to_owned(),
                error,
            }
        }
    })?;
    Ok(bytes)
}

/// Checks the dependencies; `start` is the file's start, up to [`START`]
/// bytes.
fn dependencies(path: &Path, file: &File, start: &[u8]) -> Result<(), DylibError> {
    let not = |why: String| DylibError::NotSharedLibrary {
        path: path.to_owned(),
        why,
    };
    let header = FileHeader64::<Endianness>::parse(start)
        .map_err(|error| not(format!("its ELF header cannot be read: {error}")))?;
    let endian = header
        .endian()
        .map_err(|error| not(format!("its ELF header cannot be read: {error}")))?;

    // The program headers: at most 65,535 (`e_phnum` is 16 bits) of 56
    // bytes, under 4 MiB.
    let size = header.e_phentsize(endian);
    if usize::from(size) != PROGRAM_HEADER {
        return Err(not(format!(
            "its program headers are {size} bytes each, not {PROGRAM_HEADER}"
        )));
    }
    let (offset, len) = (
        header.e_phoff(endian),
        u64::from(header.e_phnum(endian)) * PROGRAM_HEADER as u64,
    );
    let read;
    let bytes = match usize::try_from(offset)
        .ok()
        .and_then(|offset| start.get(offset..offset.checked_add(usize::try_from(len).ok()?)?))
    {
        Some(bytes) => bytes,
        None => {
            read = read_range(path, file, offset, len, "program header table")?;
            &read
        }
    };
    let headers = object::pod::slice_from_all_bytes::<ProgramHeader64<Endianness>>(bytes)
        .map_err(|()| not("its program headers cannot be read".into()))?;
    let image = Image::new(endian, headers).map_err(not)?;

    // The dynamic table, where the loader reads it: at PT_DYNAMIC's address
    // in the image (not at its file offset, which the loader ignores), up
    // to its first DT_NULL, whatever the header gives as its size.
    let mut dynamic = headers
        .iter()
        .filter(|header| header.p_type(endian) == object::elf::PT_DYNAMIC);
    let (Some(segment), None) = (dynamic.next(), dynamic.next()) else {
        return Err(not(
            "it has no dynamic segment (PT_DYNAMIC), or more than one".into(),
        ));
    };
    let address = segment.p_vaddr(endian);
    let (offset, available) = image.find(address).ok_or_else(|| {
        not(format!(
            "its dynamic segment (PT_DYNAMIC at {address:#x}) is not in the file's part of a \
             load segment"
        ))
    })?;
    let most = available.min(MAX_TABLE) / ENTRY * ENTRY;
    let mut len = segment.p_filesz(endian).min(most) / ENTRY * ENTRY;
    let (bytes, end) = loop {
        let bytes = read_range(path, file, offset, len, "dynamic table")?;
        let entries = object::pod::slice_from_all_bytes::<Dyn64<Endianness>>(&bytes)
            .map_err(|()| not("its dynamic table cannot be read".into()))?;
        if let Some(end) = entries
            .iter()
            .position(|entry| entry.d_tag(endian) == object::elf::DT_NULL)
        {
            break (bytes, end);
        }
        if len == most {
            return Err(not(format!(
                "its dynamic table (at {address:#x}) has no end (DT_NULL) in its segment's \
                 first {most} bytes from the file"
            )));
        }
        len = most;
    };
    let entries = &object::pod::slice_from_all_bytes::<Dyn64<Endianness>>(&bytes)
        .map_err(|()| not("its dynamic table cannot be read".into()))?[..end];

    let mut strings = None;
    let mut strings_size = None;
    let mut checked = Vec::new();
    for entry in entries {
        let (tag, value) = (entry.d_tag(endian), entry.d_val(endian));
        let name = match tag {
            object::elf::DT_STRTAB | object::elf::DT_STRSZ => {
                let (slot, name) = if tag == object::elf::DT_STRTAB {
                    (&mut strings, "DT_STRTAB")
                } else {
                    (&mut strings_size, "DT_STRSZ")
                };
                if slot.replace(value).is_some() {
                    return Err(not(format!("its dynamic table has more than one {name}")));
                }
                continue;
            }
            object::elf::DT_RUNPATH => "DT_RUNPATH",
            object::elf::DT_RPATH => "DT_RPATH",
            object::elf::DT_NEEDED => "DT_NEEDED",
            object::elf::DT_FILTER => "DT_FILTER",
            object::elf::DT_AUXILIARY => "DT_AUXILIARY",
            _ => continue,
        };
        checked.push((name, value));
    }
    if checked.is_empty() {
        return Ok(());
    }

    // The string table, at DT_STRTAB's address in the image.
    let (Some(address), Some(size)) = (strings, strings_size) else {
        return Err(not(
            "its dynamic table names libraries or folders, and has no string table \
             (DT_STRTAB and DT_STRSZ)"
                .into(),
        ));
    };
    if size > MAX_TABLE {
        return Err(not(format!(
            "its string table (DT_STRSZ) is {size} bytes, more than the {MAX_TABLE} this check \
             reads"
        )));
    }
    let (offset, _) = image
        .find(address)
        .filter(|&(_, available)| available >= size)
        .ok_or_else(|| {
            not(format!(
                "its string table (DT_STRTAB at {address:#x}, {size} bytes) is not in the \
                 file's part of a load segment"
            ))
        })?;
    let table = read_range(path, file, offset, size, "string table")?;

    for (name, at) in checked {
        let value = usize::try_from(at)
            .ok()
            .and_then(|at| table.get(at..))
            .and_then(|rest| Some(&rest[..rest.iter().position(|&byte| byte == 0)?]))
            .ok_or_else(|| {
                not(format!(
                    "its {name} (string {at}) is not a string of its string table \
                     ({size} bytes)"
                ))
            })?;
        let value = String::from_utf8_lossy(value).into_owned();
        let why = match name {
            "DT_RUNPATH" | "DT_RPATH" => value.split(':').find_map(folder_problem),
            // A name the loader looks for in the system folders, unless it
            // is a path or holds a token the loader expands (to a path).
            _ if value.contains(['/', '$']) => folder_problem(&value),
            _ => None,
        };
        if let Some(why) = why {
            return Err(DylibError::Dependency {
                path: path.to_owned(),
                entry: name,
                value,
                why,
            });
        }
    }
    Ok(())
}

/// What is wrong with a folder (or a file) named in a dynamic entry, if
/// anything.
fn folder_problem(folder: &str) -> Option<&'static str> {
    use std::path::Component;
    if folder.contains('$') {
        return Some(
            "a dynamic string token ($ORIGIN, $LIB or $PLATFORM), which the loader expands to \
             a folder relative to the library or of the platform",
        );
    }
    let folder = Path::new(folder);
    if !folder.is_absolute() {
        return Some("a folder relative to the host's current folder");
    }
    if folder
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Some("a folder with `..` or `.` in it");
    }
    if SYSTEM_FOLDERS
        .iter()
        .any(|system| folder.starts_with(system))
    {
        return None;
    }
    Some("a folder outside the system's library folders")
}

fn check_header(path: &Path, header: &[u8]) -> Result<(), DylibError> {
    let not = |why: String| DylibError::NotSharedLibrary {
        path: path.to_owned(),
        why,
    };
    if header.len() < 20 || header[..4] != *b"\x7fELF" {
        let start = String::from_utf8_lossy(&header[..header.len().min(8)]).into_owned();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a shared library with `flags`, with the system's C compiler.
    fn library(dir: &Path, name: &str, flags: &[&str]) -> std::path::PathBuf {
        let source = dir.join("lib.c");
        std::fs::write(&source, "int outlet_test(void) { return 1; }\n").unwrap();
        let out = dir.join(name);
        let built = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&out)
            .arg(&source)
            .args(flags)
            .status()
            .expect("a C compiler (`cc`), which the tests' C plugins need too");
        assert!(built.success());
        out
    }

    #[test]
    fn an_rpath_outside_the_system_folders_is_refused_and_one_inside_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let plain = library(dir.path(), "plain.so", &[]);
        check(&plain).unwrap();
        let system = library(
            dir.path(),
            "system.so",
            &["-Wl,-rpath,/usr/lib/x86_64-linux-gnu"],
        );
        check(&system).unwrap();

        for (name, flags, value, why) in [
            (
                "runpath.so",
                ["-Wl,-rpath,/usr/lib:/tmp/evil", "-Wl,--enable-new-dtags"],
                "/usr/lib:/tmp/evil",
                "outside the system's library folders",
            ),
            (
                "rpath.so",
                ["-Wl,-rpath,/opt/plugin/lib", "-Wl,--disable-new-dtags"],
                "/opt/plugin/lib",
                "outside the system's library folders",
            ),
            (
                "origin.so",
                ["-Wl,-rpath,$ORIGIN/lib", "-Wl,--enable-new-dtags"],
                "$ORIGIN/lib",
                "$ORIGIN",
            ),
            (
                "dotdot.so",
                ["-Wl,-rpath,/usr/lib/../../tmp", "-Wl,--enable-new-dtags"],
                "/usr/lib/../../tmp",
                "`..`",
            ),
        ] {
            let library = library(dir.path(), name, &flags);
            let error = check(&library).unwrap_err();
            assert!(matches!(error, DylibError::Dependency { .. }), "{error:?}");
            let text = error.to_string();
            assert!(
                text.contains(&format!("`{value}`"))
                    && text.contains(why)
                    && text.contains("link the plugin without an rpath"),
                "{text}"
            );
        }
    }

    fn u16_at(bytes: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap())
    }
    fn u64_at(bytes: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
    }

    /// Where each program header starts, and its type.
    fn program_headers(bytes: &[u8]) -> Vec<(usize, u32)> {
        let offset = u64_at(bytes, 0x20) as usize;
        (0..usize::from(u16_at(bytes, 0x38)))
            .map(|i| {
                let at = offset + i * 56;
                (
                    at,
                    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()),
                )
            })
            .collect()
    }

    /// Where the dynamic table's entry with `tag` starts, through
    /// PT_DYNAMIC's file offset (which, in a file from a linker, is where
    /// its address maps).
    fn dynamic_entry(bytes: &[u8], tag: u64) -> usize {
        let (at, _) = program_headers(bytes)
            .into_iter()
            .find(|&(_, kind)| kind == object::elf::PT_DYNAMIC)
            .unwrap();
        let mut entry = u64_at(bytes, at + 8) as usize;
        while u64_at(bytes, entry) != tag {
            assert_ne!(u64_at(bytes, entry), 0, "no entry {tag}");
            entry += 16;
        }
        entry
    }

    /// A copy of `library` with its section headers gone, as `strip` can
    /// leave them: the loader does not read them.
    fn without_sections(library: &Path) -> std::path::PathBuf {
        let mut bytes = std::fs::read(library).unwrap();
        bytes[0x28..0x30].fill(0); // e_shoff
        bytes[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
        let out = library.with_extension("nosections.so");
        std::fs::write(&out, bytes).unwrap();
        out
    }

    #[test]
    fn the_dynamic_table_is_read_through_the_program_headers_as_the_loader_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let plain = library(dir.path(), "plain.so", &[]);
        check(&without_sections(&plain)).unwrap();

        let runpath = library(
            dir.path(),
            "runpath.so",
            &["-Wl,-rpath,/tmp/evil", "-Wl,--enable-new-dtags"],
        );
        let stripped = without_sections(&runpath);
        let error = check(&stripped).unwrap_err().to_string();
        assert!(
            error.contains("DT_RUNPATH") && error.contains("`/tmp/evil`"),
            "{error}"
        );

        // The section that says it is the dynamic table retyped (to
        // SHT_PROGBITS): the loader does not care, nor does the check.
        let mut bytes = std::fs::read(&runpath).unwrap();
        let sections = u64_at(&bytes, 0x28) as usize;
        let dynamic: Vec<usize> = (0..usize::from(u16_at(&bytes, 0x3c)))
            .map(|i| sections + i * 64 + 4)
            .filter(|&at| bytes[at..at + 4] == object::elf::SHT_DYNAMIC.to_le_bytes())
            .collect();
        assert_eq!(dynamic.len(), 1);
        bytes[dynamic[0]..dynamic[0] + 4].copy_from_slice(&object::elf::SHT_PROGBITS.to_le_bytes());
        let retyped = dir.path().join("retyped.so");
        std::fs::write(&retyped, bytes).unwrap();
        let error = check(&retyped).unwrap_err().to_string();
        assert!(error.contains("DT_RUNPATH"), "{error}");
    }

    #[test]
    fn filters_and_names_with_dynamic_string_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (name, flag, entry, value) in [
            (
                "filter.so",
                "-Wl,--filter=/tmp/x/libfoo.so",
                "DT_FILTER",
                "/tmp/x/libfoo.so",
            ),
            (
                "auxiliary.so",
                "-Wl,--auxiliary=/opt/x/libfoo.so",
                "DT_AUXILIARY",
                "/opt/x/libfoo.so",
            ),
            (
                "token.so",
                "-Wl,--filter=lib$PLATFORM.so",
                "DT_FILTER",
                "lib$PLATFORM.so",
            ),
        ] {
            let library = library(dir.path(), name, &[flag]);
            let error = check(&library).unwrap_err();
            assert!(matches!(error, DylibError::Dependency { .. }), "{error:?}");
            let text = error.to_string();
            assert!(
                text.contains(entry) && text.contains(&format!("`{value}`")),
                "{text}"
            );
        }
        let system = library(
            dir.path(),
            "system-filter.so",
            &["-Wl,--filter=/usr/lib/libfoo.so"],
        );
        check(&system).unwrap();

        // A dependency whose name (its soname, which becomes the needing
        // library's DT_NEEDED) holds a token but no `/`.
        let dependency = library(dir.path(), "libdep.so", &["-Wl,-soname,lib$ORIGIN.so"]);
        let needing = library(
            dir.path(),
            "needing-token.so",
            &["-Wl,--no-as-needed", dependency.to_str().unwrap()],
        );
        let text = check(&needing).unwrap_err().to_string();
        assert!(
            text.contains("DT_NEEDED")
                && text.contains("`lib$ORIGIN.so`")
                && text.contains("token"),
            "{text}"
        );
    }

    #[test]
    fn a_hostile_header_or_table_is_refused_without_reading_what_it_claims() {
        let dir = tempfile::tempdir().unwrap();
        let plain =
            std::fs::read(library(dir.path(), "plain.so", &["-Wl,-rpath,/usr/lib"])).unwrap();
        let refused = |name: &str, bytes: &[u8], why: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let error = check(&path).unwrap_err();
            assert!(
                matches!(error, DylibError::NotSharedLibrary { .. })
                    && error.to_string().contains(why),
                "{name}: {error}"
            );
        };

        let mut bytes = plain.clone();
        bytes[0x20..0x28].copy_from_slice(&(1u64 << 60).to_le_bytes());
        refused("phoff.so", &bytes, "past the file's end");

        let mut bytes = plain.clone();
        let at = dynamic_entry(&bytes, object::elf::DT_STRSZ as u64);
        bytes[at + 8..at + 16].copy_from_slice(&(1u64 << 40).to_le_bytes());
        refused("strsz.so", &bytes, "more than the");

        let mut bytes = plain.clone();
        let (at, _) = program_headers(&bytes)
            .into_iter()
            .find(|&(_, kind)| kind == object::elf::PT_DYNAMIC)
            .unwrap();
        bytes[at + 0x10..at + 0x18].copy_from_slice(&0xdead_0000u64.to_le_bytes());
        refused("dynamic.so", &bytes, "PT_DYNAMIC");

        let mut bytes = plain.clone();
        let at = dynamic_entry(&bytes, object::elf::DT_RUNPATH as u64);
        bytes[at + 8..at + 16].copy_from_slice(&(1u64 << 20).to_le_bytes());
        refused("string.so", &bytes, "not a string of its string table");

        // Every byte of the headers set to 0xff in turn: an answer each
        // time, never a panic.
        let end = u64_at(&plain, 0x20) as usize + 56 * usize::from(u16_at(&plain, 0x38));
        let path = dir.path().join("flipped.so");
        for at in 0..end {
            let mut bytes = plain.clone();
            bytes[at] = 0xff;
            std::fs::write(&path, &bytes).unwrap();
            let _ = check(&path);
        }
    }

    #[test]
    fn a_dependency_named_by_a_path_outside_the_system_folders_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let dependency = library(dir.path(), "libdep.so", &[]);
        let needing = library(
            dir.path(),
            "needing.so",
            &["-Wl,--no-as-needed", dependency.to_str().unwrap()],
        );
        let error = check(&needing).unwrap_err().to_string();
        assert!(
            error.contains("DT_NEEDED") && error.contains(dependency.to_str().unwrap()),
            "{error}"
        );
    }
}
