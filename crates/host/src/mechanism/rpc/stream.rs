//! Streams to an rpc plugin: a gRPC stream each, as go-plugin's hosts open
//! them, whichever peer the plugin is (Outlet's frames carry unary calls
//! only). A stream has a connection of its own while it is open, driven
//! by the thread that reads it, as a unary call's is:
//!
//! - the caller's requests are pulled on a thread of their own, one ahead
//!   of what the connection has taken (HTTP/2 flow control), so that the
//!   caller's code may wait for a response before it makes the next;
//! - a response is read off the connection only when the caller asks for
//!   it: the plugin is held back by HTTP/2's flow control once the
//!   stream's window (2 MiB, hyper's default) is full, and the host holds
//!   no more than that of it;
//! - a stream dropped before its end resets it, which cancels the plugin's
//!   context;
//! - each wait for a message is held to the caller's deadline and cancel,
//!   and to `limits.timeout_ms`, which starts again as each request is
//!   made; each response to `limits.max_message_bytes`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use outlet_protocol::context::Cancel;
use outlet_protocol::{Messages, Status};
use outlet_rpc::Raw;

use super::Shared;
use super::grpc::{self, Connection};
use super::instance::Instance;

/// Messages read ahead at most, of those already arrived.
const READ_AHEAD: usize = 32;

type ReadAhead = std::collections::VecDeque<Result<Option<Bytes>, tonic::Status>>;

type Opening = Pin<Box<dyn Future<Output = Result<tonic::Streaming<Bytes>, tonic::Status>> + Send>>;

impl Shared {
    /// Opens a stream of `method`, with the caller's deadline and cancel.
    pub(super) fn open(
        self: &Arc<Self>,
        method: &str,
        requests: Messages<Vec<u8>>,
    ) -> Result<Messages<Vec<u8>>, Status> {
        let plugin = &self.plugin;
        let path = http::uri::PathAndQuery::try_from(method).map_err(|e| {
            Status::invalid_argument(format!(
                "plugin `{plugin}`: `{method}` is not a gRPC path: {e}"
            ))
        })?;
        let deadline = crate::services::deadline_here();
        let cancel = crate::services::caller_cancel();
        let start_by = Instant::now() + crate::services::time_left(self.timeout);
        let instance = self.instance(start_by, cancel.as_ref())?;
        let connection = instance
            .grpc
            .connection(start_by)
            .map_err(|status| self.explain(&instance, method, status))?;
        let sent = Arc::new(Sent::default());
        let body = requests_of(requests, sent.clone()).map_err(|e| {
            Status::unavailable(format!(
                "plugin `{plugin}`: cannot start a thread for the requests of {method}: {e}"
            ))
        })?;
        let mut request = tonic::Request::new(body);
        grpc::carry_trace(&mut request, outlet_protocol::context::caller_trace());
        let mut client = outlet_rpc::client::client(connection.send.clone())
            .max_decoding_message_size(self.max_message)
            .max_encoding_message_size(usize::MAX);
        // Opened when first read: the headers, and the time left then, go
        // out then.
        let opening: Opening = Box::pin(async move {
            if let Some(deadline) = deadline {
                request.set_timeout(deadline.saturating_duration_since(Instant::now()));
            }
            client.ready().await.map_err(grpc::transport)?;
            Ok(client.streaming(request, path, Raw).await?.into_inner())
        });
        Ok(Messages::new(Responses {
            reading: Reading::Opening(opening),
            ready: ReadAhead::new(),
            connection: Some(connection),
            shared: self.clone(),
            instance,
            method: method.into(),
            deadline,
            cancel,
            sent,
        }))
    }
}

/// How the caller's requests went.
#[derive(Default)]
struct Sent {
    /// All were pulled (the stream half-closes once they are sent).
    all: AtomicBool,
    /// The first that failed (over the limit, past the deadline, a panic
    /// of the caller's code): the stream fails with it.
    failed: Mutex<Option<Status>>,
    /// Woken when one failed.
    failing: tokio::sync::Notify,
    /// Woken when one was made: the plugin's time to answer starts again.
    progress: tokio::sync::Notify,
}

/// The caller's requests as the body of the gRPC stream, pulled on a
/// thread of their own into a channel of one, so that the caller's code,
/// which may wait (for a response, say), never holds up the connection:
/// each is sent as soon as it is made, and the plugin's responses are read
/// meanwhile.
fn requests_of(
    requests: Messages<Vec<u8>>,
    sent: Arc<Sent>,
) -> std::io::Result<impl futures_util::Stream<Item = Bytes> + Send + 'static> {
    let (send, receive) = tokio::sync::mpsc::channel::<Bytes>(1);
    std::thread::Builder::new()
        .name("outlet-rpc-requests".into())
        .spawn(move || {
            for request in requests {
                match request {
                    Ok(request) => {
                        // The stream is over: the rest is not wanted.
                        if send.blocking_send(Bytes::from(request)).is_err() {
                            return;
                        }
                        sent.progress.notify_one();
                    }
                    Err(status) => {
                        let mut failed = sent.failed.lock().unwrap_or_else(|e| e.into_inner());
                        failed.get_or_insert(status);
                        sent.failing.notify_one();
                        return;
                    }
                }
            }
            sent.all.store(true, Ordering::Release);
        })?;
    Ok(futures_util::stream::unfold(
        receive,
        |mut receive| async move { receive.recv().await.map(|request| (request, receive)) },
    ))
}

enum Reading {
    Opening(Opening),
    Open(Box<tonic::Streaming<Bytes>>),
    Ended,
}

/// An open stream's responses, read as the caller asks for them.
struct Responses {
    reading: Reading,
    /// Arrived already, read with an earlier message.
    ready: ReadAhead,
    /// The stream's own; given back once the stream ended well.
    connection: Option<Connection>,
    shared: Arc<Shared>,
    instance: Arc<Instance>,
    method: String,
    deadline: Option<Instant>,
    cancel: Option<Cancel>,
    sent: Arc<Sent>,
}

impl Iterator for Responses {
    type Item = Result<Vec<u8>, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        let read = match self.ready.pop_front() {
            Some(ready) => ready.map_err(Ended::Status),
            None => self.read()?,
        };
        let next = match read {
            Ok(Some(message)) => return Some(Ok(message.into())),
            Ok(None) => None,
            Err(ended) => Some(Err(self.status(ended))),
        };
        // A request that failed fails the stream, whatever the plugin made
        // of the requests before it.
        let failed = self
            .sent
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let next = failed.map(Err).or(next);
        self.reading = Reading::Ended;
        self.ready.clear();
        let connection = self.connection.take();
        // Fit for another call only if the stream ended well with every
        // request sent: nothing of it is left on the connection.
        if let (None, Some(connection)) = (&next, connection)
            && self.sent.all.load(Ordering::Acquire)
        {
            self.instance.grpc.give_back(connection);
        }
        if next.is_none() {
            self.instance.answered(&self.method);
        }
        next
    }
}

impl Responses {
    /// Waits for the next message, and takes those that arrived with it
    /// (up to [`READ_AHEAD`]) into `ready`; `None` once the stream ended.
    fn read(&mut self) -> Option<Result<Option<Bytes>, Ended>> {
        let connection = self.connection.as_ref()?;
        let now = Instant::now();
        let timeout = now + self.shared.timeout;
        let until = self
            .deadline
            .map_or(timeout, |deadline| deadline.min(timeout));
        let (cancelled, on_cancel) = tokio::sync::oneshot::channel::<()>();
        let _watch = self.cancel.as_ref().map(|cancel| {
            cancel.watch(move || {
                let _ = cancelled.send(());
            })
        });
        let (reading, sent, ready) = (&mut self.reading, &self.sent, &mut self.ready);
        let (deadline, timeout) = (self.deadline, self.shared.timeout);
        let read = grpc::drive(connection.runtime(), async move {
            let message = async {
                loop {
                    match reading {
                        Reading::Opening(opening) => {
                            *reading = Reading::Open(Box::new(opening.await?));
                        }
                        Reading::Open(stream) => {
                            let first = stream.message().await;
                            if matches!(first, Ok(Some(_))) {
                                read_ahead(stream, ready);
                            }
                            return Ok(first);
                        }
                        Reading::Ended => return Ok(Ok(None)),
                    }
                }
            };
            let cancelled = async {
                match on_cancel.await {
                    Ok(()) => Ended::Cancelled,
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::pin!(message, cancelled);
            let mut until = until;
            loop {
                tokio::select! {
                    message = &mut message => break match message {
                        Ok(message) => message.map_err(Ended::Status),
                        Err(status) => Err(Ended::Status(status)),
                    },
                    () = tokio::time::sleep_until(until.into()) => break Err(Ended::Late),
                    ended = &mut cancelled => break Err(ended),
                    () = sent.failing.notified() => break Err(Ended::RequestFailed),
                    // A request was made: the plugin's time starts again.
                    () = sent.progress.notified() => {
                        let timeout = Instant::now() + timeout;
                        until = deadline.map_or(timeout, |deadline| deadline.min(timeout));
                    }
                }
            }
        });
        Some(read)
    }
}

/// Takes the messages that have arrived already, up to [`READ_AHEAD`] of
/// them and the stream's end, without waiting: one wake-up of the reading
/// thread reads them all. They are what HTTP/2 had buffered, within the
/// stream's window.
fn read_ahead(stream: &mut tonic::Streaming<Bytes>, ready: &mut ReadAhead) {
    use futures_util::FutureExt;
    while ready.len() < READ_AHEAD {
        let Some(next) = stream.message().now_or_never() else {
            return;
        };
        let ended = !matches!(next, Ok(Some(_)));
        ready.push_back(next);
        if ended {
            return;
        }
    }
}

/// Why a stream ended before its last message.
enum Ended {
    /// The plugin's status, or one made on the way (the connection broke,
    /// a message over the limit).
    Status(tonic::Status),
    Late,
    Cancelled,
    RequestFailed,
}

impl Responses {
    fn status(&self, ended: Ended) -> Status {
        let (shared, method) = (&self.shared, &self.method);
        let plugin = &shared.plugin;
        match ended {
            Ended::Status(status) => shared.explain(&self.instance, method, status),
            Ended::Late if self.deadline.is_some_and(|d| Instant::now() >= d) => {
                Status::deadline_exceeded(format!(
                    "plugin `{plugin}`: the stream of {method} passed its caller's deadline; \
                     the plugin was told to give up on it"
                ))
            }
            Ended::Late => Status::deadline_exceeded(format!(
                "plugin `{plugin}`: the stream of {method} had no message for {} ms \
                 (limits.timeout_ms); the plugin was told to give up on it",
                shared.timeout.as_millis()
            )),
            Ended::Cancelled => crate::deadline::cancelled(plugin, method),
            // Taken from `sent` by the caller.
            Ended::RequestFailed => Status::internal(format!(
                "plugin `{plugin}`: a request of the stream of {method} failed"
            )),
        }
    }
}
