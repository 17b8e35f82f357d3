//! `outlet bench`: every mechanism's round trip measured on this machine,
//! each beside a baseline measured in the same run, and what loading costs.
//!
//! [`stats`] samples and summarizes; [`greet`] is the in-process Greet row;
//! each mechanism's module makes its rows; [`extism`] and [`go`] measure the
//! outside runtimes in rounds with Outlet's own; [`report`] prints the table
//! and writes the JSON that `scripts/readme-numbers.py` puts in the README.

mod bus;
mod cabi;
mod chart;
mod checks;
mod component;
mod exec;
mod extism;
mod go;
mod greet;
mod metrics;
mod native;
mod report;
mod rpc;
mod stats;
mod streams;
mod stress;
mod wasm;

use std::path::PathBuf;
use std::process::ExitCode;

use outlet_host::{Host, Policy};

use report::Report;

/// The mechanisms `--only` accepts.
pub const SECTIONS: [&str; 8] = [
    "native", "cabi", "rpc", "wasm", "exec", "streams", "bus", "metrics",
];

/// What `outlet bench` is asked for.
#[derive(clap::Args)]
pub struct Options {
    /// The folder holding the greeter's manifests.
    #[arg(long, default_value = "examples/greeter/manifests")]
    manifests: PathBuf,
    /// Calls per measurement.
    #[arg(long, default_value_t = 500)]
    calls: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also draw the results into this SVG file: every row on one log
    /// time axis, grouped by mechanism, each beside its baseline.
    #[arg(long, value_name = "FILE.svg")]
    chart: Option<PathBuf>,
    /// Measure one mechanism only.
    #[arg(long, value_parser = SECTIONS)]
    only: Option<String>,
    /// Also measure Extism with the built `bench/extism` in this folder
    /// (`scripts/bench.sh` builds it).
    #[arg(long)]
    extism: Option<PathBuf>,
    /// Also measure go-plugin's own Go host and Go plugin, built into
    /// this folder by `tests/go/build.sh` (`scripts/bench.sh` passes
    /// `target/go`).
    #[arg(long)]
    go: Option<PathBuf>,
    /// Also measure the same Greet as a WebAssembly component: this
    /// module, built from `bench/component` for wasm32-wasip2
    /// (`scripts/bench.sh` builds it).
    #[arg(long, value_name = "FILE.wasm")]
    component: Option<PathBuf>,
}

pub fn run(policy: Policy, options: &Options) -> anyhow::Result<ExitCode> {
    let calls = options.calls;
    let manifests = options.manifests.as_path();
    let (json, chart) = (options.json.as_deref(), options.chart.as_deref());
    let (only, extism) = (options.only.as_deref(), options.extism.as_deref());
    let (go, component) = (options.go.as_deref(), options.component.as_deref());
    anyhow::ensure!(
        calls >= 10,
        "--calls must be at least 10 to give a median and a p99"
    );
    let wants = |section: &str| only.is_none_or(|only| only == section);
    anyhow::ensure!(
        (extism.is_none() && component.is_none()) || wants("wasm"),
        "--extism and --component are measured with the wasm rows; drop --only or make it \
         `--only wasm`"
    );
    anyhow::ensure!(
        go.is_none() || wants("rpc") || wants("streams"),
        "--go is measured with the rpc and streams rows; drop --only or make it `--only rpc` \
         or `--only streams`"
    );
    // A module cache of the run's own, so that the user's is left alone and
    // every run compiles, then loads from the cache, the same way.
    let cache = tempfile::Builder::new().prefix("outlet-bench-").tempdir()?;
    let builder = || {
        Host::builder()
            .module_cache(Some(cache.path().join("modules")))
            .policy(policy.clone())
    };
    let host = builder().build();
    let mut report = Report::default();
    // exec first, as a host starting plugins would: once a wasm engine has
    // mapped its code and reserved memories, the process is larger.
    let mut exec = Report::default();
    if wants("exec") {
        exec::rows(&host, manifests, calls, &mut exec)?;
    }
    if wants("native") {
        report.rows.push(native::greet(&host, manifests, calls)?);
        native::load(&host, manifests, calls / 5, &mut report)?;
    }
    if wants("cabi") {
        report.rows.extend(cabi::rows(&host, manifests, calls)?);
    }
    if wants("rpc") {
        rpc::rows(&host, manifests, calls, go, &mut report)?;
    }
    if wants("wasm") {
        wasm::rows(&host, manifests, calls, &mut report)?;
        if let Some(file) = component {
            report
                .rows
                .push(component::row(&host, manifests, file, calls)?);
        }
        if let Some(dir) = extism {
            extism::rows(&host, manifests, dir, calls, &mut report)?;
        }
    }
    // Streams and async calls, below the mechanisms' own rows.
    let mut streams = Report::default();
    if wants("streams") {
        streams::rows(&host, manifests, calls, go, &mut streams)?;
    }
    // Calls between plugins last, below the mechanisms they go through.
    let mut bus = Report::default();
    if wants("bus") {
        bus::rows(builder, manifests, calls, &mut bus)?;
    }
    // What counting calls costs, last: it leaves a metrics recorder installed.
    if wants("metrics") {
        metrics::rows(builder, manifests, calls, &mut bus)?;
    }
    report.rows.extend(exec.rows);
    report.rows.extend(streams.rows);
    report.rows.extend(bus.rows);
    report.notes.extend(exec.notes);
    report.notes.extend(streams.notes);
    report.extra.extend(streams.extra);
    report.print(calls);
    if let Some(file) = json {
        report.write_json(calls, file)?;
    }
    if let Some(file) = chart {
        let machine = report::machine();
        let title = format!(
            "outlet bench: medians of {calls} samples, p99 whiskers; {} CPUs, {}",
            machine["cpus"],
            machine["cpu"].as_str().unwrap_or("unknown processor")
        );
        chart::draw(&report.rows, &title, file)?;
    }
    Ok(ExitCode::SUCCESS)
}
