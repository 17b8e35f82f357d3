//! Health checks a manifest asks for (`limits.health_interval_ms`): a thread
//! per plugin asks it for its Health (go-plugin plugins through
//! `grpc.health.v1`) every interval. A check that fails fails the plugin's
//! calls fast with `Unavailable` until one passes; `limits.health_failures`
//! failures in a row reload it (a fresh instance; for rpc, a new process).

use std::time::{Duration, Instant};

use outlet_protocol::core::{self, HealthRequest, HealthResponse, health_response::ServingStatus};
use outlet_protocol::unary;

use crate::events::EventKind;
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
    loop {
        std::thread::sleep(wait);
        wait = interval;
        // Gone or stopped: no more checks.
        let Some(plugin) = watched.upgrade().filter(|p| !p.stopped()) else {
            return;
        };
        match check(&plugin, interval) {
            Ok(()) => {
                failures = 0;
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
                        // Checked again at once: calls wait for no interval.
                        Ok(()) => wait = Duration::ZERO,
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

/// One check, within the interval or the call's limit, whichever is less.
fn check(plugin: &Plugin, interval: Duration) -> Result<(), String> {
    let limit = interval.min(plugin.manifest().limits.timeout());
    let answer: Result<HealthResponse, _> =
        crate::services::until(Some(Instant::now() + limit), || {
            unary(&*plugin.instance()?, core::HEALTH, &HealthRequest {})
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
