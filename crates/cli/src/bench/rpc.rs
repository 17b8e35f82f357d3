//! rpc: go-plugin's KV example, a `Get` of a 64-byte value. An Outlet host
//! with the Outlet plugin (Outlet's frames) and, given `--go`, with the Go
//! plugin (gRPC); go-plugin's own Go host with the Go plugin and with the
//! Outlet plugin, in processes of their own, all measured in rounds (see
//! [`super::go`]). Then start to first call, and a restart after SIGKILL.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use kv::{GetRequest, KvClient, PutRequest};
use outlet_host::{Host, Plugin};
use outlet_manifest::Manifest;

use super::go;
use super::report::{Report, Row};
use super::stats::Summary;

/// The KV plugin as the rows use it: one key, holding 64 bytes.
pub struct Kv<'a> {
    host: &'a Host,
    key: String,
    value: Vec<u8>,
}

impl Kv<'_> {
    /// Loads the plugin and puts the value.
    fn load(&self, manifest: &Manifest) -> anyhow::Result<(Plugin, KvClient<Plugin>)> {
        let plugin = self
            .host
            .load_manifest(manifest.clone())
            .with_context(|| format!("loading {}", manifest.path.display()))?;
        let kv = plugin.client::<KvClient<_>>()?;
        kv.put(PutRequest {
            key: self.key.clone(),
            value: self.value.clone(),
        })?;
        Ok((plugin, kv))
    }

    /// One timed Get, which must return the value.
    pub fn get(&self, kv: &KvClient<Plugin>) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let got = kv.get(GetRequest {
            key: self.key.clone(),
        })?;
        let took = started.elapsed();
        anyhow::ensure!(
            got.value.len() == 64,
            "Get returned {} bytes",
            got.value.len()
        );
        Ok(took)
    }

    /// Start to first call: load (spawn, handshake, health, Hello) under a
    /// name of its own, and a Get.
    pub fn first(&self, manifest: &Manifest, i: usize) -> anyhow::Result<Duration> {
        let mut fresh = manifest.clone();
        fresh.name = format!("{}-start-{i}", manifest.name);
        let started = Instant::now();
        let plugin = self.host.load_manifest(fresh)?;
        let kv = plugin.client::<KvClient<_>>()?;
        kv.get(GetRequest {
            key: self.key.clone(),
        })?;
        let took = started.elapsed();
        self.host.unload(plugin.name());
        Ok(took)
    }
}

pub fn rows(
    host: &Host,
    manifests: &Path,
    calls: usize,
    go: Option<&Path>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let manifest = Manifest::load(manifests.join("../../kv/kv.toml"))?;
    let go_manifest = go.map(|dir| {
        let mut go = manifest.clone();
        go.name = "kv-go".into();
        go.path = dir.join("kv-go-plugin");
        go
    });
    let kv = Kv {
        host,
        key: "bench".to_owned(),
        value: vec![b'v'; 64],
    };
    // Kills in quick succession would count as a crash loop. Pinned, so
    // that each restart checks the program as a third party's would be.
    let mut killable = super::checks::pinned(&manifest)?;
    killable.limits.restarts = 100;
    let (ours, client) = kv.load(&killable)?;
    // The same plugin as a known author's on its own release cadence: in
    // the OS sandbox, as `out-of-process` trust has it by default.
    let mut sandboxed = super::checks::pinned(&manifest)?;
    sandboxed.name = "kv-sandboxed".into();
    sandboxed.trust = outlet_manifest::Trust::OutOfProcess;
    sandboxed.sandbox = true;
    let (boxed, boxed_client) = kv.load(&sandboxed)?;
    let theirs = go_manifest.as_ref().map(|m| kv.load(m)).transpose()?;
    let samples = go::rounds(
        &kv,
        calls,
        (&client, &manifest),
        (&boxed_client, &sandboxed),
        theirs
            .as_ref()
            .map(|(_, client)| client)
            .zip(go_manifest.as_ref()),
        go,
    )?;
    let restarts = restarts(&kv, &ours, &client, calls)?;
    // The greeter killed every 25 ms under four callers: 20 s at 2000
    // calls. Its grant of the host's store is not needed here.
    let length = Duration::from_millis((calls as u64 * 10).clamp(1000, 20_000));
    let mut greeter = Manifest::load(manifests.join("rpc.toml"))?;
    greeter.permissions.call.clear();
    let stressed_plugin = host.load_manifest(greeter)?;
    let stressed = super::stress::run(&stressed_plugin, length)?;
    host.unload(stressed_plugin.name());
    let checks = super::checks::samples(&manifest, calls, report)?;
    host.unload(ours.name());
    host.unload(boxed.name());
    if let Some((plugin, _)) = &theirs {
        host.unload(plugin.name());
    }
    push_rows(samples, restarts, checks, report);
    report.rows.push(Row {
        mechanism: "rpc",
        case: "killed every 25 ms, 4 callers: serving again",
        usual: "go-plugin gRPC ~50-100 µs",
        samples: Summary::of(stressed.recovered.clone()),
        baseline: None,
    });
    report.extra.insert(
        "stress".into(),
        serde_json::json!({
            "seconds": length.as_secs_f64(),
            "kills": stressed.recovered.len(),
            "answered": stressed.answered,
            "failed": stressed.failed,
        }),
    );
    report.notes.push(format!(
        "rpc: killed {} times in {:.0} s under four callers: {} calls answered right, {} \
         failed with Unavailable, none otherwise",
        stressed.recovered.len(),
        length.as_secs_f64(),
        stressed.answered,
        stressed.failed
    ));
    if go.is_none() {
        report.notes.push(
            "rpc: go-plugin's own Go host and plugin were not measured; give --go target/go \
             (scripts/bench.sh does, after tests/go/build.sh)"
                .into(),
        );
    }
    Ok(())
}

/// The rows, in the order the table shows them; a row without samples (the
/// Go plugin's, without `--go`) is left out.
fn push_rows(
    samples: go::Samples,
    restarts: Vec<Duration>,
    checks: Vec<Duration>,
    report: &mut Report,
) {
    let usual = "go-plugin gRPC ~50-100 µs";
    // go-plugin's Go host ran only given `--go`.
    let measured = !samples.go_host_go_plugin.gets.is_empty();
    let baseline = |samples: &Vec<Duration>| {
        measured.then(|| {
            (
                "go-plugin Go host + Go plugin",
                Summary::of(samples.clone()),
            )
        })
    };
    let go_get = baseline(&samples.go_host_go_plugin.gets);
    let go_start = baseline(&samples.go_host_go_plugin.starts);
    let mut row = |case, samples: Vec<Duration>, baseline| {
        if !samples.is_empty() {
            report.rows.push(Row {
                mechanism: "rpc",
                case,
                usual,
                samples: Summary::of(samples),
                baseline,
            });
        }
    };
    let go::Samples {
        frames,
        frames_sandboxed,
        grpc,
        go_host_outlet_plugin,
        start_outlet_plugin,
        start_sandboxed,
        start_go_plugin,
        ..
    } = samples;
    let unsandboxed = |samples: &Vec<Duration>| Some(("unsandboxed", Summary::of(samples.clone())));
    let sandbox_get = unsandboxed(&frames);
    let sandbox_start = unsandboxed(&start_outlet_plugin);
    row("KV Get, Outlet host + plugin (frames)", frames, go_get);
    row("KV Get, Outlet host + Go plugin (gRPC)", grpc, go_get);
    row(
        "KV Get, Go host + Outlet plugin (gRPC)",
        go_host_outlet_plugin.gets,
        go_get,
    );
    let start = (!start_outlet_plugin.is_empty()).then(|| Summary::of(start_outlet_plugin.clone()));
    row(
        "start to first Get, Outlet plugin",
        start_outlet_plugin,
        go_start,
    );
    row("start to first Get, Go plugin", start_go_plugin, go_start);
    row(
        "start to first Get, Go host + Outlet plugin",
        go_host_outlet_plugin.starts,
        go_start,
    );
    row("killed to serving again (restart, pinned)", restarts, None);
    row(
        "checks before a start, pinned",
        checks,
        start.map(|start| ("a start", start)),
    );
    row(
        "KV Get, plugin in the OS sandbox (open)",
        frames_sandboxed,
        sandbox_get,
    );
    row(
        "start to first Get, plugin in the OS sandbox (open)",
        start_sandboxed,
        sandbox_start,
    );
}

/// Restart: the plugin's process killed, then Gets until one succeeds.
fn restarts(
    kv: &Kv,
    plugin: &Plugin,
    client: &KvClient<Plugin>,
    calls: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut restarts = Vec::new();
    for _ in 0..(calls / 100).clamp(3, 10) {
        let pid = plugin
            .process_id()
            .context("the rpc plugin has no process")?;
        let killed = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()?;
        anyhow::ensure!(killed.success(), "kill -9 {pid} failed");
        let started = Instant::now();
        while client
            .get(GetRequest {
                key: kv.key.clone(),
            })
            .is_err()
        {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(5),
                "the plugin was not back within 5 s"
            );
        }
        restarts.push(started.elapsed());
    }
    Ok(restarts)
}
