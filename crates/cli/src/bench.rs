//! `outlet bench`: the seed's §9 table, measured on this machine, each
//! mechanism beside its baseline in the same run.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use greeter::{GreetRequest, GreeterClient};
use outlet_host::Host;

/// One measured row: a mechanism's round trip and, measured interleaved
/// with it, the baseline it is judged against.
struct Row {
    mechanism: &'static str,
    case: &'static str,
    seed: &'static str,
    samples: Summary,
    baseline: Option<(&'static str, Summary)>,
}

#[derive(Clone, Copy)]
struct Summary {
    median: Duration,
    p99: Duration,
}

impl Summary {
    fn of(mut samples: Vec<Duration>) -> Summary {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Summary {
            median: at(0.5),
            p99: at(0.99),
        }
    }
}

pub fn run(manifests: &Path, calls: usize, json: Option<&Path>) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        calls >= 10,
        "--calls must be at least 10 to give a median and a p99"
    );
    let host = Host::new();
    let rows = vec![exec(&host, manifests, calls)?];

    println!("Outlet bench: {calls} calls per row, each row interleaved with its baseline");
    println!(
        "{:<8} {:<36} {:>10} {:>10}  {:<28} {:>10}",
        "", "round trip", "median", "p99", "baseline (same run)", "ratio"
    );
    for row in &rows {
        let (name, ratio) = match &row.baseline {
            Some((name, base)) => (
                format!("{name} {}", human(base.median)),
                format!(
                    "{:.2}x",
                    row.samples.median.as_secs_f64() / base.median.as_secs_f64()
                ),
            ),
            None => (String::new(), String::new()),
        };
        println!(
            "{:<8} {:<36} {:>10} {:>10}  {:<28} {:>10}",
            row.mechanism,
            row.case,
            human(row.samples.median),
            human(row.samples.p99),
            name,
            ratio
        );
    }
    println!("\nseed §9 quotes, for comparison:");
    for row in &rows {
        println!("  {:<8} {}", row.mechanism, row.seed);
    }

    if let Some(file) = json {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|row| {
                let mut value = serde_json::json!({
                    "mechanism": row.mechanism,
                    "case": row.case,
                    "median_ns": row.samples.median.as_nanos() as u64,
                    "p99_ns": row.samples.p99.as_nanos() as u64,
                });
                if let Some((name, base)) = &row.baseline {
                    value["baseline"] = serde_json::json!({
                        "case": name,
                        "median_ns": base.median.as_nanos() as u64,
                        "p99_ns": base.p99.as_nanos() as u64,
                    });
                    value["ratio"] = serde_json::json!(
                        row.samples.median.as_secs_f64() / base.median.as_secs_f64()
                    );
                }
                value
            })
            .collect();
        let out = serde_json::json!({ "calls": calls, "rows": rows });
        std::fs::write(file, format!("{out:#}\n"))
            .with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// exec: a Greet round trip, one process per call, against spawning
/// `/bin/true` and waiting for it.
fn exec(host: &Host, manifests: &Path, calls: usize) -> anyhow::Result<Row> {
    let file = manifests.join("exec.toml");
    let plugin = host
        .load(&file)
        .with_context(|| format!("loading {}", file.display()))?;
    let greeter = plugin.client::<GreeterClient<_>>()?;
    let request = GreetRequest {
        name: "bench".into(),
    };
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
    }
    let (mut ours, mut base) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    for _ in 0..calls {
        let started = Instant::now();
        spawn()?;
        base.push(started.elapsed());
        let started = Instant::now();
        greeter.greet(request.clone())?;
        ours.push(started.elapsed());
    }
    plugin.shutdown()?;
    Ok(Row {
        mechanism: "exec",
        case: "Greet, one process per call",
        seed: "exec.Command (one-shot) ~5 ms (fork+exec)",
        samples: Summary::of(ours),
        baseline: Some(("spawn /bin/true", Summary::of(base))),
    })
}

fn human(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.3} ms", ns / 1e6)
    }
}
