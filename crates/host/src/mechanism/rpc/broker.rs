//! go-plugin's broker, host side: the host's services, offered to the
//! plugin over a second connection.
//!
//! Once the plugin is up, a thread of the plugin's own opens the broker
//! stream (`plugin.GRPCBroker/StartStream`), listens on a Unix socket in the
//! plugin's private folder, and sends its address under
//! [`HOST_SERVICES_ID`](outlet_rpc::wire::HOST_SERVICES_ID). A plugin that
//! calls its host dials that address and calls the host's services by their
//! gRPC paths, as a cabi or wasm plugin does through its imports. Each call
//! runs on a blocking thread, under the plugin's name in the log.
//!
//! Only the plugin's own processes may call: a connection is served only if
//! its peer (`SO_PEERCRED`) runs as this user and is the plugin's process or
//! descends from it, so that no other process can call the host under the
//! plugin's name. (Not its process group: a process of the host's session,
//! another plugin say, can join that group.) For a plugin attached to with a
//! `pid`, the same holds with that pid; without one, any process of this
//! user's may call. Others are dropped, with a warning naming the plugin and
//! the peer.
//!
//! The thread ends when the process or its stream does (a plugin without a
//! broker ends it at once), or when the instance is dropped; the socket goes
//! with it.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use outlet_protocol::prost::Message;
use outlet_rpc::server;
use outlet_rpc::wire::{self, ConnInfo};
use outlet_rpc::{HandshakeLine, Raw};

use crate::services::HostServices;

/// The broker of one process; dropping it ends its thread.
pub(super) struct Broker {
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// What the broker's thread needs.
pub(super) struct Offer {
    pub plugin: String,
    /// The plugin's process id, which and whose descendants may call; `None`
    /// (attached to without a `pid`): any process of this user's.
    pub process: Option<u32>,
    pub line: HandshakeLine,
    /// Where to listen: in the plugin's private folder.
    pub socket: PathBuf,
    pub services: Arc<HostServices>,
    pub max_message: usize,
    pub dispatch: tracing::Dispatch,
    /// TLS to the plugin, as its other connections have it.
    pub tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    /// Who must be listening, for an attached plugin's Unix socket.
    pub peer: Option<super::address::Peer>,
}

impl Broker {
    /// Starts the broker's thread; it does its work in the background.
    pub(super) fn start(offer: Offer) -> std::io::Result<Broker> {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("outlet-rpc-broker".into())
            .spawn(move || {
                let dispatch = offer.dispatch.clone();
                tracing::dispatcher::with_default(&dispatch, || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(e) => return offer.warn(format!("cannot start a runtime: {e}")),
                    };
                    runtime.block_on(async move {
                        tokio::select! {
                            () = offer.run() => {}
                            _ = stopped => {}
                        }
                    });
                    runtime.shutdown_background();
                });
            })?;
        Ok(Broker { _stop: stop })
    }
}

impl Offer {
    async fn run(self) {
        let offer = Arc::new(self);
        let listener = match tokio::net::UnixListener::bind(&offer.socket) {
            Ok(listener) => server::Listener::Unix(listener),
            Err(e) => {
                offer.warn(format!(
                    "cannot listen on {} for its calls to the host: {e}",
                    offer.socket.display()
                ));
                return;
            }
        };
        let serving = offer.clone().serve(listener);
        tokio::select! {
            () = offer.stream() => {}
            () = serving => {}
        }
        let _ = std::fs::remove_file(&offer.socket);
    }

    /// Opens the broker stream, sends the host's connection info, and reads
    /// what the plugin sends until the stream ends.
    async fn stream(&self) {
        let info = ConnInfo {
            service_id: wire::HOST_SERVICES_ID,
            network: "unix".into(),
            address: self.socket.display().to_string(),
        };
        let outgoing =
            futures_util::stream::once(std::future::ready(Bytes::from(info.encode_to_vec())))
                .chain(futures_util::stream::pending());
        let address = &self.line.address;
        let check = |socket: std::os::fd::BorrowedFd<'_>| {
            self.peer.map_or(Ok(()), |peer| peer.check(socket, address))
        };
        let dial =
            outlet_rpc::client::dial_checked(self.line.network, address, self.tls.as_ref(), check);
        let Ok(send) = dial.await else {
            return;
        };
        let mut grpc = outlet_rpc::client::client(send);
        if grpc.ready().await.is_err() {
            return;
        }
        let path = http::uri::PathAndQuery::from_static(wire::BROKER);
        let mut incoming = match grpc
            .streaming(tonic::Request::new(outgoing), path, Raw)
            .await
        {
            Ok(incoming) => incoming.into_inner(),
            Err(status) => {
                // Also what a process that dies or stops early leaves.
                tracing::debug!(
                    target: "outlet::plugin",
                    plugin = self.plugin,
                    "its broker stream ended: {}",
                    status.message()
                );
                return;
            }
        };
        while let Ok(Some(message)) = incoming.message().await {
            if let Ok(info) = ConnInfo::decode(message) {
                tracing::debug!(
                    target: "outlet::plugin",
                    plugin = self.plugin,
                    "it offers broker connection {} ({} {}); an Outlet host does not dial those",
                    info.service_id,
                    info.network,
                    info.address
                );
            }
        }
    }

    /// Serves the host's services to every connection the plugin makes.
    async fn serve(self: Arc<Offer>, listener: server::Listener) {
        loop {
            let stream = listener.accept().await;
            if let Err(why) = self.admit(&stream) {
                // Dropped: closed unanswered.
                self.warn(why);
                continue;
            }
            let offer = self.clone();
            let route = move |request| offer.clone().route(request);
            tokio::spawn(server::serve_connection(
                stream,
                route,
                std::future::pending(),
            ));
        }
    }

    /// One call of the plugin's to a host service, on a blocking thread.
    async fn route(self: Arc<Offer>, request: server::Request) -> server::Response {
        let method = request.uri().path().to_owned();
        let max_message = self.max_message;
        server::unary(request, max_message, move |body| {
            let (offer, method) = (self.clone(), method.clone());
            async move {
                let dispatch = offer.dispatch.clone();
                // A host service is synchronous and may take its time.
                let reply = tokio::task::spawn_blocking(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        offer.services.call(&offer.plugin, &method, &body)
                    })
                })
                .await
                .map_err(|e| tonic::Status::internal(format!("the host's service failed: {e}")))?;
                reply.map_err(outlet_rpc::to_grpc)
            }
        })
        .await
    }

    /// Whether the peer may call the host as this plugin: a process of this
    /// user's that is the plugin's process or descends from it; otherwise why
    /// not.
    fn admit(&self, stream: &server::Stream) -> Result<(), String> {
        let server::Stream::Unix(stream) = stream else {
            return Err(
                "refused a connection to the host's services that is not on its Unix \
                        socket"
                    .into(),
            );
        };
        let peer = stream.peer_cred().map_err(|e| {
            format!(
                "refused a connection to the host's services: its peer is unknown ({e}); \
                 nothing was served"
            )
        })?;
        let me = rustix::process::geteuid().as_raw();
        let pid = peer.pid().and_then(|pid| u32::try_from(pid).ok());
        let admitted = peer.uid() == me
            && match self.process {
                None => true,
                Some(plugin) => pid.is_some_and(|pid| descends(pid, plugin)),
            };
        if admitted {
            return Ok(());
        }
        let who = match pid {
            Some(pid) => format!("process {pid}"),
            None => "a process of unknown id".into(),
        };
        let plugins = match self.process {
            Some(plugin) => format!("process {plugin} and its descendants"),
            None => format!("processes of user {me}"),
        };
        Err(format!(
            "refused a connection to the host's services from {who} (user {}): only the \
             plugin's {plugins} may call the host through its broker; a process of the \
             plugin's that calls the host must be its child (or a child's child, and so on) \
             while it calls, and any other was trying to call the host under this plugin's \
             name",
            peer.uid()
        ))
    }

    fn warn(&self, why: String) {
        tracing::warn!(target: "outlet::plugin", plugin = self.plugin, "{why}");
    }
}

/// Whether process `pid` is `ancestor` or descends from it, by the parents
/// in `/proc` (a process whose parent ended was taken in by another, and no
/// longer descends from it). The ids are read while the peer's connection is
/// open; a process that has ended is no one's.
fn descends(mut pid: u32, ancestor: u32) -> bool {
    // Deeper than any real tree of a plugin's, and a loop's end.
    for _ in 0..256 {
        if pid == ancestor {
            return true;
        }
        if pid <= 1 {
            return false;
        }
        match parent(pid) {
            Some(parent) => pid = parent,
            None => return false,
        }
    }
    false
}

/// Process `pid`'s parent: `/proc/<pid>/stat`'s fourth field, after the
/// name in parentheses (which may hold anything, parentheses too).
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::descends;

    #[test]
    fn a_process_descends_from_itself_and_its_ancestors_only() {
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        assert!(descends(me, me));
        assert!(descends(child.id(), me));
        assert!(!descends(me, child.id()));
        assert!(!descends(1, me));
        child.kill().unwrap();
        child.wait().unwrap();
        // Ended and reaped: no one's.
        assert!(!descends(child.id(), me));
    }
}
