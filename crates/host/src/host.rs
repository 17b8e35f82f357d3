//! [`Host`]: loads plugins and keeps track of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use outlet_manifest::Manifest;
use outlet_manifest::policy::Policy;

use crate::error::{LoadError, OfferError};
use crate::events::{EventKind, Events};
use crate::handshake::handshake;
use crate::mechanism::{self, Context};
use crate::plugin::Plugin;
use crate::services::HostServices;
use crate::stats::Meter;

/// What [`Host::load_dir`] made of a folder's manifests.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Loaded {
    /// The plugins loaded, in the order of their manifests' names.
    pub plugins: Vec<Plugin>,
    /// Each manifest that did not load, with why.
    pub failed: Vec<(PathBuf, LoadError)>,
}

/// The host side of Outlet: loads plugins from manifests under the trust
/// policy and hands out [`Plugin`] handles. Long-lived, `Send + Sync`, and
/// cheap to clone (one `Arc`).
///
/// Loading costs what the mechanism's start costs plus one Hello round trip
/// (for exec: one process, about a millisecond).
#[derive(Clone)]
pub struct Host(Arc<Inner>);

struct Inner {
    plugins: RwLock<BTreeMap<String, Plugin>>,
    context: Arc<Context>,
    policy: Policy,
}

impl Default for Host {
    fn default() -> Host {
        Host::builder().build()
    }
}

/// Settings for a [`Host`], from [`Host::builder`].
///
/// ```
/// // A folder of this user's that no one else can write, as the cache's must be.
/// let app = tempfile::tempdir()?;
/// let host = outlet_host::Host::builder()
///     .module_cache(Some(app.path().join("modules")))
///     .build();
/// assert!(host.names().is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use]
pub struct HostBuilder {
    /// What `module_cache` was given, if it was called: the user's cache
    /// otherwise.
    module_cache: Option<Option<PathBuf>>,
    policy: Policy,
    audit: Option<Arc<dyn crate::audit::AuditSink>>,
    metered: bool,
}

impl std::fmt::Debug for HostBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostBuilder")
            .field("module_cache", &self.module_cache)
            .field("policy", &self.policy)
            .field("audit", &self.audit.is_some())
            .field("metered", &self.metered)
            .finish()
    }
}

impl HostBuilder {
    /// Where compiled wasm modules are kept between runs (bounded in size;
    /// the entries used least recently go first), or `None` to compile each
    /// module at every load. The default is the user's cache,
    /// `$XDG_CACHE_HOME/outlet/wasm` if `XDG_CACHE_HOME` is an absolute
    /// path, else `$HOME/.cache/outlet/wasm` if `HOME` is, else none.
    ///
    /// Links in the folder's path are resolved once, when the host is
    /// built; a link put anywhere on that path afterwards is not followed.
    /// The folder is used only while it and its parent are owned by this
    /// user and writable by no one else (missing folders are made, 0700),
    /// and so is each entry before it is read; what fails a check is said
    /// in the log and the module is compiled instead.
    pub fn module_cache(mut self, folder: Option<PathBuf>) -> HostBuilder {
        self.module_cache = Some(folder);
        self
    }

    /// What the host lets manifests claim: the most trust by folder, and
    /// for plugins below `in-process` the ceilings and default limits, the
    /// folders they may be granted and the variables they may inherit. The
    /// default, [`Policy::default`], lets a manifest anywhere claim any
    /// trust; a host that loads manifests others wrote says which folders
    /// it trusts how far:
    ///
    /// ```
    /// use outlet_host::Host;
    /// use outlet_manifest::{Trust, policy::Policy};
    ///
    /// let host = Host::builder()
    ///     .policy(Policy::default().elsewhere(Trust::Sandboxed).inherit_env("LANG"))
    ///     .build();
    /// let refused = host.load("../../examples/greeter/manifests/exec.toml").unwrap_err();
    /// assert!(refused.to_string().contains("at most \"sandboxed\""), "{refused}");
    /// ```
    pub fn policy(mut self, policy: Policy) -> HostBuilder {
        self.policy = policy;
        self
    }

    /// Where the record of every call a plugin makes through the host goes,
    /// besides `tracing` (target `outlet::audit`): for example
    /// [`crate::audit::JsonLines`], a file of one JSON object per call,
    /// written before the call's answer goes back.
    pub fn audit(mut self, sink: impl crate::audit::AuditSink) -> HostBuilder {
        self.audit = Some(Arc::new(sink));
        self
    }

    /// Whether the host counts its plugins' calls (`Plugin::stats`, the
    /// `metrics` facade, see [`crate::stats`]) and runs each in a `tracing`
    /// span: yes by default. A host that wants neither saves a few tens of
    /// nanoseconds on an in-process call. Restarts and reloads, which are
    /// rare, are counted either way.
    pub fn metrics(mut self, on: bool) -> HostBuilder {
        self.metered = on;
        self
    }

    /// The host.
    pub fn build(self) -> Host {
        Host(Arc::new(Inner {
            context: Arc::new(Context {
                services: Arc::new(HostServices::new(self.audit)),
                events: Arc::default(),
                metered: self.metered,
                module_cache: match self.module_cache {
                    Some(folder) => folder.map(|folder| resolve_module_cache(&folder)),
                    None => default_module_cache(),
                },
            }),
            policy: self.policy,
            plugins: RwLock::default(),
        }))
    }
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("plugins", &self.names())
            .finish()
    }
}

impl Host {
    /// A host with no plugins, and the default settings of [`HostBuilder`].
    pub fn new() -> Host {
        Host::default()
    }

    /// Settings for a host other than the default ones.
    pub fn builder() -> HostBuilder {
        HostBuilder {
            module_cache: None,
            policy: Policy::default(),
            audit: None,
            metered: true,
        }
    }

    /// Reads a manifest and loads its plugin: the host's policy (see
    /// [`HostBuilder::policy`]) and artifact checks,
    /// the mechanism's start, Hello and negotiation, then Configure with the
    /// manifest's `[config]`.
    ///
    /// # Errors
    /// [`LoadError`], naming the plugin, the cause and the fix.
    pub fn load(&self, manifest: impl AsRef<Path>) -> Result<Plugin, LoadError> {
        self.load_manifest(Manifest::load(manifest)?)
    }

    /// Loads every manifest in `folder` (its `*.toml` files, see
    /// [`manifests_in`](outlet_manifest::manifests_in)), each as
    /// [`Host::load`] does: a manifest that fails (unreadable, not a
    /// manifest, half written, refused by the policy, naming a plugin that
    /// another manifest of the folder also names, or whose plugin fails to
    /// start) is reported with its own error, and the others load.
    ///
    /// # Errors
    /// [`LoadError::Folder`] only if the folder itself cannot be read.
    ///
    /// # Examples
    /// ```no_run
    /// let host = outlet_host::Host::new();
    /// let loaded = host.load_dir("/opt/app/plugins")?;
    /// for (file, error) in &loaded.failed {
    ///     eprintln!("{}: not loaded: {error}", file.display());
    /// }
    /// println!("{} plugins loaded", loaded.plugins.len());
    /// # Ok::<(), outlet_host::LoadError>(())
    /// ```
    pub fn load_dir(&self, folder: impl AsRef<Path>) -> Result<Loaded, LoadError> {
        let folder = folder.as_ref();
        let files = outlet_manifest::manifests_in(folder).map_err(|error| LoadError::Folder {
            folder: folder.to_owned(),
            error,
        })?;
        let read: Vec<_> = files
            .into_iter()
            .map(|file| {
                let manifest = Manifest::load(&file);
                (file, manifest)
            })
            .collect();
        let names: Vec<(PathBuf, String)> = read
            .iter()
            .filter_map(|(file, m)| Some((file.clone(), m.as_ref().ok()?.name.clone())))
            .collect();
        let mut loaded = Loaded::default();
        for (file, manifest) in read {
            let result = manifest.map_err(LoadError::from).and_then(|manifest| {
                let others: Vec<PathBuf> = (names.iter())
                    .filter(|(other, name)| *other != file && *name == manifest.name)
                    .map(|(other, _)| other.clone())
                    .collect();
                if !others.is_empty() {
                    return Err(LoadError::SameName {
                        plugin: manifest.name,
                        file: file.clone(),
                        others,
                    });
                }
                self.load_manifest(manifest)
            });
            match result {
                Ok(plugin) => loaded.plugins.push(plugin),
                Err(error) => loaded.failed.push((file, error)),
            }
        }
        Ok(loaded)
    }

    /// Loads the plugin of an already parsed manifest, as [`Host::load`]:
    /// the manifest is held to the host's policy as if it had been read
    /// from `manifest.file`.
    ///
    /// # Errors
    /// As [`Host::load`].
    pub fn load_manifest(&self, manifest: Manifest) -> Result<Plugin, LoadError> {
        if self.plugin(&manifest.name).is_some() {
            return Err(LoadError::Duplicate {
                plugin: manifest.name.clone(),
            });
        }
        let manifest = self.0.policy.admit(manifest)?;
        self.check_grants(&manifest)?;
        // Each mechanism checks the artifact (`Manifest::open_artifact`) as it
        // opens it, and starts, loads or runs only the file it checked.
        let meter = Arc::new(Meter::new(&manifest.name, manifest.mechanism));
        let backend = mechanism::start(&manifest, false, &self.0.context, &meter)?;
        let (hello, negotiated) = handshake(&manifest, &*backend)?;
        let plugin = manifest.name.clone();
        let config = manifest.config.clone();
        let loaded = Plugin::new(
            manifest,
            hello,
            negotiated,
            backend,
            self.0.context.clone(),
            meter,
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
        // A service offered from a plugin of its name reaches this one now.
        self.0.context.services.loaded(&loaded);
        // Told under the lock: before an unload of it can be.
        let mechanism = loaded.manifest().mechanism;
        self.0
            .context
            .events
            .emit(loaded.name(), EventKind::Loaded { mechanism });
        drop(plugins);
        if let Some(interval) = loaded.manifest().limits.health_interval() {
            crate::health::watch(&loaded, interval);
        }
        Ok(loaded)
    }

    /// Refuses a grant of a service the host does not offer.
    fn check_grants(&self, manifest: &Manifest) -> Result<(), LoadError> {
        let services = &self.0.context.services;
        for grant in &manifest.permissions.call {
            let service = grant.split_once('/').map_or(grant.as_str(), |(s, _)| s);
            if !services.offers(service) {
                let offered = services.names();
                return Err(LoadError::Grant {
                    plugin: manifest.name.clone(),
                    grant: grant.clone(),
                    service: service.to_owned(),
                    offered: if offered.is_empty() {
                        "none".into()
                    } else {
                        offered.join(", ")
                    },
                });
            }
        }
        Ok(())
    }

    /// Offers a service of the host's own code to the plugins: a plugin
    /// whose manifest grants it (`permissions.call`) reaches it by calling
    /// back into the host, by the service's gRPC paths (see `docs/bus.md`).
    ///
    /// # Errors
    /// [`OfferError::Taken`] when a service of that name is on offer
    /// already.
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
    /// host.offer(Clock)?;
    /// assert_eq!(host.services(), ["demo.Clock"]);
    /// assert!(host.offer(Clock).unwrap_err().to_string().contains("already"));
    /// # Ok::<(), outlet_host::OfferError>(())
    /// ```
    pub fn offer(&self, service: impl outlet_protocol::Service) -> Result<(), OfferError> {
        self.0.context.services.add(Arc::new(service))
    }

    /// Offers a loaded plugin's interface (its manifest's `interface`) to
    /// the other plugins: a plugin whose manifest grants it calls it as it
    /// calls a service of the host's, through the host, whatever the
    /// mechanisms of both. Calls reach the plugin of that name loaded now:
    /// after a reload or restart, the new instance; after an unload, none
    /// (`Unavailable`) until a plugin of that name and interface is loaded
    /// again.
    ///
    /// ```
    /// let host = outlet_host::Host::new();
    /// let greeter = host.load("../../examples/greeter/manifests/exec.toml")?;
    /// host.offer_plugin(&greeter)?;
    /// assert_eq!(host.services(), ["outlet.examples.greeter.v1.Greeter"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`OfferError::Taken`] when a service of that name is on offer
    /// already (a second plugin of the same interface: offer another
    /// version's package instead); [`OfferError::NotLoaded`] for a plugin
    /// this host has not loaded.
    pub fn offer_plugin(&self, plugin: &Plugin) -> Result<(), OfferError> {
        // Held while offering: the plugin cannot be unloaded in between.
        let plugins = self.0.plugins.read().unwrap_or_else(|e| e.into_inner());
        if !plugins.get(plugin.name()).is_some_and(|p| p.same(plugin)) {
            return Err(OfferError::NotLoaded {
                plugin: plugin.name().to_owned(),
            });
        }
        self.0.context.services.add_plugin(plugin)
    }

    /// Takes a service off offer, the host's own or a plugin's: later calls
    /// to it fail with `Unimplemented`. Whether it was on offer.
    pub fn withdraw(&self, service: &str) -> bool {
        self.0.context.services.withdraw(service)
    }

    /// A new subscriber to what happens to this host's plugins from now on:
    /// loads, deaths, restarts, reloads, panics, health changes, unloads
    /// ([`EventKind`]). Its iterator ends once the host and every plugin
    /// handle are gone.
    /// Its queue holds 1024 events; one that does not keep up loses
    /// events, and is told how many (`EventKind::Lost`). Nothing waits on
    /// a subscriber.
    ///
    /// ```
    /// use outlet_host::{EventKind, Host};
    /// use std::time::Duration;
    ///
    /// let host = Host::new();
    /// let events = host.events();
    /// host.load("../../examples/greeter/manifests/exec.toml")?;
    /// let event = events.recv_timeout(Duration::from_secs(5)).unwrap();
    /// assert_eq!(event.plugin, "greeter-exec");
    /// assert!(matches!(event.kind, EventKind::Loaded { .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn events(&self) -> Events {
        self.events_queued(1024)
    }

    /// As [`Host::events`], with a queue of `capacity` events (at least 1).
    pub fn events_queued(&self, capacity: usize) -> Events {
        self.0.context.events.subscribe(capacity)
    }

    /// The policy the host admits manifests by ([`HostBuilder::policy`]).
    pub fn policy(&self) -> &Policy {
        &self.0.policy
    }

    /// The names of the services the host offers its plugins, sorted.
    pub fn services(&self) -> Vec<String> {
        self.0.context.services.names()
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
            let plugin = plugins.remove(name)?;
            // Under the same lock as a load's: a load of the name just
            // after cannot be pointed away from.
            self.0.context.services.unloaded(name);
            plugin
        };
        let answer = plugin.shutdown();
        self.0.context.events.emit(name, EventKind::Unloaded);
        Some(answer)
    }

    /// Stops every plugin at once: each is unloaded, waits for its calls,
    /// is asked to finish and its process to exit, all within `grace`;
    /// what is still running then is killed (rpc). Returns each plugin's
    /// name and how its Shutdown went, sorted by name. Nothing of them is
    /// left: no process, socket or private folder (an in-process plugin's
    /// library goes when its last call returns).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let host = outlet_host::Host::new();
    /// host.load("../../examples/greeter/manifests/exec.toml")?;
    /// let stopped = host.shutdown(Duration::from_secs(2));
    /// assert_eq!(stopped.len(), 1);
    /// assert_eq!(stopped[0].0, "greeter-exec");
    /// assert!(stopped[0].1.is_ok());
    /// assert!(host.names().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown(&self, grace: Duration) -> Vec<(String, Result<(), outlet_protocol::Status>)> {
        let plugins = {
            let mut plugins = self.0.plugins.write().unwrap_or_else(|e| e.into_inner());
            let services = &self.0.context.services;
            services.unloaded_where(|name| plugins.contains_key(name));
            std::mem::take(&mut *plugins)
        };
        let stopped: Vec<_> = std::thread::scope(|scope| {
            let stopping: Vec<_> = plugins
                .into_iter()
                .map(|(name, plugin)| (name, scope.spawn(move || plugin.shutdown_within(grace))))
                .collect();
            stopping
                .into_iter()
                .map(|(name, stopping)| {
                    let answer = stopping.join().unwrap_or_else(|_| {
                        Err(outlet_protocol::Status::internal(format!(
                            "plugin `{name}`: stopping it panicked"
                        )))
                    });
                    (name, answer)
                })
                .collect()
        });
        for (name, _) in &stopped {
            self.0.context.events.emit(name, EventKind::Unloaded);
        }
        stopped
    }
}

/// The user's module cache, in builds with the wasm mechanism.
fn default_module_cache() -> Option<PathBuf> {
    #[cfg(feature = "wasm")]
    return mechanism::wasm::cache::user_folder();
    #[cfg(not(feature = "wasm"))]
    None
}

/// The module cache the host was given, with the links on its path
/// resolved (in builds with the wasm mechanism, which checks it at load).
fn resolve_module_cache(folder: &std::path::Path) -> PathBuf {
    #[cfg(feature = "wasm")]
    return mechanism::wasm::cache::resolve(folder);
    #[cfg(not(feature = "wasm"))]
    folder.to_owned()
}
