//! [`Plugin`]: a loaded plugin, whatever its mechanism.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use outlet_manifest::Manifest;
use outlet_protocol::core::{
    self, ConfigureRequest, ConfigureResponse, HealthRequest, HealthResponse, HelloResponse,
    ShutdownRequest, ShutdownResponse,
};
use outlet_protocol::{Client, Negotiated, Shared, Status, capability, unary};

#[cfg(feature = "async")]
mod asynchronous;
mod calls;
mod stream;

use crate::error::{LoadError, ReloadError};
use crate::handshake::handshake;
use crate::mechanism::{self, Backend, Context, Session};
use crate::stats::{Meter, PluginStats};

/// A loaded plugin. Cheap to clone (one `Arc`); `Send + Sync`, so one handle
/// serves calls from many threads at once.
///
/// It is a [`Transport`](outlet_protocol::Transport): a generated client
/// runs over it, and [`Plugin::client`] builds one after checking the
/// interface.
#[derive(Clone)]
pub struct Plugin(Arc<Inner>);

struct Inner {
    manifest: Manifest,
    /// The manifest's name, shared with the frames of its calls.
    name: Arc<str>,
    /// Whether its manifest grants calls through the host: its calls then
    /// carry a frame ([`crate::services::Frame`]) for those to be made in.
    calls_out: bool,
    hello: HelloResponse,
    negotiated: Negotiated,
    /// The running instance; `None` once shut down. A call holds it for
    /// its length (a guard of the swap, or a clone of the `Arc`), so an
    /// instance a reload replaced is dropped (its library shut down and
    /// unmapped) when its last call returns; reading it takes no lock, so a
    /// plugin that calls back into the host, which calls it again, waits
    /// for nothing.
    backend: ArcSwapOption<Instance>,
    /// Held to change `backend`, with `stopped` read under it.
    swapping: Mutex<()>,
    config: Mutex<BTreeMap<String, String>>,
    stopped: AtomicBool,
    reloads: AtomicU64,
    /// Whether the running instance's panic was told (`EventKind::Poisoned`).
    poison_told: AtomicBool,
    /// Whether its last health check failed, and why: its calls then fail
    /// fast.
    unhealthy: AtomicBool,
    sick: Mutex<Option<String>>,
    /// What the host lends the plugin's mechanism; kept for reloads.
    context: Arc<Context>,
    /// What its calls did.
    meter: Arc<Meter>,
    /// Held by the one reload or Configure at a time; taken before `config`.
    reloading: Mutex<()>,
}

/// A plugin's running instance: its mechanism's backend (boxed, for the
/// swap it is kept in holds sized values only), and for a native plugin,
/// what its services lend for calls straight to them.
pub(crate) struct Instance {
    /// By service name. Code of the library lives behind these: declared
    /// before `backend`, they are dropped before the library is unloaded.
    direct: Vec<(String, Shared)>,
    backend: Box<dyn Backend>,
}

impl Instance {
    fn new(backend: Box<dyn Backend>) -> Instance {
        Instance {
            direct: backend.shared(),
            backend,
        }
    }

    /// The implementation of `service` for a generated client to call
    /// directly, while no call of the plugin's has panicked.
    #[inline]
    fn direct(&self, service: &str) -> Option<&(dyn Any + Send + Sync)> {
        // One service: no name to compare, the caller's downcast tells.
        let found = match &self.direct[..] {
            [] => return None,
            [(_, only)] => only,
            all => &all.iter().find(|(name, _)| name == service)?.1,
        };
        // A panic in any service leaves the plugin's state in doubt.
        if self
            .direct
            .iter()
            .any(|(_, s)| s.poisoned.load(Ordering::Relaxed))
        {
            return None;
        }
        Some(&*found.implementation)
    }
}

impl std::ops::Deref for Instance {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        &*self.backend
    }
}

/// A handle on a plugin that does not keep it loaded; none by default.
#[derive(Clone, Default)]
pub(crate) struct WeakPlugin(std::sync::Weak<Inner>);

impl WeakPlugin {
    pub(crate) fn upgrade(&self) -> Option<Plugin> {
        self.0.upgrade().map(Plugin)
    }
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
        context: Arc<Context>,
        meter: Arc<Meter>,
    ) -> Plugin {
        let config = manifest.config.clone();
        backend.set_session(Session {
            negotiated: negotiated.clone(),
            config: config.clone(),
        });
        Plugin(Arc::new(Inner {
            name: manifest.name.as_str().into(),
            calls_out: !manifest.permissions.call.is_empty(),
            manifest,
            hello,
            negotiated,
            backend: ArcSwapOption::from_pointee(Instance::new(backend)),
            swapping: Mutex::new(()),
            config: Mutex::new(config),
            stopped: AtomicBool::new(false),
            reloads: AtomicU64::new(0),
            poison_told: AtomicBool::new(false),
            unhealthy: AtomicBool::new(false),
            sick: Mutex::new(None),
            context,
            meter,
            reloading: Mutex::new(()),
        }))
    }

    /// The plugin's name, from its manifest.
    pub fn name(&self) -> &str {
        &self.0.manifest.name
    }

    /// The name, shared.
    pub(crate) fn name_arc(&self) -> Arc<str> {
        self.0.name.clone()
    }

    /// Whether it was shut down.
    pub(crate) fn stopped(&self) -> bool {
        self.0.stopped.load(Ordering::Acquire)
    }

    /// What its last health check found: `None` if it passed. A change is
    /// told to subscribers.
    pub(crate) fn set_health(&self, why: Option<String>) {
        let mut sick = self.0.sick.lock().unwrap_or_else(|e| e.into_inner());
        if sick.is_none() && why.is_none() {
            return;
        }
        let changed = sick.is_none() != why.is_none();
        self.0.unhealthy.store(why.is_some(), Ordering::Release);
        *sick = why;
        if changed {
            let event = crate::health::changed(sick.as_deref());
            drop(sick);
            self.0.context.events.emit(self.name(), event);
        }
    }

    /// Whether its manifest grants it calls through the host.
    pub(crate) fn calls_out(&self) -> bool {
        self.0.calls_out
    }

    /// A handle that does not keep the plugin.
    pub(crate) fn downgrade(&self) -> WeakPlugin {
        WeakPlugin(Arc::downgrade(&self.0))
    }

    /// Whether both handles are of one loaded plugin.
    pub(crate) fn same(&self, other: &Plugin) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
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
        let _one_at_a_time = self.0.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let mut current = self.0.config.lock().unwrap_or_else(|e| e.into_inner());
        let backend = self.instance()?;
        if backend.poisoned() {
            return Err(self.poisoned_error());
        }
        let _: ConfigureResponse = unary(
            &**backend,
            core::CONFIGURE,
            &ConfigureRequest {
                config: config.clone().into_iter().collect(),
            },
        )?;
        backend.set_session(Session {
            negotiated: self.0.negotiated.clone(),
            config: config.clone(),
        });
        *current = config;
        Ok(())
    }

    /// Loads a fresh instance of the plugin's artifact beside the running
    /// one, says Hello and applies the current config, then switches new
    /// calls to it; the old instance is stopped and dropped (a shared
    /// library unmapped) once the calls still in it have returned. No call
    /// fails because of a reload. For exec, where every call starts the
    /// artifact afresh, this checks the new build's Hello.
    ///
    /// Costs a load: for a shared library, a copy of the file (the dynamic
    /// loader would hand back the old mapping for the same path) and `dlopen`.
    ///
    /// # Errors
    /// [`LoadError`] when the new instance cannot be loaded or negotiates
    /// other versions than the running one; the running one then stays.
    pub fn reload(&self) -> Result<(), LoadError> {
        let _one_at_a_time = self.0.reloading.lock().unwrap_or_else(|e| e.into_inner());
        self.reload_locked()
    }

    /// As [`Plugin::reload`], with `reloading` held by the caller.
    fn reload_locked(&self) -> Result<(), LoadError> {
        let manifest = &self.0.manifest;
        let plugin = manifest.name.clone();
        if self.0.stopped.load(Ordering::Acquire) {
            return Err(LoadError::Reload {
                plugin,
                error: ReloadError::ShutDown,
            });
        }
        // Each mechanism checks the artifact (`Manifest::open_artifact`) as it
        // opens it, and starts, loads or runs only the file it checked.
        let fresh = mechanism::start(manifest, true, &self.0.context, &self.0.meter)?;
        let (_, negotiated) = handshake(manifest, &*fresh)?;
        if negotiated != self.0.negotiated {
            return Err(LoadError::Reload {
                plugin,
                error: ReloadError::Negotiated {
                    running: self.0.negotiated.clone(),
                    new: negotiated,
                },
            });
        }
        let config = self.config();
        fresh.set_session(Session {
            negotiated,
            config: config.clone(),
        });
        if !config.is_empty() && self.0.negotiated.supports(capability::CONFIGURE) {
            let _: ConfigureResponse = unary(
                &*fresh,
                core::CONFIGURE,
                &ConfigureRequest {
                    config: config.into_iter().collect(),
                },
            )
            .map_err(|status| LoadError::Config {
                plugin: plugin.clone(),
                status,
            })?;
        }
        // The old instance goes when its last call returns: in-process
        // mechanisms shut it down as they drop it.
        let old = {
            let swapping = self.0.swapping.lock().unwrap_or_else(|e| e.into_inner());
            // Shut down while the fresh one started: it is not put back.
            if self.0.stopped.load(Ordering::Acquire) {
                drop(swapping);
                fresh.stop();
                return Err(LoadError::Reload {
                    plugin,
                    error: ReloadError::ShutDown,
                });
            }
            self.0.backend.swap(Some(Arc::new(Instance::new(fresh))))
        };
        drop(old);
        self.0.poison_told.store(false, Ordering::Release);
        self.0.reloads.fetch_add(1, Ordering::Relaxed);
        self.0.meter.reloaded();
        tracing::info!(target: "outlet::plugin", plugin, "reloaded");
        self.0
            .context
            .events
            .emit(&plugin, crate::events::EventKind::Reloaded);
        Ok(())
    }

    /// How many times the plugin was reloaded.
    pub fn reloads(&self) -> u64 {
        self.0.reloads.load(Ordering::Relaxed)
    }

    /// What its calls did since it was loaded, per method: calls, errors by
    /// code, calls in flight, latency, bytes; and its restarts and reloads.
    /// The same counts are published through the `metrics` facade
    /// ([`crate::stats`]).
    pub fn stats(&self) -> PluginStats {
        self.0.meter.stats(self.reloads())
    }

    /// For a mechanism that runs a plugin in instances (wasm): makes a fresh
    /// one (a store, the module instantiated, its ABI version checked) and
    /// drops it; what `outlet bench` times as the cost of an instance. A
    /// call that finds no idle instance pays this, and Configure if the
    /// plugin has a config. `None` for other mechanisms.
    pub fn fresh_instance(&self) -> Option<Result<(), Status>> {
        match self.instance() {
            Ok(backend) => backend.fresh_instance(),
            Err(status) => Some(Err(status)),
        }
    }

    /// The running instance, for one call.
    pub(crate) fn instance(&self) -> Result<Arc<Instance>, Status> {
        self.0.backend.load_full().ok_or_else(|| {
            Status::unavailable(format!(
                "plugin `{}` was shut down; load it again to call it",
                self.name()
            ))
        })
    }

    /// The id of the process serving the plugin now: for rpc, the child the
    /// host started (a restart or reload changes it). `None` for other
    /// mechanisms, and while an rpc plugin is being restarted.
    pub fn process_id(&self) -> Option<u32> {
        self.instance().ok()?.process_id()
    }

    /// What the OS sandbox holds the plugin's process to, as it holds now
    /// (for exec, its last call's; before the first, what a call will
    /// hold): each layer, and whether it holds on this kernel. `None` for a
    /// plugin that runs in no OS sandbox (`sandbox` in its manifest; wasm's
    /// sandbox is wasmtime's, native and cabi have none), and while an rpc
    /// plugin is being restarted.
    pub fn sandbox(&self) -> Option<crate::SandboxReport> {
        self.instance().ok()?.sandbox()
    }

    /// Asks the plugin whether it can serve.
    ///
    /// # Errors
    /// `Unavailable` when the plugin cannot be reached.
    pub fn health(&self) -> Result<HealthResponse, Status> {
        // Asked even while its health checks fail, which fails other calls.
        unary(&**self.instance()?, core::HEALTH, &HealthRequest {})
    }

    /// Asks the plugin to finish, then releases it. Later calls fail with
    /// `Unavailable`. Calling it twice is harmless.
    ///
    /// # Errors
    /// The plugin's answer to Shutdown; the plugin is released all the same.
    pub fn shutdown(&self) -> Result<(), Status> {
        self.finish(self.0.manifest.limits.timeout(), false)
    }

    /// Shuts the plugin down within `grace`: waits for its calls, asks it to
    /// finish, and stops its process; what is still running when the grace
    /// is up is killed (rpc, whose calls then fail with `Unavailable`).
    pub(crate) fn shutdown_within(&self, grace: Duration) -> Result<(), Status> {
        self.finish(grace, true)
    }

    /// Shutdown within `grace`; `force` stops a process whose calls outlast
    /// it, where `false` leaves it to go when they return.
    fn finish(&self, grace: Duration, force: bool) -> Result<(), Status> {
        if self.0.stopped.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let taken = {
            let _swapping = self.0.swapping.lock().unwrap_or_else(|e| e.into_inner());
            self.0.backend.swap(None)
        };
        let Some(backend) = taken else {
            return Ok(());
        };
        // Shutdown is the last call: wait for the calls still running.
        let deadline = Instant::now() + grace;
        while Arc::strong_count(&backend) > 1 {
            if Instant::now() >= deadline {
                if force {
                    backend.stop_within(Duration::ZERO);
                }
                return Err(Status::unavailable(format!(
                    "plugin `{}`: calls were still running after {} ms; {}",
                    self.name(),
                    grace.as_millis(),
                    if force {
                        "an rpc plugin's process was killed, and an exec or in-process call \
                         ends by its own time limit"
                    } else {
                        "it will be released when they return"
                    }
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let shutdown = || unary(&**backend, core::SHUTDOWN, &ShutdownRequest {});
        let answer: Result<ShutdownResponse, Status> = if force {
            crate::services::until(Some(deadline), shutdown)
        } else {
            shutdown()
        };
        if force {
            backend.stop_within(deadline.saturating_duration_since(Instant::now()));
        } else {
            backend.stop();
        }
        answer.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    /// A backend that lends one implementation per service, as a native
    /// plugin's does.
    struct Lending(Vec<(&'static str, Arc<AtomicBool>)>);

    impl outlet_protocol::Transport for Lending {
        fn call(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, Status> {
            Err(Status::unimplemented("by path"))
        }
    }

    impl Backend for Lending {
        fn set_session(&self, _: Session) {}

        fn stop(&self) {}

        fn shared(&self) -> Vec<(String, Shared)> {
            self.0
                .iter()
                .map(|(name, poisoned)| {
                    let shared = Shared {
                        implementation: Box::new(name.to_string()),
                        poisoned: poisoned.clone(),
                    };
                    (name.to_string(), shared)
                })
                .collect()
        }
    }

    fn lent(instance: &Instance, service: &str) -> Option<String> {
        instance
            .direct(service)
            .and_then(|any| any.downcast_ref::<String>().cloned())
    }

    #[test]
    fn a_direct_call_finds_its_service_and_none_once_any_service_panicked() {
        let (a, b) = (Arc::new(AtomicBool::new(false)), Arc::default());
        let two = Instance::new(Box::new(Lending(vec![("p.A", a.clone()), ("p.B", b)])));
        assert_eq!(lent(&two, "p.B").as_deref(), Some("p.B"));
        assert_eq!(lent(&two, "p.C"), None);
        // One service: found without comparing names; the caller's
        // downcast tells whether it is the one it calls.
        let one = Instance::new(Box::new(Lending(vec![("p.A", a.clone())])));
        assert_eq!(lent(&one, "p.Other").as_deref(), Some("p.A"));
        // A panic in A leaves B's calls to the encoded path, which reloads
        // or refuses as `on_panic` says.
        a.store(true, Ordering::Relaxed);
        assert_eq!(lent(&two, "p.B"), None);
        assert_eq!(lent(&one, "p.A"), None);
        let none = Instance::new(Box::new(Lending(Vec::new())));
        assert_eq!(lent(&none, "p.A"), None);
    }

    #[test]
    fn a_call_holding_the_instance_is_counted_by_the_swap_that_replaces_it() {
        // What `finish` relies on: once `swap` returns, every call still
        // holding the old instance holds a reference `strong_count` sees.
        let slot = ArcSwapOption::from_pointee(Instance::new(Box::new(Lending(Vec::new()))));
        let held = slot.load();
        let taken = slot.swap(None).expect("it was there");
        assert_eq!(Arc::strong_count(&taken), 2);
        drop(held);
        assert_eq!(Arc::strong_count(&taken), 1);
    }
}
