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
//! TLS. Besides the plugin's own services it serves the core protocol
//! (Outlet's Hello and Configure), `grpc.health.v1`, go-plugin's controller,
//! its broker, over which the plugin calls back into its host ([`Host`]),
//! and its stdio stream, which carries the plugin's stdout to a host that
//! asks for it. It exits by itself when its host dies.
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
//!
//! Its parts: `listen` (the socket, the handshake line, mutual TLS),
//! `connections` (each connection, until Shutdown or SIGTERM), `routes`
//! (the gRPC services), `streams` (streaming methods, over gRPC for every
//! host), `frames` (Outlet's frames, for an Outlet host),
//! `host` and `stdio` (go-plugin's broker and stdio stream).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use outlet_rpc::env;

use crate::Plugin;

mod connections;
mod error;
mod frames;
mod host;
mod listen;
mod routes;
mod stdio;
mod streams;

use error::ServeError;
pub use host::Host;

/// The cookie [`serve`] expects: what an Outlet host sets when the manifest
/// has no `[handshake]`.
pub const DEFAULT_COOKIE: (&str, &str) = ("OUTLET_PLUGIN", "outlet");

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
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn run(plugin: Plugin, key: &str, value: &str) -> Result<(), ServeError> {
    let name = plugin.name().to_owned();
    if std::env::var_os(key).is_none_or(|v| v != value) {
        return Err(ServeError::NoCookie { plugin: name });
    }
    let offered = std::env::var(env::PROTOCOL_VERSIONS).ok();
    let Some(app_version) = outlet_rpc::negotiate(plugin.app_versions(), offered.as_deref()) else {
        return Err(ServeError::Versions {
            plugin: name,
            ours: plugin.app_versions().to_vec(),
            offered,
        });
    };
    let tls = listen::mutual_tls(&name)?;
    // The host connects as soon as it reads the line; its connection waits
    // in the socket's backlog while the runtime starts.
    let listening = listen::listen(&name, app_version, tls.as_ref())?;
    // Only a plain Unix socket carries Outlet's frames.
    let frames = matches!(listening, listen::Listening::Unix(..)) && tls.is_none();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| ServeError::Runtime {
            plugin: name.clone(),
            error,
        })?;
    watch_parent();
    host::serving(runtime.handle().clone(), &name);
    let plugin = Arc::new(match frames {
        true => plugin.capability(outlet_rpc::frames::CAPABILITY),
        false => plugin,
    });
    let acceptor = tls.map(|(_, config)| tokio_rustls::TlsAcceptor::from(config));
    let served = runtime.block_on(connections::serve(listening, acceptor, plugin));
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
