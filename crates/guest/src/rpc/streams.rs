//! A streaming method served over gRPC, as go-plugin's plugins serve
//! theirs. The plugin's code is synchronous: it runs on a blocking thread
//! of its own, which reads each request off the HTTP/2 stream when the
//! code asks for it and hands each response to the connection through a
//! channel of [`BUFFERED`] messages. So a slow host holds the plugin back
//! (HTTP/2 flow control, then the full channel), and a host that resets
//! the stream cancels it: the plugin's next send fails and its code sees
//! `context::cancelled`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use outlet_protocol::context::{self, CallContext, Cancel, TraceContext};
use outlet_protocol::{Messages, Status};
use outlet_rpc::server;
use tokio::sync::mpsc;

use crate::Plugin;

/// Responses made ahead of the host's reading, at most.
pub(super) const BUFFERED: usize = 8;

type Sent = Result<Bytes, tonic::Status>;

/// Serves the stream `request` opens, of the method at `path`, with the
/// caller's deadline and trace.
pub(super) async fn serve(
    plugin: Arc<Plugin>,
    path: String,
    (deadline, trace): (Option<Instant>, Option<TraceContext>),
    request: server::Request,
) -> server::Response {
    let handler = tower::service_fn(move |request: tonic::Request<tonic::Streaming<Bytes>>| {
        let incoming = request.into_inner();
        let (send, receive) = mpsc::channel::<Sent>(BUFFERED);
        // The host gone (the stream reset, the connection closed): the
        // plugin's code learns of it through its context.
        // The watch ends with the plugin's code: it must not keep the
        // channel open past its last message.
        let cancel = Cancel::new();
        let (closed, cancelled) = (send.clone(), cancel.clone());
        let (finished, finishing) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            tokio::select! {
                () = closed.closed() => cancelled.cancel(),
                _ = finishing => {}
            }
        });
        let (plugin, path) = (plugin.clone(), path.clone());
        let context = CallContext::new(deadline, Some(cancel.clone())).with_trace(trace.clone());
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let requests = Messages::new(Requests { runtime, incoming });
            context::scope(context, || run(&plugin, &path, requests, &send, &cancel));
            drop(finished);
        });
        let responses = futures_util::stream::unfold(receive, |mut receive| async move {
            receive.recv().await.map(|sent| (sent, receive))
        });
        std::future::ready(Ok::<_, tonic::Status>(tonic::Response::new(responses)))
    });
    server::grpc(usize::MAX).streaming(handler, request).await
}

/// Runs the plugin's code for one stream, sending what it makes, until it
/// ends, fails, or the host stops reading.
fn run(
    plugin: &Plugin,
    path: &str,
    requests: Messages<Vec<u8>>,
    send: &mpsc::Sender<Sent>,
    cancel: &Cancel,
) {
    let responses = match plugin.open(path, requests) {
        Ok(responses) => responses,
        Err(status) => {
            let _ = send.blocking_send(Err(outlet_rpc::to_grpc(status)));
            return;
        }
    };
    let mut responses = responses;
    while let Some(response) = responses.next() {
        let sent = match response {
            Ok(message) => Bytes::from(message),
            Err(status) => {
                // The stream is over: its code goes before the host hears
                // of it (and closes its side, which would read as a cancel).
                drop(responses);
                let _ = send.blocking_send(Err(outlet_rpc::to_grpc(status)));
                return;
            }
        };
        if send.blocking_send(Ok(sent)).is_err() {
            // The host is gone: the code sees it while its stream is dropped.
            cancel.cancel();
            return;
        }
    }
}

/// The stream's requests, each read off the connection when the plugin's
/// code asks for it.
struct Requests {
    runtime: tokio::runtime::Handle,
    incoming: tonic::Streaming<Bytes>,
}

impl Iterator for Requests {
    type Item = Result<Vec<u8>, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.runtime.block_on(self.incoming.message()) {
            Ok(Some(message)) => Some(Ok(message.into())),
            Ok(None) => None,
            Err(status) => Some(Err(outlet_rpc::from_grpc(&status))),
        }
    }
}
