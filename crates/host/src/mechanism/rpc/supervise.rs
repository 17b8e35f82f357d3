//! Supervision of an rpc plugin: its process is reaped by a thread of its
//! own, so its death is noticed at once; calls wait while it is restarted
//! (the first time at once, then with a doubling pause), until
//! `limits.restarts` starts in a row have failed; then calls fail fast until
//! the plugin is reloaded. A plugin the host attached to is never
//! restarted.

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use outlet_protocol::Status;
use outlet_protocol::context::Cancel;
use outlet_protocol::core;
use outlet_protocol::prost::Message;

use super::Shared;
use super::error::{ProcessExit, RpcError};
use super::instance::{Instance, STOP_GRACE};
use crate::events::EventKind;
use crate::log::Limiter;

/// The pause before the second restart in a row; it doubles after that.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest pause between restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A plugin that ran this long before dying starts its count of restarts afresh.
const STABLE: Duration = Duration::from_secs(10);

/// Where the plugin is in its life.
pub(super) enum State {
    /// This process serves the plugin's calls.
    Running(Arc<Instance>),
    /// The process died; a new one is being started.
    Restarting,
    /// It died and could not be restarted: why.
    Failed(String),
    /// The host stopped it.
    Stopped,
}

impl Shared {
    /// The plugin's state; a lock that a panic poisoned is taken all the same.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The running instance; waits (until `deadline`) while a restart is
    /// under way.
    pub(super) fn instance(
        &self,
        deadline: Instant,
        cancel: Option<&Cancel>,
    ) -> Result<Arc<Instance>, Status> {
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
                    // Waited for no longer than its caller does.
                    if cancel.is_some_and(Cancel::is_cancelled) {
                        return Err(Status::cancelled(format!(
                            "plugin `{}`: the call was cancelled by its caller while the \
                             plugin was being restarted",
                            self.plugin
                        )));
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Status::unavailable(format!(
                            "plugin `{}` died and is being restarted; it was not back within \
                             {}",
                            self.plugin,
                            crate::services::limit_hit(self.timeout.as_millis() as u64)
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
    pub(super) fn run(&self, instance: Arc<Instance>) -> Result<bool, RpcError> {
        let mut state = self.lock();
        if matches!(*state, State::Stopped) {
            drop(state);
            instance.stop(&self.plugin, STOP_GRACE);
            return Ok(false);
        }
        if let Some(exit) = instance.process.wait(Duration::ZERO) {
            return Err(RpcError::Died {
                exit,
                stderr: instance.process.last_stderr(),
            });
        }
        // A restart, counted before the new process can be seen serving.
        if instance.restarts > 0 {
            self.meter.restarted();
        }
        *state = State::Running(instance);
        drop(state);
        self.changed.notify_all();
        Ok(true)
    }

    /// A go-plugin plugin (not Outlet's frames) of 1.4 or later sends its
    /// stdout and stderr over a stream: read it into the log, once per process.
    pub(super) fn read_stdio(&self) {
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
        let mut limit = Limiter::new("stdio stream");
        let (named, warned) = (plugin.clone(), dispatch.clone());
        let weak = Arc::downgrade(&instance);
        let alive = move || {
            weak.upgrade()
                .is_some_and(|instance| instance.process.wait(Duration::ZERO).is_none())
        };
        let read = instance.grpc.stream_stdio(
            alive,
            move |line| {
                tracing::dispatcher::with_default(&dispatch, || limit.log(&plugin, line));
            },
            move |error| {
                tracing::dispatcher::with_default(&warned, || {
                    tracing::warn!(
                        target: "outlet::plugin",
                        plugin = named,
                        "cannot read its stdio stream: {error}"
                    );
                });
            },
        );
        if let Err(error) = read {
            tracing::warn!(
                target: "outlet::plugin",
                plugin = self.plugin,
                "cannot read its stdio stream: {error}"
            );
        }
    }

    /// Gives a restarted plugin the config the host holds for it.
    fn configure(&self, instance: &Instance) -> Result<(), RpcError> {
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
                None,
            )
            .map(drop)
            .map_err(|e| RpcError::Config {
                status: outlet_rpc::from_grpc(&e),
            })
    }

    /// The process of `dead` ended: restart the plugin unless it was
    /// stopped or replaced, or restarting it has failed too often.
    pub(super) fn died(self: &Arc<Shared>, dead: &Instance, exit: ProcessExit) {
        {
            let mut state = self.lock();
            match &*state {
                State::Running(current) if std::ptr::eq(&**current, dead) => {}
                _ => return,
            }
            *state = State::Restarting;
            self.reviving.store(true, Ordering::Release);
        }
        // Made only for a subscriber: its stderr may take a moment.
        self.events.emit_with(&self.plugin, || {
            let (code, signal) = match &exit {
                ProcessExit::Status(status) => {
                    use std::os::unix::process::ExitStatusExt;
                    (status.code(), status.signal())
                }
                ProcessExit::Unknown(_) => (None, None),
            };
            EventKind::Died {
                pid: dead.process.pid().unwrap_or_default(),
                code,
                signal,
                how: exit.to_string(),
                stderr: dead.process.last_stderr(),
            }
        });
        self.revive(dead, &exit);
        self.reviving.store(false, Ordering::Release);
        self.changed.notify_all();
    }

    /// Restarts the plugin, as `died` says.
    fn revive(self: &Arc<Shared>, dead: &Instance, exit: &ProcessExit) {
        if let Some(reattach) = &self.reattach {
            self.give_up(format!(
                "plugin `{}`, attached to at {}, {exit}; the host did not start it, so it \
                 does not restart it: start the plugin again and reload it (Plugin::reload)",
                self.plugin, reattach.address
            ));
            return;
        }
        tracing::error!(
            target: "outlet::plugin",
            plugin = self.plugin,
            "its process {exit}; restarting it"
        );
        // A plugin that dies soon after a restart, having served no call,
        // continues the count.
        let mut attempts =
            if dead.started.elapsed() >= STABLE || dead.served.load(Ordering::Relaxed) {
                0
            } else {
                dead.restarts
            };
        let mut last = format!("it {exit}");
        let mut pause = Duration::ZERO;
        loop {
            if attempts >= self.restarts {
                self.give_up(format!(
                    "plugin `{}` died, and was restarted {attempts} times in a row \
                     (limits.restarts = {}); the last time, {last}; fix the plugin and reload \
                     it (Plugin::reload)",
                    self.plugin, self.restarts
                ));
                return;
            }
            attempts += 1;
            self.events.emit(
                &self.plugin,
                EventKind::Restarting {
                    attempt: attempts,
                    pause,
                },
            );
            if !self.back_off(pause) {
                return;
            }
            pause = (pause * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
            match self.restart(attempts) {
                Ok(true) => {
                    self.read_stdio();
                    tracing::info!(target: "outlet::plugin", plugin = self.plugin, "restarted");
                    let pid = match &*self.lock() {
                        State::Running(instance) => instance.process.pid().unwrap_or_default(),
                        _ => 0,
                    };
                    self.events.emit(&self.plugin, EventKind::Restarted { pid });
                    return;
                }
                Ok(false) => return,
                Err(why) => {
                    tracing::warn!(
                        target: "outlet::plugin",
                        plugin = self.plugin,
                        "restart failed: {why}"
                    );
                    last = why.to_string();
                }
            }
        }
    }

    /// Waits `pause`, cut short by a stop: whether the plugin is still to
    /// be restarted.
    fn back_off(&self, pause: Duration) -> bool {
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
        !matches!(*state, State::Stopped)
    }

    /// Starts a new process, gives it the config the host holds, and makes
    /// it the running one, as [`Shared::run`] says.
    fn restart(self: &Arc<Shared>, attempts: u32) -> Result<bool, RpcError> {
        let instance = Instance::start(self, attempts)?;
        self.configure(&instance)?;
        self.run(instance)
    }

    /// Gives up on the plugin, unless it was stopped: calls fail with `why`
    /// until it is reloaded.
    fn give_up(&self, why: String) {
        let mut state = self.lock();
        if matches!(*state, State::Stopped) {
            return;
        }
        tracing::error!(target: "outlet::plugin", plugin = self.plugin, "{why}");
        *state = State::Failed(why.clone());
        drop(state);
        self.changed.notify_all();
        self.events.emit(&self.plugin, EventKind::GaveUp { why });
    }

    /// Stops the plugin for good: the running instance, and any restart
    /// under way.
    pub(super) fn stop(&self, grace: Duration) {
        let mut state = self.lock();
        let last = std::mem::replace(&mut *state, State::Stopped);
        self.changed.notify_all();
        // A restart under way sees `Stopped` and stops what it started:
        // wait for it, so that nothing of the plugin outlives `stop`.
        let until = Instant::now() + self.spawn.start_timeout + MAX_BACKOFF + STOP_GRACE * 2;
        while self.reviving.load(Ordering::Acquire) && Instant::now() < until {
            state = self
                .changed
                .wait_timeout(state, Duration::from_millis(10))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(state);
        if let State::Running(instance) = last {
            instance.stop(&self.plugin, grace);
        }
    }
}
