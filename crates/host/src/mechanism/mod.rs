//! The mechanisms: each turns the host's calls into calls on a plugin.
//!
//! A mechanism is a [`Backend`]; `start` picks one from the manifest. The
//! same name is used everywhere: the manifest's `mechanism`, the module here,
//! the `Mechanism` variant.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use outlet_manifest::{Manifest, Mechanism};
use outlet_protocol::{Negotiated, Status, Transport};

use crate::error::LoadError;
use crate::services::HostServices;
use crate::stats::Meter;

pub(crate) use library::{Claim, LibraryPath};

/// What the host lends every mechanism it starts.
pub(crate) struct Context {
    /// The services a plugin reaches when it calls the host.
    pub services: Arc<HostServices>,
    /// Where what happens to plugins is told.
    pub events: Arc<crate::events::Hub>,
    /// Whether calls are counted (`Plugin::stats`, the `metrics` facade)
    /// and run in spans.
    pub metered: bool,
    /// Where compiled wasm modules are cached; `None`: not on disk.
    #[cfg_attr(not(feature = "wasm"), allow(dead_code))]
    pub module_cache: Option<PathBuf>,
}

pub(crate) mod cabi;
pub(crate) mod exec;
mod library;
pub(crate) mod native;
#[cfg(feature = "rpc")]
pub(crate) mod rpc;
pub(crate) mod slot;
#[cfg(feature = "wasm")]
pub(crate) mod wasm;

#[cfg(any(feature = "async", feature = "rpc"))]
thread_local! {
    /// Set on a thread of a tokio runtime's blocking pool while an async
    /// call runs there (`plugin/asynchronous.rs`): a mechanism may block on
    /// a runtime of its own there, as on a thread outside any runtime.
    pub(crate) static MAY_BLOCK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What the host agreed with a plugin, and the config it holds for it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Session {
    pub negotiated: Negotiated,
    pub config: BTreeMap<String, String>,
}

/// One mechanism's way of reaching a loaded plugin: a [`Transport`] for
/// its calls (core protocol and interface methods alike), and what the host
/// needs besides.
pub(crate) trait Backend: Transport {
    /// Hello or Configure changed what the host and plugin agreed on. A
    /// mechanism that keeps no process between calls carries it in each call.
    fn set_session(&self, session: Session);

    /// Releases what the mechanism holds for the plugin, after Shutdown.
    fn stop(&self);

    /// As [`Backend::stop`], giving a process at most `grace` to exit
    /// before it is killed.
    fn stop_within(&self, grace: std::time::Duration) {
        let _ = grace;
        self.stop();
    }

    /// What a plugin native to this build lends for calls straight to its
    /// services (see `Transport::with_native`), by service name; taken once
    /// per instance. It must be dropped before the backend.
    fn shared(&self) -> Vec<(String, outlet_protocol::Shared)> {
        Vec::new()
    }

    /// Makes a fresh instance ready for calls and drops it, for a mechanism
    /// that has instances (see `Plugin::fresh_instance`).
    fn fresh_instance(&self) -> Option<Result<(), Status>> {
        None
    }

    /// The id of the process serving the plugin now, for a mechanism that
    /// keeps one (rpc).
    fn process_id(&self) -> Option<u32> {
        None
    }

    /// What the OS sandbox holds the plugin's process to (exec, rpc), if it
    /// runs in one.
    fn sandbox(&self) -> Option<crate::SandboxReport> {
        None
    }

    /// A call from async code that waits for its answer without blocking
    /// the thread, held to `deadline` and to `caller`'s cancel, carrying
    /// its trace, if the mechanism can make one now; `None` sends the call
    /// to the runtime's blocking pool (see `plugin/asynchronous.rs`).
    #[cfg(feature = "async")]
    fn call_nonblocking(
        &self,
        method: &str,
        request: &[u8],
        deadline: std::time::Instant,
        caller: &outlet_protocol::context::CallContext,
    ) -> Option<outlet_protocol::Answer<'static>> {
        let _ = (method, request, deadline, caller);
        None
    }

    /// Whether a call panicked inside the plugin (in-process mechanisms).
    fn poisoned(&self) -> bool {
        false
    }
}

/// The mechanisms this build of Outlet can load.
pub const AVAILABLE: &[Mechanism] = &[
    Mechanism::Native,
    Mechanism::Cabi,
    #[cfg(feature = "rpc")]
    Mechanism::Rpc,
    #[cfg(feature = "wasm")]
    Mechanism::Wasm,
    Mechanism::Exec,
];

/// Starts the mechanism the manifest names. Checks nothing the manifest
/// crate already checked; the plugin has not been called yet.
///
/// `fresh` asks for a new instance beside one already running (a reload):
/// a shared library is then loaded from a private copy, since the dynamic
/// loader hands back the mapping it already has for a path it has opened.
pub(crate) fn start(
    manifest: &Manifest,
    fresh: bool,
    context: &Context,
    meter: &Arc<Meter>,
) -> Result<Box<dyn Backend>, LoadError> {
    #[cfg(not(feature = "rpc"))]
    let _ = meter;
    let services = &context.services;
    match manifest.mechanism {
        Mechanism::Exec => Ok(Box::new(exec::Exec::new(manifest)?)),
        Mechanism::Cabi => Ok(Box::new(cabi::Cabi::new(
            manifest,
            fresh,
            services.clone(),
        )?)),
        Mechanism::Native => Ok(Box::new(native::Native::new(
            manifest,
            fresh,
            services.clone(),
        )?)),
        #[cfg(feature = "rpc")]
        Mechanism::Rpc => Ok(Box::new(rpc::Rpc::new(
            manifest,
            services.clone(),
            context.events.clone(),
            meter.clone(),
        )?)),
        #[cfg(feature = "wasm")]
        Mechanism::Wasm => Ok(Box::new(wasm::Wasm::new(
            manifest,
            services.clone(),
            context.module_cache.as_deref(),
        )?)),
        // Reached in builds without some mechanism's feature.
        #[allow(unreachable_patterns)]
        mechanism => Err(LoadError::Unsupported {
            plugin: manifest.name.clone(),
            mechanism,
            available: AVAILABLE
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}
