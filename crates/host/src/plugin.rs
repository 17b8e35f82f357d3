//! [`Plugin`]: a loaded plugin, whatever its mechanism.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use outlet_manifest::Manifest;
use outlet_protocol::core::{
    self, ConfigureRequest, ConfigureResponse, HealthRequest, HealthResponse, HelloResponse,
    ShutdownRequest, ShutdownResponse,
};
use outlet_protocol::{Client, Negotiated, Status, Transport, capability, unary};

use crate::LoadError;
use crate::mechanism::{Backend, Session};

/// A loaded plugin. Cheap to clone (one `Arc`); `Send + Sync`, so one handle
/// serves calls from many threads at once.
///
/// It is a [`Transport`]: a generated client runs over it, and
/// [`Plugin::client`] builds one after checking the interface.
#[derive(Clone)]
pub struct Plugin(Arc<Inner>);

struct Inner {
    manifest: Manifest,
    hello: HelloResponse,
    negotiated: Negotiated,
    backend: Box<dyn Backend>,
    config: Mutex<BTreeMap<String, String>>,
    stopped: AtomicBool,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name())
            .field("mechanism", &self.0.manifest.mechanism)
            .field("negotiated", &self.0.negotiated)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    pub(crate) fn new(
        manifest: Manifest,
        hello: HelloResponse,
        negotiated: Negotiated,
        backend: Box<dyn Backend>,
    ) -> Plugin {
        let config = manifest.config.clone();
        backend.set_session(Session {
            negotiated: negotiated.clone(),
            config: config.clone(),
        });
        Plugin(Arc::new(Inner {
            manifest,
            hello,
            negotiated,
            backend,
            config: Mutex::new(config),
            stopped: AtomicBool::new(false),
        }))
    }

    /// The plugin's name, from its manifest.
    pub fn name(&self) -> &str {
        &self.0.manifest.name
    }

    /// The manifest it was loaded from.
    pub fn manifest(&self) -> &Manifest {
        &self.0.manifest
    }

    /// What the plugin said in Hello.
    pub fn hello(&self) -> &HelloResponse {
        &self.0.hello
    }

    /// The versions and capabilities host and plugin agreed on.
    pub fn negotiated(&self) -> &Negotiated {
        &self.0.negotiated
    }

    /// The config the plugin was last given.
    pub fn config(&self) -> BTreeMap<String, String> {
        self.0
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A typed client over this plugin, generated from its interface.
    ///
    /// # Errors
    /// [`LoadError::WrongClient`] when the manifest's `interface` is not the
    /// client's service.
    pub fn client<C: Client<Transport = Plugin>>(&self) -> Result<C, LoadError> {
        if self.0.manifest.interface != C::SERVICE {
            return Err(LoadError::WrongClient {
                plugin: self.name().to_owned(),
                expected: C::SERVICE,
                found: self.0.manifest.interface.clone(),
            });
        }
        Ok(C::from_transport(self.clone()))
    }

    /// Replaces the plugin's config without restarting it. The plugin checks
    /// the config first; a refused config changes nothing.
    ///
    /// # Errors
    /// `FailedPrecondition` if the plugin did not announce the `configure`
    /// capability; the plugin's own error if it refuses the config.
    pub fn configure(&self, config: BTreeMap<String, String>) -> Result<(), Status> {
        if !self.0.negotiated.supports(capability::CONFIGURE) {
            return Err(Status::failed_precondition(format!(
                "plugin `{}` does not accept Configure (its Hello lacks the `configure` \
                 capability); restart it with the new config instead",
                self.name()
            )));
        }
        let mut current = self.0.config.lock().unwrap_or_else(|e| e.into_inner());
        let _: ConfigureResponse = unary(
            self,
            core::CONFIGURE,
            &ConfigureRequest {
                config: config.clone().into_iter().collect(),
            },
        )?;
        self.0.backend.set_session(Session {
            negotiated: self.0.negotiated.clone(),
            config: config.clone(),
        });
        *current = config;
        Ok(())
    }

    /// Asks the plugin whether it can serve.
    ///
    /// # Errors
    /// `Unavailable` when the plugin cannot be reached.
    pub fn health(&self) -> Result<HealthResponse, Status> {
        unary(self, core::HEALTH, &HealthRequest {})
    }

    /// Asks the plugin to finish, then releases it. Later calls fail with
    /// `Unavailable`. Calling it twice is harmless.
    ///
    /// # Errors
    /// The plugin's answer to Shutdown; the plugin is released all the same.
    pub fn shutdown(&self) -> Result<(), Status> {
        if self.0.stopped.load(Ordering::Acquire) {
            return Ok(());
        }
        let answer: Result<ShutdownResponse, Status> =
            unary(self, core::SHUTDOWN, &ShutdownRequest {});
        self.0.stopped.store(true, Ordering::Release);
        self.0.backend.stop();
        answer.map(drop)
    }
}

impl Plugin {
    fn check_running(&self) -> Result<(), Status> {
        if self.0.stopped.load(Ordering::Acquire) {
            return Err(Status::unavailable(format!(
                "plugin `{}` was shut down; load it again to call it",
                self.name()
            )));
        }
        Ok(())
    }
}

impl Transport for Plugin {
    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        self.check_running()?;
        self.0.backend.call(method, request)
    }

    fn call_with(
        &self,
        method: &str,
        request: &[u8],
        response: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Status> {
        self.check_running()?;
        self.0.backend.call_with(method, request, response)
    }

    fn with_native(&self, service: &str, f: &mut dyn FnMut(&(dyn std::any::Any + Send + Sync))) {
        if !self.0.stopped.load(Ordering::Acquire) {
            self.0.backend.with_native(service, f);
        }
    }
}
