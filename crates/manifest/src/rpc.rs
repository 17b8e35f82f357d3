//! The rpc-only sections: go-plugin's `[handshake]` and `[reattach]`.

use serde::Deserialize;

/// go-plugin's `ReattachConfig`: where an rpc plugin that is already running
/// listens. The host does not start it, restart it or pin its artifact; it
/// checks that the process listening is the one named by `pid`, and only
/// then may it ever signal it. A plugin on another machine (TCP) has no
/// `pid`, and is never signalled.
///
/// ```toml
/// [reattach]
/// network = "unix"                  # or "tcp", with address = "host:port"
/// address = "/tmp/plugin1234567"
/// pid = 4242
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Reattach {
    /// `unix` (the default) or `tcp`.
    #[serde(default = "Reattach::default_network")]
    pub network: String,
    /// A socket path, or `host:port`.
    pub address: String,
    /// The process serving it, on this machine: checked against the
    /// socket's owner before anything is sent.
    pub pid: Option<u32>,
}

impl Reattach {
    fn default_network() -> String {
        "unix".into()
    }
}

/// go-plugin's `HandshakeConfig`, for an rpc plugin: the host sets the
/// environment variable `magic_cookie_key` to `magic_cookie_value`, and the
/// plugin refuses to start without it (so that a plugin run by hand says so
/// instead of waiting for a host). The app protocol versions are the
/// manifest's `versions`. With `auto_mtls`, host and plugin talk over
/// mutual TLS with a certificate each makes for the plugin's lifetime (go-plugin's
/// `AutoMTLS`); `network = "tcp"` asks an Outlet plugin to listen on TCP
/// (a go-plugin plugin picks its own network).
///
/// ```toml
/// [handshake]
/// magic_cookie_key = "BASIC_PLUGIN"
/// magic_cookie_value = "hello"
/// auto_mtls = true
/// network = "tcp"
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Handshake {
    /// The variable's name. Default `OUTLET_PLUGIN`, which
    /// `outlet_guest::rpc::serve` expects.
    #[serde(default = "Handshake::default_key")]
    pub magic_cookie_key: String,
    /// The variable's value. Default `outlet`.
    #[serde(default = "Handshake::default_value")]
    pub magic_cookie_value: String,
    /// Mutual TLS with per-process certificates. Default false.
    #[serde(default)]
    pub auto_mtls: bool,
    /// `unix` (the default) or `tcp`: where an Outlet plugin listens.
    #[serde(default = "Handshake::default_network")]
    pub network: String,
}

impl Handshake {
    /// The cookie's name when the manifest names none.
    pub const DEFAULT_KEY: &str = "OUTLET_PLUGIN";
    /// The cookie's value when the manifest gives none.
    pub const DEFAULT_VALUE: &str = "outlet";

    fn default_key() -> String {
        Handshake::DEFAULT_KEY.into()
    }
    fn default_value() -> String {
        Handshake::DEFAULT_VALUE.into()
    }
    fn default_network() -> String {
        "unix".into()
    }
}

impl Default for Handshake {
    fn default() -> Handshake {
        Handshake {
            magic_cookie_key: Handshake::default_key(),
            magic_cookie_value: Handshake::default_value(),
            auto_mtls: false,
            network: Handshake::default_network(),
        }
    }
}
