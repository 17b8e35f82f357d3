//! metrics: what counting calls (`Plugin::stats`, the `metrics` facade)
//! and their spans cost. Each mechanism's Greet through a host that counts
//! them, beside the same through a host built with `metrics(false)`, in
//! interleaved batches; then, with a Prometheus exporter installed as the
//! recorder, the same again for the fastest and a process mechanism. Last
//! in a run: the recorder stays installed.

use std::path::Path;

use anyhow::Context;
use greeter::GreeterClient;
use outlet_host::{Host, HostBuilder, Plugin};

use super::greet::{BATCH, request};
use super::report::{Report, Row};
use super::stats::side_by_side;

const USUAL: &str = "the same host without counting";
const WITHOUT: &str = "without (metrics(false))";

/// Each mechanism's example greeter, and calls per timed batch.
const GREETERS: [(&str, &str, u32); 5] = [
    ("native", "native.toml", BATCH),
    ("cabi", "cabi.toml", BATCH),
    ("rpc", "rpc.toml", 10),
    ("wasm", "wasm-rust.toml", 100),
    ("exec", "exec.toml", 1),
];

pub fn rows(
    builder: impl Fn() -> HostBuilder,
    manifests: &Path,
    calls: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    let counting = with_store(builder().build())?;
    let silent = with_store(builder().metrics(false).build())?;
    for (mechanism, file, batch) in GREETERS {
        let case = "Greet, counted and in a span, no recorder";
        report.rows.push(beside(
            (&counting, &silent),
            manifests,
            (mechanism, file, batch),
            calls,
            case,
        )?);
    }
    // A recorder from now on: what a host exporting its metrics pays. Its
    // plugins are loaded after it is installed, as the docs ask.
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("outlet_call_duration_seconds".into()),
            &outlet_host::stats::LATENCY_BOUNDS,
        )?
        .install_recorder()
        .context("installing the Prometheus exporter")?;
    let exporting = with_store(builder().build())?;
    for greeter in [GREETERS[0], GREETERS[2]] {
        let case = "Greet, counted, to a Prometheus exporter";
        report.rows.push(beside(
            (&exporting, &silent),
            manifests,
            greeter,
            calls,
            case,
        )?);
    }
    Ok(())
}

/// One greeter loaded in both hosts, timed through each.
fn beside(
    (ours, theirs): (&Host, &Host),
    manifests: &Path,
    (mechanism, file, batch): (&'static str, &str, u32),
    calls: usize,
    case: &'static str,
) -> anyhow::Result<Row> {
    let path = manifests.join(file);
    let load = |host: &Host| -> anyhow::Result<Plugin> {
        host.load(&path)
            .with_context(|| format!("loading {}", path.display()))
    };
    let (a, b) = (load(ours)?, load(theirs)?);
    let (counted, plain) = (client(&a)?, client(&b)?);
    let request = request();
    let (with, without) = side_by_side(
        calls,
        batch,
        || {
            std::hint::black_box(counted.greet(std::hint::black_box(request.clone()))?);
            Ok(())
        },
        || {
            std::hint::black_box(plain.greet(std::hint::black_box(request.clone()))?);
            Ok(())
        },
    )?;
    ours.unload(a.name()).transpose()?;
    theirs.unload(b.name()).transpose()?;
    Ok(Row {
        mechanism,
        case,
        usual: USUAL,
        samples: with,
        baseline: Some((WITHOUT, without)),
    })
}

/// A host offering the key-value store the rpc greeter's manifest grants it.
fn with_store(host: Host) -> anyhow::Result<Host> {
    host.offer(kv::KvServer::new(std::sync::Arc::new(kv::Store::default())))?;
    Ok(host)
}

fn client(plugin: &Plugin) -> anyhow::Result<GreeterClient<Plugin>> {
    Ok(plugin.client::<GreeterClient<_>>()?)
}
