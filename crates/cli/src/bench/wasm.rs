//! wasm: Greet into a warm instance, from a Rust guest and a WAT one,
//! against the same greeter called directly; what a fresh instance and
//! loading cost; whether memory comes back; and an endless loop stopped at
//! its deadline.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use greeter::GreeterClient;
use outlet_host::Host;
use outlet_manifest::Manifest;

use super::greet::{in_process, request};
use super::report::{Report, Row};
use super::stats::{Summary, resident};

pub const USUAL: &str = "WASM call (wazero) ~1 µs";

pub fn rows(
    host: &Host,
    manifests: &Path,
    calls: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    for (file, case) in [
        ("wasm-rust.toml", "Greet, Rust guest, warm instance"),
        ("wasm.toml", "Greet, WAT guest, warm instance"),
    ] {
        report.rows.push(in_process(
            host,
            &manifests.join(file),
            calls,
            "wasm",
            case,
            USUAL,
        )?);
    }
    let manifest = Manifest::load(manifests.join("wasm-rust.toml"))?;
    report.rows.push(Row {
        mechanism: "wasm",
        case: "fresh instance (Store, instantiate)",
        usual: USUAL,
        samples: fresh_instances(host, &manifest, calls)?,
        baseline: None,
    });
    let dir = tempfile::tempdir()?;
    loads(host, &manifest, calls, dir.path(), report)?;
    memory(host, &manifest, dir.path(), report)?;
    report.rows.push(endless_loop(host, dir.path())?);
    Ok(())
}

/// Loading: the module from the disk cache (the loads before put it
/// there), and a module never seen, which compiles.
fn loads(
    host: &Host,
    manifest: &Manifest,
    calls: usize,
    dir: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let load = |manifest: Manifest| -> anyhow::Result<Duration> {
        let started = Instant::now();
        let plugin = host.load_manifest(manifest)?;
        let took = started.elapsed();
        host.unload(plugin.name());
        Ok(took)
    };
    let mut copy = manifest.clone();
    copy.name = format!("{}-cached", manifest.name);
    let samples = (0..calls / 10)
        .map(|_| load(copy.clone()))
        .collect::<anyhow::Result<_>>()?;
    report.rows.push(Row {
        mechanism: "wasm",
        case: "load from the disk cache, Hello",
        usual: USUAL,
        samples: Summary::of(samples),
        baseline: None,
    });
    let samples = (0..(calls / 100).clamp(1, 3))
        .map(|i| load(never_seen(manifest, dir, i)?))
        .collect::<anyhow::Result<_>>()?;
    report.rows.push(Row {
        mechanism: "wasm",
        case: "load, compiling (cold), Hello",
        usual: USUAL,
        samples: Summary::of(samples),
        baseline: None,
    });
    Ok(())
}

/// Resident memory before and after 100 loads and 10,000 instances made
/// and dropped.
fn memory(host: &Host, manifest: &Manifest, dir: &Path, report: &mut Report) -> anyhow::Result<()> {
    let rss_before = resident()?;
    for i in 0..100 {
        let mut copy = manifest.clone();
        copy.name = format!("{}-{i}", manifest.name);
        let plugin = host.load_manifest(copy)?;
        host.unload(plugin.name());
    }
    // 10,000 instances: a guest whose Greet traps, so that every call gets
    // a fresh instance and drops it.
    let trap = misbehaving_guest(dir, "trap", "(unreachable)", "")?;
    let plugin = host.load_manifest(trap)?;
    let greeter = plugin.client::<GreeterClient<_>>()?;
    for _ in 0..10_000 {
        anyhow::ensure!(
            greeter.greet(request()).is_err(),
            "the trap guest did not trap"
        );
    }
    host.unload(plugin.name());
    let rss_after = resident()?;
    report.notes.push(format!(
        "wasm memory: resident {} KiB before, {} KiB after 100 loads and 10,000 instances made \
         and dropped",
        rss_before >> 10,
        rss_after >> 10
    ));
    report.extra.insert(
        "wasm_memory".into(),
        serde_json::json!({
            "rss_before": rss_before,
            "rss_after_100_loads_and_10000_instances": rss_after,
        }),
    );
    Ok(())
}

/// An endless loop in Greet, stopped at the deadline: how long the caller
/// waits, against the manifest's limit (the goal is at most twice it).
fn endless_loop(host: &Host, dir: &Path) -> anyhow::Result<Row> {
    const LIMIT: Duration = Duration::from_millis(100);
    let spin = misbehaving_guest(
        dir,
        "spin",
        "(loop $forever (br $forever))",
        &format!("[limits]\ntimeout_ms = {}\n", LIMIT.as_millis()),
    )?;
    let plugin = host.load_manifest(spin)?;
    let greeter = plugin.client::<GreeterClient<_>>()?;
    let samples = (0..10)
        .map(|_| {
            let started = Instant::now();
            let result = greeter.greet(request());
            anyhow::ensure!(
                matches!(&result, Err(e) if e.code() == outlet_protocol::Code::DeadlineExceeded),
                "the endless loop was not stopped at its deadline: {result:?}"
            );
            Ok(started.elapsed())
        })
        .collect::<anyhow::Result<_>>()?;
    host.unload(plugin.name());
    Ok(Row {
        mechanism: "wasm",
        case: "endless loop, stopped (DeadlineExceeded)",
        usual: USUAL,
        samples: Summary::of(samples),
        baseline: Some((
            "limits.timeout_ms",
            Summary {
                median: LIMIT,
                p99: LIMIT,
            },
        )),
    })
}

/// A WAT guest that answers Hello as `name` and runs `misbehave` (a trap,
/// an endless loop) on every other call, Shutdown included, and its
/// manifest, which ends with `limits` (TOML tables).
fn misbehaving_guest(
    dir: &Path,
    name: &str,
    misbehave: &str,
    limits: &str,
) -> anyhow::Result<Manifest> {
    const SERVICE: &str = "outlet.examples.greeter.v1.Greeter";
    // Lengths below are one-byte varints.
    anyhow::ensure!(name.len() < 128, "a guest name of under 128 bytes");
    // HelloResponse { name, core_versions: [1], app_versions: [1], services: [SERVICE] }.
    let hello_len = 2 + name.len() + 3 + 3 + 2 + SERVICE.len();
    let module = dir.join(format!("{name}.wat"));
    std::fs::write(
        &module,
        format!(
            r#"(module (memory (export "memory") 1)
  (data (i32.const 0) "\0a\{:02x}{name}\1a\01\01\22\01\01\32\{:02x}{SERVICE}")
  (func (export "outlet_abi_version") (result i32) (i32.const 2))
  (func (export "outlet_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "outlet_call") (param i32 i32 i32 i32 i32) (result i32)
    (if (i32.ne (local.get 1) (i32.const 28)) (then {misbehave}))
    (i32.store (local.get 4) (i32.const 0))
    (i32.store offset=4 (local.get 4) (i32.const {hello_len}))
    (i32.const 0)))"#,
            name.len(),
            SERVICE.len(),
        ),
    )?;
    // Untrusted code, as such guests would be: pinned, and held by the
    // policy's ceiling for sandboxed plugins.
    let sha256 = outlet_manifest::sha256_hex(&std::fs::read(&module)?);
    Ok(Manifest::parse(
        &format!(
            "name = \"{name}\"\nmechanism = \"wasm\"\npath = \"{}\"\n\
             interface = \"{SERVICE}\"\ntrust = \"sandboxed\"\nsha256 = \"{sha256}\"\n{limits}",
            module.display()
        ),
        &dir.join(format!("{name}.toml")),
    )?)
}

/// A fresh instance of the plugin, readied as a call would ready it.
pub fn fresh_instances(
    host: &Host,
    manifest: &Manifest,
    samples: usize,
) -> anyhow::Result<Summary> {
    let plugin = host.load_manifest(manifest.clone())?;
    let fresh = || -> anyhow::Result<Duration> {
        let started = Instant::now();
        plugin
            .fresh_instance()
            .context("the wasm plugin made no instance")??;
        Ok(started.elapsed())
    };
    for _ in 0..samples / 10 {
        fresh()?;
    }
    let times = (0..samples)
        .map(|_| fresh())
        .collect::<anyhow::Result<_>>()?;
    host.unload(plugin.name());
    Ok(Summary::of(times))
}

/// The manifest's module with a custom section of a name never used before:
/// a hash the module cache has not seen, so loading it compiles.
fn never_seen(manifest: &Manifest, dir: &Path, i: usize) -> anyhow::Result<Manifest> {
    let mut bytes = std::fs::read(&manifest.path)?;
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    // Custom section: id 0, size, name length, name.
    let name = format!("outlet-bench-{nonce}-{i}");
    bytes.push(0);
    bytes.push((1 + name.len()) as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name.as_bytes());
    let mut copy = manifest.clone();
    copy.path = dir.join(format!("fresh-{i}.wasm"));
    copy.name = format!("{}-cold-{i}", manifest.name);
    copy.sha256 = None;
    std::fs::write(&copy.path, &bytes)?;
    Ok(copy)
}
