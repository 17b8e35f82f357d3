//! Calls from async code (`Transport::call_async`, the generated clients'
//! `_async` methods): the runtime's thread is never blocked by a plugin in
//! another process for longer than a short spin.
//!
//! - native, cabi: the call runs inline, on the polling thread, as the
//!   function call it is (as it would from blocking code).
//! - rpc, to an Outlet plugin over Outlet's frames: sent and waited for on
//!   the caller's runtime, after a spin of at most
//!   `outlet_rpc::frames::ASYNC_SPIN` for a quick answer.
//! - everything else (exec, wasm, an rpc plugin over gRPC or one whose
//!   process is being restarted): the blocking call on a thread of the
//!   runtime's blocking pool (`tokio::task::spawn_blocking`).
//!
//! Either way the call is held to its options' deadline and cancel, and
//! counted; dropping the future cancels it. Outside a tokio runtime, the
//! call runs inline.

use std::time::Instant;

use outlet_manifest::Mechanism;
use outlet_protocol::context::{self, CallContext, CallOptions, Cancel};
use outlet_protocol::{Answer, Code, Status, Transport};

use super::Plugin;

impl Plugin {
    pub(super) fn answer_async<'a>(
        &'a self,
        method: &'a str,
        request: Vec<u8>,
        options: &'a CallOptions,
    ) -> Answer<'a> {
        let in_process = matches!(
            self.0.manifest.mechanism,
            Mechanism::Native | Mechanism::Cabi
        );
        if in_process || tokio::runtime::Handle::try_current().is_err() {
            return Box::pin(async move { context::with(options, || self.call(method, &request)) });
        }
        let mut caller = options.start();
        // The host's trace context, as it stands on the calling thread.
        caller.trace = caller.trace.or_else(context::caller_trace);
        let span = self.span(method);
        let call = async move {
            let mut counted = Counted::start(self, method, request.len());
            let answer = self.waited(method, request, &caller).await;
            counted.finish(&answer);
            answer
        };
        Box::pin(tracing::Instrument::instrument(call, span))
    }

    /// The call, held to `caller`'s deadline and cancel.
    async fn waited(
        &self,
        method: &str,
        request: Vec<u8>,
        caller: &CallContext,
    ) -> Result<Vec<u8>, Status> {
        if let Some(over) = crate::deadline::given_up_on(caller, self.name(), method) {
            return Err(over);
        }
        let answer = match self.without_blocking(method, &request, caller) {
            Some(answer) => answer.await,
            None => self.on_blocking_pool(method, request, caller).await,
        };
        let mechanism = self.0.manifest.mechanism;
        let refused =
            crate::deadline::refused(caller, self.name(), mechanism, method, answer.is_ok());
        match refused {
            Some(status) => Err(status),
            None => answer,
        }
    }

    /// The call as its mechanism makes it without blocking, if it can now:
    /// an instance running and healthy, and no frame of calls through the
    /// host to keep (a plugin granted calls).
    fn without_blocking<'a>(
        &'a self,
        method: &str,
        request: &[u8],
        caller: &CallContext,
    ) -> Option<Answer<'a>> {
        if self.0.calls_out || self.0.unhealthy.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        // Not `ready`, which may reload a poisoned plugin: the blocking
        // path does that, and says why.
        let instance = self.instance().ok().filter(|i| !i.poisoned())?;
        let limit = Instant::now() + self.0.manifest.limits.timeout();
        let deadline = context::sooner(caller.deadline, Some(limit)).unwrap_or(limit);
        let answer = instance.call_nonblocking(method, request, deadline, caller)?;
        Some(Box::pin(async move {
            let answer = answer.await;
            self.answered(&**instance, answer)
        }))
    }

    /// The blocking call on a thread of the runtime's blocking pool; given
    /// up on (cancelled) if the future is dropped before it answers.
    async fn on_blocking_pool(
        &self,
        method: &str,
        request: Vec<u8>,
        caller: &CallContext,
    ) -> Result<Vec<u8>, Status> {
        struct CancelOnDrop(Cancel);
        impl Drop for CancelOnDrop {
            fn drop(&mut self) {
                self.0.cancel();
            }
        }
        let dropped = CancelOnDrop(Cancel::new());
        let (plugin, method_owned) = (self.clone(), method.to_owned());
        let (caller, when_dropped) = (caller.clone(), dropped.0.clone());
        let span = tracing::Span::current();
        let call = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let _may_block = MayBlock::new();
            // Nested, so that either token cancels it.
            context::scope(CallContext::new(None, Some(when_dropped)), || {
                context::scope(caller, || plugin.call_unmetered(&method_owned, &request))
            })
        });
        let answer = call.await.unwrap_or_else(|error| {
            Err(Status::internal(format!(
                "plugin `{}`: the call of {method} on the runtime's blocking pool failed: {error}",
                self.name()
            )))
        });
        drop(dropped);
        answer
    }
}

/// An async call as the plugin's stats count it: started when made,
/// finished with its answer, or as `Cancelled` when its future is dropped
/// first.
struct Counted<'a> {
    meter: Option<&'a crate::stats::MethodMeter>,
    started: Option<Instant>,
    sent: usize,
}

impl<'a> Counted<'a> {
    fn start(plugin: &'a Plugin, method: &str, sent: usize) -> Counted<'a> {
        let meter = plugin
            .0
            .context
            .metered
            .then(|| plugin.0.meter.method(method));
        let started = meter.and_then(|meter| meter.start());
        Counted {
            meter,
            started,
            sent,
        }
    }

    fn finish(&mut self, answer: &Result<Vec<u8>, Status>) {
        if let Some(meter) = self.meter.take() {
            let code = answer.as_ref().map_or_else(Status::code, |_| Code::Ok);
            let received = answer.as_ref().map_or(0, Vec::len);
            meter.finish(self.started, code, (self.sent, received));
            let span = tracing::Span::current();
            if !span.is_disabled() {
                span.record("code", tracing::field::display(code));
            }
        }
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        if let Some(meter) = self.meter.take() {
            meter.finish(self.started, Code::Cancelled, (self.sent, 0));
        }
    }
}

/// Marks this thread, one of the blocking pool's, as one where a call may
/// block on a runtime of its own (`mechanism::MAY_BLOCK`), while it lives;
/// then puts back what it was.
struct MayBlock(bool);

impl MayBlock {
    fn new() -> MayBlock {
        MayBlock(crate::mechanism::MAY_BLOCK.replace(true))
    }
}

impl Drop for MayBlock {
    fn drop(&mut self) {
        crate::mechanism::MAY_BLOCK.set(self.0);
    }
}
