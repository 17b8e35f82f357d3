//! The rpc-only sections: go-plugin's `[handshake]` and `[reattach]`.

use std::path::PathBuf;

use serde::Deserialize;

/// go-plugin's `ReattachConfig`: where an rpc plugin that is already running
/// listens. The host does not start it, restart it or pin its artifact; it
/// checks that the process listening is the one named by `pid`, and only
/// then may it ever signal it. A plugin on another machine (TCP) has no
/// `pid`, and is never signalled.
///
/// Over a Unix socket, every connection the host makes is checked to reach
/// a process of the host's own user (and `pid`, when given). Over TCP, the
/// address is a loopback one, or the plugin's certificate is pinned with
/// `cert_sha256`: the host then talks mutual TLS, presenting `client_cert`
/// (the certificate the plugin was given in `PLUGIN_CLIENT_CERT`) and
/// accepting only a server certificate of that SHA-256.
///
/// ```toml
/// [reattach]
/// network = "unix"                  # or "tcp", with address = "host:port"
/// address = "/tmp/plugin1234567"
/// pid = 4242
/// # cert_sha256 = "…"               # the plugin's certificate (DER), pinned
/// # client_cert = "host.pem"        # the host's certificate and key, PEM,
/// # client_key = "host.key"         # relative to the manifest's folder
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
    /// socket's owner before anything is sent, and on every connection.
    pub pid: Option<u32>,
    /// The SHA-256 (hex) of the plugin's certificate, DER: the host then
    /// talks TLS and accepts only that certificate. Required for a TCP
    /// address that is not a loopback one.
    pub cert_sha256: Option<String>,
    /// The certificate the host presents with `cert_sha256`, PEM; resolved
    /// against the manifest's folder.
    pub client_cert: Option<PathBuf>,
    /// The key of `client_cert`, PEM; resolved like it.
    pub client_key: Option<PathBuf>,
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
/// (a go-plugin plugin picks its own network), and only with `auto_mtls`:
/// any local user can connect to a TCP port.
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
