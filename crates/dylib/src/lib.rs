//! The host side's `unsafe`: loading shared libraries for the `native` and
//! `cabi` mechanisms, and checking them before their code is trusted.
//!
//! Loading is a numbered pipeline, each step with its own error carrying
//! the path and what was found: (1) the file is an ELF shared object for
//! this machine whose dependencies are looked for only in the system's
//! library folders (before `dlopen` runs anything), (2) `dlopen`, (3) the
//! entry symbol, (4) the table's ABI version and size, (5) every entry
//! present.
//!
//! Every `unsafe` block says why it holds in a `// SAFETY:` comment; the
//! entry points that need the caller's trust are `unsafe fn`s
//! ([`NativeLibrary::open`], [`CabiLibrary::open`]) whose `# Safety`
//! sections state the contract. [`Reopen`] opens again, bare and without
//! `unsafe` for its caller, a library that one of them loaded before.
// The loader crate: unsafe is its purpose (docs/unsafe.md); the workspace
// lints still hold every block to a `// SAFETY:` comment.
#![allow(unsafe_code)]
#![deny(missing_docs)]

mod cabi;
pub mod elf;
mod native;
mod reopen;

use std::path::{Path, PathBuf};

pub use cabi::{CabiLibrary, CallHook, Hooks, LogHook};
pub use native::NativeLibrary;
pub use reopen::Reopen;

/// The readers of what a cabi plugin hands the host, for the fuzz targets
/// in `fuzz/` (docs/fuzzing.md); not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::cabi::{Checked, check_table, lend};
}

/// A library that cannot be loaded or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DylibError {
    /// The file cannot be read.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The library's path.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not a shared library for this machine.
    #[error("{} is not a shared library: {why}", path.display())]
    NotSharedLibrary {
        /// The file's path.
        path: PathBuf,
        /// What it is instead.
        why: String,
    },
    /// The library asks the dynamic loader to look for its dependencies
    /// outside the system's library folders.
    #[error(
        "{}: its {entry} names `{value}`, {why}; `dlopen` would load libraries from there, \
         unchecked, into the host: link the plugin without an rpath (or statically), and \
         install what it needs in the system's library folders ({})",
        path.display(),
        crate::elf::SYSTEM_FOLDERS.join(", ")
    )]
    Dependency {
        /// The library's path.
        path: PathBuf,
        /// The dynamic entry: `DT_RUNPATH`, `DT_RPATH`, `DT_NEEDED`, `DT_FILTER` or
        /// `DT_AUXILIARY`.
        entry: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// `dlopen` failed.
    #[error("cannot load {}: {message}", path.display())]
    Open {
        /// The library's path.
        path: PathBuf,
        /// The dynamic loader's message.
        message: String,
    },
    /// The library does not export the entry symbol.
    #[error(
        "{} does not export `{symbol}`; a cabi plugin exports it as `outlet.h` declares",
        path.display()
    )]
    MissingSymbol {
        /// The library's path.
        path: PathBuf,
        /// The symbol.
        symbol: &'static str,
    },
    /// The entry function returned a null table.
    #[error("{}: the entry function returned no table (a null pointer)", path.display())]
    NullTable {
        /// The library's path.
        path: PathBuf,
    },
    /// The table is of another ABI version.
    #[error(
        "{}: its table is ABI version {found}, and this host speaks version {expected}; \
         rebuild the plugin against this host's `outlet.h`",
        path.display()
    )]
    AbiVersion {
        /// The library's path.
        path: PathBuf,
        /// The host's version.
        expected: u32,
        /// The table's version.
        found: u32,
    },
    /// The table is smaller than this ABI's.
    #[error(
        "{}: its table is {found} bytes, and ABI version 1's is {expected}; rebuild the plugin \
         against this host's `outlet.h`",
        path.display()
    )]
    TableSize {
        /// The library's path.
        path: PathBuf,
        /// This ABI's size.
        expected: usize,
        /// The table's size.
        found: usize,
    },
    /// A native plugin's declaration is of another version.
    #[error(
        "{}: its declaration is native ABI version {found}, and this host speaks version \
         {expected}; a native plugin must come from the host's own build: rebuild both together \
         (or run the plugin as cabi, rpc or exec)",
        path.display()
    )]
    NativeVersion {
        /// The library's path.
        path: PathBuf,
        /// The host's version.
        expected: u32,
        /// The declaration's version.
        found: u32,
    },
    /// A native plugin's declaration is of another size.
    #[error(
        "{}: its declaration is {found} bytes, and this host's is {expected}; a native plugin \
         must come from the host's own build: rebuild both together (or run the plugin as \
         cabi, rpc or exec)",
        path.display()
    )]
    NativeSize {
        /// The library's path.
        path: PathBuf,
        /// This host's size.
        expected: usize,
        /// The declaration's size.
        found: usize,
    },
    /// A native plugin from another build.
    #[error(
        "{}: the plugin was built as \"{plugin}\", and this host as \"{host}\"; a native plugin \
         must come from the host's own build: rebuild both together (or run the plugin as cabi, \
         rpc or exec)",
        path.display()
    )]
    Fingerprint {
        /// The library's path.
        path: PathBuf,
        /// The host's build fingerprint.
        host: &'static str,
        /// The plugin's build fingerprint.
        plugin: String,
    },
    /// A native plugin's `make` gave no plugin (it panicked).
    #[error("{}: {error}", path.display())]
    Make {
        /// The library's path.
        path: PathBuf,
        /// What went wrong, with the panic's message.
        error: outlet_protocol::native_abi::MakeError,
    },
    /// A library to open again that this process has not loaded before.
    #[error(
        "{}: this process has not loaded this file (the same device, inode, size and \
         modification time) as a plugin, so it will not open it bare",
        path.display()
    )]
    NotVouched {
        /// The library's path.
        path: PathBuf,
    },
    /// A required entry of the table is null.
    #[error("{}: its table has no `{field}` (a null pointer)", path.display())]
    NullField {
        /// The library's path.
        path: PathBuf,
        /// The entry.
        field: &'static str,
    },
}

/// `dlopen`s a library, and remembers the file as one this process's code
/// has vouched for (see [`Reopen`]).
///
/// # Safety
/// Runs the library's initializers in this process: the caller must trust it.
unsafe fn open(path: &Path) -> Result<libloading::Library, DylibError> {
    let file = reopen::FileId::of(path)?;
    // SAFETY: the caller vouches for the library (this function's contract).
    let library = unsafe { libloading::Library::new(path) }.map_err(|error| DylibError::Open {
        path: path.to_owned(),
        message: error.to_string(),
    })?;
    reopen::vouched_for(file);
    Ok(library)
}
