//! The rpc rows' rounds, and go-plugin's own Go host in them. Four rounds,
//! each measuring everything: Gets through the Outlet host to the Outlet
//! plugin and to the Go plugin, in blocks; starts to first Get of each;
//! then go-plugin's Go host (`tests/go`, built into the `--go` folder) in a
//! process of its own, with the Go plugin and with the Outlet plugin. So
//! all of them share the machine's moods.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use kv::KvClient;
use outlet_host::Plugin;
use outlet_manifest::Manifest;

use super::rpc::Kv;

const ROUNDS: usize = 4;
/// Calls in a row to one plugin: each sees calls back to back, as under load.
const BLOCK: usize = 50;

/// What go-plugin's Go host measured with one plugin.
#[derive(Default)]
pub struct GoHost {
    pub gets: Vec<Duration>,
    pub starts: Vec<Duration>,
}

/// Every sample of the rounds.
#[derive(Default)]
pub struct Samples {
    /// Gets, Outlet host + Outlet plugin (Outlet's frames).
    pub frames: Vec<Duration>,
    /// The same, the plugin in the OS sandbox (`out-of-process` trust).
    pub frames_sandboxed: Vec<Duration>,
    /// Gets, Outlet host + Go plugin (gRPC).
    pub grpc: Vec<Duration>,
    pub start_outlet_plugin: Vec<Duration>,
    pub start_sandboxed: Vec<Duration>,
    pub start_go_plugin: Vec<Duration>,
    pub go_host_go_plugin: GoHost,
    pub go_host_outlet_plugin: GoHost,
}

/// Measures the rounds: `ours` is the Outlet plugin's client and manifest,
/// `boxed` the same plugin's in the OS sandbox, `theirs` the Go plugin's
/// (given `--go`, whose folder is `go`).
pub fn rounds(
    kv: &Kv,
    calls: usize,
    ours: (&KvClient<Plugin>, &Manifest),
    boxed: (&KvClient<Plugin>, &Manifest),
    theirs: Option<(&KvClient<Plugin>, &Manifest)>,
    go: Option<&Path>,
) -> anyhow::Result<Samples> {
    let starts = (calls / 100).clamp(2, 5);
    let per_round = calls.div_ceil(ROUNDS);
    let mut samples = Samples::default();
    for _ in 0..BLOCK {
        kv.get(ours.0)?;
    }
    for round in 0..ROUNDS {
        for _ in 0..per_round.div_ceil(BLOCK) {
            for _ in 0..BLOCK {
                samples.frames.push(kv.get(ours.0)?);
            }
            for _ in 0..BLOCK {
                samples.frames_sandboxed.push(kv.get(boxed.0)?);
            }
            if let Some((go_kv, _)) = theirs {
                for _ in 0..BLOCK {
                    samples.grpc.push(kv.get(go_kv)?);
                }
            }
        }
        for i in 0..starts {
            samples
                .start_outlet_plugin
                .push(kv.first(ours.1, round * starts + i)?);
            samples
                .start_sandboxed
                .push(kv.first(boxed.1, round * starts + i)?);
            if let Some((_, go_manifest)) = theirs {
                samples
                    .start_go_plugin
                    .push(kv.first(go_manifest, round * starts + i)?);
            }
        }
        if let (Some(dir), Some(_)) = (go, theirs) {
            for (plugin, into) in [
                (dir.join("kv-go-plugin"), &mut samples.go_host_go_plugin),
                (ours.1.path.clone(), &mut samples.go_host_outlet_plugin),
            ] {
                let measured = go_host(dir, &plugin, per_round)?;
                into.gets.extend(measured.gets);
                into.starts.extend(measured.starts);
            }
        }
    }
    Ok(samples)
}

/// go-plugin's Go host from `dir`, with `plugin`: every sample it took,
/// Gets and starts.
fn go_host(dir: &Path, plugin: &Path, calls: usize) -> anyhow::Result<GoHost> {
    let calls = calls.to_string();
    let row = run_go(&dir.join("kv-go-host"), plugin, &["bench", &calls])?;
    let samples = |key: &str| -> Vec<Duration> {
        row[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|ns| ns.as_u64().map(Duration::from_nanos))
            .collect()
    };
    Ok(GoHost {
        gets: samples("get_ns"),
        starts: samples("start_ns"),
    })
}

/// Runs a Go program of `tests/go` with `plugin` and `args`: the JSON it
/// printed.
pub fn run_go(program: &Path, plugin: &Path, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let out = Command::new(program)
        .arg(plugin)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| {
            format!(
                "running {}; build it with tests/go/build.sh",
                program.display()
            )
        })?;
    anyhow::ensure!(
        out.status.success(),
        "{} failed: {}",
        program.display(),
        out.status
    );
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "{} printed {:?}",
            program.display(),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
