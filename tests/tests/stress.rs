//! An rpc plugin under load while it is killed over and over, then while it
//! is reloaded over and over: counts, not times (`outlet bench` times it).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use outlet_host::Plugin;
use outlet_protocol::Code;

use crate::support::{greet, rpc_fixture};

/// How long the plugin is killed every 25 ms (the bench row: 20 s).
const KILLING: Duration = Duration::from_secs(5);
const CALLERS: usize = 4;

/// What the callers saw.
#[derive(Debug, Default)]
struct Seen {
    answers: u64,
    wrong: Vec<String>,
    failed: BTreeMap<String, u64>,
}

/// Four threads greeting the plugin until `stop`.
fn callers(plugin: &Plugin, stop: &Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<Seen>> {
    (0..CALLERS)
        .map(|_| {
            let (plugin, stop) = (plugin.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = Seen::default();
                while !stop.load(Ordering::Relaxed) {
                    match greet(&plugin, "Ada") {
                        Ok(answer) if answer == "Hello, Ada!" => seen.answers += 1,
                        Ok(wrong) => seen.wrong.push(wrong),
                        Err(status) => {
                            let key = match status.code() {
                                Code::Unavailable => "Unavailable".to_owned(),
                                code => format!("{code}: {}", status.message()),
                            };
                            *seen.failed.entry(key).or_default() += 1;
                        }
                    }
                }
                seen
            })
        })
        .collect()
}

fn gather(callers: Vec<std::thread::JoinHandle<Seen>>) -> Seen {
    let mut all = Seen::default();
    for caller in callers {
        let seen = caller.join().unwrap();
        all.answers += seen.answers;
        all.wrong.extend(seen.wrong);
        for (key, n) in seen.failed {
            *all.failed.entry(key).or_default() += n;
        }
    }
    all
}

/// Whether `pid` is a child of this process that nobody reaped.
fn zombie(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // After the command's parenthesized name: state, then parent.
    let mut after = stat.rsplit(") ").next().unwrap_or_default().split(' ');
    let (state, parent) = (after.next(), after.next());
    state == Some("Z") && parent == Some(&std::process::id().to_string())
}

#[test]
fn an_rpc_plugin_killed_every_25_ms_under_load_answers_right_or_unavailable() {
    let f = rpc_fixture("stressed", "", "");
    let plugin = f.load();
    let stop = Arc::new(AtomicBool::new(false));
    let running = callers(&plugin, &stop);
    let mut killed = Vec::new();
    let started = Instant::now();
    while started.elapsed() < KILLING {
        std::thread::sleep(Duration::from_millis(25));
        let Some(pid) = plugin.process_id() else {
            continue;
        };
        let target = rustix::process::Pid::from_raw(pid as i32).unwrap();
        if rustix::process::kill_process(target, rustix::process::Signal::KILL).is_err() {
            continue;
        }
        killed.push(pid);
        // Killed once: the next kill is of the process that replaces it.
        let replaced = Instant::now() + Duration::from_secs(5);
        while plugin.process_id().is_none_or(|now| now == pid) {
            assert!(Instant::now() < replaced, "not restarted within 5 s");
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let seen = gather(running);
    assert!(seen.wrong.is_empty(), "wrong answers: {:?}", seen.wrong);
    assert!(
        seen.failed.keys().all(|code| code == "Unavailable"),
        "every failed call is Unavailable: {seen:?}"
    );
    // Killed most of the time: a restart takes a few ms, the pause 25.
    assert!(killed.len() >= 100, "only {} kills", killed.len());
    assert!(seen.answers > killed.len() as u64, "{seen:?}");
    // Still serving, never given up on: each instance served before it died.
    assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");
    assert_eq!(plugin.stats().restarts, killed.len() as u64);
    let settled = Instant::now() + Duration::from_secs(2);
    while killed.iter().any(|pid| zombie(*pid)) {
        assert!(
            Instant::now() < settled,
            "a killed plugin was left a zombie"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // 200 reloads under the same load fail no call.
    let stop = Arc::new(AtomicBool::new(false));
    let running = callers(&plugin, &stop);
    for _ in 0..200 {
        plugin.reload().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let seen = gather(running);
    assert!(seen.wrong.is_empty() && seen.failed.is_empty(), "{seen:?}");
    assert!(seen.answers > 200, "{seen:?}");
    assert_eq!(plugin.stats().reloads, 200);

    plugin.shutdown().unwrap();
    f.assert_no_leftovers();
}
