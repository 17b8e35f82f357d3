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
    let bytes = std::fs::read(path).map_err(|source| {
        refuse(WasmError::Read {
            path: path.clone(),
            source,
        })
    })?;
    manifest.verify_bytes(&bytes)?;
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
    if !private(file, false) {
        return None;
    }
    let serialized = std::fs::read(file).ok()?;
    #[allow(unsafe_code)]
    // SAFETY: `deserialize` trusts the bytes to be wasmtime's own output for
    // this engine. They are: `store` wrote them, under a name holding the
    // module's hash and the engine's compatibility hash, in a folder that
    // `private_folder` checked is a real folder (no symlink) owned by this
    // user and writable by no one else; `private` checked the same of the
    // file before it was read into memory, so nothing can change it under
    // the module afterwards.
    let module = unsafe { Module::deserialize(engine, &serialized) }.ok()?;
    if let Ok(file) = std::fs::File::options().append(true).open(file) {
        let _ = file.set_modified(SystemTime::now());
    }
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
/// `max` bytes.
pub(crate) fn trim(dir: &Path, max: u64) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<(SystemTime, u64, PathBuf)> = read
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension().is_some_and(|e| e == "cwasm"))
        .filter_map(|entry| {
            let meta = entry.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len(), entry.path()))
        })
        .collect();
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

/// `dir`, made if missing, if it and its parent are real folders owned by
/// this user that no one else can write.
fn private_folder(dir: &Path) -> Option<&Path> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .ok()?;
    let parent_ok = dir.parent().is_none_or(|parent| private(parent, true));
    (parent_ok && private(dir, true)).then_some(dir)
}

/// Whether `path` is a real folder (or file) owned by this user that no
/// one else can write; symlinks are not followed.
fn private(path: &Path, folder: bool) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
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
