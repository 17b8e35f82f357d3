//! bus: calls from one plugin to another through the host. The native
//! greeter relays each Greet to the C greeter the host offers, many times
//! per call it is given, so that a sample is the inner calls' (grant check,
//! routing, frame, audit to `tracing` with no subscriber, then with a JSON
//! Lines file too) against the same Greet made by host code. Then the wasm
//! greeter relaying to the rpc one, against a call to each made by host code.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use greeter::GreeterClient;
use outlet_host::audit::JsonLines;
use outlet_host::{Host, HostBuilder, Plugin};
use outlet_manifest::Manifest;

use super::greet::request;
use super::report::{Report, Row};
use super::stats::{Summary, side_by_side};

/// Inner calls per relayed Greet.
const RELAYED: u32 = 100;

pub fn rows(
    builder: impl Fn() -> HostBuilder,
    manifests: &Path,
    calls: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    let usual = "a plugin's own client to another: no host between";
    let folder = tempfile::Builder::new().prefix("outlet-bench-").tempdir()?;
    for (case, audit) in [
        ("Greet via the host, native → cabi (C)", false),
        ("the same, audited to a JSON Lines file", true),
    ] {
        let mut builder = builder();
        if audit {
            builder = builder.audit(JsonLines::open(folder.path().join("audit.jsonl"))?);
        }
        let host = builder.build();
        let callee = load(&host, manifests, "cabi.toml", |_| {})?;
        host.offer_plugin(&callee)?;
        let relay = load(&host, manifests, "relay.toml", |relay| {
            relay
                .config
                .insert("relay_times".into(), RELAYED.to_string());
        })?;
        let (relayed, direct) = (client(&relay)?, client(&callee)?);
        let request = request();
        let (ours, base) = side_by_side(
            calls,
            10,
            || {
                std::hint::black_box(relayed.greet(std::hint::black_box(request.clone()))?);
                Ok(())
            },
            || {
                for _ in 0..RELAYED {
                    std::hint::black_box(direct.greet(std::hint::black_box(request.clone()))?);
                }
                Ok(())
            },
        )?;
        report.rows.push(Row {
            mechanism: "bus",
            case,
            usual,
            samples: per_call(ours),
            baseline: Some(("host → cabi (C) Greet", per_call(base))),
        });
    }

    // The wasm greeter relays each Greet to the rpc greeter.
    let host = builder().build();
    // The rpc greeter's manifest grants a write into a key-value store.
    host.offer(kv::KvServer::new(Arc::new(kv::Store::default())))?;
    let rpc = load(&host, manifests, "rpc.toml", |_| {})?;
    host.offer_plugin(&rpc)?;
    let wasm = load(&host, manifests, "wasm-rust.toml", |_| {})?;
    let relay = load(&host, manifests, "wasm-rust.toml", |relay| {
        relay.name = "greeter-wasm-relay".into();
        relay.config.insert("relay".into(), "true".into());
        let grant = format!("{}/Greet", relay.interface);
        relay.permissions.call.push(grant);
    })?;
    let (relayed, to_wasm, to_rpc) = (client(&relay)?, client(&wasm)?, client(&rpc)?);
    let request = request();
    let timed = |client: &GreeterClient<Plugin>| -> anyhow::Result<Duration> {
        let started = Instant::now();
        std::hint::black_box(client.greet(request.clone())?);
        Ok(started.elapsed())
    };
    for _ in 0..calls / 10 {
        for client in [&relayed, &to_wasm, &to_rpc] {
            timed(client)?;
        }
    }
    let (mut ours, mut sums) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    for _ in 0..calls {
        ours.push(timed(&relayed)?);
        sums.push(timed(&to_wasm)? + timed(&to_rpc)?);
    }
    report.rows.push(Row {
        mechanism: "bus",
        case: "Greet via the host, wasm (Rust) → rpc",
        usual: "the two calls made by host code",
        samples: Summary::of(ours),
        baseline: Some(("host → wasm + host → rpc", Summary::of(sums))),
    });
    Ok(())
}

/// Loads an example manifest, as `edit` changes it.
fn load(
    host: &Host,
    manifests: &Path,
    file: &str,
    edit: impl FnOnce(&mut Manifest),
) -> anyhow::Result<Plugin> {
    let path = manifests.join(file);
    let mut manifest = Manifest::load(&path)?;
    edit(&mut manifest);
    host.load_manifest(manifest)
        .with_context(|| format!("loading {}", path.display()))
}

fn client(plugin: &Plugin) -> anyhow::Result<GreeterClient<Plugin>> {
    Ok(plugin.client::<GreeterClient<_>>()?)
}

/// A summary of relayed Greets, per inner call.
fn per_call(summary: Summary) -> Summary {
    Summary {
        median: summary.median / RELAYED,
        p99: summary.p99 / RELAYED,
    }
}
