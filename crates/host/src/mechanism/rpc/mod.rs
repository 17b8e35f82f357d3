//! The rpc mechanism: the plugin is a child process serving gRPC on a Unix
//! socket, speaking HashiCorp go-plugin's protocol, so Go go-plugin plugins
//! load as they are.
//!
//! Start (`instance.rs`, `process.rs`): the child gets go-plugin's
//! environment (magic cookie, `PLUGIN_PROTOCOL_VERSIONS`, a private socket
//! folder), a process group of its own and a parent-death signal; its
//! handshake line on stdout says where it listens; the host connects,
//! checks `grpc.health.v1` and says Hello (a plain go-plugin plugin, which
//! has no Outlet core service, gets a Hello made up from its handshake: no
//! extra capabilities).
//!
//! Calls (`call.rs`): over Outlet's frames when both sides are Outlet, else
//! gRPC (`grpc.rs`); streams are gRPC streams for every peer (`stream.rs`); the plugin calls back into the host over go-plugin's
//! broker (`broker.rs`). On a Unix socket, every connection's peer is
//! checked, both ways, by one rule (`peer.rs`): the plugin's process or one
//! that descends from it (an attached plugin's listener: its `pid`).
//!
//! Supervision (`supervise.rs`): the process is reaped by a thread of its
//! own, so its death is noticed at once; calls in flight fail with
//! `Unavailable`, and the plugin is restarted (the first time at once, then
//! with a doubling pause) until `limits.restarts` starts in a row have
//! failed (a process that served a call before it died starts the count
//! afresh); then calls fail fast until the plugin is reloaded.
//!
//! Stop: the controller's `Shutdown` and the process's exit within two
//! seconds (SIGTERM and a quarter second for a plugin with no controller),
//! then SIGKILL to its group; the socket folder is removed.
//!
//! Attach (`[reattach]`, `attach.rs`): the host connects to a plugin that
//! is already running; it never starts or restarts it, and signals it only
//! if it checked, at attach, that the manifest's `pid` owns the socket.
//!
//! A plugin that cannot be started or reached fails its load with an
//! [`RpcError`] (`error.rs`).

mod address;
#[cfg(feature = "async")]
mod asynchronous;
mod attach;
mod broker;
mod call;
mod error;
mod grpc;
mod instance;
mod output;
mod peer;
mod process;
mod stream;
mod supervise;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use outlet_manifest::Manifest;
use outlet_protocol::{Messages, Status, Transport};

use super::{Backend, Session};
use crate::error::LoadError;
use crate::process::{ChildLimits, Program};
use crate::services::HostServices;
pub use error::{ProcessExit, RpcError};
use instance::Instance;
use process::Spawn;
use supervise::State;

pub(crate) struct Rpc {
    shared: Arc<Shared>,
}

/// What the backend and the threads reaping its processes share.
struct Shared {
    plugin: String,
    spawn: Spawn,
    versions: Vec<u32>,
    interface: String,
    timeout: Duration,
    max_message: usize,
    restarts: u32,
    /// go-plugin's AutoMTLS: certificates made for each process.
    auto_mtls: bool,
    /// Where the plugin runs, when the host attaches to it.
    reattach: Option<outlet_manifest::Reattach>,
    /// What the plugin reaches when it calls back into the host.
    services: Arc<HostServices>,
    /// The plugin as those services know it, with its grants.
    caller: crate::services::Caller,
    /// Where its deaths and restarts are told.
    events: Arc<crate::events::Hub>,
    /// Where its restarts are counted.
    meter: Arc<crate::stats::Meter>,
    /// Whether Hello agreed on Outlet's frames (`outlet_rpc::frames`).
    frames: AtomicBool,
    /// What Hello agreed and the config, for a restarted process.
    session: Mutex<Session>,
    /// Whether a reaper thread is restarting the plugin.
    reviving: AtomicBool,
    /// Where the plugin's logs go: the loading thread's subscriber.
    dispatch: tracing::Dispatch,
    state: Mutex<State>,
    changed: Condvar,
}

impl Rpc {
    pub(crate) fn new(
        manifest: &Manifest,
        services: Arc<HostServices>,
        events: Arc<crate::events::Hub>,
        meter: Arc<crate::stats::Meter>,
    ) -> Result<Rpc, LoadError> {
        let plugin = manifest.name.clone();
        // The program, checked now, and again before every start whose
        // path no longer holds the file checked (`Process::start`).
        let program = match manifest.reattach {
            Some(_) => None,
            None => Some(Program::new(manifest)?),
        };
        let handshake = &manifest.handshake;
        let versions = manifest
            .versions
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut env = crate::process::child_env(manifest);
        if handshake.network == "tcp" {
            env.push((outlet_rpc::env::NETWORK.into(), "tcp".into()));
        }
        env.extend([
            (
                handshake.magic_cookie_key.clone().into(),
                handshake.magic_cookie_value.clone().into(),
            ),
            (outlet_rpc::env::PROTOCOL_VERSIONS.into(), versions.into()),
            // go-plugin's defaults, for a plugin that listens on TCP.
            (
                outlet_rpc::env::MIN_PORT.into(),
                address::PORTS.0.to_string().into(),
            ),
            (
                outlet_rpc::env::MAX_PORT.into(),
                address::PORTS.1.to_string().into(),
            ),
        ]);
        let shared = Arc::new(Shared {
            spawn: Spawn {
                plugin: plugin.clone(),
                program,
                env,
                limits: ChildLimits::new(&manifest.limits),
                sandbox: crate::process::sandbox::Sandbox::new(manifest)?,
                start_timeout: Duration::from_millis(manifest.limits.start_timeout_ms),
            },
            plugin,
            versions: manifest.versions.clone(),
            interface: manifest.interface.clone(),
            timeout: manifest.limits.timeout(),
            max_message: manifest.limits.max_message_bytes,
            restarts: manifest.limits.restarts,
            reattach: manifest.reattach.clone(),
            auto_mtls: handshake.auto_mtls,
            services,
            caller: crate::services::Caller::of(manifest),
            events,
            meter,
            frames: AtomicBool::new(false),
            session: Mutex::default(),
            reviving: AtomicBool::new(false),
            dispatch: tracing::dispatcher::get_default(Clone::clone),
            state: Mutex::new(State::Restarting),
            changed: Condvar::new(),
        });
        let failed = |error| LoadError::Rpc {
            plugin: shared.plugin.clone(),
            error,
        };
        let instance = Instance::start(&shared, 0).map_err(failed)?;
        shared.run(instance).map_err(failed)?;
        Ok(Rpc { shared })
    }
}

impl Transport for Rpc {
    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        self.shared.call(method, request)
    }

    fn open(&self, method: &str, requests: Messages<Vec<u8>>) -> Result<Messages<Vec<u8>>, Status> {
        self.shared.open(method, requests)
    }
}

impl Backend for Rpc {
    #[cfg(feature = "async")]
    fn call_nonblocking(
        &self,
        method: &str,
        request: &[u8],
        deadline: std::time::Instant,
        caller: &outlet_protocol::context::CallContext,
    ) -> Option<outlet_protocol::Answer<'static>> {
        self.shared
            .call_nonblocking(method, request, deadline, caller)
    }

    fn process_id(&self) -> Option<u32> {
        match &*self.shared.lock() {
            State::Running(instance) => instance.process.pid(),
            _ => None,
        }
    }

    fn sandbox(&self) -> Option<crate::SandboxReport> {
        match &*self.shared.lock() {
            State::Running(instance) => instance.process.sandbox(),
            _ => None,
        }
    }

    fn set_session(&self, session: Session) {
        let frames = session
            .negotiated
            .supports(outlet_protocol::capability::RPC_FRAMES);
        self.shared.frames.store(frames, Ordering::Relaxed);
        *self
            .shared
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = session;
        self.shared.read_stdio();
    }

    fn stop(&self) {
        self.shared.stop(instance::STOP_GRACE);
    }

    fn stop_within(&self, grace: Duration) {
        self.shared.stop(grace.min(instance::STOP_GRACE));
    }
}

impl Drop for Rpc {
    /// A backend replaced by a reload goes when its last call returns.
    fn drop(&mut self) {
        self.stop();
    }
}
