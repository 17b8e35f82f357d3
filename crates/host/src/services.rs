//! Services the host offers to its plugins: what a plugin reaches when it
//! calls back into the host (the cabi host table's `call`).

use std::sync::{Arc, RwLock};

use outlet_protocol::{Service, Status};

/// The host's services, shared by the host and every plugin it loads.
#[derive(Default)]
pub(crate) struct HostServices {
    services: RwLock<Vec<Arc<dyn Service>>>,
}

impl HostServices {
    pub(crate) fn add(&self, service: Arc<dyn Service>) {
        let mut services = self.services.write().unwrap_or_else(|e| e.into_inner());
        services.retain(|s| s.name() != service.name());
        services.push(service);
    }

    pub(crate) fn names(&self) -> Vec<&'static str> {
        let services = self.services.read().unwrap_or_else(|e| e.into_inner());
        services.iter().map(|s| s.name()).collect()
    }

    /// Serves a plugin's call by gRPC path.
    pub(crate) fn call(
        &self,
        plugin: &str,
        method: &str,
        request: &[u8],
    ) -> Result<Vec<u8>, Status> {
        let service = method
            .strip_prefix('/')
            .and_then(|path| path.split_once('/'))
            .map_or("", |(service, _)| service);
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
