//! Extism beside the wasm rows: `bench/extism`'s program measures the same
//! greet through Extism (see `bench/extism/README.md`). The machine's speed
//! drifts within a run, and Extism runs in a process of its own, so the two
//! are measured in rounds: Extism's program, then the Rust guest's Greet and
//! a fresh instance here, five times over. Each row is the median of its
//! rounds' medians (and p99s); each comparison the median of the rounds'
//! ratios, each taken within one round.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use outlet_host::Host;
use outlet_manifest::Manifest;

use super::greet::in_process;
use super::report::{Report, Row, human};
use super::stats::{Summary, middle};
use super::wasm::fresh_instances;

const ROUNDS: usize = 5;

/// What the program measures.
const MEASURED: [&str; 5] = [
    "extism call",
    "extism create",
    "extism create+call",
    "extism compile",
    "direct greet",
];

/// What one round measured: Extism's rows, and here the Rust guest's Greet
/// and a fresh instance.
struct Round {
    theirs: HashMap<&'static str, Summary>,
    greet: Summary,
    fresh: Summary,
}

pub fn rows(
    host: &Host,
    manifests: &Path,
    dir: &Path,
    calls: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    let program = dir.join("target/release/extism-bench");
    let guest = dir.join("guest/target/wasm32-unknown-unknown/release/extism_greet_guest.wasm");
    for file in [&program, &guest] {
        anyhow::ensure!(
            file.exists(),
            "{} is missing: build it as bench/extism/README.md says, or run scripts/bench.sh",
            file.display()
        );
    }
    let file = manifests.join("wasm-rust.toml");
    let manifest = Manifest::load(&file)?;
    let per_round = (calls / ROUNDS).max(10);
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        rounds.push(Round {
            theirs: theirs(&program, &guest, per_round)?,
            greet: in_process(host, &file, per_round, "wasm", "", "")?.samples,
            fresh: fresh_instances(host, &manifest, per_round)?,
        });
    }
    push_rows(&rounds, report);
    compare(&rounds, report);
    Ok(())
}

/// One run of Extism's program: every row of [`MEASURED`].
fn theirs(
    program: &Path,
    guest: &Path,
    calls: usize,
) -> anyhow::Result<HashMap<&'static str, Summary>> {
    let out = Command::new(program)
        .arg(guest)
        .arg(calls.to_string())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} failed: {}",
        program.display(),
        out.status
    );
    let mut measured = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let row: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{} printed {line:?}", program.display()))?;
        let ns = |key: &str| Duration::from_nanos(row[key].as_u64().unwrap_or_default());
        let summary = Summary {
            median: ns("median_ns"),
            p99: ns("p99_ns"),
        };
        measured.insert(row["row"].as_str().unwrap_or_default().to_owned(), summary);
    }
    MEASURED
        .iter()
        .map(|&name| {
            let summary = measured.get(name).copied();
            let summary = summary
                .with_context(|| format!("{} did not measure `{name}`", program.display()))?;
            Ok((name, summary))
        })
        .collect()
}

/// The middle of the rounds' medians, and of their p99s.
fn across(rounds: &[Round], pick: impl Fn(&Round) -> Summary) -> Summary {
    Summary {
        median: middle(rounds.iter().map(|r| pick(r).median).collect()),
        p99: middle(rounds.iter().map(|r| pick(r).p99).collect()),
    }
}

/// Extism's row `name` across the rounds; every round holds every row of
/// [`MEASURED`].
fn their(rounds: &[Round], name: &str) -> Summary {
    across(rounds, |r| r.theirs[name])
}

fn push_rows(rounds: &[Round], report: &mut Report) {
    let usual = "Extism, the most used WASM plugin runtime (wasmtime)";
    report.rows.extend([
        Row {
            mechanism: "extism",
            case: "Greet, Plugin::call, warm plugin",
            usual,
            samples: their(rounds, "extism call"),
            baseline: Some(("bare format! greet", their(rounds, "direct greet"))),
        },
        Row {
            mechanism: "extism",
            case: "Plugin::new_from_compiled",
            usual,
            samples: their(rounds, "extism create"),
            baseline: None,
        },
        Row {
            mechanism: "extism",
            case: "new_from_compiled + first call",
            usual,
            samples: their(rounds, "extism create+call"),
            baseline: None,
        },
        Row {
            mechanism: "extism",
            case: "compile (CompiledPlugin::new)",
            usual,
            samples: their(rounds, "extism compile"),
            baseline: None,
        },
    ]);
}

/// Outlet's wasm against Extism: each ratio taken within a round, and the
/// comparison their median.
fn compare(rounds: &[Round], report: &mut Report) {
    let ratio = |pair: &dyn Fn(&Round) -> (Duration, Duration)| {
        let ratios = rounds.iter().map(|r| {
            let (theirs, ours) = pair(r);
            theirs.as_secs_f64() / ours.as_secs_f64()
        });
        middle(ratios.collect())
    };
    let greet = ratio(&|r| (r.theirs["extism call"].median, r.greet.median));
    let instance = ratio(&|r| (r.theirs["extism create"].median, r.fresh.median));
    // Extism's create leaves instantiating the guest to the first call; set
    // that pair against a fresh instance and a Greet.
    let instance_call = ratio(&|r| {
        (
            r.theirs["extism create+call"].median,
            r.fresh.median + r.greet.median,
        )
    });
    let warm = across(rounds, |r| r.greet).median;
    let fresh = across(rounds, |r| r.fresh).median;
    report.notes.push(format!(
        "wasm vs extism, in {ROUNDS} interleaved rounds (medians of the rounds): Greet (Rust \
         guests) {} against {}, {greet:.1}x faster; a fresh instance {} against \
         new_from_compiled's {}, {instance:.1}x faster; a fresh instance and a Greet \
         {instance_call:.1}x faster than new_from_compiled and its first call (each ratio \
         taken within a round)",
        human(warm),
        human(their(rounds, "extism call").median),
        human(fresh),
        human(their(rounds, "extism create").median),
    ));
    report.extra.insert(
        "wasm_vs_extism".into(),
        serde_json::json!({
            "rounds": ROUNDS,
            "ours_greet_ns": warm.as_nanos() as u64,
            "ours_fresh_instance_ns": fresh.as_nanos() as u64,
            "greet_times_faster": greet,
            "instance_times_faster_than_create": instance,
            "instance_times_faster_than_create_and_first_call": instance_call,
        }),
    );
}
