//! A look at a file's ELF header, so that a file that is not a shared
//! library for this machine is refused before `dlopen` runs any of it; and
//! at its dynamic section, so that a library that would have the dynamic
//! loader look for its dependencies outside the system's library folders is
//! refused too.

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
/// machine, then its dependencies ([`check_dependencies`]).
///
/// # Errors
/// [`DylibError::Read`], [`DylibError::NotSharedLibrary`] or
/// [`DylibError::Dependency`].
pub fn check(path: &Path) -> Result<(), DylibError> {
    check_header(path)?;
    check_dependencies(path)
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

/// Checks the library's dynamic section: every folder in its `DT_RUNPATH`
/// and `DT_RPATH` is a system folder ([`SYSTEM_FOLDERS`]), named absolutely
/// (no `$ORIGIN`, which for the private copy the host loads is a folder of
/// its own, and for the artifact a folder no one checked; no empty entry,
/// which means the current folder), and no `DT_NEEDED` is a path (a name
/// with a `/`) outside them. What the loader then finds by name in the
/// system folders (or through the host's own `LD_LIBRARY_PATH`) is the
/// system's, as for the host itself.
///
/// # Errors
/// [`DylibError::Read`], [`DylibError::NotSharedLibrary`] (an unreadable
/// dynamic section) or [`DylibError::Dependency`].
pub fn check_dependencies(path: &Path) -> Result<(), DylibError> {
    use object::read::elf::ElfFile64;
    let file = std::fs::File::open(path).map_err(|error| DylibError::Read {
        path: path.to_owned(),
        error,
    })?;
    let cache = object::ReadCache::new(file);
    let not = |error: object::read::Error| DylibError::NotSharedLibrary {
        path: path.to_owned(),
        why: format!("its dynamic section cannot be read: {error}"),
    };
    let elf = ElfFile64::<object::Endianness, _>::parse(&cache).map_err(not)?;
    let table = elf
        .elf_section_table()
        .dynamic_table(elf.endian(), &cache)
        .map_err(not)?;
    for entry in table.iter() {
        let name = match entry.tag {
            object::elf::DT_RUNPATH => "DT_RUNPATH",
            object::elf::DT_RPATH => "DT_RPATH",
            object::elf::DT_NEEDED => "DT_NEEDED",
            _ => continue,
        };
        let value = String::from_utf8_lossy(table.string(entry).map_err(not)?).into_owned();
        let why = if name == "DT_NEEDED" {
            value
                .contains('/')
                .then(|| folder_problem(&value))
                .flatten()
        } else {
            value.split(':').find_map(folder_problem)
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
        return Some("a folder relative to the library ($ORIGIN) or to the platform");
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

fn check_header(path: &Path) -> Result<(), DylibError> {
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
