//! [`Host`]: loads plugins and keeps track of them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use outlet_manifest::Manifest;
use outlet_protocol::core::{self, HelloRequest, HelloResponse};
use outlet_protocol::{CORE_VERSIONS, Negotiated, capability, negotiate, unary};

use crate::mechanism::{self, Backend};
use crate::services::HostServices;
use crate::{LoadError, Plugin};

/// Says Hello to a started plugin, negotiates, and checks that it serves
/// the manifest's interface.
pub(crate) fn handshake(
    manifest: &Manifest,
    backend: &dyn Backend,
) -> Result<(HelloResponse, Negotiated), LoadError> {
    let plugin = &manifest.name;
    let offer = HelloRequest {
        core_versions: CORE_VERSIONS.to_vec(),
        app_versions: manifest.versions.clone(),
        capabilities: vec![capability::CONFIGURE.into(), capability::RPC_FRAMES.into()],
    };
    let hello: HelloResponse =
        unary(backend, core::HELLO, &offer).map_err(|status| LoadError::Hello {
            plugin: plugin.clone(),
            status,
        })?;
    let negotiated = negotiate(&offer, &hello).map_err(|error| LoadError::Negotiation {
        plugin: plugin.clone(),
        error,
    })?;
    if !hello.services.contains(&manifest.interface) {
        return Err(LoadError::Interface {
            plugin: plugin.clone(),
            expected: manifest.interface.clone(),
            found: hello.services,
        });
    }
    Ok((hello, negotiated))
}

/// The host side of Outlet: loads plugins from manifests under the trust
/// policy and hands out [`Plugin`] handles. Long-lived, `Send + Sync`, and
/// cheap to clone (one `Arc`).
///
/// Loading costs what the mechanism's start costs plus one Hello round trip
/// (for exec: one process, about a millisecond).
#[derive(Clone, Default)]
pub struct Host(Arc<Inner>);

#[derive(Default)]
struct Inner {
    plugins: RwLock<BTreeMap<String, Plugin>>,
    services: Arc<HostServices>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("plugins", &self.names())
            .finish()
    }
}

impl Host {
    /// A host with no plugins.
    pub fn new() -> Host {
        Host::default()
    }

    /// Reads a manifest and loads its plugin: policy and artifact checks,
    /// the mechanism's start, Hello and negotiation, then Configure with the
    /// manifest's `[config]`.
    ///
    /// # Errors
    /// [`LoadError`], naming the plugin, the cause and the fix.
    pub fn load(&self, manifest: impl AsRef<Path>) -> Result<Plugin, LoadError> {
        self.load_manifest(Manifest::load(manifest)?)
    }

    /// Loads the plugin of an already parsed manifest, as [`Host::load`].
    ///
    /// # Errors
    /// As [`Host::load`].
    pub fn load_manifest(&self, manifest: Manifest) -> Result<Plugin, LoadError> {
        if self.plugin(&manifest.name).is_some() {
            return Err(LoadError::Duplicate {
                plugin: manifest.name.clone(),
            });
        }
        manifest.verify_artifact()?;
        let backend = mechanism::start(&manifest, false, &self.0.services)?;
        let (hello, negotiated) = handshake(&manifest, &*backend)?;
        let plugin = manifest.name.clone();
        let config = manifest.config.clone();
        let loaded = Plugin::new(
            manifest,
            hello,
            negotiated,
            backend,
            self.0.services.clone(),
        );
        if !config.is_empty() {
            loaded
                .configure(config)
                .map_err(|status| LoadError::Config {
                    plugin: plugin.clone(),
                    status,
                })?;
        }
        let mut plugins = self.0.plugins.write().unwrap_or_else(|e| e.into_inner());
        if plugins.contains_key(&plugin) {
            return Err(LoadError::Duplicate { plugin });
        }
        plugins.insert(plugin, loaded.clone());
        Ok(loaded)
    }

    /// Offers a service to the plugins: they reach it by calling back into
    /// the host (a cabi plugin through its host table), by the service's
    /// gRPC paths. A service of the same name is replaced.
    ///
    /// ```
    /// use outlet_host::Host;
    /// use outlet_protocol::{Service, Status};
    ///
    /// struct Clock;
    /// impl Service for Clock {
    ///     fn name(&self) -> &'static str { "demo.Clock" }
    ///     fn call(&self, _: &str, _: &[u8], out: &mut Vec<u8>) -> Result<(), Status> {
    ///         Ok(out.extend_from_slice(b"noon"))
    ///     }
    /// }
    /// let host = Host::new();
    /// host.serve(Clock);
    /// assert_eq!(host.services(), ["demo.Clock"]);
    /// ```
    pub fn serve(&self, service: impl outlet_protocol::Service) {
        self.0.services.add(std::sync::Arc::new(service));
    }

    /// The names of the services the host offers its plugins.
    pub fn services(&self) -> Vec<&'static str> {
        self.0.services.names()
    }

    /// The loaded plugin of that name.
    pub fn plugin(&self, name: &str) -> Option<Plugin> {
        let plugins = self.0.plugins.read().unwrap_or_else(|e| e.into_inner());
        plugins.get(name).cloned()
    }

    /// The names of the loaded plugins, sorted.
    pub fn names(&self) -> Vec<String> {
        let plugins = self.0.plugins.read().unwrap_or_else(|e| e.into_inner());
        plugins.keys().cloned().collect()
    }

    /// Shuts a plugin down and forgets it; its name can be loaded again.
    /// Returns the plugin's answer to Shutdown, or `None` if no plugin had
    /// that name.
    pub fn unload(&self, name: &str) -> Option<Result<(), outlet_protocol::Status>> {
        let plugin = {
            let mut plugins = self.0.plugins.write().unwrap_or_else(|e| e.into_inner());
            plugins.remove(name)?
        };
        Some(plugin.shutdown())
    }
}
