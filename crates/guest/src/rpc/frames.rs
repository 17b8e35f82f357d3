//! Outlet's frames, plugin side: a connection whose first byte starts a
//! frame (`O`) is served on a thread of its own, a `Call` in and a `Reply`
//! out (see `outlet_rpc::frames`); any other is gRPC.

use std::sync::Arc;
use std::time::{Duration, Instant};

use outlet_protocol::context::{self, CallContext, Cancel, TraceContext};
use outlet_protocol::core::{Call, Reply};
use outlet_rpc::frames::{Connection, PLUGIN_SPIN};
use prost::Message;
use rustix::event::{PollFd, PollFlags, Timespec};
use tokio::net::UnixStream;

use crate::Plugin;

/// The largest call a connection carrying frames takes: the host keeps its
/// own, smaller limit (`limits.max_message_bytes`); this one only stops a
/// broken frame header from asking for gigabytes.
const MAX_CALL: usize = 1 << 30;

/// Looks at a new connection's first byte: Outlet's frames are served on a
/// thread of their own, anything else is handed back for HTTP/2.
pub(super) async fn grpc_or_frames(stream: UnixStream, plugin: &Arc<Plugin>) -> Option<UnixStream> {
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
    let Ok(mut connection) = Connection::new(stream) else {
        return;
    };
    // The host cancels a call by shutting the connection: asked by
    // `outlet_guest::context::cancelled` while a call runs.
    let Ok(watched) = connection.as_fd().try_clone_to_owned() else {
        return;
    };
    let hung_up = Cancel::probe(move || {
        let mut fds = [PollFd::new(&watched, PollFlags::RDHUP)];
        rustix::event::poll(&mut fds, Some(&Timespec::default())).is_ok_and(|n| n > 0)
    });
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
        let deadline =
            (call.timeout_us > 0).then(|| Instant::now() + Duration::from_micros(call.timeout_us));
        let trace = TraceContext::new(&call.traceparent, &call.tracestate);
        let context = CallContext::new(deadline, Some(hung_up.clone())).with_trace(trace);
        let handled = context::scope(context, || {
            plugin.handle(&call.method, &call.body, &mut body)
        });
        let reply = match handled {
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
