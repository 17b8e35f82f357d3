//! An rpc call from async code, over Outlet's frames, sent and waited for
//! on the caller's runtime: the runtime's thread spins at most
//! [`ASYNC_SPIN`] for a quick reply, then waits for the socket as any
//! task does. Only a running Outlet plugin on a plain Unix socket is
//! called this way; the rest goes to the runtime's blocking pool.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use outlet_protocol::context::{self, CallContext};
use outlet_protocol::prost::Message;
use outlet_protocol::{Answer, Status};
use outlet_rpc::Network;
use outlet_rpc::frames::{self, ASYNC_SPIN};

use super::Shared;
use super::instance::Instance;
use super::supervise::State;

impl Shared {
    pub(super) fn call_nonblocking(
        self: &Arc<Self>,
        method: &str,
        request: &[u8],
        deadline: Instant,
        caller: &CallContext,
    ) -> Option<Answer<'static>> {
        // Over the limit: the blocking path says so.
        if !self.frames.load(Ordering::Relaxed) || request.len() > self.max_message {
            return None;
        }
        let instance = match &*self.lock() {
            State::Running(instance) if instance.process.wait(Duration::ZERO).is_none() => {
                instance.clone()
            }
            _ => return None,
        };
        if instance.line.network != Network::Unix || instance.line.cert.is_some() {
            return None;
        }
        // The trace the caller's options or the calling thread carry.
        let traced = CallContext::new(None, None).with_trace(caller.trace.clone());
        let call = context::scope(traced, || {
            super::call::call_message(method, request, deadline).encode_to_vec()
        });
        let cancel = caller.cancel.clone();
        let (shared, method) = (self.clone(), method.to_owned());
        Some(Box::pin(async move {
            let exchange = shared.exchange(&instance, &method, &call);
            let cancelled = async {
                let Some(cancel) = &cancel else {
                    return std::future::pending().await;
                };
                let (cancelled, on_cancel) = tokio::sync::oneshot::channel::<()>();
                let _watch = cancel.watch(move || {
                    let _ = cancelled.send(());
                });
                let _ = on_cancel.await;
            };
            // A cancel or the deadline drops the exchange, and with it the
            // connection: the plugin sees its caller gone.
            tokio::select! {
                answer = tokio::time::timeout_at(deadline.into(), exchange) => {
                    answer.unwrap_or_else(|_| Err(shared.late(&method)))
                }
                () = cancelled => Err(crate::deadline::cancelled(&shared.plugin, &method)),
            }
        }))
    }

    /// Sends `call` on an idle connection or a new one, and reads the reply.
    async fn exchange(
        &self,
        instance: &Instance,
        method: &str,
        call: &[u8],
    ) -> Result<Vec<u8>, Status> {
        let mut connection = match instance.take_idle_frames() {
            Some(connection) => connection,
            None => self
                .connect(instance)
                .await
                .map_err(|e| self.broken_now(instance, method, &e.to_string()))?,
        };
        // Nothing here waits to see whether the process died: the
        // runtime's thread is not held.
        let broken = |e: std::io::Error| self.broken_now(instance, method, &e.to_string());
        connection.send_async(call).await.map_err(broken)?;
        let reply = connection
            .recv_async(self.max_message + 64, ASYNC_SPIN)
            .await
            .map_err(|e| self.not_received_within(instance, method, e, Duration::ZERO))
            .and_then(|payload| self.reply(method, payload))?;
        self.replied(instance, connection, method, reply)
    }

    /// A new connection for frames, connected without blocking.
    async fn connect(&self, instance: &Instance) -> std::io::Result<frames::Connection> {
        let stream = tokio::net::UnixStream::connect(&instance.line.address).await?;
        self.checked(instance, frames::Connection::new(stream.into_std()?)?)
    }
}
