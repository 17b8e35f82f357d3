//! The `[permissions]` section: [`Permissions`] and the folders ([`Dir`]) a
//! wasm plugin may open.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// What a plugin may reach. Everything not listed is denied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Permissions {
    /// Environment variables set for the plugin, by value.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Environment variables passed through from the host's environment.
    #[serde(default)]
    pub inherit_env: Vec<String>,
    /// Other plugins it may call through the host.
    #[serde(default)]
    pub call: Vec<String>,
    /// wasm only: host folders the plugin may open through WASI, each at a
    /// path of its own inside the sandbox. Nothing else of the file system
    /// is reachable.
    #[serde(default)]
    pub dirs: Vec<Dir>,
    /// wasm only: whether the plugin reads the real clocks through WASI.
    /// Without it, the clocks stand still at 0 (the Unix epoch).
    #[serde(default)]
    pub clock: bool,
    /// wasm only: whether the plugin gets random bytes through WASI.
    /// Without it, it gets the same fixed sequence every time.
    #[serde(default)]
    pub random: bool,
}

/// A host folder a wasm plugin may open: `{ host = "data", guest = "/data",
/// write = false }`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Dir {
    /// The folder on the host, relative to the manifest's folder.
    pub host: PathBuf,
    /// Where the plugin sees it, e.g. `/data`.
    pub guest: String,
    /// Whether the plugin may create, change and remove files in it;
    /// read-only unless set.
    #[serde(default)]
    pub write: bool,
}
