//! A plugin's streams (`Transport::open`): opened on its running instance,
//! which they keep until they end; held to their caller's deadline and
//! cancel for their whole length; each message within the plugin's size
//! limit; counted as one call each, when they end.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use outlet_manifest::Mechanism;
use outlet_protocol::context::{self, CallContext};
use outlet_protocol::{Code, Messages, Status};

use super::{Instance, Plugin};
use crate::stats::Meter;

impl Plugin {
    pub(super) fn open_stream(
        &self,
        method: &str,
        requests: Messages<Vec<u8>>,
    ) -> Result<Messages<Vec<u8>>, Status> {
        let mechanism = self.0.manifest.mechanism;
        if mechanism != Mechanism::Native {
            return Err(Status::unimplemented(format!(
                "plugin `{}`: {method} streams, and streams are carried by native plugins only \
                 so far, not by its mechanism ({}); load a native build of it for this method",
                self.name(),
                mechanism.name()
            )));
        }
        let caller = context::current();
        if let Some(over) = caller
            .as_ref()
            .and_then(|c| crate::deadline::stream_over(c, self.name(), method, false))
        {
            return Err(over);
        }
        let limit = self.0.manifest.limits.max_message_bytes;
        let (plugin, path): (Arc<str>, Arc<str>) = (self.0.name.clone(), method.into());
        let sent = Arc::new(AtomicUsize::new(0));
        let requests = {
            let (plugin, path, sent) = (plugin.clone(), path.clone(), sent.clone());
            contained(requests, plugin.clone(), path.clone()).and_then(move |request| {
                sent.fetch_add(request.len(), Ordering::Relaxed);
                within(limit, request, || {
                    format!("a request of the stream of {path} to plugin `{plugin}`")
                })
            })
        };
        let meter = self.0.context.metered.then(|| self.0.meter.clone());
        let started = meter
            .as_ref()
            .and_then(|meter| meter.method(method).start());
        let mut stream = Stream {
            responses: Messages::empty(),
            caller,
            plugin,
            path,
            limit,
            meter,
            started,
            bytes: (sent, 0),
            code: None,
            _instance: None,
        };
        let instance = self.ready().inspect_err(|e| stream.end(e.code()))?;
        let opened = match &stream.caller {
            Some(caller) => context::scope(caller.clone(), || instance.open(method, requests)),
            None => instance.open(method, requests),
        };
        stream.responses = self
            .answered(&**instance, opened)
            .inspect_err(|e| stream.end(e.code()))?;
        stream._instance = Some(instance);
        Ok(Messages::new(stream))
    }
}

/// The requests, each pulled inside a panic guard of the host's: the
/// plugin's code pulls them, and a panic of the host's code (the caller's
/// iterator) must not unwind through the plugin's frames, whose runtime is
/// another copy of Rust's. It ends the requests with `Internal` instead.
fn contained(
    mut requests: Messages<Vec<u8>>,
    plugin: Arc<str>,
    path: Arc<str>,
) -> Messages<Vec<u8>> {
    Messages::new(std::iter::from_fn(move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| requests.next())).unwrap_or_else(
            |panic| {
                Some(Err(Status::internal(format!(
                    "the requests of the stream of {path} to plugin `{plugin}`: the host's code \
                     making the next one panicked: {}",
                    outlet_protocol::panic_message(panic.as_ref())
                ))))
            },
        )
    }))
}

/// `message`, if it is within `limit` bytes; `what` names it otherwise.
fn within(
    limit: usize,
    message: Vec<u8>,
    what: impl FnOnce() -> String,
) -> Result<Vec<u8>, Status> {
    if message.len() > limit {
        return Err(Status::resource_exhausted(format!(
            "{} is {} bytes, over the limit of {limit} (limits.max_message_bytes in the \
             plugin's manifest)",
            what(),
            message.len()
        )));
    }
    Ok(message)
}

/// An open stream's responses, as its caller reads them.
struct Stream {
    responses: Messages<Vec<u8>>,
    caller: Option<CallContext>,
    plugin: Arc<str>,
    path: Arc<str>,
    limit: usize,
    meter: Option<Arc<Meter>>,
    started: Option<Instant>,
    /// The bytes of the requests and of the responses so far.
    bytes: (Arc<AtomicUsize>, usize),
    /// How it ended, once it has.
    code: Option<Code>,
    /// Declared last: the plugin's code behind `responses` goes first.
    _instance: Option<Arc<Instance>>,
}

impl Iterator for Stream {
    type Item = Result<Vec<u8>, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.code.is_some() {
            return None;
        }
        let over = self.caller.as_ref().and_then(|caller| {
            crate::deadline::stream_over(caller, &self.plugin, &self.path, true)
        });
        let next = match (over, &self.caller) {
            (Some(over), _) => Some(Err(over)),
            (None, Some(caller)) => context::scope(caller.clone(), || self.responses.next()),
            (None, None) => self.responses.next(),
        };
        let next = next.map(|message| {
            let message = message?;
            self.bytes.1 += message.len();
            within(self.limit, message, || {
                format!(
                    "a response of the stream of {} from plugin `{}`",
                    self.path, self.plugin
                )
            })
        });
        match &next {
            Some(Ok(_)) => {}
            Some(Err(status)) => self.end(status.code()),
            None => self.end(Code::Ok),
        }
        next
    }
}

impl Stream {
    /// Counts the stream, and lets go of the plugin's instance: the
    /// plugin's code behind the responses first.
    fn end(&mut self, code: Code) {
        self.code = Some(code);
        self.responses = Messages::empty();
        self._instance = None;
        if let Some(meter) = &self.meter {
            let sent = self.bytes.0.load(Ordering::Relaxed);
            meter
                .method(&self.path)
                .finish(self.started, code, (sent, self.bytes.1));
        }
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
