//! gRPC calls to a plugin, made on the calling thread.
//!
//! Each connection is an HTTP/2 connection of its own with a single-thread
//! runtime of its own, driven only while a call runs on it: the calling
//! thread writes the request and reads the reply itself. There is no hand-off
//! to a pool of runtime threads, each of which would cost a wake-up, tens of
//! microseconds on an idle machine. Concurrent calls take separate
//! connections; idle ones wait in a pool.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use hyper::client::conn::http2::SendRequest;
use outlet_rpc::client::client;
use outlet_rpc::{HandshakeLine, Network, Raw};
use tokio_rustls::rustls;
use tonic::body::Body;

use outlet_protocol::context::Cancel;

use super::peer::Peer;

/// Whether a connection can take another call after this answer: yes after
/// a reply or a status the plugin returned (`Unimplemented` for a Hello it
/// lacks, say); not after one made on the way (a connection that broke, has
/// a source), nor after a reply over the limit cut short (tonic's
/// `OutOfRange`: a plugin that sends one is not trusted with the connection
/// again), nor after a call abandoned at its deadline or on a cancel, which
/// may still be busy.
fn reusable(answer: &Result<Bytes, tonic::Status>) -> bool {
    use std::error::Error;
    use tonic::Code;
    match answer {
        Ok(_) => true,
        Err(status) => {
            status.source().is_none()
                && !matches!(
                    status.code(),
                    Code::DeadlineExceeded | Code::Cancelled | Code::OutOfRange
                )
        }
    }
}

/// One unary call on a connection, as a future to drive on its runtime.
async fn one(
    send: SendRequest<Body>,
    path: http::uri::PathAndQuery,
    request: Vec<u8>,
    max_message: usize,
    deadline: Instant,
    trace: Option<outlet_protocol::context::TraceContext>,
) -> Result<Bytes, tonic::Status> {
    let mut grpc = client(send)
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(usize::MAX);
    grpc.ready().await.map_err(transport)?;
    let mut request = tonic::Request::new(Bytes::from(request));
    request.set_timeout(deadline.saturating_duration_since(Instant::now()));
    carry_trace(&mut request, trace);
    Ok(grpc.unary(request, path, Raw).await?.into_inner())
}

/// The trace context as gRPC carries it, for a plugin's OpenTelemetry
/// instrumentation.
pub(super) fn carry_trace<T>(
    request: &mut tonic::Request<T>,
    trace: Option<outlet_protocol::context::TraceContext>,
) {
    let Some(trace) = trace else { return };
    let metadata = request.metadata_mut();
    for (key, value) in [
        ("traceparent", trace.traceparent()),
        ("tracestate", trace.tracestate()),
    ] {
        if let (false, Ok(value)) = (value.is_empty(), value.parse()) {
            metadata.insert(key, value);
        }
    }
}

/// How long after a start the connections it has no use for yet are opened
/// (go-plugin's stdio stream; the broker stream of a plugin granted no
/// call): then they do not compete with the start's first calls for the
/// plugin and the CPU. The plugin keeps what it writes meanwhile.
pub(super) const SETTLE: std::time::Duration = std::time::Duration::from_millis(20);

/// The most a reply of go-plugin's own services (a health check, the
/// controller's Shutdown) may be: they are a few bytes.
pub(super) const CONTROL_REPLY: usize = 64 << 10;

/// Idle connections kept per plugin process (gRPC's, and Outlet's frames):
/// a burst of calls at once leaves no more open.
pub(super) const IDLE: usize = 16;

/// Where the plugin listens, and its idle connections.
pub(super) struct Grpc {
    dial: Dial,
    idle: Mutex<Vec<Connection>>,
}

/// How to make a connection to the plugin.
#[derive(Clone)]
struct Dial {
    network: Network,
    address: String,
    /// go-plugin's AutoMTLS, when the manifest asks for it.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Who must be listening, on a Unix socket; checked on each connection.
    peer: Option<Peer>,
}

pub(super) struct Connection {
    /// Always `Some` but in `drop`.
    runtime: Option<tokio::runtime::Runtime>,
    pub(super) send: SendRequest<Body>,
}

impl Connection {
    pub(super) fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("taken only in drop")
    }
}

impl Drop for Connection {
    /// Without waiting: dropping a runtime the usual way panics inside
    /// another runtime's task, where a host may drop its plugin.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Grpc {
    pub(super) fn new(
        line: &HandshakeLine,
        tls: Option<Arc<rustls::ClientConfig>>,
        peer: Option<Peer>,
    ) -> Grpc {
        Grpc {
            dial: Dial {
                network: line.network,
                address: line.address.clone(),
                tls,
                peer,
            },
            idle: Mutex::default(),
        }
    }

    /// Two unary calls at once, on one connection: a start's health check
    /// and the Hello that follows it, in one round trip instead of two.
    pub(super) fn unary_both(
        &self,
        calls: [(&'static str, Vec<u8>); 2],
        max_message: usize,
        deadline: Instant,
    ) -> [Result<Bytes, tonic::Status>; 2] {
        let connection = match self.connection(deadline) {
            Ok(connection) => connection,
            Err(status) => return [Err(status.clone()), Err(status)],
        };
        let [(first, a), (second, b)] = calls;
        let call = |path: &'static str, request| {
            one(
                connection.send.clone(),
                http::uri::PathAndQuery::from_static(path),
                request,
                max_message,
                deadline,
                None,
            )
        };
        let (a, b) = (call(first, a), call(second, b));
        let late = || {
            Err(tonic::Status::deadline_exceeded(
                "the call's deadline passed",
            ))
        };
        let replies = drive(connection.runtime(), async move {
            let (a, b) = tokio::join!(
                tokio::time::timeout_at(deadline.into(), a),
                tokio::time::timeout_at(deadline.into(), b)
            );
            [a.unwrap_or_else(|_| late()), b.unwrap_or_else(|_| late())]
        });
        if replies.iter().all(reusable) {
            self.give_back(connection);
        }
        replies
    }

    /// A connection for a call of its own: an idle one, or a new one.
    pub(super) fn connection(&self, deadline: Instant) -> Result<Connection, tonic::Status> {
        match self.take_idle() {
            Some(connection) => Ok(connection),
            None => self.dial.connect(deadline),
        }
    }

    /// Takes a connection back, idle and fit for another call; beyond
    /// [`IDLE`] idle ones, it is closed.
    pub(super) fn give_back(&self, connection: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE {
            idle.push(connection);
        }
    }

    /// An idle connection the plugin has not closed, if there is one.
    fn take_idle(&self) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // A connection the plugin closed while idle is of no use.
        idle.retain(|c| !c.send.is_closed());
        idle.pop()
    }

    /// One unary call of an encoded request; the encoded reply. A reply
    /// over `max_message` bytes is refused.
    pub(super) fn unary(
        &self,
        method: &str,
        request: Vec<u8>,
        max_message: usize,
        deadline: Instant,
        cancel: Option<&Cancel>,
    ) -> Result<Bytes, tonic::Status> {
        let path = http::uri::PathAndQuery::try_from(method).map_err(|e| {
            tonic::Status::invalid_argument(format!("`{method}` is not a gRPC path: {e}"))
        })?;
        let connection = self.connection(deadline)?;
        let trace = outlet_protocol::context::caller_trace();
        let call = one(
            connection.send.clone(),
            path,
            request,
            max_message,
            deadline,
            trace,
        );
        // A cancel drops the call: its stream is reset, and a go-plugin
        // plugin's context is cancelled.
        let (cancelled, on_cancel) = tokio::sync::oneshot::channel::<()>();
        let _watch = cancel.map(|cancel| {
            cancel.watch(move || {
                let _ = cancelled.send(());
            })
        });
        let reply = drive(connection.runtime(), async move {
            let cancelled = async {
                match on_cancel.await {
                    Ok(()) => tonic::Status::cancelled("the call was cancelled by its caller"),
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                reply = tokio::time::timeout_at(deadline.into(), call) => reply.unwrap_or_else(|_| {
                    Err(tonic::Status::deadline_exceeded("the call's deadline passed"))
                }),
                status = cancelled => Err(status),
            }
        });
        if reusable(&reply) {
            self.give_back(connection);
        }
        reply
    }
}

impl Grpc {
    /// Reads go-plugin's stdio stream (`plugin.GRPCStdio/StreamStdio`) on a
    /// thread and connection of its own, passing each line to `line`, until
    /// the stream ends. go-plugin 1.4 and later send a plugin's stdout and
    /// stderr only that way, and a plugin whose stream nobody reads blocks
    /// once its pipe is full. A plugin without the service ends it at once.
    ///
    /// Connects on that thread too, so that a start does not wait for a
    /// connection it has no use for yet, unless the plugin's process is gone
    /// by then (`alive`); `failed` says why it could not.
    pub(super) fn stream_stdio(
        &self,
        alive: impl FnOnce() -> bool + Send + 'static,
        mut line: impl FnMut(&[u8]) + Send + 'static,
        failed: impl FnOnce(String) + Send + 'static,
    ) -> std::io::Result<()> {
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let dial = self.dial.clone();
        std::thread::Builder::new()
            .name("outlet-rpc-stdio".into())
            .spawn(move || {
                std::thread::sleep(SETTLE);
                if !alive() {
                    return;
                }
                let connection = match dial.connect(deadline) {
                    Ok(connection) => connection,
                    Err(status) => return failed(status.message().to_owned()),
                };
                let send = connection.send.clone();
                connection.runtime().block_on(async move {
                    let mut grpc = client(send);
                    if grpc.ready().await.is_err() {
                        return;
                    }
                    let path = http::uri::PathAndQuery::from_static(outlet_rpc::wire::STDIO);
                    let request = tonic::Request::new(Bytes::from_static(&[]));
                    let Ok(stream) = grpc.server_streaming(request, path, Raw).await else {
                        return;
                    };
                    let mut stream = stream.into_inner();
                    while let Ok(Some(chunk)) = stream.message().await {
                        if let Ok(data) =
                            <outlet_rpc::wire::StdioData as prost::Message>::decode(chunk)
                        {
                            data.data.split(|&b| b == b'\n').for_each(&mut line);
                        }
                    }
                });
            })
            .map(drop)
    }
}

impl Dial {
    /// A new connection, with a runtime of its own.
    fn connect(&self, deadline: Instant) -> Result<Connection, tonic::Status> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| transport(format!("cannot start a runtime: {e}")))?;
        let (network, address, tls) = (self.network, self.address.clone(), self.tls.clone());
        let peer = self.peer;
        let connected = drive(&runtime, async move {
            let check = |socket: std::os::fd::BorrowedFd<'_>| {
                peer.map_or(Ok(()), |peer| peer.check(socket, &address))
            };
            let dial = outlet_rpc::client::dial_checked(network, &address, tls.as_ref(), check);
            tokio::time::timeout_at(deadline.into(), dial)
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
        });
        match connected {
            Ok(send) => Ok(Connection {
                runtime: Some(runtime),
                send,
            }),
            Err(e) => {
                runtime.shutdown_background();
                Err(transport(format!(
                    "cannot connect to {} {}: {e}",
                    self.network.name(),
                    self.address
                )))
            }
        }
    }
}

/// A failure to reach the plugin, as a status with a source, which is how
/// the caller tells it from a status the plugin returned (tonic gives its
/// transport errors a source too).
pub(super) fn transport(
    error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> tonic::Status {
    let error: Box<dyn std::error::Error + Send + Sync> = error.into();
    let mut status = tonic::Status::unavailable(error.to_string());
    status.set_source(std::sync::Arc::from(error));
    status
}

/// Runs `future` on `runtime` from this thread; from a thread of another
/// runtime (where blocking on one is not allowed), on a thread of its own.
pub(super) fn drive<F: Future + Send>(runtime: &tokio::runtime::Runtime, future: F) -> F::Output
where
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_err() || crate::mechanism::MAY_BLOCK.get() {
        return runtime.block_on(future);
    }
    std::thread::scope(|scope| {
        scope
            .spawn(|| runtime.block_on(future))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
