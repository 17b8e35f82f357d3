//! The plugin's connections, each served on a task of its own until the
//! controller's Shutdown or SIGTERM; then the listener closes, the socket's
//! file goes, and calls under way have [`DRAIN`] to finish.

use std::sync::Arc;
use std::time::Duration;

use outlet_rpc::server::{self, Stream};
use tokio::sync::watch;

use super::listen::Listening;
use super::{ServeError, frames, routes};
use crate::Plugin;

/// How long calls still running at Shutdown may take to finish: well within
/// the two seconds go-plugin's hosts wait before they kill.
const DRAIN: Duration = Duration::from_secs(1);

/// Serves connections until the controller's Shutdown or SIGTERM.
pub(super) async fn serve(
    listening: Listening,
    tls: Option<tokio_rustls::TlsAcceptor>,
    plugin: Arc<Plugin>,
) -> Result<(), ServeError> {
    let name = plugin.name().to_owned();
    let (listener, socket) = listening
        .into_server()
        .map_err(|error| ServeError::Socket {
            plugin: name.clone(),
            error,
        })?;
    let (stop, stopping) = watch::channel(false);
    let stop = Arc::new(stop);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = stopping.clone();
    // SIGTERM stops the plugin as the controller's Shutdown does, so that
    // the socket file goes with it.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|error| ServeError::Signal {
        plugin: name,
        error,
    })?;
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
                connections.spawn(one(stream, tls, plugin, stop, stopping.clone()));
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

/// Serves one connection: Outlet's frames or gRPC on a plain Unix socket,
/// gRPC on anything else.
async fn one(
    stream: Stream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    plugin: Arc<Plugin>,
    stop: Arc<watch::Sender<bool>>,
    stopping: watch::Receiver<bool>,
) {
    match (stream, tls) {
        // Only a plain Unix socket carries Outlet's frames.
        (Stream::Unix(stream), None) => {
            if let Some(stream) = frames::grpc_or_frames(stream, &plugin).await {
                serve_grpc(stream, plugin, stop, stopping).await;
            }
        }
        (Stream::Unix(stream), Some(tls)) => {
            serve_tls(stream, tls, plugin, stop, stopping).await;
        }
        (Stream::Tcp(stream), Some(tls)) => {
            serve_tls(stream, tls, plugin, stop, stopping).await;
        }
        (Stream::Tcp(stream), None) => {
            serve_grpc(stream, plugin, stop, stopping).await;
        }
    }
}

/// Serves gRPC on one connection until it closes, or drains it once the
/// plugin stops.
async fn serve_grpc<S>(
    stream: S,
    plugin: Arc<Plugin>,
    stop: Arc<watch::Sender<bool>>,
    mut stopping: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let route = move |request| routes::route(plugin.clone(), stop.clone(), request);
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
        serve_grpc(stream, plugin, stop, stopping).await;
    }
}

/// Returns once the controller's Shutdown came.
pub(super) async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await.map(|_| ());
}
