//! `extism-bench GUEST.wasm [CALLS]`: Extism's costs for the greeter, all in
//! one process, beside the same greet as plain Rust, to compare with the wasm
//! rows of `outlet bench`.
//!
//! Prints one JSON object a row, one row a line:
//! `{"row": .., "median_ns": .., "p99_ns": .., "samples": .., "batch": ..}`,
//! where each sample times `batch` runs and is divided by it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use extism::{CompiledPlugin, Plugin, PluginBuilder};

/// The name every call sends: 58 bytes, as in `outlet bench`.
const NAME: &[u8] = b"Ada Lovelace, Charles Babbage and the Analytical Engine 18";
const _: () = assert!(NAME.len() == 58);

/// Samples of the compile row: each compiles the guest and Extism's kernel.
const COMPILES: usize = 10;
/// Samples of the create rows.
const CREATES: usize = 1000;
/// Direct greets per sample: one alone is too short to time.
const BATCH: u32 = 1000;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(path), calls, None) = (args.next(), args.next(), args.next()) else {
        bail!("usage: extism-bench GUEST.wasm [CALLS]");
    };
    let calls: usize = match calls {
        Some(calls) => calls.parse().context("CALLS must be a whole number")?,
        None => 10_000,
    };
    ensure!(calls >= 10, "CALLS must be at least 10");
    let wasm = std::fs::read(&path).with_context(|| format!("reading {path}"))?;

    // Also the warm-up of the compile row.
    let compiled = CompiledPlugin::new(builder(&wasm))?;
    let compile = sample(0, COMPILES, || CompiledPlugin::new(builder(&wasm)))?;
    print_row("extism compile", 1, compile);

    let create = sample(CREATES / 10, CREATES, || {
        Plugin::new_from_compiled(&compiled)
    })?;
    print_row("extism create", 1, create);

    // `new_from_compiled` leaves instantiating the guest to the first call.
    let create_call = sample(CREATES / 10, CREATES, || {
        let mut plugin = Plugin::new_from_compiled(&compiled)?;
        black_box(plugin.call::<&[u8], &[u8]>("greet", NAME)?);
        Ok(plugin)
    })?;
    print_row("extism create+call", 1, create_call);

    let mut plugin = Plugin::new_from_compiled(&compiled)?;
    let reply = plugin.call::<&[u8], &[u8]>("greet", NAME)?;
    ensure!(
        reply == greet(NAME)?,
        "the guest answered {:?}",
        String::from_utf8_lossy(reply)
    );
    let call = sample(calls / 10, calls, || {
        black_box(plugin.call::<&[u8], &[u8]>("greet", black_box(NAME))?);
        Ok(())
    })?;
    print_row("extism call", 1, call);

    let direct = sample(calls / 10, calls, || {
        for _ in 0..BATCH {
            black_box(greet(black_box(NAME))?);
        }
        Ok(())
    })?;
    print_row("direct greet", BATCH, direct);
    Ok(())
}

/// The plugin as every row builds it: no WASI, and no disk cache, so that
/// each compile compiles.
fn builder(wasm: &[u8]) -> PluginBuilder<'_> {
    PluginBuilder::new(wasm)
        .with_wasi(false)
        .with_cache_disabled()
}

/// The guest's work as plain Rust: the in-process baseline.
fn greet(name: &[u8]) -> anyhow::Result<Vec<u8>> {
    let name = std::str::from_utf8(name)?;
    Ok(format!("Hello, {name}!").into_bytes())
}

/// Runs `run` `warm_up` times untimed, then `samples` times, each timed
/// alone; what it returns is dropped after the clock stops.
fn sample<T>(
    warm_up: usize,
    samples: usize,
    mut run: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<Vec<Duration>> {
    for _ in 0..warm_up {
        run()?;
    }
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let made = run()?;
        times.push(started.elapsed());
        drop(made);
    }
    Ok(times)
}

/// Prints a row's median and p99 per run, `batch` runs to a sample.
fn print_row(row: &str, batch: u32, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let at = |q: f64| {
        let index = ((samples.len() - 1) as f64 * q).round() as usize;
        samples[index].as_nanos() / u128::from(batch)
    };
    println!(
        r#"{{"row": "{row}", "median_ns": {}, "p99_ns": {}, "samples": {}, "batch": {batch}}}"#,
        at(0.5),
        at(0.99),
        samples.len()
    );
}
