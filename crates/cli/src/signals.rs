//! SIGINT and SIGTERM stop the host the way `Host::shutdown` does: every
//! plugin asked to finish and given a grace, then the process exits with the
//! shell's status for the signal (130, 143).

use std::time::Duration;

use outlet_host::Host;
use tokio::signal::unix::{SignalKind, signal};

/// How long the plugins get to finish after a signal.
const GRACE: Duration = Duration::from_secs(2);

/// Shuts `host` down and exits on the first SIGINT or SIGTERM.
pub fn stop_on_signals(host: &Host) -> anyhow::Result<()> {
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
    let host = host.clone();
    std::thread::Builder::new()
        .name("outlet-signals".into())
        .spawn(move || {
            let status = runtime.block_on(async {
                tokio::select! {
                    _ = interrupt.recv() => 130,
                    _ = terminate.recv() => 143,
                }
            });
            for (plugin, answer) in host.shutdown(GRACE) {
                if let Err(status) = answer {
                    eprintln!("outlet: plugin `{plugin}`: {}", status.message());
                }
            }
            std::process::exit(status);
        })?;
    Ok(())
}
