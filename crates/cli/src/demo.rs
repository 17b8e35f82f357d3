//! `outlet demo`: the greeter through every mechanism this build has.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use greeter::{GreetRequest, GreeterClient};
use kv::Kv;
use outlet_host::audit::{AuditRecord, AuditSink, JsonLines};
use outlet_host::{Host, HostBuilder, MECHANISMS, Plugin};
use outlet_manifest::{Manifest, Mechanism};

pub fn run(
    builder: HostBuilder,
    audit: Option<&Path>,
    metrics: Option<&Path>,
    manifests: &Path,
) -> anyhow::Result<ExitCode> {
    // Installed before any plugin is loaded, so that every plugin's metrics
    // are registered with it.
    let exporter = metrics.map(prometheus).transpose()?;
    // Every call through the host is recorded: kept here to be printed,
    // and written to the --audit file as it happens.
    let file = audit
        .map(|file| {
            JsonLines::open(file).map_err(|error| {
                anyhow::anyhow!("cannot open the audit file {}: {error}", file.display())
            })
        })
        .transpose()?;
    let trail = Arc::new(Trail {
        kept: Mutex::default(),
        file,
    });
    let host = builder.audit(trail.clone()).build();
    let mut stats = Vec::new();
    let _stops = crate::signals::stop_on_signals(&host)?;
    // A key-value store the host offers its plugins: the rpc greeter writes
    // into it during a call, through go-plugin's broker.
    let store = Arc::new(kv::Store::default());
    host.offer(kv::KvServer::new(store.clone()))?;
    let names: Vec<&str> = MECHANISMS.iter().map(|m| m.name()).collect();
    println!(
        "Outlet demo: the greeter through every mechanism in this build ({})",
        names.join(", ")
    );
    // One greeter per mechanism, and a second one in another language where
    // the mechanism is for any language.
    let files = [
        "native.toml",
        "cabi.toml",
        "cabi-rust.toml",
        "rpc.toml",
        "wasm.toml",
        "wasm-rust.toml",
        "exec.toml",
    ];
    for name in files {
        let file = manifests.join(name);
        let mechanism = Manifest::load(&file)?.mechanism;
        if !MECHANISMS.contains(&mechanism) {
            continue;
        }
        println!("\n[{mechanism}] {}", file.display());
        let started = Instant::now();
        let plugin = load(&host, manifests, name)?;
        let hello = plugin.hello();
        let agreed = plugin.negotiated();
        println!(
            "  loaded    {} {} in {:.2?}: app v{}, capabilities: {}",
            hello.name,
            hello.version,
            started.elapsed(),
            agreed.app_version,
            agreed.capabilities.join(", ")
        );
        greet(&plugin, "world")?;
        if agreed.supports(outlet_protocol::capability::CONFIGURE) {
            let mut config = BTreeMap::from([("greeting".to_owned(), "Howdy".to_owned())]);
            if mechanism == Mechanism::Rpc {
                config.insert("guestbook".into(), "visitors".into());
            }
            plugin.configure(config.clone())?;
            println!("  configure {config:?}, no restart");
            greet(&plugin, "world")?;
            if mechanism == Mechanism::Rpc {
                let key = "visitors".to_owned();
                let seen = store.get(kv::GetRequest { key: key.clone() })?.value;
                println!(
                    "  host KV   {key} = {:?}, put there by the plugin during its call, through \
                     go-plugin's broker",
                    String::from_utf8_lossy(&seen)
                );
            }
        } else {
            println!("  configure not offered by this plugin");
        }
        let health = plugin.health()?;
        println!("  health    {:?}", health.status());
        stats.push(plugin.stats());
        host.unload(plugin.name()).transpose()?;
        println!("  shutdown  ok");
    }

    bus(&host, manifests, &trail, &mut stats)?;

    println!("\n[policy] a sandboxed plugin asks to run in-process:");
    let refused = Manifest::parse(
        r#"
        name = "stranger"
        mechanism = "native"
        path = "libstranger.so"
        interface = "outlet.examples.greeter.v1.Greeter"
        trust = "sandboxed"
        sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
        "#,
        Path::new("stranger.toml"),
    );
    match refused {
        Err(error) => println!("  refused   {error}"),
        Ok(_) => anyhow::bail!("the trust policy let a sandboxed native plugin through"),
    }

    println!("\n[stats] what each plugin's calls did (Plugin::stats)");
    for plugin in &stats {
        println!("  {}", stats_line(plugin));
    }
    if let Some((handle, file)) = exporter {
        std::fs::write(&file, handle.render())
            .with_context(|| format!("writing the metrics to {}", file.display()))?;
        println!(
            "  metrics   Prometheus text exposition written to {}",
            file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Installs a Prometheus exporter as the `metrics` recorder, with the
/// host's latency buckets; its text is written to `file` at the end.
fn prometheus(
    file: &Path,
) -> anyhow::Result<(metrics_exporter_prometheus::PrometheusHandle, PathBuf)> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("outlet_call_duration_seconds".into()),
            &outlet_host::stats::LATENCY_BOUNDS,
        )?
        .install_recorder()
        .context("installing the Prometheus exporter")?;
    Ok((handle, file.to_owned()))
}

/// One plugin's stats on a line: calls, errors, latency, bytes.
fn stats_line(stats: &outlet_host::PluginStats) -> String {
    let mut all = outlet_host::stats::Latency::default();
    let (mut bytes_in, mut bytes_out) = (0, 0);
    for method in &stats.methods {
        all.timed += method.latency.timed;
        all.sum += method.latency.sum;
        bytes_in += method.bytes_in;
        bytes_out += method.bytes_out;
    }
    let p99 = stats
        .methods
        .iter()
        .filter_map(|m| m.latency.quantile(0.99))
        .max();
    let mean = all.mean();
    let show = |d: Option<std::time::Duration>| d.map_or("-".into(), |d| format!("{d:.2?}"));
    format!(
        "{:<18} {:<6} calls {:>2}, errors {}, mean {}, p99 <= {}, bytes in {bytes_in} out \
         {bytes_out}, restarts {}, reloads {}",
        stats.plugin,
        stats.mechanism.name(),
        stats.calls(),
        stats.errors(),
        show(mean),
        show(p99),
        stats.restarts,
        stats.reloads
    )
}

/// Plugins calling plugins through the host: one call granted, one refused,
/// and the record of each.
fn bus(
    host: &Host,
    manifests: &Path,
    trail: &Trail,
    stats: &mut Vec<outlet_host::PluginStats>,
) -> anyhow::Result<()> {
    // The callee: the wasm greeter where this build has wasm, else exec.
    let callee = if MECHANISMS.contains(&Mechanism::Wasm) {
        "wasm-rust.toml"
    } else {
        "exec.toml"
    };
    println!("\n[bus] plugins call plugins only through the host, only where granted");
    let offered = load(host, manifests, callee)?;
    offered.configure(BTreeMap::from([("greeting".into(), "Bonjour".into())]))?;
    host.offer_plugin(&offered)?;
    println!(
        "  offered   {} ({}) as {}, greeting \"Bonjour\"",
        offered.name(),
        offered.manifest().mechanism,
        offered.manifest().interface
    );
    trail.take();
    // Granted in its manifest (relay.toml): the native greeter asks the
    // offered one.
    let relay = load(host, manifests, "relay.toml")?;
    let reply = relay.client::<GreeterClient<_>>()?.greet(GreetRequest {
        name: "world".into(),
    })?;
    println!(
        "  granted   {} ({}) greets \"world\" -> {:?}",
        relay.name(),
        relay.manifest().mechanism,
        reply.message
    );
    // Not granted: the cabi greeter, told to relay, is refused by the host.
    let cabi = load(host, manifests, "cabi-rust.toml")?;
    cabi.configure(BTreeMap::from([("relay".into(), "true".into())]))?;
    let refused = cabi
        .client::<GreeterClient<_>>()?
        .greet(GreetRequest {
            name: "world".into(),
        })
        .err()
        .context("the host let through a call no grant allows")?;
    println!(
        "  refused   {} ({}): {:?}: {}",
        cabi.name(),
        cabi.manifest().mechanism,
        refused.code(),
        refused.message()
    );
    for record in trail.take() {
        println!("  audit     {}", record.to_json());
    }
    for plugin in [&relay, &cabi, &offered] {
        stats.push(plugin.stats());
        host.unload(plugin.name()).transpose()?;
    }
    Ok(())
}

/// Loads the example manifest `name`.
fn load(host: &Host, manifests: &Path, name: &str) -> anyhow::Result<Plugin> {
    let file = manifests.join(name);
    host.load(&file).with_context(|| {
        format!(
            "loading {}; run the README's demo command, which builds the example plugins",
            file.display()
        )
    })
}

/// The demo's audit sink: keeps each record to print, and writes it to the
/// --audit file, if one was given.
struct Trail {
    kept: Mutex<Vec<AuditRecord>>,
    file: Option<JsonLines>,
}

impl Trail {
    fn take(&self) -> Vec<AuditRecord> {
        std::mem::take(&mut *self.kept.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl AuditSink for Trail {
    fn record(&self, record: &AuditRecord) {
        if let Some(file) = &self.file {
            file.record(record);
        }
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record.clone());
    }
}

fn greet(plugin: &Plugin, name: &str) -> anyhow::Result<()> {
    let greeter = plugin.client::<GreeterClient<_>>()?;
    let started = Instant::now();
    let reply = greeter.greet(GreetRequest { name: name.into() })?;
    println!(
        "  greet     {name:?} -> {:?} in {:.2?}",
        reply.message,
        started.elapsed()
    );
    Ok(())
}
