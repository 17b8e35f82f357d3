//! The `[permissions]` section: [`Permissions`], the folders a plugin may
//! reach ([`Dir`]) and the network it may use ([`Network`]).
//!
//! One vocabulary for every mechanism that confines its plugin: a wasm
//! module reaches only what wasmtime hands it, an exec or rpc process only
//! what the OS sandbox lets through (see the host's `sandbox` module). What
//! a mechanism cannot enforce is refused when the manifest is read.

use std::collections::{BTreeMap, BTreeSet};
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
    /// native, cabi, wasm and rpc: the services the host offers (its own,
    /// and plugins it offered) that it may call,
    /// by method (`proto.KV/Get`) or whole service (`proto.KV/*`).
    /// Every other call through the host is refused.
    #[serde(default)]
    pub call: Vec<String>,
    /// Host folders the plugin may open, read-only unless `write`: a wasm
    /// plugin sees each at its `guest` path, a sandboxed exec or rpc
    /// process at its path on the host. Nothing else of the file system
    /// is reachable, but what a process needs to start (see the sandbox).
    #[serde(default)]
    pub dirs: Vec<Dir>,
    /// exec and rpc, sandboxed: the TCP it may use. None unless granted.
    #[serde(default)]
    pub network: Network,
    /// exec and rpc, sandboxed: programs it may execute besides its own
    /// (which it may always execute again).
    #[serde(default)]
    pub programs: Vec<PathBuf>,
    /// exec and rpc, sandboxed: how many processes and threads it may have
    /// at once (`RLIMIT_NPROC`); the trust level's default when omitted.
    pub processes: Option<u32>,
    /// wasm only: whether the plugin reads the real clocks through WASI.
    /// Without it, the clocks stand still at 0 (the Unix epoch).
    #[serde(default)]
    pub clock: bool,
    /// wasm only: whether the plugin gets random bytes through WASI.
    /// Without it, it gets the same fixed sequence every time.
    #[serde(default)]
    pub random: bool,
}

impl Permissions {
    /// Whether it grants anything only the OS sandbox of a process enforces.
    pub fn grants_process_access(&self) -> bool {
        !self.network.connect.is_empty()
            || self.network.listen
            || !self.programs.is_empty()
            || self.processes.is_some()
    }
}

/// A host folder a plugin may open: `{ host = "data", write = false }`, and
/// for wasm where it sees it, `guest = "/data"`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Dir {
    /// The folder on the host, relative to the manifest's folder.
    pub host: PathBuf,
    /// wasm only: where the plugin sees it, e.g. `/data`.
    pub guest: Option<String>,
    /// Whether the plugin may create, change and remove files in it;
    /// read-only unless set.
    #[serde(default)]
    pub write: bool,
}

/// The network a sandboxed process may use: `{ connect =
/// ["127.0.0.1:8080"], listen = false }`. TCP only; no UDP, no raw sockets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Network {
    /// `host:port` pairs it may connect to. The kernel's rules (Landlock)
    /// name ports, not addresses: the port is enforced, the host is not.
    #[serde(default)]
    pub connect: Vec<String>,
    /// Whether it may listen for TCP connections (bind any port).
    #[serde(default)]
    pub listen: bool,
}

impl Network {
    /// Whether it grants any network at all.
    pub fn any(&self) -> bool {
        !self.connect.is_empty() || self.listen
    }

    /// The ports of `connect`, for a manifest that passed validation.
    pub fn connect_ports(&self) -> BTreeSet<u16> {
        self.connect
            .iter()
            .filter_map(|e| port_of(e).ok())
            .collect()
    }
}

/// The port of a `host:port` grant (`[v6]:port` for IPv6), or what is
/// wrong with it.
pub(crate) fn port_of(endpoint: &str) -> Result<u16, &'static str> {
    let (host, port) = endpoint.rsplit_once(':').ok_or("is not `host:port`")?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
    {
        return Err("has no host name or address before the port");
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err("does not end in a port from 1 to 65535"),
        Ok(port) => Ok(port),
    }
}
