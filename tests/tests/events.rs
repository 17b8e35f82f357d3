//! Lifecycle events: what host code hears of its plugins' loads, deaths,
//! restarts, reloads, panics and unloads.

use std::process::Command;
use std::time::{Duration, Instant};

use outlet_host::{Event, EventKind, Events};
use outlet_manifest::Mechanism;

use crate::support::{greet, host, manifest, rpc_fixture, test_library};

/// The next event, within a few seconds.
fn next(events: &Events) -> Event {
    events
        .recv_timeout(Duration::from_secs(10))
        .expect("an event within 10 s")
}

/// The tests' library loaded as a native plugin, with `extra` in its
/// manifest, into a host of its own that is watched from before: its
/// `Loaded` is taken.
fn watched_native(
    dir: &std::path::Path,
    name: &str,
    extra: &str,
) -> (outlet_host::Host, Events, outlet_host::Plugin) {
    let host = host();
    let events = host.events();
    let plugin = host
        .load(manifest(dir, "native", name, &test_library(), extra))
        .unwrap();
    assert!(matches!(next(&events).kind, EventKind::Loaded { .. }));
    (host, events, plugin)
}

fn kill(pid: u32) {
    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
}

#[test]
fn an_rpc_plugin_that_dies_is_told_dying_restarting_and_restarted() {
    let host = host();
    let events = host.events();
    let f = rpc_fixture("watched", "", "");
    let plugin = host.load(&f.manifest).unwrap();
    let loaded = next(&events);
    assert_eq!(
        (loaded.plugin.as_str(), loaded.kind),
        (
            "watched",
            EventKind::Loaded {
                mechanism: Mechanism::Rpc
            }
        )
    );

    let pid = plugin.process_id().unwrap();
    kill(pid);
    match next(&events).kind {
        EventKind::Died {
            pid: died,
            code,
            signal,
            how,
            ..
        } => {
            assert_eq!((died, code, signal), (pid, None, Some(9)));
            assert!(how.contains("killed by signal 9"), "{how}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        next(&events).kind,
        EventKind::Restarting {
            attempt: 1,
            pause: Duration::ZERO
        }
    );
    let EventKind::Restarted { pid: new } = next(&events).kind else {
        panic!("no Restarted")
    };
    assert_ne!(new, pid);
    assert_eq!(plugin.process_id(), Some(new));
    assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");

    plugin.reload().unwrap();
    assert_eq!(next(&events).kind, EventKind::Reloaded);
    host.unload("watched").unwrap().unwrap();
    assert_eq!(next(&events).kind, EventKind::Unloaded);
    // A stop the host asked for is no death.
    assert_eq!(events.recv_timeout(Duration::from_millis(300)), None);
}

#[test]
fn an_rpc_plugin_given_up_on_is_told_why() {
    let host = host();
    let events = host.events();
    let f = rpc_fixture("fragile-rpc", "", "[limits]\nrestarts = 0\n");
    let plugin = host.load(&f.manifest).unwrap();
    assert!(matches!(next(&events).kind, EventKind::Loaded { .. }));
    kill(plugin.process_id().unwrap());
    assert!(matches!(next(&events).kind, EventKind::Died { .. }));
    match next(&events).kind {
        EventKind::GaveUp { why } => {
            assert!(
                why.contains("plugin `fragile-rpc` died") && why.contains("limits.restarts = 0"),
                "{why}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_panic_in_a_native_plugin_is_told_once_then_the_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (_host, events, plugin) =
        watched_native(dir.path(), "panicky", "[limits]\non_panic = \"reload\"\n");
    assert!(greet(&plugin, "panic").is_err());
    // A call by gRPC path that panics is told at once.
    let by_path = outlet_protocol::Transport::call(
        &plugin,
        "/outlet.examples.greeter.v1.Greeter/Greet",
        &[0x0a, 0x05, b'p', b'a', b'n', b'i', b'c'],
    );
    assert!(by_path.is_err());
    // The typed call went straight to the trait (no answer passes the
    // host): its panic was found by the next call, which on_panic answered
    // with a reload, before the call by path ran.
    assert_eq!(next(&events).kind, EventKind::Poisoned);
    assert_eq!(next(&events).kind, EventKind::Reloaded);
    assert_eq!(next(&events).kind, EventKind::Poisoned);
    // The next call finds it poisoned again, and reloads it: told once.
    assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");
    assert_eq!(next(&events).kind, EventKind::Reloaded);
    let started = Instant::now();
    assert_eq!(events.recv_timeout(Duration::from_millis(200)), None);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[test]
fn a_subscriber_that_never_reads_holds_up_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let host = host();
    let stuck = host.events_queued(1);
    let exec = crate::support::greeter_exec();
    // Many loads and unloads, each told to a queue of one that is never
    // read: none of them waits.
    let started = Instant::now();
    for i in 0..20 {
        let name = format!("quick{i}");
        host.load(manifest(dir.path(), "exec", &name, &exec, ""))
            .unwrap();
        host.unload(&name).unwrap().unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(matches!(
        stuck.try_recv().unwrap().kind,
        EventKind::Loaded { .. }
    ));
    assert_eq!(stuck.try_recv(), None);
    // Read once, it hears how many it lost, before what comes next.
    host.load(manifest(dir.path(), "exec", "last", &exec, ""))
        .unwrap();
    assert_eq!(
        stuck.try_recv().unwrap().kind,
        EventKind::Lost { count: 39 }
    );
    assert_eq!(stuck.try_recv(), None);
}

#[test]
fn a_plugin_whose_health_fails_fails_calls_fast_and_is_restarted() {
    let host = host();
    let events = host.events();
    let f = rpc_fixture(
        "checked",
        "",
        "[limits]\nhealth_interval_ms = 50\nhealth_failures = 3\n",
    );
    let plugin = host.load(&f.manifest).unwrap();
    assert!(matches!(next(&events).kind, EventKind::Loaded { .. }));
    let pid = plugin.process_id().unwrap();
    // Healthy: no event, calls served.
    assert_eq!(events.recv_timeout(Duration::from_millis(200)), None);
    assert_eq!(greet(&plugin, "sick").unwrap(), "sick");
    // Its next check answers NOT_SERVING: told, and calls fail fast.
    match next(&events).kind {
        EventKind::HealthChanged { serving, why } => {
            assert!(!serving);
            assert!(why.contains("NotServing: asked to be sick"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    // At once, not after the call's 10 s limit.
    let started = Instant::now();
    let refused = greet(&plugin, "Ada").unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(300));
    assert_eq!(
        refused.code(),
        outlet_protocol::Code::Unavailable,
        "{refused}"
    );
    assert!(
        refused
            .message()
            .contains("plugin `checked` is not serving")
            && refused.message().contains("asked to be sick"),
        "{refused}"
    );
    // Three in a row: reloaded into a new process, which serves.
    assert_eq!(next(&events).kind, EventKind::Reloaded);
    match next(&events).kind {
        EventKind::HealthChanged { serving, .. } => assert!(serving),
        other => panic!("{other:?}"),
    }
    assert_ne!(plugin.process_id().unwrap(), pid);
    assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");
    host.unload("checked").unwrap().unwrap();
    assert_eq!(next(&events).kind, EventKind::Unloaded);
}

#[test]
fn a_health_check_that_hangs_fails_without_holding_up_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let (_host, events, plugin) = watched_native(
        dir.path(),
        "slow-health",
        "[limits]\nhealth_interval_ms = 100\nhealth_failures = 1000\n",
    );
    assert_eq!(greet(&plugin, "slow-health").unwrap(), "slow");
    // Its native Health cannot be stopped: the check that asked it fails
    // after 100 ms, and so do the next while it runs (one at a time).
    let started = Instant::now();
    match next(&events).kind {
        EventKind::HealthChanged { serving, why } => {
            assert!(!serving);
            assert!(why.contains("did not answer within 100 ms"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    assert!(greet(&plugin, "Ada").is_err());
    // Once it returns, the next check passes.
    match next(&events).kind {
        EventKind::HealthChanged { serving, .. } => assert!(serving),
        other => panic!("{other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");
}
