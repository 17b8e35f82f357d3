//! The bus: what a plugin reaches when it calls back into the host (the
//! cabi host table's `call`, wasm's `call` import, an rpc plugin's broker,
//! a native plugin's `HostCall`), only where its manifest grants it
//! (`permissions.call`). Behind each service is the host's own code or a
//! plugin the host offered; a call to a plugin is made within the call that
//! made it ([`Frame`]): it gets at most the time left to it, and may not
//! come back to a plugin already in its chain.

mod caller;
mod chain;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime};

use outlet_protocol::{Code, Service, Status, Transport};

use crate::audit::{AuditRecord, AuditSink};
use crate::error::OfferError;
use crate::plugin::{Plugin, WeakPlugin};

pub(crate) use caller::Caller;
use caller::Grant;
#[cfg(feature = "wasm")]
pub(crate) use chain::carry;
pub(crate) use chain::{Frame, caller_cancel, deadline_here, limit_hit, time_left, until, within};
use chain::{MAX_CHAIN, cancelled_with, put_back};

/// What answers a service's calls.
#[derive(Clone)]
enum Offered {
    /// The host's own code.
    Host(Arc<dyn Service>),
    /// The plugin of that name, as loaded now (none while it is not).
    Plugin(Arc<str>, WeakPlugin),
}

/// The host's services, shared by the host and every plugin it loads, and
/// where the record of each call to them goes.
#[derive(Default)]
pub(crate) struct HostServices {
    offers: RwLock<BTreeMap<String, Offered>>,
    /// The calls in rpc plugins that may call back: their callbacks come on
    /// other threads, and are placed in their chain from here.
    inbound: Mutex<Vec<Arc<Frame>>>,
    audit: Option<Arc<dyn AuditSink>>,
}

impl HostServices {
    /// Services whose calls are audited into `sink` too.
    pub(crate) fn new(sink: Option<Arc<dyn AuditSink>>) -> HostServices {
        HostServices {
            audit: sink,
            ..HostServices::default()
        }
    }

    /// Offers `service` (the host's own code) to the plugins.
    pub(crate) fn add(&self, service: Arc<dyn Service>) -> Result<(), OfferError> {
        self.insert(service.name(), Offered::Host(service))
    }

    /// Offers the loaded plugin `plugin`'s interface to the other plugins.
    pub(crate) fn add_plugin(&self, plugin: &Plugin) -> Result<(), OfferError> {
        let service = plugin.manifest().interface.as_str();
        self.insert(
            service,
            Offered::Plugin(plugin.name_arc(), plugin.downgrade()),
        )
    }

    /// A plugin was loaded: an offer of its name, for its interface,
    /// reaches it. (One of its name for another interface stays without a
    /// plugin: a caller of that service is not sent to another one.)
    pub(crate) fn loaded(&self, plugin: &Plugin) {
        let mut offers = self.offers.write().unwrap_or_else(|e| e.into_inner());
        if let Some(Offered::Plugin(name, loaded)) = offers.get_mut(&plugin.manifest().interface)
            && **name == *plugin.name()
        {
            *loaded = plugin.downgrade();
        }
    }

    /// A plugin was unloaded: the offers of its name reach none.
    pub(crate) fn unloaded(&self, plugin: &str) {
        self.unloaded_where(|name| name == plugin);
    }

    /// Plugins were unloaded: the offers of each of their names reach none.
    pub(crate) fn unloaded_where(&self, unloaded: impl Fn(&str) -> bool) {
        let mut offers = self.offers.write().unwrap_or_else(|e| e.into_inner());
        for offered in offers.values_mut() {
            if let Offered::Plugin(name, loaded) = offered
                && unloaded(name)
            {
                *loaded = WeakPlugin::default();
            }
        }
    }

    fn insert(&self, service: &str, offered: Offered) -> Result<(), OfferError> {
        let mut offers = self.offers.write().unwrap_or_else(|e| e.into_inner());
        if let Some(taken) = offers.get(service) {
            return Err(OfferError::Taken {
                service: service.to_owned(),
                by: match taken {
                    Offered::Host(_) => "the host's own code".into(),
                    Offered::Plugin(plugin, _) => format!("plugin `{plugin}`"),
                },
            });
        }
        offers.insert(service.to_owned(), offered);
        Ok(())
    }

    /// Takes `service` off offer; whether it was offered.
    pub(crate) fn withdraw(&self, service: &str) -> bool {
        let mut offers = self.offers.write().unwrap_or_else(|e| e.into_inner());
        offers.remove(service).is_some()
    }

    pub(crate) fn names(&self) -> Vec<String> {
        let offers = self.offers.read().unwrap_or_else(|e| e.into_inner());
        offers.keys().cloned().collect()
    }

    /// Whether `service` is on offer.
    pub(crate) fn offers(&self, service: &str) -> bool {
        let offers = self.offers.read().unwrap_or_else(|e| e.into_inner());
        offers.contains_key(service)
    }

    /// Serves a call of `caller`'s by gRPC path (`/package.Service/Method`),
    /// if its manifest grants it; audits it either way, before answering.
    pub(crate) fn call(
        &self,
        caller: &Caller,
        method: &str,
        request: &[u8],
    ) -> Result<Vec<u8>, Status> {
        let mut answer = Vec::new();
        self.call_with(caller, method, request, &mut |bytes| {
            answer.extend_from_slice(bytes);
        })?;
        Ok(answer)
    }

    /// As [`HostServices::call`], lending the answer to `response` (an
    /// in-process caller decodes it where the callee left it).
    pub(crate) fn call_with(
        &self,
        caller: &Caller,
        method: &str,
        request: &[u8],
        response: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Status> {
        // The record is made only for someone to take it.
        let audited = self.audit.is_some()
            || tracing::enabled!(target: "outlet::audit", tracing::Level::INFO);
        let arrived = audited.then(|| (SystemTime::now(), Instant::now()));
        let (frame, taken) = self.frame_of(caller);
        // What only a record needs, and how much the callee said.
        let mut noted = audited.then(Noted::default);
        let mut sent = 0;
        let mut counted = |bytes: &[u8]| {
            sent += bytes.len();
            response(bytes);
        };
        let answer = match caller.admit(request) {
            Err(refused) => Err(refused),
            // A service that panics answers Internal, and is audited as such.
            Ok(_admitted) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.serve(caller, &frame, method, request, &mut noted, &mut counted)
            }))
            .unwrap_or_else(|_| {
                Err(Status::internal(format!(
                    "plugin `{}` called {}, and the service panicked",
                    caller.name,
                    shortened(method)
                )))
            }),
        };
        let (Some((time, started)), Some(noted)) = (arrived, noted) else {
            put_back(frame, taken);
            return answer;
        };
        let record = AuditRecord {
            time,
            caller: caller.name.to_string(),
            callee: noted.callee.as_deref().unwrap_or("host").to_owned(),
            method: shortened(method).into_owned(),
            code: answer.as_ref().map_or_else(Status::code, |_| Code::Ok),
            duration: started.elapsed(),
            request_bytes: request.len(),
            response_bytes: if answer.is_ok() { sent } else { 0 },
            chain: (noted.frame.as_ref().unwrap_or(&frame).chain())
                .into_iter()
                .map(str::to_owned)
                .collect(),
        };
        put_back(frame, taken);
        crate::audit::emit(self.audit.as_deref(), &record);
        answer
    }

    /// The call `caller` makes this one within: the current one on this
    /// thread (in-process plugins call back on the thread that called
    /// them), else a call in it that the host knows of (an rpc plugin's
    /// broker calls on threads of its own; of several, the one of the
    /// shortest chain), else none, and `caller` starts a chain.
    ///
    /// The current one is taken out of this thread's slot, to be put back
    /// by the caller (`true`), which saves its count two atomic operations.
    fn frame_of(&self, caller: &Caller) -> (Arc<Frame>, bool) {
        if let Some(frame) = chain::take_serving(&caller.name) {
            return (frame, true);
        }
        if caller.remote {
            let inbound = self.inbound.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(frame) = inbound
                .iter()
                .filter(|f| f.serving() == &*caller.name)
                .min_by_key(|f| f.depth)
            {
                return (frame.clone(), false);
            }
        }
        (Arc::new(Frame::root(caller.name.clone(), None)), false)
    }

    fn serve(
        &self,
        caller: &Caller,
        frame: &Arc<Frame>,
        method: &str,
        request: &[u8],
        noted: &mut Option<Noted>,
        response: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Status> {
        let plugin = &*caller.name;
        let malformed = || {
            Status::invalid_argument(format!(
                "plugin `{plugin}` called {:?}, which is not a method's path \
                 (`/package.Service/Method`, at most {MAX_METHOD} bytes)",
                shortened(method)
            ))
        };
        let Some((service, name)) = method
            .strip_prefix('/')
            .and_then(|path| path.split_once('/'))
            .filter(|(_, name)| method.len() <= MAX_METHOD && *name != "*")
        else {
            return Err(malformed());
        };
        // A grant's names were checked at load: a path that a grant names
        // word for word is well formed.
        let granted = caller.grant(service, name);
        if granted != Some(Grant::Method) && !outlet_manifest::call_grant_parts(service, name) {
            return Err(malformed());
        }
        let found = {
            let offers = self.offers.read().unwrap_or_else(|e| e.into_inner());
            match offers.get(service) {
                None => None,
                Some(Offered::Host(service)) => Some(Route::Host(service.clone())),
                Some(Offered::Plugin(name, loaded)) => Some(match loaded.upgrade() {
                    Some(plugin) => Route::Plugin(plugin),
                    None => Route::Unloaded(name.clone()),
                }),
            }
        };
        if let Some(noted) = noted.as_mut() {
            noted.callee = match &found {
                Some(Route::Plugin(plugin)) => Some(plugin.name_arc()),
                Some(Route::Unloaded(name)) => Some(name.clone()),
                _ => None,
            };
        }
        if granted.is_none() {
            return Err(Status::permission_denied(format!(
                "plugin `{plugin}` may not call {method}: its manifest does not grant it; add \
                 \"{service}/{name}\" (or \"{service}/*\") to `call` under [permissions] in \
                 its manifest"
            )));
        }
        match found {
            None => Err(Status::unimplemented(format!(
                "plugin `{plugin}` called {method}, and this host offers no service `{service}` \
                 (it offers: {})",
                self.names().join(", ")
            ))),
            Some(Route::Host(found)) => {
                tracing::debug!(target: "outlet::host", plugin, method, "a plugin calls the host");
                let mut answer = Vec::new();
                // Host code run within the caller's call, its time and cancel.
                cancelled_with(frame, || {
                    within(frame.clone(), || {
                        until(frame.deadline, || found.call(method, request, &mut answer))
                    })
                })?;
                response(&answer);
                Ok(())
            }
            Some(Route::Plugin(target)) => {
                self.forward(frame, target, method, request, noted, response)
            }
            Some(Route::Unloaded(offered)) => Err(Status::unavailable(format!(
                "plugin `{plugin}` called {method}, which the host offers from plugin \
                 `{offered}`, and no plugin `{offered}` serving `{service}` is loaded now (it \
                 was unloaded); the call may succeed once one is loaded again"
            ))),
        }
    }

    /// A call to the plugin `target`, made within `frame`.
    fn forward(
        &self,
        frame: &Arc<Frame>,
        target: Plugin,
        method: &str,
        request: &[u8],
        noted: &mut Option<Noted>,
        response: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Status> {
        let (caller, offered) = (frame.serving(), target.name());
        let allows = |f: &Frame| !f.holds(offered) && f.depth < MAX_CHAIN;
        // An rpc plugin serving several calls may have made this one in any
        // of them: it is refused only if every one of them would refuse it.
        let other;
        let frame = if allows(frame) {
            frame
        } else if let Some(found) = self.inbound_of(caller).into_iter().find(|f| allows(f)) {
            if let Some(noted) = noted.as_mut() {
                noted.frame = Some(found.clone());
            }
            other = found;
            &other
        } else if frame.holds(offered) {
            return Err(Status::failed_precondition(format!(
                "plugin `{caller}` called {method} of plugin `{offered}`, which is already in \
                 this chain of calls ({} → {offered}): a call may not come back to a plugin \
                 that is waiting for it; call it from host code instead, or break the cycle",
                frame.path()
            )));
        } else {
            return Err(Status::failed_precondition(format!(
                "plugin `{caller}` called {method} of plugin `{offered}`, one call too deep: \
                 a chain of calls through the host goes through at most {MAX_CHAIN} plugins \
                 ({} → {offered})",
                frame.path()
            )));
        };
        let call = || {
            if target.calls_out() {
                // It may call on: its calls are made within this one.
                // Its own calls get no more time than it has.
                let own = Instant::now() + target.manifest().limits.timeout();
                let deadline = frame.deadline.map_or(own, |d| d.min(own));
                let inner = Frame::inner(frame, target.name_arc(), Some(deadline));
                within(Arc::new(inner), || {
                    target.call_with(method, request, response)
                })
            } else {
                until(frame.deadline, || {
                    target.call_with(method, request, response)
                })
            }
        };
        let answer = cancelled_with(frame, call);
        // An answer after the deadline comes too late: from a plugin that
        // cannot be stopped (native, cabi), or one called when the time was
        // up already (the others then get none to run in).
        if frame.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Status::deadline_exceeded(format!(
                "plugin `{caller}` called {method} of plugin `{offered}`, and the call it was \
                 made in ran out of time ({} → {offered}); a call through the host gets at \
                 most the time left to the call it is made in",
                frame.path()
            )));
        }
        answer
    }

    /// The calls `plugin` (an rpc plugin) is serving, as far as the host
    /// knows.
    fn inbound_of(&self, plugin: &str) -> Vec<Arc<Frame>> {
        let inbound = self.inbound.lock().unwrap_or_else(|e| e.into_inner());
        inbound
            .iter()
            .filter(|f| f.serving() == plugin)
            .cloned()
            .collect()
    }

    /// Where this rpc plugin's calls are, while it serves `frame`'s call.
    pub(crate) fn enter_remote(self: &Arc<Self>, frame: Arc<Frame>) -> Inbound {
        let mut inbound = self.inbound.lock().unwrap_or_else(|e| e.into_inner());
        inbound.push(frame.clone());
        Inbound {
            services: self.clone(),
            frame,
        }
    }
}

/// What a call's record says besides its request and answer, noted only
/// when a record is made.
#[derive(Default)]
struct Noted {
    /// The plugin that answers (or would have); none for host code.
    callee: Option<Arc<str>>,
    /// The call it was placed in, if not the one first found (an rpc
    /// plugin's, serving several).
    frame: Option<Arc<Frame>>,
}

/// Where a call to an offered service goes, found under the lock.
enum Route {
    Host(Arc<dyn Service>),
    Plugin(Plugin),
    /// A plugin's service, while no plugin of its name is loaded.
    Unloaded(Arc<str>),
}

/// A call into an rpc plugin that may call back, known to the bus until
/// it is dropped.
pub(crate) struct Inbound {
    services: Arc<HostServices>,
    frame: Arc<Frame>,
}

impl Drop for Inbound {
    fn drop(&mut self) {
        let mut inbound = self
            .services
            .inbound
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(at) = inbound.iter().position(|f| Arc::ptr_eq(f, &self.frame)) {
            inbound.swap_remove(at);
        }
    }
}

/// The longest method path a plugin may call with.
const MAX_METHOD: usize = 1024;

/// `method` as records and messages quote it: its first [`MAX_METHOD`]
/// bytes (a plugin chooses it, and its length).
fn shortened(method: &str) -> std::borrow::Cow<'_, str> {
    if method.len() <= MAX_METHOD {
        return method.into();
    }
    let mut end = MAX_METHOD;
    while !method.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &method[..end], method.len()).into()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::caller::MAX_IN_FLIGHT;
    use super::*;

    #[test]
    fn only_granted_calls_pass_and_a_refusal_says_what_to_add() {
        let caller = Caller {
            name: "p".into(),
            grants: vec!["proto.KV/Get".into(), "demo.Clock/*".into()],
            remote: false,
            max_message: 4 << 20,
            in_flight: Arc::default(),
        };
        assert_eq!(caller.grant("proto.KV", "Get"), Some(Grant::Method));
        assert_eq!(caller.grant("proto.KV", "Put"), None);
        assert_eq!(caller.grant("demo.Clock", "Now"), Some(Grant::Service));
        assert_eq!(caller.grant("demo.Clocks", "Now"), None);
        let services = HostServices::default();
        let refused = services.call(&caller, "/proto.KV/Put", b"").unwrap_err();
        assert_eq!(refused.code(), outlet_protocol::Code::PermissionDenied);
        assert!(
            refused
                .message()
                .contains("plugin `p` may not call /proto.KV/Put")
                && refused
                    .message()
                    .contains("add \"proto.KV/Put\" (or \"proto.KV/*\") to `call`"),
            "{refused}"
        );
        for bad in ["proto.KV/Get", "/proto.KV", "//Get", "/proto.KV/Get/x"] {
            let error = services.call(&caller, bad, b"").unwrap_err();
            assert_eq!(
                error.code(),
                outlet_protocol::Code::InvalidArgument,
                "{bad}"
            );
        }
        // Granted, and not offered: the host says what it offers.
        let missing = services.call(&caller, "/proto.KV/Get", b"").unwrap_err();
        assert_eq!(missing.code(), outlet_protocol::Code::Unimplemented);
    }

    /// A sink that keeps what it is given.
    #[derive(Default)]
    struct Kept(std::sync::Mutex<Vec<AuditRecord>>);

    impl AuditSink for Kept {
        fn record(&self, record: &AuditRecord) {
            self.0.lock().unwrap().push(record.clone());
        }
    }

    struct Panicking;

    impl Service for Panicking {
        fn name(&self) -> &'static str {
            "demo.Panicking"
        }
        fn call(&self, _: &str, _: &[u8], _: &mut Vec<u8>) -> Result<(), Status> {
            panic!("a service that panics on purpose")
        }
    }

    #[test]
    fn every_call_is_audited_refused_malformed_or_panicking() {
        let kept = Arc::new(Kept::default());
        let services = HostServices::new(Some(kept.clone()));
        services.add(Arc::new(Panicking)).unwrap();
        let caller = Caller {
            name: "p".into(),
            grants: vec!["demo.Panicking/*".into()],
            remote: false,
            max_message: 4 << 20,
            in_flight: Arc::default(),
        };
        let long = format!("/demo.Panicking/{}", "x".repeat(4096));
        let calls = [
            ("/proto.KV/Put", Code::PermissionDenied),
            ("/a b/c", Code::InvalidArgument),
            ("/proto.KV/Get\n INFO forged", Code::InvalidArgument),
            (long.as_str(), Code::InvalidArgument),
            ("/demo.Panicking/Now", Code::Internal),
        ];
        for (method, code) in calls {
            assert_eq!(
                services.call(&caller, method, b"abc").unwrap_err().code(),
                code
            );
        }
        // Too large for the caller's limit, and one too many in flight
        // for an rpc plugin: refused before anything is called.
        let small = Caller {
            max_message: 2,
            ..caller.clone()
        };
        let refused = services
            .call(&small, "/demo.Panicking/Now", b"abc")
            .unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted);
        assert!(
            refused
                .message()
                .contains("plugin `p` sent a request of 3 bytes"),
            "{refused}"
        );
        let busy = Caller {
            remote: true,
            ..caller.clone()
        };
        busy.in_flight.store(MAX_IN_FLIGHT, Ordering::Relaxed);
        let refused = services
            .call(&busy, "/demo.Panicking/Now", b"abc")
            .unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted);
        assert!(
            refused
                .message()
                .contains("64 calls through the host in flight"),
            "{refused}"
        );
        assert_eq!(busy.in_flight.load(Ordering::Relaxed), MAX_IN_FLIGHT);
        let records = kept.0.lock().unwrap();
        assert_eq!(records.len(), calls.len() + 2);
        assert!(
            records[calls.len()..]
                .iter()
                .all(|r| r.code == Code::ResourceExhausted)
        );
        for (record, (method, code)) in records.iter().zip(calls) {
            assert_eq!(
                (record.code, record.caller.as_str()),
                (code, "p"),
                "{method}"
            );
            assert_eq!(record.request_bytes, 3);
            assert!(record.method.len() < 1100, "{}", record.method.len());
        }
        assert!(
            records[3].method.ends_with("(4112 bytes)"),
            "{}",
            records[3].method
        );
    }
}
