//! [`ServeError`]: why an rpc plugin could not serve.

use std::io;
use std::path::PathBuf;

use outlet_rpc::tls::TlsError;

/// Why the plugin could not serve; printed on stderr, where its host quotes
/// it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeError {
    /// The magic cookie is missing or wrong: run by hand, most likely.
    #[error(
        "This binary is a plugin (`{plugin}`). These are not meant to be executed directly.\n\
         Please execute the program that consumes these plugins, which will\n\
         load any plugins automatically"
    )]
    NoCookie { plugin: String },
    /// The host asks for interface versions the plugin does not speak.
    #[error(
        "plugin `{plugin}` speaks interface versions {ours:?}, and its host asks for {}; \
         build the plugin for one of them",
        offered.as_deref().unwrap_or_default()
    )]
    Versions {
        plugin: String,
        ours: Vec<u32>,
        /// `PLUGIN_PROTOCOL_VERSIONS`, if set.
        offered: Option<String>,
    },
    /// The host's certificate, or the plugin's own, is unusable.
    #[error("plugin `{plugin}`: cannot serve the mutual TLS its host asks for: {error}")]
    Tls { plugin: String, error: TlsError },
    /// The host asks for TCP without sending its certificate.
    #[error(
        "plugin `{plugin}`: its host asks it to listen on TCP ({network}=tcp) without mutual \
         TLS ({cert} is not set), and any local user could connect to a TCP port; refusing to \
         serve. Set auto_mtls = true under the manifest's [handshake], or remove \
         network = \"tcp\"",
        network = outlet_rpc::env::NETWORK,
        cert = outlet_rpc::env::CLIENT_CERT
    )]
    TcpWithoutTls { plugin: String },
    /// Every TCP port in the host's range is taken.
    #[error("plugin `{plugin}`: no free TCP port between {min} and {max} to listen on")]
    NoFreePort { plugin: String, min: u16, max: u16 },
    /// The TCP listener has no address to print.
    #[error("plugin `{plugin}`: {error}")]
    TcpAddress { plugin: String, error: io::Error },
    /// The Unix socket cannot be made.
    #[error("plugin `{plugin}`: cannot listen on {}: {error}", path.display())]
    Listen {
        plugin: String,
        path: PathBuf,
        error: io::Error,
    },
    /// The handshake line cannot be written to stdout.
    #[error("plugin `{plugin}`: cannot print its handshake: {error}")]
    Handshake { plugin: String, error: io::Error },
    /// The async runtime cannot start.
    #[error("plugin `{plugin}`: cannot start its runtime: {error}")]
    Runtime { plugin: String, error: io::Error },
    /// The listener cannot move into the runtime.
    #[error("plugin `{plugin}`: cannot serve its socket: {error}")]
    Socket { plugin: String, error: io::Error },
    /// SIGTERM cannot be watched for.
    #[error("plugin `{plugin}`: cannot watch for SIGTERM: {error}")]
    Signal { plugin: String, error: io::Error },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_run_by_hand_says_so_as_go_plugin_s_plugins_do() {
        let error = ServeError::NoCookie {
            plugin: "kv".into(),
        };
        assert_eq!(
            error.to_string(),
            "This binary is a plugin (`kv`). These are not meant to be executed directly.\n\
             Please execute the program that consumes these plugins, which will\n\
             load any plugins automatically"
        );
        let error = ServeError::Versions {
            plugin: "kv".into(),
            ours: vec![2],
            offered: Some("1".into()),
        };
        assert_eq!(
            error.to_string(),
            "plugin `kv` speaks interface versions [2], and its host asks for 1; build the \
             plugin for one of them"
        );
    }
}
