//! [`WasmError`]: why a wasm module could not be loaded.

use std::path::PathBuf;

use outlet_protocol::Code;

/// A wasm module that cannot be used, with what was found and what to do.
/// Carried by [`LoadError::Wasm`](crate::LoadError::Wasm), which names the
/// plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WasmError {
    /// wasmtime's engine could not be made.
    #[error("cannot start wasmtime: {reason}; {fix}")]
    Engine {
        /// wasmtime's words.
        reason: String,
        /// What to check.
        fix: String,
    },
    /// The file is neither a binary module nor WebAssembly text.
    #[error(
        "{} is not WebAssembly (neither a binary module nor text); build it for \
         wasm32-unknown-unknown, or give a .wat file",
        path.display()
    )]
    NotWasm {
        /// The module's path.
        path: PathBuf,
    },
    /// wasmtime refused to compile the module.
    #[error("{} does not compile: {reason}", path.display())]
    Compile {
        /// The module's path.
        path: PathBuf,
        /// The first line of wasmtime's error.
        reason: String,
    },
    /// The module lacks an export the guest ABI requires.
    #[error("the module does not export the {kind} `{name}` that docs/wasm-abi.md asks for")]
    MissingExport {
        /// The export's name.
        name: &'static str,
        /// `memory` or `func`.
        kind: &'static str,
    },
    /// The module imports something the host does not link.
    #[error(
        "{reason}; a wasm plugin may import log, config, call and take from module `outlet`, \
         and WASI preview 1 (`wasi_snapshot_preview1`), nothing else"
    )]
    Imports {
        /// wasmtime's words.
        reason: String,
    },
    /// The host functions could not be linked.
    #[error("cannot link the host functions: {reason}")]
    Link {
        /// wasmtime's words.
        reason: String,
    },
    /// A folder the manifest grants cannot be opened.
    #[error(
        "cannot open {} for permissions.dirs ({guest}): {source}; create the folder or fix the \
         path",
        host.display()
    )]
    Folder {
        /// The folder on the host.
        host: PathBuf,
        /// Where the guest sees it.
        guest: String,
        /// The error opening it.
        source: std::io::Error,
    },
    /// A folder is granted inside one the plugin may write.
    #[error(
        "permissions.dirs grants {} inside {}, which the plugin may write: it could put a link \
         to anywhere in its place; grant only the outer folder, or make it read-only",
        inner.display(),
        outer.display()
    )]
    NestedFolder {
        /// The folder granted inside.
        inner: PathBuf,
        /// The writable folder around it.
        outer: PathBuf,
    },
    /// The first instance failed to start (trapped, ran out of a limit,
    /// or speaks another guest ABI version).
    #[error("{reason}")]
    Start {
        /// The kind of failure, as a call would have failed with it.
        code: Code,
        /// What went wrong, and what to do.
        reason: String,
    },
}
