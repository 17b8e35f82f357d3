//! Health checks a manifest asks for (`limits.health_interval_ms`): a thread
//! per plugin asks it for its Health (go-plugin plugins through
//! `grpc.health.v1`) every interval. A check that fails fails the plugin's
//! calls fast with `Unavailable` until one passes; `limits.health_failures`
//! failures in a row reload it (a fresh instance; for rpc, a new process).

use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use outlet_protocol::core::{self, HealthRequest, HealthResponse, health_response::ServingStatus};
use outlet_protocol::unary;

use crate::events::EventKind;
use crate::mechanism::Backend;
use crate::plugin::{Plugin, WeakPlugin};

/// Checks `plugin` every `interval` for as long as it is loaded.
pub(crate) fn watch(plugin: &Plugin, interval: Duration) {
    let (watched, name) = (plugin.downgrade(), plugin.name().to_owned());
    let spawned = std::thread::Builder::new()
        .name(format!("outlet-health-{name}"))
        .spawn(move || checks(&watched, interval));
    if let Err(error) = spawned {
        tracing::error!(target: "outlet::plugin", plugin = name, "no health checks: {error}");
    }
}

fn checks(watched: &WeakPlugin, interval: Duration) {
    let mut failures = 0;
    let mut wait = interval;
    // Whether it was reloaded for its health since its last check passed.
    let mut reloaded = false;
    // A check that has not answered yet: one at a time.
    let mut pending = None;
    loop {
        std::thread::sleep(wait);
        wait = interval;
        // Gone or stopped: no more checks.
        let Some(plugin) = watched.upgrade().filter(|p| !p.stopped()) else {
            return;
        };
        match check(&plugin, interval, &mut pending) {
            Ok(()) => {
                (failures, reloaded) = (0, false);
                plugin.set_health(None);
            }
            Err(why) => {
                failures += 1;
                let limit = plugin.manifest().limits.health_failures;
                plugin.set_health(Some(format!(
                    "its health check failed ({failures} of {limit} in a row before it is \
                     restarted): {why}"
                )));
                if failures >= limit {
                    failures = 0;
                    match plugin.reload() {
                        // The first time, checked again at once: calls wait
                        // for no interval. Reloads in a row wait for one.
                        Ok(()) if !reloaded => {
                            (wait, reloaded) = (Duration::ZERO, true);
                        }
                        Ok(()) => {}
                        Err(_) if plugin.stopped() => return,
                        Err(error) => tracing::error!(
                            target: "outlet::plugin",
                            plugin = plugin.name(),
                            "its health check failed {limit} times in a row, and reloading it \
                             failed: {error}"
                        ),
                    }
                }
            }
        }
    }
}

/// A check that has not answered: the instance it asked, by its count of
/// reloads, and where its answer will come.
type Pending = (u64, Receiver<Result<(), String>>);

/// One check, on a thread of its own (a native plugin's Health is its own
/// code, which cannot be stopped), answered within the interval or the
/// call's limit, whichever is less; a check of the same instance still
/// running when the next is due fails that one too.
fn check(plugin: &Plugin, interval: Duration, pending: &mut Option<Pending>) -> Result<(), String> {
    if let Some((instance, asked)) = pending.take()
        && instance == plugin.reloads()
        && let Err(TryRecvError::Empty) = asked.try_recv()
    {
        *pending = Some((instance, asked));
        return Err("its last health check has not answered yet".into());
    }
    // Only the instance goes to the thread: a check that never returns
    // keeps no plugin loaded.
    let instance = plugin.reloads();
    let backend = plugin.instance().map_err(|s| s.message().to_owned())?;
    if backend.poisoned() {
        return Err("a call panicked in it".into());
    }
    let limit = interval.min(plugin.manifest().limits.timeout());
    let until = Instant::now() + limit;
    let (answer, asked) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("outlet-check-{}", plugin.name()))
        .spawn(move || {
            let _ = answer.send(ask(&**backend, until));
        })
        .map_err(|e| format!("no thread to check it on: {e}"))?;
    let left = until.saturating_duration_since(Instant::now());
    match asked.recv_timeout(left + Duration::from_millis(50)) {
        Ok(answer) => answer,
        Err(RecvTimeoutError::Timeout) => {
            *pending = Some((instance, asked));
            Err(format!("it did not answer within {} ms", limit.as_millis()))
        }
        Err(RecvTimeoutError::Disconnected) => Err("the check ended with no answer".into()),
    }
}

/// Asks `backend`, by `until`.
fn ask(backend: &dyn Backend, until: Instant) -> Result<(), String> {
    let answer: Result<HealthResponse, _> = crate::services::until(Some(until), || {
        unary(backend, core::HEALTH, &HealthRequest {})
    });
    match answer {
        Ok(health) if health.status() == ServingStatus::Serving => Ok(()),
        Ok(health) if health.message.is_empty() => {
            Err(format!("it answered {:?}", health.status()))
        }
        Ok(health) => Err(format!(
            "it answered {:?}: {}",
            health.status(),
            health.message
        )),
        Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
    }
}

/// What a change of health tells subscribers.
pub(crate) fn changed(why: Option<&str>) -> EventKind {
    EventKind::HealthChanged {
        serving: why.is_none(),
        why: why.unwrap_or("its health check passed").to_owned(),
    }
}
