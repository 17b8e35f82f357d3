//! The `rpc` mechanism's plugin side: a child process serving gRPC on a Unix
//! socket, as HashiCorp go-plugin's plugins do, so that an Outlet host and a
//! Go go-plugin host can both load it.
//!
//! [`serve`] checks the magic cookie, picks the app protocol version from
//! `PLUGIN_PROTOCOL_VERSIONS`, listens on a Unix socket in
//! `PLUGIN_UNIX_SOCKET_DIR` (or the temporary folder; or on TCP, if the
//! host asks), prints the handshake line, and serves until the host's
//! controller asks it to shut down. When the host sends its certificate
//! (`PLUGIN_CLIENT_CERT`, go-plugin's AutoMTLS), every connection is mutual
//! TLS. Besides
//! the plugin's own services it serves the core protocol (Outlet's Hello and
//! Configure), `grpc.health.v1`, go-plugin's controller, its broker, over
//! which the plugin calls back into its host ([`Host`]), and its stdio
//! stream, which carries the plugin's stdout to a host that asks for it. It
//! exits by itself when its host dies.
//!
//! ```no_run
//! # use outlet_guest::{Plugin, Service, Status};
//! # struct Kv;
//! # impl Service for Kv {
//! #     fn name(&self) -> &'static str { "proto.KV" }
//! #     fn call(&self, _: &str, _: &[u8], _: &mut Vec<u8>) -> Result<(), Status> { Ok(()) }
//! # }
//! fn main() -> std::process::ExitCode {
//!     let plugin = Plugin::new("kv", "1.0.0").service(Kv);
//!     // go-plugin's HandshakeConfig: the same cookie as the host's.
//!     outlet_guest::rpc::serve_with_cookie(plugin, "BASIC_PLUGIN", "hello")
//! }
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use outlet_rpc::server::{self, Stream};
use outlet_rpc::tls::Identity;
use outlet_rpc::wire::{self, Empty, HealthCheckRequest, HealthCheckResponse};
use outlet_rpc::{CORE_PROTOCOL_VERSION, HandshakeLine, Network, env};
use prost::Message;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::Plugin;

mod host;
mod stdio;
pub use host::Host;

/// The cookie [`serve`] expects: what an Outlet host sets when the manifest
/// has no `[handshake]`.
pub const DEFAULT_COOKIE: (&str, &str) = ("OUTLET_PLUGIN", "outlet");

/// How long calls still running at Shutdown may take to finish: well within
/// the two seconds go-plugin's hosts wait before they kill.
const DRAIN: Duration = Duration::from_secs(1);
/// The largest call a connection carrying frames takes: the host keeps its own,
/// smaller limit (`limits.max_message_bytes`); this one only stops a broken
/// frame header from asking for gigabytes.
const MAX_CALL: usize = 1 << 30;
/// How often the plugin checks that its host is still alive.
const PARENT_WATCH: Duration = Duration::from_millis(200);

/// Serves `plugin` as an rpc plugin, with Outlet's default cookie, until the
/// host asks it to stop. See the [module docs](self).
pub fn serve(plugin: Plugin) -> ExitCode {
    serve_with_cookie(plugin, DEFAULT_COOKIE.0, DEFAULT_COOKIE.1)
}

/// As [`serve`], with go-plugin's magic cookie: the host must set the
/// environment variable `key` to `value` (the manifest's `[handshake]`).
/// Run by hand, without it, the plugin says what it is and exits with 1.
pub fn serve_with_cookie(plugin: Plugin, key: &str, value: &str) -> ExitCode {
    match run(plugin, key, value) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn run(plugin: Plugin, key: &str, value: &str) -> Result<(), String> {
    let name = plugin.name().to_owned();
    if std::env::var_os(key).is_none_or(|v| v != value) {
        return Err(format!(
            "This binary is a plugin (`{name}`). These are not meant to be executed directly.\n\
             Please execute the program that consumes these plugins, which will\n\
             load any plugins automatically"
        ));
    }
    let offered = std::env::var(env::PROTOCOL_VERSIONS).ok();
    let app_version =
        outlet_rpc::negotiate(plugin.app_versions(), offered.as_deref()).ok_or_else(|| {
            format!(
                "plugin `{name}` speaks interface versions {:?}, and its host asks for {}; \
                 build the plugin for one of them",
                plugin.app_versions(),
                offered.as_deref().unwrap_or_default()
            )
        })?;
    let tls = mutual_tls(&name)?;
    // The host connects as soon as it reads the line; its connection waits
    // in the socket's backlog while the runtime starts.
    let (listener, socket) = listen(&name, app_version, tls.as_ref())?;
    let frames = matches!(listener, Listener::Unix(_)) && tls.is_none();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("plugin `{name}`: cannot start its runtime: {e}"))?;
    watch_parent();
    host::serving(runtime.handle().clone(), &name);
    let plugin = Arc::new(match frames {
        true => plugin.capability(outlet_rpc::frames::CAPABILITY),
        false => plugin,
    });
    let acceptor = tls.map(|(_, config)| tokio_rustls::TlsAcceptor::from(config));
    let served = runtime.block_on(serve_on(listener, socket, acceptor, plugin));
    // Calls still running past the drain are abandoned with the process.
    runtime.shutdown_background();
    served
}

/// Exits when the host that started the plugin dies, whatever host it is:
/// a plugin left behind would hold its socket for nobody.
fn watch_parent() {
    let parent = rustix::process::getppid();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(PARENT_WATCH);
            if rustix::process::getppid() != parent {
                std::process::exit(1);
            }
        }
    });
}

/// go-plugin's AutoMTLS: when the host sent its certificate, the plugin
/// makes one of its own (which goes in the handshake line) and accepts only
/// the host's.
fn mutual_tls(
    name: &str,
) -> Result<Option<(Identity, Arc<tokio_rustls::rustls::ServerConfig>)>, String> {
    let Ok(pem) = std::env::var(env::CLIENT_CERT) else {
        return Ok(None);
    };
    let failed = |e: outlet_rpc::tls::TlsError| {
        format!("plugin `{name}`: cannot serve the mutual TLS its host asks for: {e}")
    };
    let host = Identity::from_pem(&pem).map_err(failed)?;
    let identity = Identity::generate().map_err(failed)?;
    let config = identity.server_config(&host).map_err(failed)?;
    Ok(Some((identity, config)))
}

/// Where the plugin listens.
enum Listener {
    Unix(std::os::unix::net::UnixListener),
    Tcp(std::net::TcpListener),
}

/// A socket path that exists only while the plugin serves.
struct Socket(PathBuf);

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
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

/// Listens on a new socket (or TCP port, if the host asks) and prints the
/// handshake line naming it.
fn listen(
    name: &str,
    app_version: u32,
    tls: Option<&(Identity, Arc<tokio_rustls::rustls::ServerConfig>)>,
) -> Result<(Listener, Option<Socket>), String> {
    let (listener, socket, network, address) =
        if std::env::var(env::NETWORK).is_ok_and(|n| n == "tcp") {
            let listener = listen_tcp().map_err(|e| format!("plugin `{name}`: {e}"))?;
            let address = listener
                .local_addr()
                .map_err(|e| format!("plugin `{name}`: {e}"))?
                .to_string();
            (Listener::Tcp(listener), None, Network::Tcp, address)
        } else {
            let socket = Socket(socket_path(name));
            let listener = std::os::unix::net::UnixListener::bind(&socket.0)
                .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
                .map_err(|e| {
                    format!(
                        "plugin `{name}`: cannot listen on {}: {e}",
                        Path::new(&socket.0).display()
                    )
                })?;
            let address = socket.0.display().to_string();
            (
                Listener::Unix(listener),
                Some(socket),
                Network::Unix,
                address,
            )
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
            .map_err(|e| format!("plugin `{name}`: cannot print its handshake: {e}"))?;
    }
    Ok((listener, socket))
}

/// The first free port on 127.0.0.1 between `PLUGIN_MIN_PORT` and
/// `PLUGIN_MAX_PORT`, as go-plugin's plugins pick theirs.
fn listen_tcp() -> Result<std::net::TcpListener, String> {
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
        .ok_or_else(|| format!("no free TCP port between {min} and {max} to listen on"))
}

/// Serves connections on `listener` until the controller's Shutdown or SIGTERM.
async fn serve_on(
    listener: Listener,
    socket: Option<Socket>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    plugin: Arc<Plugin>,
) -> Result<(), String> {
    let name = plugin.name().to_owned();
    let cannot = |e: std::io::Error| format!("plugin `{name}`: cannot serve its socket: {e}");
    let listener = match listener {
        Listener::Unix(listener) => {
            server::Listener::Unix(UnixListener::from_std(listener).map_err(cannot)?)
        }
        Listener::Tcp(listener) => {
            server::Listener::Tcp(tokio::net::TcpListener::from_std(listener).map_err(cannot)?)
        }
    };
    let (stop, stopping) = watch::channel(false);
    let stop = Arc::new(stop);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = stopping.clone();
    // SIGTERM stops the plugin as the controller's Shutdown does, so that
    // the socket file goes with it.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("plugin `{name}`: cannot watch for SIGTERM: {e}"))?;
    // Ctrl-C in a terminal reaches the whole foreground group; the host
    // decides when its plugins stop, as go-plugin's plugins have it.
    if let Ok(mut interrupt) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
    {
        tokio::spawn(async move { while interrupt.recv().await.is_some() {} });
    }
    loop {
        tokio::select! {
            stream = listener.accept() => {
                let (plugin, stop, tls) = (plugin.clone(), stop.clone(), tls.clone());
                let stopping = stopping.clone();
                connections.spawn(async move {
                    match (stream, tls) {
                        // Only a plain Unix socket carries Outlet's frames.
                        (Stream::Unix(stream), None) => {
                            if let Some(stream) = grpc_or_frames(stream, &plugin).await {
                                serve_h2(stream, plugin, stop, stopping).await;
                            }
                        }
                        (Stream::Unix(stream), Some(tls)) => {
                            serve_tls(stream, tls, plugin, stop, stopping).await;
                        }
                        (Stream::Tcp(stream), Some(tls)) => {
                            serve_tls(stream, tls, plugin, stop, stopping).await;
                        }
                        (Stream::Tcp(stream), None) => {
                            serve_h2(stream, plugin, stop, stopping).await;
                        }
                    }
                });
            }
            () = stopped(&mut shutdown) => break,
            _ = terminate.recv() => {
                stop.send_replace(true);
                break;
            }
        }
    }
    drop(listener);
    drop(socket);
    let _ = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// Serves gRPC on one connection until it closes, or drains it once the
/// plugin stops.
async fn serve_h2<S>(
    stream: S,
    plugin: Arc<Plugin>,
    stop: Arc<watch::Sender<bool>>,
    mut stopping: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let route = move |request| route(plugin.clone(), stop.clone(), request);
    server::serve_connection(stream, route, stopped(&mut stopping)).await;
}

/// Serves gRPC over TLS on one connection, once its handshake succeeds.
async fn serve_tls<S>(
    stream: S,
    tls: tokio_rustls::TlsAcceptor,
    plugin: Arc<Plugin>,
    stop: Arc<watch::Sender<bool>>,
    stopping: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    if let Ok(stream) = tls.accept(stream).await {
        serve_h2(stream, plugin, stop, stopping).await;
    }
}

/// Looks at a new connection's first byte: Outlet's frames (`O`) are served
/// on a thread of their own (see `outlet_rpc::frames`), anything else is
/// handed back for HTTP/2.
async fn grpc_or_frames(stream: UnixStream, plugin: &Arc<Plugin>) -> Option<UnixStream> {
    let mut first = [0u8; 1];
    loop {
        stream.readable().await.ok()?;
        match rustix::net::recv(&stream, &mut first, rustix::net::RecvFlags::PEEK) {
            Ok((0, _)) => return None,
            Ok(_) => break,
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
            Err(_) => return None,
        }
    }
    if first[0] != outlet_protocol::frame::MAGIC[0] {
        return Some(stream);
    }
    let stream = stream.into_std().ok()?;
    let plugin = plugin.clone();
    std::thread::Builder::new()
        .name("outlet-rpc-frames".into())
        .spawn(move || serve_frames(&plugin, stream))
        .ok();
    None
}

/// Serves Outlet's frames on one connection: a `Call` in, a `Reply` out,
/// until the host closes it.
fn serve_frames(plugin: &Plugin, stream: std::os::unix::net::UnixStream) {
    use outlet_protocol::core::{Call, Reply};
    use outlet_rpc::frames::{Connection, PLUGIN_SPIN};
    let Ok(mut connection) = Connection::new(stream) else {
        return;
    };
    let mut body = Vec::new();
    loop {
        let call = match connection
            .recv(MAX_CALL, PLUGIN_SPIN, None)
            .map(Call::decode)
        {
            Ok(Ok(call)) => call,
            Ok(Err(_)) | Err(_) => return,
        };
        body.clear();
        let reply = match plugin.handle(&call.method, &call.body, &mut body) {
            Ok(()) => Reply {
                body: std::mem::take(&mut body),
                status: None,
            },
            Err(status) => Reply {
                body: Vec::new(),
                status: Some((&status).into()),
            },
        };
        if connection.send(&reply.encode_to_vec(), None).is_err() {
            return;
        }
        body = reply.body;
    }
}

/// go-plugin's broker stream: connection info from the host is kept for
/// [`Host`]; the plugin offers none of its own, and ends the stream when it
/// stops, so that the connection drains at once.
async fn broker(
    mut incoming: tonic::Streaming<Bytes>,
    mut stopping: watch::Receiver<bool>,
) -> Result<
    tonic::Response<impl futures_util::Stream<Item = Result<Bytes, tonic::Status>> + use<>>,
    tonic::Status,
> {
    use futures_util::StreamExt;
    let mut reading = stopping.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                message = incoming.message() => match message {
                    Ok(Some(message)) => {
                        if let Ok(info) = wire::ConnInfo::decode(message) {
                            host::offered(info);
                        }
                    }
                    _ => return,
                },
                () = stopped(&mut reading) => return,
            }
        }
    });
    let ends_at_stop = futures_util::stream::once(async move { stopped(&mut stopping).await })
        .filter_map(|()| std::future::ready(None));
    Ok(tonic::Response::new(ends_at_stop))
}

/// Returns once the controller's Shutdown came.
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await.map(|_| ());
}

async fn route(
    plugin: Arc<Plugin>,
    stop: Arc<watch::Sender<bool>>,
    request: server::Request,
) -> server::Response {
    let path = request.uri().path().to_owned();
    match path.as_str() {
        wire::HEALTH_CHECK => {
            server::unary(request, usize::MAX, move |body| {
                let plugin = plugin.clone();
                async move {
                    let asked = HealthCheckRequest::decode(body)
                        .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
                    let known = asked.service.is_empty()
                        || asked.service == wire::HEALTH_SERVICE
                        || plugin.find_service(&asked.service).is_some();
                    let status = if known {
                        wire::SERVING
                    } else {
                        wire::SERVICE_UNKNOWN
                    };
                    Ok(HealthCheckResponse { status }.encode_to_vec())
                }
            })
            .await
        }
        wire::SHUTDOWN => {
            server::unary(request, usize::MAX, move |_| {
                // Stops accepting at once; the connections drain (this
                // reply included) and the process exits.
                stop.send_replace(true);
                async { Ok(Empty {}.encode_to_vec()) }
            })
            .await
        }
        wire::BROKER => {
            let handler =
                tower::service_fn(move |request: tonic::Request<tonic::Streaming<Bytes>>| {
                    let stopping = stop.subscribe();
                    broker(request.into_inner(), stopping)
                });
            server::grpc(usize::MAX).streaming(handler, request).await
        }
        wire::STDIO => {
            let handler = tower::service_fn(move |_: tonic::Request<Bytes>| {
                let stream =
                    stdio::stream(plugin.name(), stop.subscribe()).map(tonic::Response::new);
                std::future::ready(stream)
            });
            server::grpc(usize::MAX)
                .server_streaming(handler, request)
                .await
        }
        _ => {
            server::unary(request, usize::MAX, move |body| {
                let plugin = plugin.clone();
                let path = path.clone();
                async move {
                    // The plugin's code is synchronous and may take its
                    // time: the runtime moves its other work elsewhere.
                    tokio::task::block_in_place(|| plugin.call(&path, &body))
                        .map_err(outlet_rpc::to_grpc)
                }
            })
            .await
        }
    }
}
