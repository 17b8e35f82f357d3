//! [`LoadError`]: why a plugin could not be loaded.

use std::path::PathBuf;

use outlet_manifest::{ManifestError, Mechanism};
use outlet_protocol::{Negotiated, NegotiationError, Status};

/// A plugin that could not be loaded. Every variant names the plugin; the
/// message says what went wrong and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The manifest is unreadable, invalid, refused by the trust policy, or
    /// its artifact is missing or does not match its `sha256`.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The manifest names a mechanism this build of Outlet does not have.
    #[error(
        "plugin `{plugin}`: the `{mechanism}` mechanism is not available in this build of \
         Outlet; run the plugin as one of: {available}"
    )]
    Unsupported {
        /// The plugin's name.
        plugin: String,
        /// The mechanism its manifest asks for.
        mechanism: Mechanism,
        /// The mechanisms this build has.
        available: String,
    },
    /// The folder given to [`Host::load_dir`](crate::Host::load_dir) cannot be read.
    #[error("{}: cannot read the folder of manifests: {error}; check the path", folder.display())]
    Folder {
        /// The folder.
        folder: PathBuf,
        /// Why reading it failed.
        error: std::io::Error,
    },
    /// Two manifests of one folder name the same plugin: neither is loaded,
    /// since which one is meant is not known.
    #[error(
        "{}: plugin `{plugin}` is also named by {}; give each plugin its own `name`, or move \
         one manifest out of the folder",
        file.display(),
        others.iter().map(|o| o.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    SameName {
        /// The plugin's name.
        plugin: String,
        /// This manifest.
        file: PathBuf,
        /// The other manifests of the folder naming it.
        others: Vec<PathBuf>,
    },
    /// A plugin of that name is loaded already.
    #[error(
        "plugin `{plugin}` is loaded already; unload it first, or give the new one another \
         `name` in its manifest"
    )]
    Duplicate {
        /// The plugin's name.
        plugin: String,
    },
    /// The shared library of a native or cabi plugin cannot be used.
    #[error("plugin `{plugin}`: {error}")]
    Library {
        /// The plugin's name.
        plugin: String,
        /// Which loading step failed, with the path and what was found.
        error: outlet_dylib::DylibError,
    },
    /// The private folder for a copy of a native or cabi plugin's shared
    /// library cannot be made.
    #[error(
        "plugin `{plugin}`: cannot make a private folder for a copy of its library: {error}; \
         set TMPDIR to a folder this user can write"
    )]
    CopyFolder {
        /// The plugin's name.
        plugin: String,
        /// Why, with the folder's path.
        error: std::io::Error,
    },
    /// A wasm module that cannot be used.
    #[cfg(feature = "wasm")]
    #[error("plugin `{plugin}`: {error}")]
    Wasm {
        /// The plugin's name.
        plugin: String,
        /// What is wrong with the module, and what to do.
        error: crate::mechanism::wasm::WasmError,
    },
    /// An rpc plugin could not be started or reached.
    #[cfg(feature = "rpc")]
    #[error("plugin `{plugin}` (rpc): {error}")]
    Rpc {
        /// The plugin's name.
        plugin: String,
        /// What went wrong while starting it, with the evidence, and what to do.
        error: crate::mechanism::rpc::RpcError,
    },
    /// The OS sandbox its manifest asks for cannot be built here.
    #[error(transparent)]
    Sandbox(#[from] crate::process::sandbox::SandboxError),
    /// A native plugin was generated from another version of its interface.
    #[error(
        "plugin `{plugin}`: it was generated from a .proto with SHA-256 {found}, but {} has \
         SHA-256 {manifest}; rebuild the plugin and the host from the same .proto",
        proto.display()
    )]
    ProtoMismatch {
        /// The plugin's name.
        plugin: String,
        /// The manifest's `proto`.
        proto: std::path::PathBuf,
        /// That file's hash.
        manifest: String,
        /// The hash the plugin was generated from.
        found: String,
    },
    /// The plugin did not answer Hello.
    #[error("plugin `{plugin}`: Hello failed: {status}")]
    Hello {
        /// The plugin's name.
        plugin: String,
        /// What went wrong.
        status: Status,
    },
    /// Host and plugin share no protocol or interface version.
    #[error("plugin `{plugin}`: {error}")]
    Negotiation {
        /// The plugin's name.
        plugin: String,
        /// The versions on both sides.
        error: NegotiationError,
    },
    /// The plugin does not serve the interface its manifest names.
    #[error(
        "plugin `{plugin}`: the manifest says it implements `{expected}`, but its Hello lists \
         {found:?}; fix `interface` in the manifest, or load the right artifact"
    )]
    Interface {
        /// The plugin's name.
        plugin: String,
        /// The manifest's `interface`.
        expected: String,
        /// The services the plugin's Hello lists: the first 8, each cut
        /// to 256 characters.
        found: Vec<String>,
    },
    /// The manifest's config was refused by the plugin's Configure.
    #[error("plugin `{plugin}`: the manifest's [config] was refused: {status}")]
    Config {
        /// The plugin's name.
        plugin: String,
        /// The plugin's answer.
        status: Status,
    },
    /// A reload found a new build that cannot replace the running one.
    #[error("plugin `{plugin}`: cannot reload: {error}")]
    Reload {
        /// The plugin's name.
        plugin: String,
        /// Why.
        error: ReloadError,
    },
    /// A typed client was asked for an interface the plugin does not implement.
    #[error(
        "plugin `{plugin}` implements `{found}`, not `{expected}`; use the client generated \
         from `{found}`, or load another plugin"
    )]
    WrongClient {
        /// The plugin's name.
        plugin: String,
        /// The client's interface.
        expected: &'static str,
        /// The manifest's interface.
        found: String,
    },
    /// The manifest grants a call to a service the host does not offer.
    #[error(
        "plugin `{plugin}`: its manifest grants `{grant}` under permissions.call, and this host \
         offers no service `{service}` (it offers: {offered}); offer the service \
         (Host::offer, Host::offer_plugin) before loading the plugin, or remove the grant"
    )]
    Grant {
        /// The plugin's name.
        plugin: String,
        /// The grant, as the manifest has it.
        grant: String,
        /// The service it names.
        service: String,
        /// The services the host offers, comma-separated, or `none`.
        offered: String,
    },
}

/// Why the host would not offer a service to its plugins.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfferError {
    /// The service is on offer already.
    #[error(
        "the host offers service `{service}` already, from {by}; withdraw that offer first \
         (Host::withdraw), or offer another version of the interface (another protobuf \
         package, such as `…v2`)"
    )]
    Taken {
        /// The service's name, `package.Service`.
        service: String,
        /// Who offers it: the host's own code, or a plugin.
        by: String,
    },
    /// The plugin is not one this host has loaded.
    #[error(
        "plugin `{plugin}` is not loaded in this host (it was unloaded, or another host loaded \
         it); load it with this host before offering it"
    )]
    NotLoaded {
        /// The plugin's name.
        plugin: String,
    },
}

/// Why a reload could not replace the running instance (which then stays).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The plugin was shut down.
    #[error("it was shut down; load it again instead")]
    ShutDown,
    /// The new build agrees on other versions or capabilities than the
    /// running one, which its callers rely on.
    #[error(
        "the new build negotiates {new:?}, and the running one {running:?}; load it as a new \
         plugin instead"
    )]
    Negotiated {
        /// What the running instance agreed on.
        running: Negotiated,
        /// What the new build agrees on.
        new: Negotiated,
    },
}
