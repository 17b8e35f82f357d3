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
        let answer = self.serve(caller, method, request);
        let record = AuditRecord {
            time,
            caller: caller.name.clone(),
            callee: "host".into(),
            method: method.to_owned(),
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
                !service.is_empty() && !name.is_empty() && !name.contains('/')
            })
        else {
            return Err(Status::invalid_argument(format!(
                "plugin `{plugin}` called {method:?}, which is not a method's path \
                 (`/package.Service/Method`)"
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
}
