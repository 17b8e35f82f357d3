//! The rpc greeter under four callers while it is SIGKILLed every 25 ms:
//! how long after each kill a call is answered again. The callers count
//! what they got; a wrong answer, or a failure other than `Unavailable`,
//! fails the run. (The greeter, not the KV plugin: a restarted KV plugin
//! has lost what was put, a greeter always answers the same.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use greeter::{GreetRequest, GreeterClient};
use outlet_host::Plugin;
use outlet_protocol::Code;

/// How often the plugin is killed.
const EVERY: Duration = Duration::from_millis(25);
const CALLERS: usize = 4;

/// What a run saw: the time from each kill to the next answer, and the
/// calls answered and failed.
pub struct Stressed {
    pub recovered: Vec<Duration>,
    pub answered: u64,
    pub failed: u64,
}

/// Kills the greeter `plugin`'s process every 25 ms for `length` while four
/// threads greet through it.
pub fn run(plugin: &Plugin, length: Duration) -> anyhow::Result<Stressed> {
    let epoch = Instant::now();
    // When a call was last answered, in ns since `epoch`.
    let last_answer = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let client = plugin.client::<GreeterClient<_>>();
            let (last_answer, stop) = (last_answer.clone(), stop.clone());
            std::thread::spawn(move || -> anyhow::Result<(u64, u64)> {
                let client = client?;
                let (mut answered, mut failed) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let ada = GreetRequest { name: "Ada".into() };
                    match client.greet(ada) {
                        Ok(got) => {
                            anyhow::ensure!(
                                got.message == "Hello, Ada!",
                                "a wrong answer: {got:?}"
                            );
                            answered += 1;
                            let now = epoch.elapsed().as_nanos() as u64;
                            last_answer.fetch_max(now, Ordering::Relaxed);
                        }
                        Err(status) if status.code() == Code::Unavailable => failed += 1,
                        Err(status) => anyhow::bail!("a call failed otherwise: {status}"),
                    }
                }
                Ok((answered, failed))
            })
        })
        .collect();
    let mut recovered = Vec::new();
    let mut killing = || -> anyhow::Result<()> {
        while epoch.elapsed() < length {
            std::thread::sleep(EVERY);
            let Some(old) = plugin.process_id() else {
                continue;
            };
            let pid = rustix::process::Pid::from_raw(old as i32).context("a pid of 0")?;
            if rustix::process::kill_process(pid, rustix::process::Signal::KILL).is_err() {
                continue;
            }
            let killed = epoch.elapsed();
            // Serving again: an answer once the new process is in place
            // (not one the old one sent before it died).
            let mut replaced = None;
            let back = loop {
                if replaced.is_none() && plugin.process_id().is_some_and(|new| new != old) {
                    replaced = Some(epoch.elapsed());
                }
                let answer = Duration::from_nanos(last_answer.load(Ordering::Relaxed));
                if let Some(replaced) = replaced
                    && answer > replaced
                {
                    break answer - killed;
                }
                anyhow::ensure!(
                    epoch.elapsed() - killed < Duration::from_secs(5),
                    "the plugin was not serving again within 5 s of a kill"
                );
                std::thread::sleep(Duration::from_micros(100));
            };
            recovered.push(back);
        }
        Ok(())
    };
    let killed = killing();
    stop.store(true, Ordering::Relaxed);
    let (mut answered, mut failed) = (0, 0);
    for caller in callers {
        let (a, f) = caller
            .join()
            .map_err(|_| anyhow::anyhow!("a caller panicked"))??;
        answered += a;
        failed += f;
    }
    killed?;
    Ok(Stressed {
        recovered,
        answered,
        failed,
    })
}
