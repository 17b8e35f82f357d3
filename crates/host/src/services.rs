//! Services the host offers to its plugins: what a plugin reaches when it
//! calls back into the host (the cabi host table's `call`, wasm's `call`
//! import, an rpc plugin's broker), and only where its manifest grants it
//! (`permissions.call`).

use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

use outlet_protocol::{Code, Service, Status};

use crate::audit::{AuditRecord, AuditSink};

/// The host's services, shared by the host and every plugin it loads, and
/// where the record of each call to them goes.
#[derive(Default)]
pub(crate) struct HostServices {
    services: RwLock<Vec<Arc<dyn Service>>>,
    audit: Option<Arc<dyn AuditSink>>,
}

impl HostServices {
    /// Services whose calls are audited into `sink` too.
    pub(crate) fn audited(sink: Option<Arc<dyn AuditSink>>) -> HostServices {
        HostServices {
            services: RwLock::default(),
            audit: sink,
        }
    }

    pub(crate) fn add(&self, service: Arc<dyn Service>) {
        let mut services = self.services.write().unwrap_or_else(|e| e.into_inner());
        services.retain(|s| s.name() != service.name());
        services.push(service);
    }

    pub(crate) fn names(&self) -> Vec<&'static str> {
        let services = self.services.read().unwrap_or_else(|e| e.into_inner());
        services.iter().map(|s| s.name()).collect()
    }

    /// Serves a call of `caller`'s by gRPC path (`/package.Service/Method`),
    /// if its manifest grants it; audits it either way, before answering.
    pub(crate) fn call(
        &self,
        caller: &Caller,
        method: &str,
        request: &[u8],
    ) -> Result<Vec<u8>, Status> {
        let (time, started) = (SystemTime::now(), Instant::now());
        // A service that panics answers Internal, and is audited as such.
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.serve(caller, method, request)
        }))
        .unwrap_or_else(|_| {
            Err(Status::internal(format!(
                "plugin `{}` called {}, and the host's service panicked",
                caller.name,
                shortened(method)
            )))
        });
        // The record is made only for someone to take it.
        let audited = self.audit.is_some()
            || tracing::enabled!(target: "outlet::audit", tracing::Level::INFO);
        if !audited {
            return answer;
        }
        let record = AuditRecord {
            time,
            caller: caller.name.clone(),
            callee: "host".into(),
            method: shortened(method).into_owned(),
            code: answer.as_ref().map_or_else(Status::code, |_| Code::Ok),
            duration: started.elapsed(),
            request_bytes: request.len(),
            response_bytes: answer.as_ref().map_or(0, Vec::len),
            chain: vec![caller.name.clone()],
        };
        crate::audit::emit(self.audit.as_deref(), &record);
        answer
    }

    fn serve(&self, caller: &Caller, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        let plugin = caller.name.as_str();
        let Some((service, name)) = method
            .strip_prefix('/')
            .and_then(|path| path.split_once('/'))
            .filter(|(service, name)| {
                method.len() <= MAX_METHOD
                    && *name != "*"
                    && outlet_manifest::call_grant_parts(service, name)
            })
        else {
            return Err(Status::invalid_argument(format!(
                "plugin `{plugin}` called {:?}, which is not a method's path \
                 (`/package.Service/Method`, at most {MAX_METHOD} bytes)",
                shortened(method)
            )));
        };
        if !caller.may_call(service, name) {
            return Err(Status::permission_denied(format!(
                "plugin `{plugin}` may not call {method}: its manifest does not grant it; add \
                 `call = [\"{service}/{name}\"]` (or \"{service}/*\") under [permissions] in \
                 its manifest"
            )));
        }
        let found = {
            let services = self.services.read().unwrap_or_else(|e| e.into_inner());
            services.iter().find(|s| s.name() == service).cloned()
        };
        let Some(found) = found else {
            return Err(Status::unimplemented(format!(
                "plugin `{plugin}` called {method}, and this host offers no service `{service}` \
                 (it offers: {})",
                self.names().join(", ")
            )));
        };
        tracing::debug!(target: "outlet::host", plugin, method, "a plugin calls the host");
        let mut response = Vec::new();
        found.call(method, request, &mut response)?;
        Ok(response)
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

/// Who calls the host: a loaded plugin, as the host knows it (the instance
/// or connection the call came on), and the calls its manifest grants.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) name: String,
    /// `package.Service/Method` or `package.Service/*`.
    grants: Vec<String>,
}

impl Caller {
    pub(crate) fn of(manifest: &outlet_manifest::Manifest) -> Caller {
        Caller {
            name: manifest.name.clone(),
            grants: manifest.permissions.call.clone(),
        }
    }

    /// Whether a grant names `service`'s `method`, or the whole service.
    fn may_call(&self, service: &str, method: &str) -> bool {
        self.grants.iter().any(|grant| {
            grant.split_once('/').is_some_and(|(granted, which)| {
                granted == service && (which == "*" || which == method)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_granted_calls_pass_and_a_refusal_says_what_to_add() {
        let caller = Caller {
            name: "p".into(),
            grants: vec!["proto.KV/Get".into(), "demo.Clock/*".into()],
        };
        assert!(caller.may_call("proto.KV", "Get"));
        assert!(!caller.may_call("proto.KV", "Put"));
        assert!(caller.may_call("demo.Clock", "Now"));
        assert!(!caller.may_call("demo.Clocks", "Now"));
        let services = HostServices::default();
        let refused = services.call(&caller, "/proto.KV/Put", b"").unwrap_err();
        assert_eq!(refused.code(), outlet_protocol::Code::PermissionDenied);
        assert!(
            refused
                .message()
                .contains("plugin `p` may not call /proto.KV/Put")
                && refused.message().contains("call = [\"proto.KV/Put\"]"),
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
        let services = HostServices::audited(Some(kept.clone()));
        services.add(Arc::new(Panicking));
        let caller = Caller {
            name: "p".into(),
            grants: vec!["demo.Panicking/*".into()],
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
        let records = kept.0.lock().unwrap();
        assert_eq!(records.len(), calls.len());
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
