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

use std::path::Path;
use std::process::ExitCode;

use outlet_host::{Host, Policy};

use report::Report;

/// The mechanisms `--only` accepts.
pub const SECTIONS: [&str; 8] = [
    "native", "cabi", "rpc", "wasm", "exec", "streams", "bus", "metrics",
];

/// What `outlet bench` is asked for.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    /// The greeter's manifests.
    pub manifests: &'a Path,
    /// Samples per row.
    pub calls: usize,
    /// Where to write the run as JSON.
    pub json: Option<&'a Path>,
    /// Where to draw the run as SVG.
    pub chart: Option<&'a Path>,
    /// One section only.
    pub only: Option<&'a str>,
    /// The built `bench/extism`.
    pub extism: Option<&'a Path>,
    /// go-plugin's Go host and plugin.
    pub go: Option<&'a Path>,
    /// The Greet component (`bench/component`), set beside Outlet's
    /// Rust wasm guest.
    pub component: Option<&'a Path>,
}

pub fn run(policy: Policy, options: Options<'_>) -> anyhow::Result<ExitCode> {
    let Options {
        manifests,
        calls,
        json,
        chart,
        only,
        extism,
        go,
        component,
    } = options;
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
