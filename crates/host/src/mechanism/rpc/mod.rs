//! The rpc mechanism: the plugin is a child process serving gRPC on a Unix
//! socket, speaking HashiCorp go-plugin's protocol, so Go go-plugin plugins
//! load as they are.
//!
//! Start: the child gets go-plugin's environment (magic cookie,
//! `PLUGIN_PROTOCOL_VERSIONS`, a private socket folder), a process group of
//! its own and a parent-death signal; its handshake line on stdout says
//! where it listens; the host connects, checks `grpc.health.v1` and says
//! Hello (a plain go-plugin plugin, which has no Outlet core service, gets
//! a Hello made up from its handshake: no extra capabilities).
//!
//! Supervision: the process is reaped by a thread of its own, so its death
//! is noticed at once; calls in flight fail with `Unavailable`, and the
//! plugin is restarted (the first time at once, then with a doubling pause)
//! until `limits.restarts` starts in a row have failed; then calls fail fast
//! until the plugin is reloaded.
//!
//! Stop: the controller's `Shutdown`, up to two seconds for the process to
//! exit, then SIGKILL to its group; the socket folder is removed.
//!
//! Attach (`[reattach]`): the host connects to a plugin that is already
//! running; it never starts or restarts it, and signals it only if it
//! checked, at attach, that the manifest's `pid` owns the socket.

mod broker;
mod grpc;
mod process;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use outlet_manifest::Manifest;
use outlet_protocol::core::{
    self, Call, HealthResponse, HelloResponse, Reply, health_response::ServingStatus,
};
use outlet_protocol::frame::FrameError;
use outlet_protocol::prost::Message;
use outlet_protocol::{CORE_VERSIONS, Status};
use outlet_rpc::frames::{self, HOST_SPIN};
use outlet_rpc::tls::Identity;
use outlet_rpc::wire::{self, HealthCheckRequest, HealthCheckResponse};
use outlet_rpc::{HandshakeLine, Network};

use super::limits::ChildLimits;
use super::{Backend, Session};
use crate::LoadError;
use crate::services::HostServices;
use broker::{Broker, Offer};
use grpc::Grpc;
use process::{Process, Spawn, describe};

/// How long a plugin has to exit after the controller's Shutdown.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// The pause before the second restart in a row; it doubles after that.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest pause between restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A plugin that ran this long before dying starts its count of restarts afresh.
const STABLE: Duration = Duration::from_secs(10);

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

enum State {
    Running(Arc<Instance>),
    /// The process died; a new one is being started.
    Restarting,
    /// It died and could not be restarted: why.
    Failed(String),
    Stopped,
}

/// How a call on Outlet's frames failed, and whether the plugin may have
/// seen it: one it never saw can go to a restarted plugin.
struct FramesFailure {
    status: Status,
    delivered: bool,
}

impl From<Status> for FramesFailure {
    fn from(status: Status) -> FramesFailure {
        FramesFailure {
            status,
            delivered: true,
        }
    }
}

/// One process of the plugin, connected.
struct Instance {
    /// The host's services offered to it; goes before its folder does.
    _broker: Broker,
    process: Process,
    grpc: Grpc,
    line: HandshakeLine,
    started: Instant,
    /// Restarts in a row, this one included, that led to it.
    restarts: u32,
    /// Idle connections carrying Outlet's frames, one taken per call.
    idle_frames: Mutex<Vec<frames::Connection>>,
    /// Whether its go-plugin stdio stream is being read.
    stdio: AtomicBool,
}

impl Rpc {
    pub(crate) fn new(manifest: &Manifest, services: Arc<HostServices>) -> Result<Rpc, LoadError> {
        let plugin = manifest.name.clone();
        let program = match manifest.reattach {
            Some(_) => std::path::PathBuf::new(),
            None => manifest.path.canonicalize().map_err(|error| {
                outlet_manifest::ManifestError::Artifact {
                    plugin: plugin.clone(),
                    path: manifest.path.clone(),
                    error,
                }
            })?,
        };
        let handshake = &manifest.handshake;
        let versions = manifest
            .versions
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut env = super::child_env(manifest);
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
            (outlet_rpc::env::MIN_PORT.into(), "10000".into()),
            (outlet_rpc::env::MAX_PORT.into(), "25000".into()),
        ]);
        let shared = Arc::new(Shared {
            spawn: Spawn {
                plugin: plugin.clone(),
                program,
                env,
                limits: ChildLimits::new(&manifest.limits),
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
            frames: AtomicBool::new(false),
            session: Mutex::default(),
            reviving: AtomicBool::new(false),
            dispatch: tracing::dispatcher::get_default(Clone::clone),
            state: Mutex::new(State::Restarting),
            changed: Condvar::new(),
        });
        let failed = |why| LoadError::Rpc {
            plugin: shared.plugin.clone(),
            why,
        };
        let instance = Instance::start(&shared, 0).map_err(failed)?;
        shared.run(instance).map_err(failed)?;
        Ok(Rpc { shared })
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The running instance; waits (until `deadline`) while a restart is
    /// under way.
    fn instance(&self, deadline: Instant) -> Result<Arc<Instance>, Status> {
        let mut state = self.lock();
        loop {
            match &*state {
                // A process that has exited is about to be replaced.
                State::Running(instance) if instance.process.wait(Duration::ZERO).is_none() => {
                    return Ok(instance.clone());
                }
                State::Failed(why) => return Err(Status::unavailable(why.clone())),
                State::Stopped => {
                    return Err(Status::unavailable(format!(
                        "plugin `{}` was stopped; load it again to call it",
                        self.plugin
                    )));
                }
                State::Running(_) | State::Restarting => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Status::unavailable(format!(
                            "plugin `{}` died and is being restarted; it was not back within \
                             {} ms (limits.timeout_ms)",
                            self.plugin,
                            self.timeout.as_millis()
                        )));
                    }
                    state = self
                        .changed
                        .wait_timeout(state, left.min(Duration::from_millis(10)))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }

    /// Makes `instance` the running one: `Ok(false)` if the plugin was
    /// stopped meanwhile (the instance is stopped too), an error if its
    /// process has died already. Checked under the lock its reaper takes
    /// after recording the exit, so a death is never missed.
    fn run(&self, instance: Arc<Instance>) -> Result<bool, String> {
        let mut state = self.lock();
        if matches!(*state, State::Stopped) {
            drop(state);
            instance.stop(&self.plugin);
            return Ok(false);
        }
        if let Some(exit) = instance.process.wait(Duration::ZERO) {
            return Err(format!(
                "it {}{}",
                describe(Some(&exit)),
                instance.process.last_words()
            ));
        }
        *state = State::Running(instance);
        drop(state);
        self.changed.notify_all();
        Ok(true)
    }

    /// A go-plugin plugin (not Outlet's frames) of 1.4 or later sends its
    /// stdout and stderr over a stream: read it into the log, once per process.
    fn read_stdio(&self) {
        if self.frames.load(Ordering::Relaxed) {
            return;
        }
        let instance = match &*self.lock() {
            State::Running(instance) => instance.clone(),
            _ => return,
        };
        if instance.stdio.swap(true, Ordering::AcqRel) {
            return;
        }
        let (plugin, dispatch) = (self.plugin.clone(), self.dispatch.clone());
        let mut limit = process::Limiter::new("stdio stream");
        let read = instance.grpc.stream_stdio(move |line| {
            tracing::dispatcher::with_default(&dispatch, || limit.log(&plugin, line));
        });
        if let Err(error) = read {
            tracing::warn!(
                target: "outlet::plugin",
                plugin = self.plugin,
                "cannot read its stdio stream: {error}"
            );
        }
    }

    /// Gives a restarted plugin the config the host holds for it.
    fn configure(&self, instance: &Instance) -> Result<(), String> {
        let session = self
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if session.config.is_empty()
            || !session
                .negotiated
                .supports(outlet_protocol::capability::CONFIGURE)
        {
            return Ok(());
        }
        let request = core::ConfigureRequest {
            config: session.config.into_iter().collect(),
        };
        instance
            .grpc
            .unary(
                core::CONFIGURE,
                request.encode_to_vec(),
                self.max_message,
                Instant::now() + self.spawn.start_timeout,
            )
            .map(drop)
            .map_err(|e| format!("it refused its config after the restart: {}", e.message()))
    }

    /// The process of `dead` ended: restart the plugin unless it was
    /// stopped or replaced, or restarting it has failed too often.
    fn died(self: &Arc<Shared>, dead: &Instance, status: String) {
        {
            let mut state = self.lock();
            match &*state {
                State::Running(current) if std::ptr::eq(&**current, dead) => {}
                _ => return,
            }
            *state = State::Restarting;
            self.reviving.store(true, Ordering::Release);
        }
        self.revive(dead, status);
        self.reviving.store(false, Ordering::Release);
        self.changed.notify_all();
    }

    /// Restarts the plugin, as `died` says.
    fn revive(self: &Arc<Shared>, dead: &Instance, status: String) {
        if let Some(reattach) = &self.reattach {
            let why = format!(
                "plugin `{}`, attached to at {}, {status}; the host did not start it, so it \
                 does not restart it: start the plugin again and reload it (Plugin::reload)",
                self.plugin, reattach.address
            );
            tracing::error!(target: "outlet::plugin", plugin = self.plugin, "{why}");
            let mut state = self.lock();
            if !matches!(*state, State::Stopped) {
                *state = State::Failed(why);
            }
            return;
        }
        tracing::error!(
            target: "outlet::plugin",
            plugin = self.plugin,
            "its process {status}; restarting it"
        );
        // A plugin that dies soon after a restart continues the count.
        let mut attempts = if dead.started.elapsed() >= STABLE {
            0
        } else {
            dead.restarts
        };
        let mut last = format!("it {status}");
        let mut pause = Duration::ZERO;
        loop {
            if attempts >= self.restarts {
                let why = format!(
                    "plugin `{}` died, and was restarted {attempts} times in a row \
                     (limits.restarts = {}); the last time, {last}; fix the plugin and reload \
                     it (Plugin::reload)",
                    self.plugin, self.restarts
                );
                tracing::error!(target: "outlet::plugin", plugin = self.plugin, "{why}");
                let mut state = self.lock();
                if !matches!(*state, State::Stopped) {
                    *state = State::Failed(why);
                }
                drop(state);
                self.changed.notify_all();
                return;
            }
            // The pause, cut short by a stop.
            let until = Instant::now() + pause;
            let mut state = self.lock();
            while !matches!(*state, State::Stopped) && Instant::now() < until {
                let left = until.saturating_duration_since(Instant::now());
                state = self
                    .changed
                    .wait_timeout(state, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            if matches!(*state, State::Stopped) {
                return;
            }
            drop(state);
            pause = (pause * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
            attempts += 1;
            let started = Instance::start(self, attempts).and_then(|instance| {
                self.configure(&instance)?;
                Ok(instance)
            });
            match started.and_then(|instance| self.run(instance)) {
                Ok(true) => {
                    self.read_stdio();
                    tracing::info!(target: "outlet::plugin", plugin = self.plugin, "restarted");
                    return;
                }
                Ok(false) => return,
                Err(why) => {
                    tracing::warn!(
                        target: "outlet::plugin",
                        plugin = self.plugin,
                        "restart failed: {why}"
                    );
                    last = why;
                }
            }
        }
    }

    /// One call over Outlet's frames, on an idle connection or a new one.
    fn call_frames(
        &self,
        instance: &Instance,
        method: &str,
        request: &[u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, FramesFailure> {
        let plugin = &self.plugin;
        let undelivered = |status| FramesFailure {
            status,
            delivered: false,
        };
        let idle = instance
            .idle_frames
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let mut connection = match idle {
            Some(connection) => connection,
            None => frames::Connection::connect(instance.line.address.as_ref(), deadline)
                .map_err(|e| undelivered(self.broken(instance, method, &e.to_string())))?,
        };
        let call = Call {
            method: method.to_owned(),
            body: request.to_vec(),
            ..Call::default()
        };
        connection
            .send(&call.encode_to_vec(), Some(deadline))
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::TimedOut => undelivered(self.late(method)),
                _ => undelivered(self.broken(instance, method, &e.to_string())),
            })?;
        // A reply's frame holds the body and a few bytes of envelope.
        let received = connection.recv(self.max_message + 64, HOST_SPIN, Some(deadline));
        let payload = match received {
            Ok(payload) => payload,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Err(self.late(method).into());
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let too_large = e
                    .get_ref()
                    .and_then(|e| e.downcast_ref::<FrameError>())
                    .is_some_and(|e| matches!(e, FrameError::TooLarge { .. }));
                return Err(if too_large {
                    Status::resource_exhausted(format!(
                        "plugin `{plugin}`: its reply to {method} is refused: {e} \
                         (limits.max_message_bytes)"
                    ))
                } else {
                    Status::internal(format!(
                        "plugin `{plugin}`: its reply to {method} is not an Outlet frame: {e}; \
                         the plugin must write nothing else on its connections"
                    ))
                }
                .into());
            }
            Err(e) => return Err(self.broken(instance, method, &e.to_string()).into()),
        };
        let reply = Reply::decode(payload).map_err(|e| {
            Status::internal(format!(
                "plugin `{plugin}`: its reply to {method} is not a Reply: {e}"
            ))
        })?;
        instance
            .idle_frames
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(connection);
        match reply.status {
            Some(status) => Err(Status::from(status).into()),
            None => Ok(reply.body),
        }
    }

    /// A connection carrying frames failed: the plugin died, or the connection broke.
    fn broken(&self, instance: &Instance, method: &str, error: &str) -> Status {
        self.explain(instance, method, grpc::transport(error.to_owned()))
    }

    /// A call's deadline passed.
    fn late(&self, method: &str) -> Status {
        Status::deadline_exceeded(format!(
            "plugin `{}`: {method} did not finish within {} ms (limits.timeout_ms); the \
             plugin was told to give up on it",
            self.plugin,
            self.timeout.as_millis()
        ))
    }

    /// Turns a failed call's status into one that names the plugin, and
    /// says whether its process died.
    fn explain(&self, instance: &Instance, method: &str, status: tonic::Status) -> Status {
        use std::error::Error;
        let plugin = &self.plugin;
        if status
            .message()
            .contains("decoded message length too large")
        {
            return Status::resource_exhausted(format!(
                "plugin `{plugin}`: its reply to {method} is over the limit of {} bytes \
                 (limits.max_message_bytes): {}",
                self.max_message,
                status.message()
            ));
        }
        // A status the plugin returned has no source; one made on the way
        // (a connection that broke, could not be made) has.
        if status.source().is_none() {
            return outlet_rpc::from_grpc(&status);
        }
        if let Some(exit) = instance.process.wait(Duration::from_millis(100)) {
            return Status::unavailable(format!(
                "plugin `{plugin}` died during {method}: it {}{}; it is being restarted",
                describe(Some(&exit)),
                instance.process.last_words()
            ));
        }
        Status::unavailable(format!(
            "plugin `{plugin}`: {method} could not reach it: {}",
            status.message()
        ))
    }
}

impl Instance {
    /// Starts a process and connects to it, within the start timeout.
    fn start(shared: &Arc<Shared>, restarts: u32) -> Result<Arc<Instance>, String> {
        let started = Instant::now();
        let deadline = started + shared.spawn.start_timeout;
        // The reaper reports to the backend, if it still exists, and only
        // about the instance it belongs to.
        let slot: Arc<OnceLock<Weak<Instance>>> = Arc::default();
        let (weak_shared, reported) = (Arc::downgrade(shared), slot.clone());
        let on_exit = move |status| {
            let status = describe(Some(&status));
            if let (Some(shared), Some(dead)) = (
                weak_shared.upgrade(),
                reported.get().and_then(Weak::upgrade),
            ) {
                shared.died(&dead, status);
            }
        };
        let identity = match shared.auto_mtls {
            true => {
                Some(Identity::generate().map_err(|e| format!("cannot set up mutual TLS: {e}"))?)
            }
            false => None,
        };
        let (process, line) = match &shared.reattach {
            Some(reattach) => {
                let version = shared.versions.iter().copied().max().unwrap_or(1);
                Process::attach(&shared.plugin, reattach, version, on_exit)?
            }
            None => Process::start(
                &shared.spawn,
                identity.as_ref().map(Identity::cert_pem),
                on_exit,
            )?,
        };
        if !shared.versions.contains(&line.app_version) {
            return Err(format!(
                "it chose interface version {}, and the manifest accepts {:?}; build it for one \
                 of those, or list its version in `versions`",
                line.app_version, shared.versions
            ));
        }
        let tls = match (&identity, &line.cert) {
            (Some(identity), Some(cert)) => Some(
                Identity::from_line(cert)
                    .and_then(|cert| identity.client_config(&cert))
                    .map_err(|e| format!("its handshake's certificate is refused: {e}"))?,
            ),
            (Some(_), None) => {
                return Err(format!(
                    "the manifest asks for mutual TLS (handshake.auto_mtls), and its handshake \
                     carries no certificate: it does not serve TLS; set auto_mtls = false, or \
                     serve it with AutoMTLS{}",
                    process.said()
                ));
            }
            (None, Some(_)) => {
                return Err(format!(
                    "it serves TLS (its handshake carries a certificate), and the manifest does \
                     not ask for it; set auto_mtls = true under [handshake]{}",
                    process.said()
                ));
            }
            (None, None) => None,
        };
        let grpc = Grpc::new(&line, tls.clone());
        let health = grpc
            .unary(
                wire::HEALTH_CHECK,
                HealthCheckRequest {
                    service: wire::HEALTH_SERVICE.into(),
                }
                .encode_to_vec(),
                usize::MAX,
                deadline,
            )
            .map_err(|e| match e.code() {
                tonic::Code::DeadlineExceeded => format!(
                    "it did not answer its health check within {} ms (limits.start_timeout_ms)",
                    shared.spawn.start_timeout.as_millis()
                ),
                _ => format!("its health check failed: {}", e.message()),
            })
            .and_then(|reply| {
                let status = HealthCheckResponse::decode(reply)
                    .map(|h| h.status)
                    .unwrap_or_default();
                match status {
                    wire::SERVING => Ok(()),
                    _ => Err(format!("its health check says {status}, not SERVING (1)")),
                }
            });
        health.map_err(|why| format!("{why}{}", process.said()))?;
        let broker = Broker::start(Offer {
            plugin: shared.plugin.clone(),
            line: line.clone(),
            socket: process.dir().join("host.sock"),
            services: shared.services.clone(),
            max_message: shared.max_message,
            dispatch: shared.dispatch.clone(),
            tls,
        })
        .map_err(|e| format!("cannot start a thread to offer it the host's services: {e}"))?;
        let instance = Arc::new(Instance {
            _broker: broker,
            process,
            grpc,
            line,
            started,
            restarts,
            idle_frames: Mutex::default(),
            stdio: AtomicBool::new(false),
        });
        // A process that dies before this finds no instance to report;
        // `Shared::run` sees its exit instead.
        let _ = slot.set(Arc::downgrade(&instance));
        Ok(instance)
    }

    /// The controller's Shutdown, a bounded wait, then SIGKILL to the group.
    fn stop(&self, plugin: &str) {
        let asked = self.grpc.unary(
            wire::SHUTDOWN,
            wire::Empty {}.encode_to_vec(),
            usize::MAX,
            Instant::now() + STOP_GRACE,
        );
        if !self.process.signallable() {
            // Attached to without a pid: asking is all the host may do.
            if let Err(e) = asked {
                tracing::warn!(
                    target: "outlet::plugin",
                    plugin,
                    "its controller's Shutdown failed: {}; it was not signalled, since the \
                     manifest names no reattach.pid",
                    e.message()
                );
            }
            return;
        }
        if self.process.wait(STOP_GRACE).is_none() {
            tracing::warn!(
                target: "outlet::plugin",
                plugin,
                "it did not exit within {} s of the controller's Shutdown ({}); killed",
                STOP_GRACE.as_secs(),
                match asked {
                    Ok(_) => "answered".into(),
                    Err(e) => format!("failed: {}", e.message()),
                }
            );
        }
        self.process.kill();
    }
}

impl Backend for Rpc {
    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        let shared = &self.shared;
        let plugin = &shared.plugin;
        if request.len() > shared.max_message {
            return Err(Status::resource_exhausted(format!(
                "plugin `{plugin}`: the request to {method} is {} bytes, over the limit of {} \
                 (limits.max_message_bytes)",
                request.len(),
                shared.max_message
            )));
        }
        let deadline = Instant::now() + shared.timeout;
        let instance = shared.instance(deadline)?;
        // Outlet's frames go on a plain Unix socket only, never around TLS.
        if shared.frames.load(Ordering::Relaxed)
            && instance.line.network == Network::Unix
            && instance.line.cert.is_none()
        {
            return match shared.call_frames(&instance, method, request, deadline) {
                // The call never reached a process that has just died: it
                // goes to the restarted one.
                Err(failed)
                    if !failed.delivered
                        && instance.process.wait(Duration::from_millis(100)).is_some() =>
                {
                    let instance = shared.instance(deadline)?;
                    shared
                        .call_frames(&instance, method, request, deadline)
                        .map_err(|failed| failed.status)
                }
                result => result.map_err(|failed| failed.status),
            };
        }
        let status =
            match instance
                .grpc
                .unary(method, request.to_vec(), shared.max_message, deadline)
            {
                Ok(reply) => return Ok(reply.into()),
                Err(status)
                    if status.code() == tonic::Code::DeadlineExceeded
                        && Instant::now() >= deadline =>
                {
                    return Err(shared.late(method));
                }
                Err(status) => status,
            };
        // A plain go-plugin plugin has no Outlet core service: Hello is
        // made up from its handshake, Health is gRPC's, Shutdown is the
        // controller's (sent on stop).
        if status.code() == tonic::Code::Unimplemented {
            match method {
                core::HELLO => {
                    return Ok(HelloResponse {
                        name: plugin.clone(),
                        version: String::new(),
                        core_versions: CORE_VERSIONS.to_vec(),
                        app_versions: vec![instance.line.app_version],
                        capabilities: Vec::new(),
                        services: vec![shared.interface.clone()],
                    }
                    .encode_to_vec());
                }
                core::HEALTH => return Ok(self.grpc_health(&instance)?.encode_to_vec()),
                core::SHUTDOWN => return Ok(Vec::new()),
                _ => {}
            }
        }
        Err(shared.explain(&instance, method, status))
    }

    fn process_id(&self) -> Option<u32> {
        match &*self.shared.lock() {
            State::Running(instance) => instance.process.pid(),
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
        let shared = &self.shared;
        let mut state = shared.lock();
        let last = std::mem::replace(&mut *state, State::Stopped);
        shared.changed.notify_all();
        // A restart under way sees `Stopped` and stops what it started:
        // wait for it, so that nothing of the plugin outlives `stop`.
        let until = Instant::now() + shared.spawn.start_timeout + MAX_BACKOFF + STOP_GRACE * 2;
        while shared.reviving.load(Ordering::Acquire) && Instant::now() < until {
            state = shared
                .changed
                .wait_timeout(state, Duration::from_millis(10))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(state);
        if let State::Running(instance) = last {
            instance.stop(&shared.plugin);
        }
    }
}

impl Rpc {
    /// Health through `grpc.health.v1`, for a plugin without Outlet's core service.
    fn grpc_health(&self, instance: &Instance) -> Result<HealthResponse, Status> {
        let request = HealthCheckRequest {
            service: wire::HEALTH_SERVICE.into(),
        };
        let reply = instance
            .grpc
            .unary(
                wire::HEALTH_CHECK,
                request.encode_to_vec(),
                usize::MAX,
                Instant::now() + self.shared.timeout,
            )
            .map_err(|status| self.shared.explain(instance, wire::HEALTH_CHECK, status))?;
        let serving = HealthCheckResponse::decode(reply).is_ok_and(|h| h.status == wire::SERVING);
        Ok(HealthResponse {
            status: if serving {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            }
            .into(),
            message: String::new(),
        })
    }
}

impl Drop for Rpc {
    /// A backend replaced by a reload goes when its last call returns.
    fn drop(&mut self) {
        self.stop();
    }
}
