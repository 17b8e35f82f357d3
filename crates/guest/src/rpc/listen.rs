//! Where the plugin listens, and how it tells its host: a Unix socket in
//! `PLUGIN_UNIX_SOCKET_DIR` (or a TCP port, if the host asks), named in the
//! handshake line on stdout; with go-plugin's AutoMTLS, the plugin's
//! certificate goes in that line too.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use outlet_rpc::tls::Identity;
use outlet_rpc::{CORE_PROTOCOL_VERSION, HandshakeLine, Network, env, server};
use tokio_rustls::rustls::ServerConfig;

use super::ServeError;

/// The plugin's certificate, and the TLS it serves with.
pub(super) type MutualTls = (Identity, Arc<ServerConfig>);

/// go-plugin's AutoMTLS: when the host sent its certificate, the plugin
/// makes one of its own (which goes in the handshake line) and accepts only
/// the host's.
pub(super) fn mutual_tls(name: &str) -> Result<Option<MutualTls>, ServeError> {
    let Ok(pem) = std::env::var(env::CLIENT_CERT) else {
        return Ok(None);
    };
    let failed = |error| ServeError::Tls {
        plugin: name.to_owned(),
        error,
    };
    let host = Identity::from_pem(&pem).map_err(failed)?;
    let identity = Identity::generate().map_err(failed)?;
    let config = identity.server_config(&host).map_err(failed)?;
    Ok(Some((identity, config)))
}

/// Where the plugin listens, before its runtime runs.
pub(super) enum Listening {
    /// A Unix socket, and its file.
    Unix(std::os::unix::net::UnixListener, Socket),
    /// A TCP port on 127.0.0.1.
    Tcp(std::net::TcpListener),
}

/// A socket path that exists only while the plugin serves.
pub(super) struct Socket(PathBuf);

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Listening {
    /// The listener as the runtime's (call it inside the runtime), and the
    /// socket's file, to be dropped after the listener.
    pub(super) fn into_server(self) -> io::Result<(server::Listener, Option<Socket>)> {
        Ok(match self {
            Listening::Unix(listener, socket) => (
                server::Listener::Unix(tokio::net::UnixListener::from_std(listener)?),
                Some(socket),
            ),
            Listening::Tcp(listener) => (
                server::Listener::Tcp(tokio::net::TcpListener::from_std(listener)?),
                None,
            ),
        })
    }
}

fn socket_path(name: &str) -> PathBuf {
    let dir = std::env::var_os(env::UNIX_SOCKET_DIR)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    dir.join(format!("plugin-{name}-{}-{nanos}", std::process::id()))
}

/// Listens on a new socket (or TCP port, if the host asks, and only with
/// mutual TLS) and prints the handshake line naming it.
pub(super) fn listen(
    name: &str,
    app_version: u32,
    tls: Option<&MutualTls>,
) -> Result<Listening, ServeError> {
    let (listening, network, address) = if std::env::var(env::NETWORK).is_ok_and(|n| n == "tcp") {
        // Any local user can connect to a TCP port: only the host's
        // certificate tells the host from them.
        if tls.is_none() {
            return Err(ServeError::TcpWithoutTls {
                plugin: name.to_owned(),
            });
        }
        let listener = listen_tcp(name)?;
        let address = listener
            .local_addr()
            .map_err(|error| ServeError::TcpAddress {
                plugin: name.to_owned(),
                error,
            })?
            .to_string();
        (Listening::Tcp(listener), Network::Tcp, address)
    } else {
        let socket = Socket(socket_path(name));
        let listener = std::os::unix::net::UnixListener::bind(&socket.0)
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .map_err(|error| ServeError::Listen {
                plugin: name.to_owned(),
                path: socket.0.clone(),
                error,
            })?;
        let address = socket.0.display().to_string();
        (Listening::Unix(listener, socket), Network::Unix, address)
    };
    let line = HandshakeLine {
        core_version: CORE_PROTOCOL_VERSION,
        app_version,
        network,
        address,
        cert: tls.map(|(identity, _)| identity.line_cert()),
    };
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .map_err(|error| ServeError::Handshake {
                plugin: name.to_owned(),
                error,
            })?;
    }
    Ok(listening)
}

/// The first free port on 127.0.0.1 between `PLUGIN_MIN_PORT` and
/// `PLUGIN_MAX_PORT`, as go-plugin's plugins pick theirs.
fn listen_tcp(name: &str) -> Result<std::net::TcpListener, ServeError> {
    let port = |key: &str, default: u16| {
        std::env::var(key)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (min, max) = (port(env::MIN_PORT, 10000), port(env::MAX_PORT, 25000));
    (min..=max)
        .find_map(|port| std::net::TcpListener::bind(("127.0.0.1", port)).ok())
        .and_then(|listener| listener.set_nonblocking(true).ok().map(|()| listener))
        .ok_or_else(|| ServeError::NoFreePort {
            plugin: name.to_owned(),
            min,
            max,
        })
}
