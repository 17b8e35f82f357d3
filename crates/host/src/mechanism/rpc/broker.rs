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
//! For a plugin its manifest grants no call, whose calls can only be
//! refused, the stream is opened [`SETTLE`](super::grpc::SETTLE) after the
//! start, so that it does not compete with the start's first calls.
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

use super::peer::{self, Peer};
use crate::services::HostServices;

/// The broker of one process; dropping it ends its thread.
pub(super) struct Broker {
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// What the broker's thread needs.
pub(super) struct Offer {
    pub plugin: String,
    /// Who may call: the plugin's process and its descendants, of this
    /// user's; attached to without a `pid`, any process of this user's.
    pub callers: Peer,
    pub line: HandshakeLine,
    /// Where to listen: in the plugin's private folder.
    pub socket: PathBuf,
    /// The socket's owner, when the plugin runs as a uid of its own (the
    /// sandbox of a root host), so that it may connect; and the folder
    /// `socket` is in, as made.
    pub owner: Option<(u32, std::os::fd::OwnedFd)>,
    pub services: Arc<HostServices>,
    /// The plugin as the host's services know it, with its grants.
    pub caller: crate::services::Caller,
    pub max_message: usize,
    pub dispatch: tracing::Dispatch,
    /// TLS to the plugin, as its other connections have it.
    pub tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    /// Who must be listening on the plugin's Unix socket, for the stream.
    pub peer: Option<Peer>,
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
        let bound = tokio::net::UnixListener::bind(&offer.socket).and_then(|listener| {
            if let Some((uid, folder)) = &offer.owner {
                give_socket(folder, &offer.socket, *uid)?;
            }
            Ok(listener)
        });
        let listener = match bound {
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
        // A plugin granted no call may only be refused by the host's
        // services: its stream waits until the start's first calls are
        // answered, rather than compete with them.
        if !self.caller.grants_any() {
            tokio::time::sleep(super::grpc::SETTLE).await;
        }
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
        let send = match dial.await {
            Ok(send) => send,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return self.warn(format!(
                    "its broker stream was not opened, and the host's services are not \
                     offered to it: {e}"
                ));
            }
            Err(_) => return,
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
                        offer.services.call(&offer.caller, &method, &body)
                    })
                })
                .await
                .map_err(|e| tonic::Status::internal(format!("the host's service failed: {e}")))?;
                reply.map_err(outlet_rpc::to_grpc)
            }
        })
        .await
    }

    /// Whether the peer may call the host as this plugin (`callers`): a
    /// process of this user's that is the plugin's process or descends from
    /// it; otherwise why not.
    fn admit(&self, stream: &server::Stream) -> Result<(), String> {
        let server::Stream::Unix(stream) = stream else {
            return Err(
                "refused a connection to the host's services that is not on its Unix \
                        socket"
                    .into(),
            );
        };
        let found = stream.peer_cred().map_err(|e| {
            format!(
                "refused a connection to the host's services: its peer is unknown ({e}); \
                 nothing was served"
            )
        })?;
        if self.callers.admits(found.uid(), found.pid()) {
            return Ok(());
        }
        Err(format!(
            "refused a connection to the host's services from {} (user {}): the host takes \
             calls through the plugin's broker only from {} of user {}; a process of the \
             plugin's that calls the host must be its child (or a child's child, and so on) \
             while it calls, and any other was trying to call the host under this plugin's \
             name",
            peer::describe(found.pid()),
            found.uid(),
            self.callers.expected(),
            self.callers.uid(),
        ))
    }

    fn warn(&self, why: String) {
        tracing::warn!(target: "outlet::plugin", plugin = self.plugin, "{why}");
    }
}

/// Makes the socket at `path` the plugin's (`uid`), in `folder`, which the
/// plugin already owns and may change: the socket itself, found in the
/// folder as made (not wherever its path leads by now), opened without
/// following a link put in its place, checked on its descriptor, then
/// changed through that descriptor.
fn give_socket(
    folder: &std::os::fd::OwnedFd,
    path: &std::path::Path,
    uid: u32,
) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the broker's socket has no name"))?;
    let place = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let socket = rustix::fs::openat(folder, name, place, Mode::empty())?;
    let found = rustix::fs::fstat(&socket)?;
    if FileType::from_raw_mode(found.st_mode) != FileType::Socket {
        return Err(std::io::Error::other("the broker's socket was replaced"));
    }
    let (uid, gid) = (
        rustix::process::Uid::from_raw(uid),
        rustix::process::Gid::from_raw(uid),
    );
    rustix::fs::chownat(&socket, "", Some(uid), Some(gid), AtFlags::EMPTY_PATH)?;
    Ok(())
}
