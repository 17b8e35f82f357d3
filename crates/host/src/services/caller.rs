//! Who calls through the host: a [`Caller`] is a loaded plugin as the host
//! knows it, with the calls its manifest grants and the limits on how much
//! it may ask at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use outlet_protocol::Status;

/// Who calls the host: a loaded plugin, as the host knows it (the instance
/// or connection the call came on), and the calls its manifest grants.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) name: Arc<str>,
    /// `package.Service/Method` or `package.Service/*`.
    pub(super) grants: Vec<String>,
    /// Whether it calls on threads of its own (rpc), not on the thread
    /// that called it.
    pub(super) remote: bool,
    /// Its `limits.max_message_bytes`: the largest request it may send.
    pub(super) max_message: usize,
    /// Its calls in flight, for a caller on threads of its own.
    pub(super) in_flight: Arc<AtomicUsize>,
}

/// The most calls through the host one rpc plugin may have in flight at
/// once (each holds a thread of the host's while it is served).
pub(super) const MAX_IN_FLIGHT: usize = 64;

/// One of a remote caller's calls in flight, until dropped.
pub(super) struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Caller {
    pub(crate) fn of(manifest: &outlet_manifest::Manifest) -> Caller {
        Caller {
            name: manifest.name.as_str().into(),
            grants: manifest.permissions.call.clone(),
            remote: manifest.mechanism == outlet_manifest::Mechanism::Rpc,
            max_message: manifest.limits.max_message_bytes,
            in_flight: Arc::default(),
        }
    }

    /// Whether its manifest grants it any call through the host.
    #[cfg_attr(not(feature = "rpc"), allow(dead_code))]
    pub(crate) fn grants_any(&self) -> bool {
        !self.grants.is_empty()
    }

    /// Lets a call in: not too large, and for an rpc plugin, not one too
    /// many in flight.
    pub(super) fn admit(&self, request: &[u8]) -> Result<Option<InFlight>, Status> {
        if request.len() > self.max_message {
            return Err(Status::resource_exhausted(format!(
                "plugin `{}` sent a request of {} bytes through the host, over its limit of {} \
                 (limits.max_message_bytes in its manifest)",
                self.name,
                request.len(),
                self.max_message
            )));
        }
        if !self.remote {
            return Ok(None);
        }
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_IN_FLIGHT {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(Status::resource_exhausted(format!(
                "plugin `{}` has {MAX_IN_FLIGHT} calls through the host in flight already, the \
                 most one plugin may; wait for their answers before calling again",
                self.name
            )));
        }
        Ok(Some(InFlight(self.in_flight.clone())))
    }

    /// The grant of `service`'s `method`, by name or of the whole service.
    pub(super) fn grant(&self, service: &str, method: &str) -> Option<Grant> {
        self.grants.iter().find_map(|grant| {
            let (granted, which) = grant.split_once('/')?;
            match (granted == service, which) {
                (true, "*") => Some(Grant::Service),
                (true, which) if which == method => Some(Grant::Method),
                _ => None,
            }
        })
    }
}

/// How a call was granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Grant {
    /// By its method's name.
    Method,
    /// With every method of its service.
    Service,
}
