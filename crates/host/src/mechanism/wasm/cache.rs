//! Compiled modules, cached on disk: compiling a module takes milliseconds,
//! loading a compiled one a fraction of that.
//!
//! An entry is named by the SHA-256 of the module's bytes and of the
//! engine's compatibility hash, so a module compiled by another wasmtime
//! or with other settings is never looked up. The folder is used only if it
//! is a real folder owned by this user that no one else can write, and so
//! is each file before it is read. The cache holds at most [`MAX_BYTES`]:
//! once a write takes it over, the entries used least recently go (a hit
//! marks an entry used).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use outlet_manifest::Manifest;
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
    let entry = dir
        .and_then(private_folder)
        .map(|dir| dir.join(format!("{}.cwasm", key(engine, &bytes))));
    if let Some(module) = entry.as_deref().and_then(|file| cached(engine, file)) {
        return Ok(module);
    }
    let module = Module::new(engine, &bytes).map_err(|e| {
        refuse(WasmError::Compile {
            path: path.clone(),
            reason: e.to_string().lines().next().unwrap_or_default().to_owned(),
        })
    })?;
    if let (Some(file), Ok(serialized)) = (entry, module.serialize()) {
        store(&file, &serialized);
    }
    Ok(module)
}

/// The user's cache: `$XDG_CACHE_HOME/outlet/wasm`, or `~/.cache/outlet/wasm`.
pub(crate) fn user_folder() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("outlet").join("wasm"))
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

/// A cached module, if the entry is a private file of this user's that
/// wasmtime accepts for `engine`; marks the entry used.
fn cached(engine: &Engine, file: &Path) -> Option<Module> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // Checked and read through one descriptor, opened without following a
    // link: the bytes read are those of the file checked.
    let mut opened = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(file)
        .ok()?;
    if !private_meta(&opened.metadata().ok()?, false) {
        return None;
    }
    let mut serialized = Vec::new();
    opened.read_to_end(&mut serialized).ok()?;
    #[allow(unsafe_code)]
    // SAFETY: `deserialize` trusts the bytes to be wasmtime's own output for
    // this engine. They are: `store` wrote them, under a name holding the
    // SHA-256 of the module and of the engine's compatibility hash, in a
    // folder that `private_folder` checked is a real folder (no symlink)
    // owned by this user and writable by no one else, as is its parent; the
    // bytes were read, into memory of ours, through the descriptor whose
    // file was just checked the same way (a regular file, not a link, owned
    // by this user, writable by no one else).
    let module = unsafe { Module::deserialize(engine, &serialized) }.ok()?;
    let _ = opened.set_modified(SystemTime::now());
    Some(module)
}

/// Writes an entry (to a private file, then renamed into place), then
/// trims the folder to [`MAX_BYTES`].
fn store(file: &Path, serialized: &[u8]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temp = file.with_extension(format!("{}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut f| f.write_all(serialized));
    if written.is_ok() {
        let _ = std::fs::rename(&temp, file);
    } else {
        let _ = std::fs::remove_file(&temp);
    }
    if let Some(dir) = file.parent() {
        trim(dir, MAX_BYTES);
    }
}

/// Removes the entries used least recently until those left hold at most
/// `max` bytes, and entries half-written by a process that died (an hour
/// old or more).
pub(crate) fn trim(dir: &Path, max: u64) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    let stale = SystemTime::now() - std::time::Duration::from_secs(3600);
    let mut entries: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
    for entry in read.filter_map(Result::ok) {
        let path = entry.path();
        let Some(modified) = entry
            .metadata()
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
        else {
            continue;
        };
        match path.extension().and_then(|e| e.to_str()) {
            Some("cwasm") => entries.push((modified.0, modified.1, path)),
            Some("tmp") if modified.0 < stale => {
                let _ = std::fs::remove_file(&path);
            }
            _ => {}
        }
    }
    let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
    entries.sort();
    for (_, len, path) in entries {
        if total <= max {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
        }
    }
}

/// `dir` as an absolute path, made if missing, if it and its parent are
/// real folders owned by this user that no one else can write; otherwise
/// `None`, said once in the log.
fn private_folder(dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let refused = |why: &str| {
        static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                target: "outlet::host",
                "compiled wasm modules are not cached in {}: {why}; give the host a folder \
                 of this user's that no one else can write (Host::builder().module_cache)",
                dir.display()
            );
        }
        None
    };
    let Ok(dir) = std::path::absolute(dir) else {
        return refused("it cannot be made absolute");
    };
    if let Err(error) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
    {
        return refused(&format!("it cannot be made ({error})"));
    }
    let parent_ok = dir.parent().is_none_or(|parent| private(parent, true));
    if !(parent_ok && private(&dir, true)) {
        return refused("it or its parent is a link, another user's, or writable by others");
    }
    Some(dir)
}

/// Whether `path` is a real folder (or file) owned by this user that no
/// one else can write; symlinks are not followed.
fn private(path: &Path, folder: bool) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| private_meta(&meta, folder))
}

/// Whether `meta` is of a folder (or regular file) owned by this user that
/// no one else can write.
fn private_meta(meta: &std::fs::Metadata, folder: bool) -> bool {
    use std::os::unix::fs::MetadataExt;
    let kind = if folder {
        meta.is_dir()
    } else {
        meta.is_file()
    };
    kind && meta.uid() == rustix::process::geteuid().as_raw() && meta.mode() & 0o022 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_the_entries_used_last_within_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        for (i, name) in ["old", "middle", "new"].iter().enumerate() {
            let file = dir.path().join(format!("{name}.cwasm"));
            std::fs::write(&file, vec![0u8; 100]).unwrap();
            let age = std::time::Duration::from_secs(100 * (3 - i as u64));
            let opened = std::fs::File::options().append(true).open(&file).unwrap();
            opened.set_modified(now - age).unwrap();
        }
        std::fs::write(dir.path().join("other.txt"), vec![0u8; 1000]).unwrap();
        trim(dir.path(), 250);
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["middle.cwasm", "new.cwasm", "other.txt"]);
    }

    #[test]
    fn a_folder_others_can_write_or_under_one_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("modules");
        assert_eq!(private_folder(&ok), Some(ok.clone()));
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(private_folder(&shared), None);
        assert_eq!(private_folder(&shared.join("modules")), None);
    }

    #[test]
    fn a_hit_marks_the_entry_used_and_a_corrupt_entry_is_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let module = dir.path().join("m.wat");
        std::fs::write(&module, "(module (memory (export \"memory\") 1))").unwrap();
        let manifest = Manifest::parse(
            "name = \"m\"\nmechanism = \"wasm\"\npath = \"m.wat\"\n\
             interface = \"a.B\"\ntrust = \"in-process\"\n",
            &dir.path().join("m.toml"),
        )
        .unwrap();
        let engine = Engine::default();
        let cache = dir.path().join("cache");
        load_module(&engine, &manifest, Some(&cache)).unwrap();
        let entry = std::fs::read_dir(&cache)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let long_ago = SystemTime::now() - std::time::Duration::from_secs(86_400);
        let opened = std::fs::File::options().append(true).open(&entry).unwrap();
        opened.set_modified(long_ago).unwrap();
        load_module(&engine, &manifest, Some(&cache)).unwrap();
        let used = std::fs::metadata(&entry).unwrap().modified().unwrap();
        assert!(used > long_ago + std::time::Duration::from_secs(3600));

        std::fs::write(&entry, b"not wasmtime's").unwrap();
        load_module(&engine, &manifest, Some(&cache)).unwrap();
        assert_ne!(std::fs::read(&entry).unwrap(), b"not wasmtime's");
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
