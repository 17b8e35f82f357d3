//! A plugin's streams (`Transport::open`): opened on its running instance,
//! which they keep until they end; held to their caller's deadline and
//! cancel, and each message to the plugin's size limit, in both
//! directions; run in the plugin's frame of calls through the host; counted
//! as one call each, when they end.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use outlet_protocol::context::{self, CallContext};
use outlet_protocol::{Code, Messages, Status};

use super::{Instance, Plugin};

impl Plugin {
    pub(super) fn open_stream(
        &self,
        method: &str,
        requests: Messages<Vec<u8>>,
    ) -> Result<Messages<Vec<u8>>, Status> {
        // Counted as a call is, refused or not.
        let started = self
            .metered()
            .and_then(|meter| meter.method(method).start());
        let refused = |status: Status| {
            if let Some(meter) = self.metered() {
                meter.method(method).finish(started, status.code(), (0, 0));
            }
            status
        };
        let caller = context::current();
        if let Some(over) = caller
            .as_ref()
            .and_then(|c| crate::deadline::stream_over(c, self.name(), method, false))
        {
            return Err(refused(over));
        }
        let shared = Arc::new(State {
            plugin: self.clone(),
            path: method.into(),
            caller,
            sent: AtomicUsize::new(0),
            failed: Mutex::new(None),
        });
        let mut stream = Stream {
            responses: Messages::empty(),
            shared: shared.clone(),
            started,
            received: 0,
            code: None,
            instance: None,
        };
        let requests = Messages::new(Requests {
            requests: Some(requests),
            shared,
        });
        let instance = self.ready().inspect_err(|e| stream.end(e.code()))?;
        let opened = stream.shared.run(|| instance.open(method, requests));
        stream.responses = self
            .answered(&**instance, opened)
            .inspect_err(|e| stream.end(e.code()))?;
        stream.instance = Some(instance);
        Ok(Messages::new(stream))
    }

    fn metered(&self) -> Option<&crate::stats::Meter> {
        self.0.context.metered.then_some(&*self.0.meter)
    }
}

/// What a stream's requests and responses share.
struct State {
    plugin: Plugin,
    path: Arc<str>,
    caller: Option<CallContext>,
    /// The bytes of the requests so far.
    sent: AtomicUsize,
    /// The first request that failed (over the limit, past the deadline, a
    /// panic of the caller's iterator): the stream fails with it, even if
    /// the plugin's code went on without it.
    failed: Mutex<Option<Status>>,
}

impl State {
    /// The caller's deadline or cancel, if either has ended the stream.
    fn over(&self) -> Option<Status> {
        let caller = self.caller.as_ref()?;
        crate::deadline::stream_over(caller, self.plugin.name(), &self.path, true)
    }

    /// `message`, if it is within the plugin's limit; `what` names it.
    fn within(&self, message: Vec<u8>, what: &str) -> Result<Vec<u8>, Status> {
        let limit = self.plugin.0.manifest.limits.max_message_bytes;
        if message.len() > limit {
            return Err(Status::resource_exhausted(format!(
                "{what} of the stream of {} of plugin `{}` is {} bytes, over the limit of \
                 {limit} (limits.max_message_bytes in its manifest)",
                self.path,
                self.plugin.name(),
                message.len()
            )));
        }
        Ok(message)
    }

    /// Runs the plugin's code for the stream: within its caller's context,
    /// and for a plugin that calls through the host, in its frame.
    fn run<R>(&self, code: impl FnOnce() -> R) -> R {
        match &self.caller {
            Some(caller) => context::scope(caller.clone(), || self.plugin.serve(code)),
            None => self.plugin.serve(code),
        }
    }

    fn fail(&self, status: Status) -> Status {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.get_or_insert_with(|| status.clone());
        status
    }
}

/// A stream's requests, as the plugin's code pulls them. Each is pulled,
/// and the caller's iterator dropped, inside a panic guard of the host's:
/// a panic of the caller's code must not unwind through the plugin's
/// frames, whose runtime is another copy of Rust's.
struct Requests {
    /// The caller's; `None` once dropped or failed.
    requests: Option<Messages<Vec<u8>>>,
    shared: Arc<State>,
}

impl Iterator for Requests {
    type Item = Result<Vec<u8>, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        let requests = self.requests.as_mut()?;
        let next = match self.shared.over() {
            Some(over) => Some(Err(over)),
            None => std::panic::catch_unwind(AssertUnwindSafe(|| requests.next())).unwrap_or_else(
                |panic| {
                    Some(Err(Status::internal(format!(
                        "a request of the stream of {} to plugin `{}`: the caller's code \
                         making it panicked: {}",
                        self.shared.path,
                        self.shared.plugin.name(),
                        outlet_protocol::panic_message(panic.as_ref())
                    ))))
                },
            ),
        };
        let next = next.map(|request| {
            let request = request?;
            self.shared.sent.fetch_add(request.len(), Ordering::Relaxed);
            self.shared.within(request, "a request")
        });
        if let Some(Err(status)) = next {
            self.drop_requests();
            return Some(Err(self.shared.fail(status)));
        }
        next
    }
}

impl Requests {
    fn drop_requests(&mut self) {
        let requests = self.requests.take();
        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(move || drop(requests))) {
            tracing::error!(
                target: "outlet::plugin",
                plugin = %self.shared.plugin.name(),
                "dropping the requests of the stream of {} panicked in the caller's code: {}",
                self.shared.path,
                outlet_protocol::panic_message(panic.as_ref())
            );
        }
    }
}

impl Drop for Requests {
    fn drop(&mut self) {
        self.drop_requests();
    }
}

/// An open stream's responses, as its caller reads them.
struct Stream {
    responses: Messages<Vec<u8>>,
    shared: Arc<State>,
    started: Option<Instant>,
    /// The bytes of the responses so far.
    received: usize,
    /// How it ended, once it has.
    code: Option<Code>,
    /// Declared last: the plugin's code behind `responses` goes first.
    instance: Option<Arc<Instance>>,
}

impl Stream {
    /// Counts the stream, and lets go of the plugin's instance: the
    /// plugin's code behind the responses first.
    fn end(&mut self, code: Code) {
        self.code = Some(code);
        let responses = std::mem::replace(&mut self.responses, Messages::empty());
        drop(responses);
        self.instance = None;
        if let Some(meter) = self.shared.plugin.metered() {
            let sent = self.shared.sent.load(Ordering::Relaxed);
            meter
                .method(&self.shared.path)
                .finish(self.started, code, (sent, self.received));
        }
    }
}

impl Iterator for Stream {
    type Item = Result<Vec<u8>, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.code.is_some() {
            return None;
        }
        let next = match self.shared.over() {
            Some(over) => Some(Err(over)),
            None => {
                let responses = &mut self.responses;
                self.shared.run(|| responses.next())
            }
        };
        // A failed request fails the stream, whatever the plugin made of it.
        let failed = self
            .shared
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let next = match (failed, next) {
            (Some(failed), Some(Ok(_)) | None) => Some(Err(failed)),
            (_, next) => next,
        };
        let next = next.map(|message| {
            let message = message?;
            self.received += message.len();
            self.shared.within(message, "a response")
        });
        match &next {
            Some(Ok(_)) => {}
            Some(Err(status)) => {
                if let Some(instance) = &self.instance {
                    // A panic is told at once.
                    let _ = self
                        .shared
                        .plugin
                        .answered::<()>(&***instance, Err(status.clone()));
                }
                self.end(status.code());
            }
            None => self.end(Code::Ok),
        }
        next
    }
}

impl Drop for Stream {
    /// A stream its caller dropped before its end was cancelled.
    fn drop(&mut self) {
        if self.code.is_none() {
            self.end(Code::Cancelled);
        }
    }
}
