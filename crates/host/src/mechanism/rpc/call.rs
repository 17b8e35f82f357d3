//! How a call reaches an rpc plugin: over Outlet's frames when both sides
//! are Outlet, else gRPC; a plain go-plugin plugin's Hello, Health and
//! Shutdown made up on the host; and a failed call's status naming the
//! plugin, its limits, and whether its process died.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use outlet_protocol::context::Cancel;
use outlet_protocol::core::{
    self, Call, HealthResponse, HelloResponse, Reply, health_response::ServingStatus,
};
use outlet_protocol::frame::FrameError;
use outlet_protocol::prost::Message;
use outlet_protocol::{CORE_VERSIONS, Status};
use outlet_rpc::Network;
use outlet_rpc::frames::{self, HOST_SPIN};
use outlet_rpc::wire::{self, HealthCheckRequest, HealthCheckResponse};

use super::Shared;
use super::grpc;
use super::instance::Instance;
use crate::log::stderr_clause as said;

/// How a call on Outlet's frames failed, and whether the plugin may have
/// seen it: one it never saw can go to a restarted plugin.
struct FramesFailure {
    status: Status,
    delivered: bool,
}

impl From<Status> for FramesFailure {
    fn from(status: Status) -> FramesFailure {
        FramesFailure {
            status,
            delivered: true,
        }
    }
}

impl Shared {
    /// One call: over Outlet's frames when Hello agreed on them, else gRPC,
    /// with a plain go-plugin plugin's core protocol made up on the host.
    pub(super) fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        let plugin = &self.plugin;
        if request.len() > self.max_message {
            return Err(Status::resource_exhausted(format!(
                "plugin `{plugin}`: the request to {method} is {} bytes, over the limit of {} \
                 (limits.max_message_bytes)",
                request.len(),
                self.max_message
            )));
        }
        // At most the time left to the call it is made in, if any.
        let left = crate::services::time_left(self.timeout);
        let deadline = Instant::now() + left;
        let cancel = crate::services::caller_cancel();
        let cancel = cancel.as_ref();
        // Given up on already (a Hello within a cancelled call, whose answer
        // a start may hold): not made.
        let cancelled = cancel.is_some_and(Cancel::is_cancelled);
        if cancelled || left.is_zero() {
            return Err(crate::deadline::not_made(plugin, method, cancelled));
        }
        let instance = self.instance(deadline, cancel)?;
        // Outlet's frames go on a plain Unix socket only, never around TLS.
        if self.frames.load(Ordering::Relaxed)
            && instance.line.network == Network::Unix
            && instance.line.cert.is_none()
        {
            return match self.call_frames(&instance, method, request, deadline, cancel) {
                // The call never reached a process that has just died: it
                // goes to the restarted one.
                Err(failed)
                    if !failed.delivered
                        && instance.process.wait(Duration::from_millis(100)).is_some() =>
                {
                    let instance = self.instance(deadline, cancel)?;
                    self.call_frames(&instance, method, request, deadline, cancel)
                        .map_err(|failed| failed.status)
                }
                result => result.map_err(|failed| failed.status),
            };
        }
        // A first start asked Hello beside its health check already.
        let early = match method {
            core::HELLO => instance
                .early_hello
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .filter(|(asked, _)| asked == request)
                .map(|(_, answer)| answer),
            _ => None,
        };
        let answer = early.unwrap_or_else(|| {
            instance
                .grpc
                .unary(method, request.to_vec(), self.max_message, deadline, cancel)
        });
        let status = match answer {
            Ok(reply) => {
                instance.answered(method);
                return Ok(reply.into());
            }
            Err(status)
                if status.code() == tonic::Code::DeadlineExceeded && Instant::now() >= deadline =>
            {
                return Err(self.late(method));
            }
            Err(status) => status,
        };
        // A plain go-plugin plugin has no Outlet core service: Hello is
        // made up from its handshake, Health is gRPC's, Shutdown is the
        // controller's (sent on stop).
        if status.code() == tonic::Code::Unimplemented {
            match method {
                core::HELLO => {
                    return Ok(HelloResponse {
                        name: plugin.clone(),
                        version: String::new(),
                        core_versions: CORE_VERSIONS.to_vec(),
                        app_versions: vec![instance.line.app_version],
                        capabilities: Vec::new(),
                        services: vec![self.interface.clone()],
                    }
                    .encode_to_vec());
                }
                core::HEALTH => return Ok(self.grpc_health(&instance, deadline)?.encode_to_vec()),
                core::SHUTDOWN => return Ok(Vec::new()),
                _ => {}
            }
        }
        Err(self.explain(&instance, method, status))
    }

    /// Health through `grpc.health.v1`, for a plugin without Outlet's core service.
    fn grpc_health(
        &self,
        instance: &Instance,
        deadline: Instant,
    ) -> Result<HealthResponse, Status> {
        let request = HealthCheckRequest {
            service: wire::HEALTH_SERVICE.into(),
        };
        let reply = instance
            .grpc
            .unary(
                wire::HEALTH_CHECK,
                request.encode_to_vec(),
                grpc::CONTROL_REPLY,
                deadline,
                None,
            )
            .map_err(|status| self.explain(instance, wire::HEALTH_CHECK, status))?;
        let serving = HealthCheckResponse::decode(reply).is_ok_and(|h| h.status == wire::SERVING);
        Ok(HealthResponse {
            status: if serving {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            }
            .into(),
            message: String::new(),
        })
    }

    /// One call over Outlet's frames, on an idle connection or a new one.
    fn call_frames(
        &self,
        instance: &Instance,
        method: &str,
        request: &[u8],
        deadline: Instant,
        cancel: Option<&Cancel>,
    ) -> Result<Vec<u8>, FramesFailure> {
        let plugin = &self.plugin;
        let undelivered = |status| FramesFailure {
            status,
            delivered: false,
        };
        let mut connection = match instance.take_idle_frames() {
            Some(connection) => connection,
            None => frames::Connection::connect(instance.line.address.as_ref(), deadline)
                .and_then(|connection| self.checked(instance, connection))
                .map_err(|e| undelivered(self.broken(instance, method, &e.to_string())))?,
        };
        let call = call_message(method, request, deadline);
        // A cancel shuts the connection: the wait below ends, and the
        // plugin sees its caller gone (outlet_guest::context::cancelled).
        let shut =
            match cancel {
                Some(_) => Some(connection.as_fd().try_clone_to_owned().map_err(|e| {
                    FramesFailure::from(self.broken(instance, method, &e.to_string()))
                })?),
                None => None,
            };
        let watch = cancel.zip(shut).map(|(cancel, shut)| {
            cancel.watch(move || {
                let _ = rustix::net::shutdown(&shut, rustix::net::Shutdown::Both);
            })
        });
        connection
            .send(&call.encode_to_vec(), Some(deadline))
            .map_err(|e| match e.kind() {
                // Shut by a cancel: the plugin may have seen the call.
                _ if cancel.is_some_and(Cancel::is_cancelled) => {
                    FramesFailure::from(crate::deadline::cancelled(plugin, method))
                }
                std::io::ErrorKind::TimedOut => undelivered(self.late(method)),
                _ => undelivered(self.broken(instance, method, &e.to_string())),
            })?;
        // A reply's frame holds the body and a few bytes of envelope.
        let received = connection.recv(self.max_message + 64, HOST_SPIN, Some(deadline));
        drop(watch);
        // Cancelled: the connection may be shut, and is dropped.
        if cancel.is_some_and(Cancel::is_cancelled) {
            return Err(crate::deadline::cancelled(plugin, method).into());
        }
        let reply = received
            .map_err(|e| self.not_received(instance, method, e))
            .and_then(|payload| self.reply(method, payload))?;
        Ok(self.replied(instance, connection, method, reply)?)
    }

    /// A new connection for frames, whose peer is the plugin's process.
    pub(super) fn checked(
        &self,
        instance: &Instance,
        connection: frames::Connection,
    ) -> std::io::Result<frames::Connection> {
        if let Some(peer) = instance.peer {
            peer.check(connection.as_fd(), &instance.line.address)?;
        }
        Ok(connection)
    }

    /// Why a reply over frames was not received.
    pub(super) fn not_received(
        &self,
        instance: &Instance,
        method: &str,
        error: std::io::Error,
    ) -> Status {
        self.not_received_within(instance, method, error, Duration::from_secs(1))
    }

    /// As [`Shared::not_received`], waiting at most `wait` to see whether
    /// the process died.
    pub(super) fn not_received_within(
        &self,
        instance: &Instance,
        method: &str,
        error: std::io::Error,
        wait: Duration,
    ) -> Status {
        let plugin = &self.plugin;
        match error.kind() {
            std::io::ErrorKind::TimedOut => self.late(method),
            std::io::ErrorKind::InvalidData => {
                let too_large = error
                    .get_ref()
                    .and_then(|e| e.downcast_ref::<FrameError>())
                    .is_some_and(|e| matches!(e, FrameError::TooLarge { .. }));
                if too_large {
                    Status::resource_exhausted(format!(
                        "plugin `{plugin}`: its reply to {method} is refused: {error} \
                         (limits.max_message_bytes)"
                    ))
                } else {
                    Status::internal(format!(
                        "plugin `{plugin}`: its reply to {method} is not an Outlet frame: \
                         {error}; the plugin must write nothing else on its connections"
                    ))
                }
            }
            _ => {
                let status = grpc::transport(error.to_string());
                self.explain_within(instance, method, status, wait)
            }
        }
    }

    /// A received frame as a `Reply`.
    pub(super) fn reply(&self, method: &str, payload: &[u8]) -> Result<Reply, Status> {
        Reply::decode(payload).map_err(|e| {
            Status::internal(format!(
                "plugin `{}`: its reply to {method} is not a Reply: {e}",
                self.plugin
            ))
        })
    }

    /// A call over frames answered: its connection is idle again, and the
    /// answer is the reply's.
    pub(super) fn replied(
        &self,
        instance: &Instance,
        connection: frames::Connection,
        method: &str,
        reply: Reply,
    ) -> Result<Vec<u8>, Status> {
        let mut idle = instance
            .idle_frames
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // A burst of calls at once leaves at most so many open.
        if idle.len() < grpc::IDLE {
            idle.push(connection);
        }
        drop(idle);
        instance.answered(method);
        match reply.status {
            Some(status) => Err(Status::from(status)),
            None => Ok(reply.body),
        }
    }

    /// A connection carrying frames failed: the plugin died, or the connection broke.
    pub(super) fn broken(&self, instance: &Instance, method: &str, error: &str) -> Status {
        self.explain(instance, method, grpc::transport(error.to_owned()))
    }

    /// As [`Shared::broken`], without waiting to see whether the process
    /// died: from async code.
    #[cfg(feature = "async")]
    pub(super) fn broken_now(&self, instance: &Instance, method: &str, error: &str) -> Status {
        let status = grpc::transport(error.to_owned());
        self.explain_within(instance, method, status, Duration::ZERO)
    }

    /// A call's deadline passed.
    pub(super) fn late(&self, method: &str) -> Status {
        Status::deadline_exceeded(format!(
            "plugin `{}`: {method} did not finish within {}; the plugin was told to give up \
             on it",
            self.plugin,
            crate::services::limit_hit(self.timeout.as_millis() as u64)
        ))
    }

    /// Turns a failed call's status into one that names the plugin, and
    /// says whether its process died.
    pub(super) fn explain(
        &self,
        instance: &Instance,
        method: &str,
        status: tonic::Status,
    ) -> Status {
        self.explain_within(instance, method, status, Duration::from_secs(1))
    }

    /// As [`Shared::explain`], waiting at most `wait` to see whether the
    /// process died (none from async code, which must not block).
    pub(super) fn explain_within(
        &self,
        instance: &Instance,
        method: &str,
        status: tonic::Status,
        wait: Duration,
    ) -> Status {
        use std::error::Error;
        let plugin = &self.plugin;
        if status
            .message()
            .contains("decoded message length too large")
        {
            return Status::resource_exhausted(format!(
                "plugin `{plugin}`: its reply to {method} is over the limit of {} bytes \
                 (limits.max_message_bytes): {}",
                self.max_message,
                status.message()
            ));
        }
        // A status the plugin returned has no source; one made on the way
        // (a connection that broke, could not be made) has. One that says
        // the plugin broke gRPC's rules (a stream ended without a status,
        // say) has none either, and names it.
        if status.source().is_none() {
            if status.message().starts_with("protocol error") {
                return Status::new(
                    outlet_rpc::from_grpc(&status).code(),
                    format!("plugin `{plugin}`: {method}: {}", status.message()),
                );
            }
            return outlet_rpc::from_grpc(&status);
        }
        // The connection broke: the process has most likely died, and its
        // status says how (a second on a busy machine is not too long).
        if let Some(exit) = instance.process.wait(wait) {
            return Status::unavailable(format!(
                "plugin `{plugin}` died during {method}: it {exit}{}; it is being restarted",
                said(&instance.process.last_stderr())
            ));
        }
        Status::unavailable(format!(
            "plugin `{plugin}`: {method} could not reach it: {}",
            status.message()
        ))
    }
}

/// A call as Outlet's frames carry it, with what it carries of its context.
pub(super) fn call_message(method: &str, request: &[u8], deadline: Instant) -> Call {
    let (timeout_us, traceparent, tracestate) = crate::deadline::carried(deadline);
    Call {
        method: method.to_owned(),
        body: request.to_vec(),
        timeout_us,
        traceparent,
        tracestate,
        ..Call::default()
    }
}
