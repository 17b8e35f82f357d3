//! SIGINT and SIGTERM stop the host the way `Host::shutdown` does: every
//! plugin asked to finish and given a grace, then the process exits with the
//! shell's status for the signal (130, 143). A command's host is shut down
//! the same way when the command ends, by its [`Guard`], so that nothing of
//! its plugins is left behind whatever way it ends; a command that ends
//! while a signal's shutdown is under way waits for that to exit instead.

use std::sync::Mutex;
use std::time::Duration;

use outlet_host::Host;
use tokio::signal::unix::{SignalKind, signal};

/// How long the plugins get to finish.
const GRACE: Duration = Duration::from_secs(2);

/// Held by whoever shuts the host down and exits: the signal's thread, or
/// the command ending.
static EXITING: Mutex<()> = Mutex::new(());

/// Shuts the host down when the command ends.
#[must_use = "the host is shut down when the guard goes"]
pub struct Guard(Host);

impl Drop for Guard {
    fn drop(&mut self) {
        // A signal's shutdown under way holds this until the process exits.
        let _exiting = EXITING.lock().unwrap_or_else(|e| e.into_inner());
        report(&self.0);
    }
}

/// Shuts `host` down and exits on the first SIGINT or SIGTERM, and when
/// the returned guard goes.
pub fn stop_on_signals(host: &Host) -> anyhow::Result<Guard> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    // Registered now, on this thread: a signal from here on is ours.
    let (mut interrupt, mut terminate) = runtime.block_on(async {
        anyhow::Ok((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;
    let stopped = host.clone();
    std::thread::Builder::new()
        .name("outlet-signals".into())
        .spawn(move || {
            let status = runtime.block_on(async {
                tokio::select! {
                    _ = interrupt.recv() => 130,
                    _ = terminate.recv() => 143,
                }
            });
            let _exiting = EXITING.lock().unwrap_or_else(|e| e.into_inner());
            report(&stopped);
            std::process::exit(status);
        })?;
    Ok(Guard(host.clone()))
}

/// Shuts `host` down, saying on stderr what did not go well.
fn report(host: &Host) {
    for (plugin, answer) in host.shutdown(GRACE) {
        if let Err(status) = answer {
            eprintln!("outlet: plugin `{plugin}`: {}", status.message());
        }
    }
}
