//! Compiled modules, cached on disk: compiling a module takes milliseconds,
//! loading a compiled one a fraction of that.
//!
//! An entry is named by the SHA-256 of the module's bytes and of the
//! engine's compatibility hash, so a module compiled by another wasmtime
//! or with other settings is never looked up. The cache holds at most
//! [`MAX_BYTES`]: once a write takes it over, the entries used least
//! recently go (a hit marks an entry used).
//!
//! `Module::deserialize` sees only bytes this user's host wrote:
//!
//! - The folder the host is given is resolved once, when the host is built
//!   ([`resolve`]): links in what exists of it then are its configuration's.
//!   The user's cache (`$XDG_CACHE_HOME`, or `$HOME/.cache`) is used only
//!   when the variable is an absolute path.
//! - Each load walks that folder from `/`, one folder at a time, through
//!   descriptors (`openat` with `O_NOFOLLOW`): a link put anywhere on the
//!   way since is refused, not followed. Missing folders are made (0700).
//!   The cache folder and the one holding it must be folders owned by this
//!   user that no one else can write, checked with `fstat` on the
//!   descriptors opened.
//! - An entry is opened in the cache folder's descriptor without following
//!   a link, checked on its own descriptor (a regular file of this user's
//!   that no one else can write, within [`MAX_BYTES`]) and read from it.
//!   Entries are written to a new private file in the same folder, then
//!   renamed into place.
//!
//! Whatever fails a check is not used, and the log says so, naming the
//! plugin, the file and the fix; the module is compiled instead.

use std::ffi::OsStr;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use outlet_manifest::Manifest;
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

use super::error::WasmError;
use crate::error::LoadError;

/// The most the cache folder holds, in bytes of compiled modules.
pub(crate) const MAX_BYTES: u64 = 256 << 20;

/// Compiles the manifest's module, or loads it from the cache in `dir`.
/// The bytes compiled are the bytes checked against `sha256`: the file may
/// have changed since the manifest's check.
pub(super) fn load_module(
    engine: &Engine,
    manifest: &Manifest,
    dir: Option<&Path>,
) -> Result<Module, LoadError> {
    let path = &manifest.path;
    let refuse = |error| LoadError::Wasm {
        plugin: manifest.name.clone(),
        error,
    };
    // Read from the one descriptor checked (a regular file, at most
    // MAX_ARTIFACT_BYTES, its hash), as it is hashed.
    let mut bytes = Vec::new();
    manifest.read_artifact(&mut |chunk| bytes.extend_from_slice(chunk))?;
    let text = std::str::from_utf8(&bytes).is_ok();
    if !text && !bytes.starts_with(b"\0asm") {
        return Err(refuse(WasmError::NotWasm { path: path.clone() }));
    }
    let plugin = manifest.name.as_str();
    let folder = dir.and_then(|dir| {
        Folder::open(dir)
            .inspect_err(|why| not_used(plugin, why))
            .ok()
    });
    let name = format!("{}.cwasm", key(engine, &bytes));
    if let Some(module) = folder
        .as_ref()
        .and_then(|f| f.cached(engine, &name, plugin))
    {
        return Ok(module);
    }
    let module = Module::new(engine, &bytes).map_err(|e| {
        refuse(WasmError::Compile {
            path: path.clone(),
            reason: e.to_string().lines().next().unwrap_or_default().to_owned(),
        })
    })?;
    if let (Some(folder), Ok(serialized)) = (folder, module.serialize()) {
        folder.store(&name, &serialized, plugin);
        trim(folder.fd.as_fd(), MAX_BYTES);
    }
    Ok(module)
}

/// Says in the log that the cache is not used for `plugin`'s module, why,
/// and what to do.
fn not_used(plugin: &str, why: &Refused) {
    tracing::warn!(
        target: "outlet::host",
        plugin,
        "the compiled-module cache is not used: {why}; the module is compiled instead"
    );
}

/// Why a cache folder or entry is not used; each says what to do.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error(
        "{} is a symbolic link, which the module cache does not follow; remove it, or give \
         the host the folder it points to (Host::builder().module_cache)",
        path.display()
    )]
    Link { path: PathBuf },
    #[error(
        "{} is not a folder; remove it, or give the host another cache folder \
         (Host::builder().module_cache)",
        path.display()
    )]
    NotFolder { path: PathBuf },
    #[error("{} is not a regular file; remove it", path.display())]
    NotFile { path: PathBuf },
    #[error(
        "{} belongs to user {owner}, not to this user ({uid}); remove it, or give the host a \
         cache folder of this user's (Host::builder().module_cache)",
        path.display()
    )]
    Owner { path: PathBuf, owner: u32, uid: u32 },
    #[error(
        "{} can be written by others than its owner (mode {mode:o}); `chmod go-w` it, or \
         remove it",
        path.display()
    )]
    Writable { path: PathBuf, mode: u32 },
    #[error(
        "{} holds {size} bytes, more than the cache's bound of {MAX_BYTES}; remove it",
        path.display()
    )]
    TooLarge { path: PathBuf, size: u64 },
    #[error(
        "{} holds `..`; give the host a cache folder without it \
         (Host::builder().module_cache)",
        path.display()
    )]
    Dots { path: PathBuf },
    #[error(
        "cannot open {}: {source}; check its permissions, or give the host another cache \
         folder (Host::builder().module_cache)",
        path.display()
    )]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The cache folder, open: it passed its checks on the descriptors the
/// walk from `/` opened.
#[derive(Debug)]
struct Folder {
    /// The folder, opened for reading (its entries are listed to trim it).
    fd: OwnedFd,
    /// Its path, for the log.
    path: PathBuf,
}

impl Folder {
    /// Walks `dir` from `/` through descriptors, making missing folders
    /// (0700), following no link; the last folder and the one holding it
    /// must be this user's, writable by no one else.
    fn open(dir: &Path) -> Result<Folder, Refused> {
        let dir = std::path::absolute(dir).map_err(|source| Refused::Open {
            path: dir.to_owned(),
            source,
        })?;
        let mut names = Vec::new();
        for component in dir.components() {
            match component {
                Component::Normal(name) => names.push(name),
                Component::ParentDir => return Err(Refused::Dots { path: dir }),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        let last = names.len();
        // The folders on the way are only passed through (O_PATH: they need
        // not be readable); the cache folder is read.
        let flags = |level: usize| {
            let access = if level == last {
                OFlags::RDONLY
            } else {
                OFlags::PATH
            };
            access | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
        };
        let mut path = PathBuf::from("/");
        let mut folder = rustix::fs::open("/", flags(0), Mode::empty())
            .map_err(|errno| open_error(&path, errno))?;
        for level in 0..=last {
            if level > 0 {
                let name = names[level - 1];
                path.push(name);
                folder = open_folder(folder.as_fd(), name, flags(level), &path)?;
            }
            let (fd, meta) = fstat(folder, &path)?;
            folder = fd;
            if !meta.is_dir() {
                return Err(Refused::NotFolder { path });
            }
            if level + 1 >= last {
                private(&meta, &path)?;
            }
        }
        Ok(Folder { fd: folder, path })
    }

    /// The cached module `name`, if it passes its checks and wasmtime
    /// accepts it for `engine`; marks the entry used.
    fn cached(&self, engine: &Engine, name: &str, plugin: &str) -> Option<Module> {
        let path = self.path.join(name);
        // Not blocking: a FIFO in the entry's place fails its check instead.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
        let opened =
            match rustix::fs::openat(&self.fd, name, flags | OFlags::CLOEXEC, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => return None,
                Err(errno) => {
                    not_used(
                        plugin,
                        &refusal(self.fd.as_fd(), OsStr::new(name), &path, errno),
                    );
                    return None;
                }
            };
        let (file, serialized) = match read_entry(opened, &path) {
            Ok(read) => read,
            Err(why) => {
                not_used(plugin, &why);
                return None;
            }
        };
        #[allow(unsafe_code)]
        // SAFETY: `deserialize` trusts the bytes to be wasmtime's own output
        // for this engine. They are: only this user's host writes entries,
        // under a name holding the SHA-256 of the module and of the engine's
        // compatibility hash (`store`), and these bytes were read, into
        // memory of ours, from the descriptor `read_entry` checked: a
        // regular file (opened without following a link) owned by this user
        // and writable by no one else, opened in the descriptor of a folder
        // that `Folder::open` reached from `/` following no link and
        // checked, with the folder holding it, to be this user's and
        // writable by no one else, so that no other user can have put it
        // there. Processes of this user can, rpc and exec plugins among
        // them until an OS sandbox hides the cache from them (see
        // docs/security.md); the host trusts this user's files as it trusts
        // its own binary.
        let module = match unsafe { Module::deserialize(engine, &serialized) } {
            Ok(module) => module,
            Err(error) => {
                tracing::debug!(
                    target: "outlet::host",
                    plugin,
                    "{} is not a module this wasmtime loads ({error}); compiling it again",
                    path.display()
                );
                return None;
            }
        };
        let _ = file.set_modified(SystemTime::now());
        Some(module)
    }

    /// Writes the entry `name` to a new private file in the folder, then
    /// renames it into place.
    fn store(&self, name: &str, serialized: &[u8], plugin: &str) {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = format!("{name}.{}-{n}.tmp", std::process::id());
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let written = rustix::fs::openat(&self.fd, temp.as_str(), flags, Mode::RUSR | Mode::WUSR)
            .map_err(std::io::Error::from)
            .and_then(|fd| File::from(fd).write_all(serialized))
            .and_then(|()| {
                rustix::fs::renameat(&self.fd, temp.as_str(), &self.fd, name)
                    .map_err(std::io::Error::from)
            });
        if let Err(error) = written {
            let _ = rustix::fs::unlinkat(&self.fd, temp.as_str(), AtFlags::empty());
            tracing::debug!(
                target: "outlet::host",
                plugin,
                "cannot cache the compiled module as {}: {error}",
                self.path.join(name).display()
            );
        }
    }
}

/// Opens the folder `name` in `parent` with `flags`, made (0700) if missing.
fn open_folder(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    flags: OFlags,
    path: &Path,
) -> Result<OwnedFd, Refused> {
    let opened = match rustix::fs::openat(parent, name, flags, Mode::empty()) {
        Err(Errno::NOENT) => match rustix::fs::mkdirat(parent, name, Mode::RWXU) {
            Ok(()) | Err(Errno::EXIST) => rustix::fs::openat(parent, name, flags, Mode::empty()),
            Err(errno) => Err(errno),
        },
        opened => opened,
    };
    opened.map_err(|errno| refusal(parent, name, path, errno))
}

/// Why `name` in `dir` could not be opened: a link or something else in the
/// way is said as such.
fn refusal(dir: BorrowedFd<'_>, name: &OsStr, path: &Path, errno: Errno) -> Refused {
    let path = path.to_owned();
    if matches!(errno, Errno::LOOP | Errno::NOTDIR)
        && let Ok(stat) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
    {
        return match rustix::fs::FileType::from_raw_mode(stat.st_mode) {
            rustix::fs::FileType::Symlink => Refused::Link { path },
            _ => Refused::NotFolder { path },
        };
    }
    open_error(&path, errno)
}

fn open_error(path: &Path, errno: Errno) -> Refused {
    Refused::Open {
        path: path.to_owned(),
        source: errno.into(),
    }
}

/// `fd`'s metadata, from the descriptor itself.
fn fstat(fd: OwnedFd, path: &Path) -> Result<(OwnedFd, std::fs::Metadata), Refused> {
    let file = File::from(fd);
    let meta = file.metadata().map_err(|source| Refused::Open {
        path: path.to_owned(),
        source,
    })?;
    Ok((file.into(), meta))
}

/// Checks an opened entry (a regular file of this user's that no one else
/// can write, within the bound), then reads it from the same descriptor.
fn read_entry(fd: OwnedFd, path: &Path) -> Result<(File, Vec<u8>), Refused> {
    let (fd, meta) = fstat(fd, path)?;
    if !meta.is_file() {
        return Err(Refused::NotFile {
            path: path.to_owned(),
        });
    }
    private(&meta, path)?;
    if meta.len() > MAX_BYTES {
        return Err(Refused::TooLarge {
            path: path.to_owned(),
            size: meta.len(),
        });
    }
    let mut file = File::from(fd);
    let mut serialized = Vec::new();
    (&mut file)
        .take(MAX_BYTES + 1)
        .read_to_end(&mut serialized)
        .map_err(|source| Refused::Open {
            path: path.to_owned(),
            source,
        })?;
    let size = serialized.len() as u64;
    if size > MAX_BYTES {
        return Err(Refused::TooLarge {
            path: path.to_owned(),
            size,
        });
    }
    Ok((file, serialized))
}

/// Whether `meta` is of something owned by this user that no one else can
/// write.
fn private(meta: &std::fs::Metadata, path: &Path) -> Result<(), Refused> {
    let uid = rustix::process::geteuid().as_raw();
    if meta.uid() != uid {
        return Err(Refused::Owner {
            path: path.to_owned(),
            owner: meta.uid(),
            uid,
        });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(Refused::Writable {
            path: path.to_owned(),
            mode: meta.mode() & 0o7777,
        });
    }
    Ok(())
}

/// Removes the entries used least recently until those left hold at most
/// `max` bytes, and entries half-written by a process that died (an hour
/// old or more). Only regular files are looked at, each through a
/// descriptor of its own opened in `dir` without following a link.
fn trim(dir: BorrowedFd<'_>, max: u64) {
    let Ok(read) = rustix::fs::Dir::read_from(dir) else {
        return;
    };
    let stale = SystemTime::now() - Duration::from_secs(3600);
    let mut entries: Vec<(SystemTime, u64, std::ffi::CString)> = Vec::new();
    for entry in read.filter_map(Result::ok) {
        let name = entry.file_name().to_owned();
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let Ok(fd) = rustix::fs::openat(dir, name.as_c_str(), flags, Mode::empty()) else {
            continue;
        };
        let Ok(meta) = File::from(fd).metadata() else {
            continue;
        };
        let Ok(modified) = meta.modified() else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let bytes = name.as_bytes();
        if bytes.ends_with(b".cwasm") {
            entries.push((modified, meta.len(), name));
        } else if bytes.ends_with(b".tmp") && modified < stale {
            let _ = rustix::fs::unlinkat(dir, name.as_c_str(), AtFlags::empty());
        }
    }
    let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
    entries.sort();
    for (_, len, name) in entries {
        if total <= max {
            break;
        }
        if rustix::fs::unlinkat(dir, name.as_c_str(), AtFlags::empty()).is_ok() {
            total -= len;
        }
    }
}

/// The user's cache for compiled modules, resolved ([`resolve`]):
/// `$XDG_CACHE_HOME/outlet/wasm`, or `$HOME/.cache/outlet/wasm`; `None` if
/// neither variable is an absolute path.
pub(crate) fn user_folder() -> Option<PathBuf> {
    user_folder_in(
        std::env::var_os("XDG_CACHE_HOME").as_deref(),
        std::env::var_os("HOME").as_deref(),
    )
}

/// [`user_folder`], given the values of `XDG_CACHE_HOME` and `HOME`. A
/// relative or empty `XDG_CACHE_HOME` is ignored, as the XDG base
/// directory spec says; so is a relative or empty `HOME`.
fn user_folder_in(xdg: Option<&OsStr>, home: Option<&OsStr>) -> Option<PathBuf> {
    let xdg = xdg.map(Path::new);
    let base = match xdg {
        Some(xdg) if xdg.is_absolute() => Some(xdg.to_owned()),
        Some(xdg) if xdg.as_os_str().is_empty() => {
            tracing::debug!(
                target: "outlet::host",
                "XDG_CACHE_HOME is empty, so it is ignored (as the XDG base directory spec says)"
            );
            None
        }
        Some(xdg) => {
            tracing::warn!(
                target: "outlet::host",
                "XDG_CACHE_HOME ({}) is not an absolute path, so it is ignored, as the XDG \
                 base directory spec says, and compiled wasm modules are not cached under it; \
                 set it to an absolute path, or give the host a cache folder \
                 (Host::builder().module_cache)",
                xdg.display()
            );
            None
        }
        None => None,
    };
    let base = base.or_else(|| match home.map(Path::new) {
        Some(home) if home.is_absolute() => Some(home.join(".cache")),
        home => {
            tracing::warn!(
                target: "outlet::host",
                "compiled wasm modules are not cached on disk: HOME ({}) is not an absolute \
                 path; set HOME or XDG_CACHE_HOME to one, or give the host a cache folder \
                 (Host::builder().module_cache)",
                home.map_or_else(|| "unset".to_owned(), |home| home.display().to_string())
            );
            None
        }
    })?;
    Some(resolve(&base).join("outlet").join("wasm"))
}

/// `folder` as the host keeps it: absolute, with the links in what exists
/// of it resolved now, once, as its configuration means them. A link put
/// anywhere on that path later is refused at load ([`Folder::open`]).
pub(crate) fn resolve(folder: &Path) -> PathBuf {
    let Ok(folder) = std::path::absolute(folder) else {
        return folder.to_owned();
    };
    let mut existing = folder.as_path();
    let mut missing = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            return missing
                .iter()
                .rev()
                .fold(real, |path, name| path.join(name));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name);
                existing = parent;
            }
            _ => return folder,
        }
    }
}

/// An entry's name: the SHA-256 of the module and of the engine's
/// compatibility hash (fed through `Hash`, which wasmtime implements for it).
fn key(engine: &Engine, module: &[u8]) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    hasher.0.update(module);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let digest = hasher.0.finalize();
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A `Hasher` that feeds SHA-256: stable across Rust releases, unlike
/// `DefaultHasher`.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// The module every test loads, and another module's text.
    const MODULE: &str = "(module (memory (export \"memory\") 1))";
    const PLANTED: &str = "(module (memory (export \"planted\") 1))";

    /// A manifest in `dir` for [`MODULE`].
    fn manifest(dir: &Path) -> Manifest {
        std::fs::write(dir.join("m.wat"), MODULE).unwrap();
        Manifest::parse(
            "name = \"m\"\nmechanism = \"wasm\"\npath = \"m.wat\"\n\
             interface = \"a.B\"\ntrust = \"in-process\"\n",
            &dir.join("m.toml"),
        )
        .unwrap()
    }

    /// The module's exports, by name: `planted` for a module read from a
    /// planted entry.
    fn exports(module: &Module) -> Vec<String> {
        module.exports().map(|e| e.name().to_owned()).collect()
    }

    /// Writes, as `file` (0600), the compiled [`PLANTED`] module: an entry
    /// the host would load if it read it.
    fn plant(engine: &Engine, file: &Path) {
        let planted = Module::new(engine, PLANTED).unwrap().serialize().unwrap();
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(file);
        std::fs::write(file, planted).unwrap();
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn the_cache_keeps_the_entries_used_last_within_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let folder = Folder::open(&cache).unwrap();
        let now = SystemTime::now();
        for (i, name) in ["old", "middle", "new"].iter().enumerate() {
            let file = cache.join(format!("{name}.cwasm"));
            std::fs::write(&file, vec![0u8; 100]).unwrap();
            let age = Duration::from_secs(100 * (3 - i as u64));
            let opened = File::options().append(true).open(&file).unwrap();
            opened.set_modified(now - age).unwrap();
        }
        std::fs::write(cache.join("other.txt"), vec![0u8; 1000]).unwrap();
        trim(folder.fd.as_fd(), 250);
        let mut left: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["middle.cwasm", "new.cwasm", "other.txt"]);
    }

    #[test]
    fn a_folder_others_can_write_or_under_one_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("modules");
        assert_eq!(Folder::open(&ok).unwrap().path, ok);
        assert_eq!(
            std::fs::metadata(&ok).unwrap().mode() & 0o777,
            0o700,
            "a folder the cache makes is private"
        );
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        chmod(&shared, 0o777);
        assert!(matches!(
            Folder::open(&shared),
            Err(Refused::Writable { path, mode: 0o777 }) if path == shared
        ));
        assert!(matches!(
            Folder::open(&shared.join("modules")),
            Err(Refused::Writable { path, .. }) if path == shared
        ));
    }

    #[test]
    fn a_hit_marks_the_entry_used_and_a_corrupt_entry_is_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = manifest(dir.path());
        let engine = Engine::default();
        let cache = dir.path().join("cache");
        load_module(&engine, &manifest, Some(&cache)).unwrap();
        let entry = std::fs::read_dir(&cache)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let long_ago = SystemTime::now() - Duration::from_secs(86_400);
        let opened = File::options().append(true).open(&entry).unwrap();
        opened.set_modified(long_ago).unwrap();
        load_module(&engine, &manifest, Some(&cache)).unwrap();
        let used = std::fs::metadata(&entry).unwrap().modified().unwrap();
        assert!(used > long_ago + Duration::from_secs(3600));

        std::fs::write(&entry, b"not wasmtime's").unwrap();
        load_module(&engine, &manifest, Some(&cache)).unwrap();
        assert_ne!(std::fs::read(&entry).unwrap(), b"not wasmtime's");
    }

    #[test]
    fn a_planted_entry_that_passes_the_checks_is_loaded() {
        // What the tests below rely on: an entry the host did not write,
        // but that passes every check, is what `load_module` returns.
        let dir = tempfile::tempdir().unwrap();
        let manifest = manifest(dir.path());
        let engine = Engine::default();
        let cache = dir.path().join("cache");
        let entry = cache.join(format!("{}.cwasm", key(&engine, MODULE.as_bytes())));
        plant(&engine, &entry);
        let module = load_module(&engine, &manifest, Some(&cache)).unwrap();
        assert_eq!(exports(&module), ["planted"]);
    }

    #[test]
    fn a_link_anywhere_on_the_cache_path_is_not_followed() {
        let engine = Engine::default();
        let name = format!("{}.cwasm", key(&engine, MODULE.as_bytes()));
        // The cache is a/b/c: a link in place of `a` is on the way to the
        // folder, above the two checked for their owner and mode.
        for linked in ["a", "a/b", "a/b/c"] {
            let dir = tempfile::tempdir().unwrap();
            let manifest = manifest(dir.path());
            let cache = dir.path().join("a/b/c");
            load_module(&engine, &manifest, Some(&cache)).unwrap();
            // The real folder moves aside; a link to a tree holding a
            // planted entry takes its place.
            let place = dir.path().join(linked);
            std::fs::rename(&place, dir.path().join("moved")).unwrap();
            let target = dir.path().join("planted").join(linked);
            let planted = dir.path().join("planted/a/b/c").join(&name);
            plant(&engine, &planted);
            let before = std::fs::read(&planted).unwrap();
            std::os::unix::fs::symlink(&target, &place).unwrap();

            let refused = Folder::open(&cache).unwrap_err();
            assert!(
                matches!(&refused, Refused::Link { path } if *path == place),
                "{linked}: {refused}"
            );
            let module = load_module(&engine, &manifest, Some(&cache)).unwrap();
            assert_eq!(exports(&module), ["memory"], "{linked}");
            assert_eq!(std::fs::read(&planted).unwrap(), before, "{linked}");
            let written = std::fs::read_dir(planted.parent().unwrap())
                .unwrap()
                .count();
            assert_eq!(written, 1, "{linked}: nothing is written through the link");
        }
    }

    #[test]
    fn an_entry_that_is_a_link_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = manifest(dir.path());
        let engine = Engine::default();
        let cache = dir.path().join("cache");
        let entry = cache.join(format!("{}.cwasm", key(&engine, MODULE.as_bytes())));
        let planted = dir.path().join("elsewhere.cwasm");
        plant(&engine, &planted);
        std::fs::create_dir(&cache).unwrap();
        chmod(&cache, 0o700);
        std::os::unix::fs::symlink(&planted, &entry).unwrap();
        let module = load_module(&engine, &manifest, Some(&cache)).unwrap();
        assert_eq!(exports(&module), ["memory"]);
        // The fresh entry replaced the link, not the file it pointed to.
        assert!(std::fs::symlink_metadata(&entry).unwrap().is_file());
        let again = load_module(&engine, &manifest, Some(&cache)).unwrap();
        assert_eq!(exports(&again), ["memory"]);
    }

    #[test]
    fn an_entry_or_folder_others_can_write_is_not_used() {
        let engine = Engine::default();
        let name = format!("{}.cwasm", key(&engine, MODULE.as_bytes()));
        // (what is made writable by others, its mode)
        for (writable, mode) in [
            ("cache/entry", 0o620),
            ("cache/entry", 0o602),
            ("cache", 0o770),
            ("cache", 0o707),
            ("", 0o770),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let manifest = manifest(dir.path());
            let base = dir.path().join("base");
            let cache = base.join("cache");
            let entry = cache.join(&name);
            plant(&engine, &entry);
            chmod(&cache, 0o700);
            chmod(&base, 0o700);
            let path = base.join(writable.replace("entry", &name));
            chmod(&path, mode);
            let module = load_module(&engine, &manifest, Some(&cache)).unwrap();
            assert_eq!(exports(&module), ["memory"], "{writable} {mode:o}");
        }
    }

    #[test]
    fn an_entry_of_another_user_or_not_a_file_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = manifest(dir.path());
        let engine = Engine::default();
        let cache = dir.path().join("cache");
        let entry = cache.join(format!("{}.cwasm", key(&engine, MODULE.as_bytes())));
        if rustix::process::geteuid().is_root() {
            // Only root can give a file away.
            plant(&engine, &entry);
            let file = File::open(&entry).unwrap();
            let nobody = rustix::process::Uid::from_raw(65534);
            rustix::fs::fchown(&file, Some(nobody), None).unwrap();
            let module = load_module(&engine, &manifest, Some(&cache)).unwrap();
            assert_eq!(exports(&module), ["memory"]);
        }
        // A FIFO in the entry's place is refused, not waited on.
        std::fs::remove_file(&entry).ok();
        let folder = Folder::open(&cache).unwrap();
        let fifo = entry.file_name().unwrap();
        let mode = Mode::RUSR | Mode::WUSR;
        rustix::fs::mknodat(&folder.fd, fifo, rustix::fs::FileType::Fifo, mode, 0).unwrap();
        let module = load_module(&engine, &manifest, Some(&cache)).unwrap();
        assert_eq!(exports(&module), ["memory"]);
    }

    #[test]
    fn a_relative_or_empty_xdg_cache_home_is_ignored() {
        let home = OsStr::new("/nonexistent-outlet-home");
        let at_home = PathBuf::from("/nonexistent-outlet-home/.cache/outlet/wasm");
        let xdg = OsStr::new("/nonexistent-outlet-xdg");
        assert_eq!(
            user_folder_in(Some(xdg), Some(home)),
            Some(PathBuf::from("/nonexistent-outlet-xdg/outlet/wasm"))
        );
        for ignored in ["", "relative/cache", "./cache", "cache"] {
            let ignored = Some(OsStr::new(ignored));
            assert_eq!(user_folder_in(ignored, Some(home)), Some(at_home.clone()));
            assert_eq!(user_folder_in(ignored, Some(OsStr::new("home"))), None);
            assert_eq!(user_folder_in(ignored, None), None);
        }
        assert_eq!(user_folder_in(None, Some(home)), Some(at_home));
        assert_eq!(user_folder_in(None, Some(OsStr::new(""))), None);
        assert_eq!(user_folder_in(None, None), None);
    }

    #[test]
    fn links_on_the_given_path_are_resolved_once_when_given() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
        let given = dir.path().join("link/app/modules");
        assert!(matches!(Folder::open(&given), Err(Refused::Link { .. })));
        let resolved = resolve(&given);
        assert_eq!(resolved, real.join("real/app/modules"));
        assert_eq!(Folder::open(&resolved).unwrap().path, resolved);
        // A relative folder is made absolute.
        let relative = resolve(Path::new("some/cache"));
        assert_eq!(resolved.is_absolute(), relative.is_absolute());
    }

    #[test]
    fn an_entry_is_named_by_module_and_engine_alike() {
        let engine = Engine::default();
        let a = key(&engine, b"(module)");
        assert_eq!(a, key(&engine, b"(module)"));
        assert_eq!(a.len(), 64);
        assert_ne!(a, key(&engine, b"(module (memory 1))"));
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        let fueled = Engine::new(&config).unwrap();
        assert_ne!(a, key(&fueled, b"(module)"));
    }
}
