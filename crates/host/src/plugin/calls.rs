//! How a call reaches a plugin: the instance, as a panic or a failed
//! health check left it; the call's frame in a chain through the host; its
//! caller's deadline and cancel; its stats and span. And [`Transport`] for
//! [`Plugin`], which generated clients call through.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use outlet_manifest::{Mechanism, OnPanic};
use outlet_protocol::{Code, Direct, Messages, Status, Transport};

use super::Plugin;
use crate::mechanism::Backend;

impl Plugin {
    pub(super) fn poisoned_error(&self) -> Status {
        Status::unavailable(format!(
            "plugin `{}` panicked in an earlier call, so its state may be corrupt, and \
             limits.on_panic = \"fail\"; reload it (Plugin::reload), or set \
             on_panic = \"reload\" to have that done at once",
            self.name()
        ))
    }

    fn unhealthy_error(&self) -> Status {
        let sick = self.0.sick.lock().unwrap_or_else(|e| e.into_inner());
        Status::unavailable(format!(
            "plugin `{}` is not serving: {}; its calls fail until a health check passes",
            self.name(),
            sick.as_deref().unwrap_or("its health check failed")
        ))
    }

    /// Tells subscribers, once per instance, that a call panicked in it.
    fn tell_poisoned(&self) {
        if !self.0.poison_told.swap(true, Ordering::AcqRel) {
            self.0
                .context
                .events
                .emit(self.name(), crate::events::EventKind::Poisoned);
        }
    }

    /// A call's answer: a failed one may be a panic, told at once.
    pub(super) fn answered<T>(
        &self,
        backend: &dyn Backend,
        answer: Result<T, Status>,
    ) -> Result<T, Status> {
        if answer.is_err() && backend.poisoned() {
            self.tell_poisoned();
        }
        answer
    }

    /// After a panic: fails fast with `on_panic = "fail"`; reloads (once,
    /// whoever gets here first) with `"reload"`.
    fn recover(&self) -> Result<(), Status> {
        match self.0.manifest.limits.on_panic {
            OnPanic::Fail => Err(self.poisoned_error()),
            OnPanic::Reload => {
                let _one_at_a_time = self.0.reloading.lock().unwrap_or_else(|e| e.into_inner());
                if !self.instance()?.poisoned() {
                    return Ok(());
                }
                self.reload_locked().map_err(|error| {
                    Status::unavailable(format!(
                        "plugin `{}` panicked in an earlier call, and reloading it failed: {error}",
                        self.name()
                    ))
                })
            }
        }
    }

    /// Runs one call of the plugin's; for a plugin that may call through
    /// the host, within its frame: in the chain of the call being served on
    /// this thread, if any, and known to the bus if its callbacks come on
    /// other threads (rpc).
    pub(super) fn serve<R>(&self, call: impl FnOnce() -> R) -> R {
        if !self.0.calls_out {
            return call();
        }
        let frame = crate::services::Frame::enter(&self.0.name, self.0.manifest.limits.timeout());
        let _known = (self.0.manifest.mechanism == Mechanism::Rpc)
            .then(|| self.0.context.services.enter_remote(frame.clone()));
        crate::services::within(frame, call)
    }

    /// Runs one call held to what its caller asked for it (a deadline, a
    /// cancel token; see `outlet_protocol::context`): one already given up
    /// on is not made, and one that is, whatever its answer, fails with
    /// `Cancelled` or `DeadlineExceeded`.
    fn held<R>(&self, method: &str, call: impl FnOnce() -> Result<R, Status>) -> Result<R, Status> {
        if !outlet_protocol::context::is_set() {
            return call();
        }
        crate::deadline::held(self.name(), self.0.manifest.mechanism, method, call)
    }

    /// The `tracing` span of one call (target `outlet::call`, level TRACE):
    /// the plugin, method, mechanism, and code once it is known; nothing
    /// when no subscriber wants it.
    #[inline]
    pub(super) fn span(&self, method: &str) -> tracing::Span {
        tracing::trace_span!(
            target: "outlet::call",
            "call",
            plugin = %self.0.name,
            method,
            mechanism = self.0.manifest.mechanism.name(),
            code = tracing::field::Empty,
        )
    }

    /// The instance to call: the running one, or after a panic, what
    /// `on_panic` makes of it.
    pub(super) fn ready(&self) -> Result<Arc<super::Instance>, Status> {
        let mut backend = self.instance()?;
        if backend.poisoned() {
            self.tell_poisoned();
            drop(backend);
            self.recover()?;
            backend = self.instance()?;
        }
        if self.0.unhealthy.load(Ordering::Relaxed) {
            return Err(self.unhealthy_error());
        }
        Ok(backend)
    }
}

impl Transport for Plugin {
    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        self.measured(method, request.len(), |out| {
            let answer = self.call_unmetered(method, request);
            *out = answer.as_ref().map_or(0, Vec::len);
            answer
        })
    }

    fn call_with(
        &self,
        method: &str,
        request: &[u8],
        response: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Status> {
        self.measured(method, request.len(), |out| {
            let mut counted = |answer: &[u8]| {
                *out = answer.len();
                response(answer);
            };
            self.held(method, || {
                let backend = self.ready()?;
                let answer = self.serve(|| backend.call_with(method, request, &mut counted));
                self.answered(&**backend, answer)
            })
        })
    }

    fn with_native(
        &self,
        service: &str,
        method: &'static str,
        f: &mut Direct<'_>,
    ) -> Option<Status> {
        self.direct(service, method, f)
    }

    fn open(&self, method: &str, requests: Messages<Vec<u8>>) -> Result<Messages<Vec<u8>>, Status> {
        self.open_stream(method, requests)
    }

    #[cfg(feature = "async")]
    fn call_async<'a>(
        &'a self,
        method: &'a str,
        request: Vec<u8>,
        options: &'a outlet_protocol::context::CallOptions,
    ) -> outlet_protocol::Answer<'a> {
        self.answer_async(method, request, options)
    }

    #[inline]
    fn with_native_once<F>(&self, service: &str, method: &'static str, f: F) -> Option<Status>
    where
        F: FnOnce(&(dyn Any + Send + Sync)) -> Option<Code>,
    {
        self.direct(service, method, f)
    }
}

impl Plugin {
    /// A call as [`Transport::call`] makes it, neither counted nor in a
    /// span: for a caller that counts it itself (an async call).
    pub(super) fn call_unmetered(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        self.held(method, || {
            let backend = self.ready()?;
            let answer = self.serve(|| backend.call(method, request));
            self.answered(&**backend, answer)
        })
    }

    /// A call straight to a native plugin's implementation (see
    /// `Transport::with_native`), counted and held to its caller's
    /// deadline and cancel as any call is; inlined into generated clients.
    #[inline]
    fn direct<F>(&self, service: &str, method: &'static str, f: F) -> Option<Status>
    where
        F: FnOnce(&(dyn Any + Send + Sync)) -> Option<Code>,
    {
        if self.0.manifest.mechanism != Mechanism::Native {
            return None;
        }
        // A poisoned, unhealthy or stopped plugin is not offered, nor one
        // its caller gave up on: the client then takes the encoded path,
        // which says why.
        let backend = self.0.backend.load();
        let implementation = backend.as_deref()?.direct(service)?;
        if self.0.unhealthy.load(Ordering::Relaxed) {
            return None;
        }
        // Held to its caller's deadline and cancel as any call is, after
        // the fact: the plugin's code runs on this thread.
        let held = outlet_protocol::context::is_set();
        if held && crate::deadline::given_up() {
            return None;
        }
        let refused = |code| {
            held.then(|| crate::deadline::refused_here(self.name(), method, code))
                .flatten()
        };
        if !self.0.context.metered {
            return f(implementation).and_then(refused);
        }
        let meter = self.0.meter.method_static(method);
        let span = self.span(method);
        let _entered = span.enter();
        let started = meter.start();
        let Some(code) = f(implementation) else {
            meter.unstart();
            return None;
        };
        let refused = refused(code);
        let code = refused.as_ref().map_or(code, Status::code);
        meter.finish(started, code, (0, 0));
        if !span.is_disabled() {
            span.record("code", tracing::field::display(code));
        }
        refused
    }
}

impl Plugin {
    /// Runs one call counted in the plugin's stats and in a span, unless
    /// the host was built without (`HostBuilder::metrics`); `call` sets the
    /// length of the answer.
    fn measured<T>(
        &self,
        method: &str,
        request: usize,
        call: impl FnOnce(&mut usize) -> Result<T, Status>,
    ) -> Result<T, Status> {
        let mut out = 0;
        if !self.0.context.metered {
            return call(&mut out);
        }
        let span = self.span(method);
        let _entered = span.enter();
        let meter = self.0.meter.method(method);
        let started = meter.start();
        let answer = call(&mut out);
        let code = code(&answer);
        meter.finish(started, code, (request, out));
        if !span.is_disabled() {
            span.record("code", tracing::field::display(code));
        }
        answer
    }
}

/// A call's code.
fn code<T>(answer: &Result<T, Status>) -> Code {
    answer.as_ref().map_or_else(Status::code, |_| Code::Ok)
}
