//! exec: a Greet round trip, one process per call, unconfined and in the
//! OS sandbox of `sandboxed` trust, against spawning `/bin/true` and
//! waiting for it, the three alternating call by call; and the check of the
//! artifact before each call, against the call.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;
use greeter::GreeterClient;
use outlet_host::Host;

use super::greet::request;
use super::report::{Report, Row};
use super::stats::Summary;

/// The usual figure for a one-shot child process.
pub const USUAL: &str = "exec.Command (one-shot) ~5 ms (fork+exec)";

pub fn rows(
    host: &Host,
    manifests: &Path,
    calls: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    let file = manifests.join("exec.toml");
    let plugin = host
        .load(&file)
        .with_context(|| format!("loading {}", file.display()))?;
    let greeter = plugin.client::<GreeterClient<_>>()?;
    let mut sandboxed = super::checks::pinned(plugin.manifest())?;
    sandboxed.name = "greeter-exec-sandboxed".into();
    sandboxed.trust = outlet_manifest::Trust::Sandboxed;
    sandboxed.sandbox = true;
    let boxed = host
        .load_manifest(sandboxed)
        .context("loading the exec greeter in the OS sandbox")?;
    let boxed_greeter = boxed.client::<GreeterClient<_>>()?;
    let request = request();
    let spawn = || -> anyhow::Result<()> {
        let status = Command::new("/bin/true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("spawning /bin/true")?;
        anyhow::ensure!(status.success(), "/bin/true failed: {status}");
        Ok(())
    };
    for _ in 0..calls / 10 {
        spawn()?;
        greeter.greet(request.clone())?;
        boxed_greeter.greet(request.clone())?;
    }
    let mut base = Vec::with_capacity(calls);
    let (mut ours, mut confined) = (base.clone(), base.clone());
    for _ in 0..calls {
        let started = Instant::now();
        spawn()?;
        base.push(started.elapsed());
        let started = Instant::now();
        greeter.greet(request.clone())?;
        ours.push(started.elapsed());
        let started = Instant::now();
        boxed_greeter.greet(request.clone())?;
        confined.push(started.elapsed());
    }
    host.unload(boxed.name());
    let checks = super::checks::samples(plugin.manifest(), calls, report)?;
    host.unload(plugin.name());
    let usual = USUAL;
    let (call, base) = (Summary::of(ours), Summary::of(base));
    report.rows.push(Row {
        mechanism: "exec",
        case: "Greet, one process per call",
        usual,
        samples: call,
        baseline: Some(("spawn /bin/true", base)),
    });
    report.rows.push(Row {
        mechanism: "exec",
        case: "Greet in the OS sandbox (untrusted)",
        usual,
        samples: Summary::of(confined),
        baseline: Some(("spawn /bin/true", base)),
    });
    report.rows.push(Row {
        mechanism: "exec",
        case: "checks before a call, pinned",
        usual,
        samples: Summary::of(checks),
        baseline: Some(("the call", call)),
    });
    Ok(())
}
