//! `outlet`: load, call, check and measure Outlet plugins from the shell.
#![forbid(unsafe_code)]

mod advise;
mod bench;
mod call;
mod check;
mod demo;
mod dynamic;
mod inspect;
mod new;
mod pin;
mod policy;
mod signals;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use outlet_manifest::{Deploy, Mechanism, Perf, Trust};

/// One plugin API over five mechanisms: native, cabi, rpc, wasm, exec.
#[derive(Parser)]
#[command(name = "outlet", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    policy: policy::Flags,
}

#[derive(Subcommand)]
enum Command {
    /// Load the greeter through every mechanism this build has, and call it.
    Demo {
        /// The folder holding the greeter's manifests.
        #[arg(long, default_value = "examples/greeter/manifests")]
        manifests: PathBuf,
        /// Also append the audit record of every call through the host to
        /// FILE, one JSON object per line.
        #[arg(long, value_name = "FILE")]
        audit: Option<PathBuf>,
        /// Also publish the plugins' metrics to a Prometheus exporter, and
        /// write its text exposition to FILE at the end.
        #[arg(long, value_name = "FILE")]
        metrics: Option<PathBuf>,
    },
    /// Call one method of a plugin, with the request and response as JSON.
    Call {
        /// The plugin's manifest (it must name the interface's `proto`).
        manifest: PathBuf,
        /// The method's name, as in the `.proto` (`Greet`).
        method: String,
        /// The request, in protobuf's JSON mapping; `-` reads it from stdin.
        #[arg(long, default_value = "{}")]
        json: String,
    },
    /// Validate manifests, their artifacts and the trust policy.
    Check {
        /// The manifests, or folders of them (each `*.toml` in the folder).
        #[arg(required = true)]
        manifests: Vec<PathBuf>,
    },
    /// Load a plugin and show its Hello and what was negotiated.
    Inspect {
        /// The plugin's manifest, or a folder of manifests to load each of.
        manifest: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a plugin project that builds and works as written: the greeter,
    /// or stubs of another service, for a mechanism and a language.
    New {
        /// The project's folder: new, or empty. Its name is the plugin's,
        /// unless --name says otherwise.
        dir: PathBuf,
        /// native, cabi, rpc, wasm or exec (`outlet advise` helps choose).
        #[arg(long)]
        mechanism: Mechanism,
        /// rust (any mechanism), c (cabi), go (rpc, with go-plugin) or wat
        /// (wasm, in WebAssembly text).
        #[arg(long, default_value = "rust")]
        lang: String,
        /// The plugin's name: lowercase letters, digits and `-`.
        #[arg(long)]
        name: Option<String>,
        /// Serve the service --service of this `.proto` (copied into the
        /// project, with what it imports from its folder), every method a
        /// stub that answers Unimplemented, instead of the greeter.
        #[arg(long, requires = "service")]
        proto: Option<PathBuf>,
        /// The service of --proto: its name, or `package.Name`.
        #[arg(long, requires = "proto")]
        service: Option<String>,
        /// The Outlet checkout the project builds against (Outlet's crates
        /// are not published). The default is the one this `outlet` was
        /// built from.
        #[arg(long, value_name = "PATH")]
        outlet: Option<PathBuf>,
    },
    /// Write each manifest's artifact's current SHA-256 into it (`sha256 =
    /// "…"`), keeping everything else, comments included.
    Pin {
        /// The manifests.
        #[arg(required = true)]
        manifests: Vec<PathBuf>,
    },
    /// Pick a mechanism from trust, call rate and deployment.
    Advise {
        /// How far the plugin's author is trusted: in-process, out-of-process or sandboxed.
        #[arg(long)]
        trust: Trust,
        /// How hot the calls are: high, medium or low.
        #[arg(long)]
        perf: Perf,
        /// How it ships: same-build, cross-platform or independent.
        #[arg(long)]
        deploy: Deploy,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Measure every mechanism's round trip side by side on this machine.
    Bench(bench::Options),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OUTLET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,outlet::plugin=info")),
        )
        .init();
    let cli = Cli::parse();
    match run(cli.command, &cli.policy) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a subcommand; those that load manifests do so under the policy.
fn run(command: Command, policy: &policy::Flags) -> anyhow::Result<ExitCode> {
    let builder = || anyhow::Ok(outlet_host::Host::builder().policy(policy.policy()?));
    // The host of `call` and `inspect` offers its plugins an empty key-value
    // store in memory, as the demo does (the rpc greeter's grant names it).
    let host = || {
        let host = builder()?.build();
        host.offer(kv::KvServer::new(std::sync::Arc::new(kv::Store::default())))?;
        let guard = signals::stop_on_signals(&host)?;
        anyhow::Ok((host, guard))
    };
    match command {
        Command::Demo {
            manifests,
            audit,
            metrics,
        } => demo::run(builder()?, audit.as_deref(), metrics.as_deref(), &manifests),
        Command::Call {
            manifest,
            method,
            json,
        } => {
            let (host, _stops) = host()?;
            call::run(host, &manifest, &method, &json)
        }
        Command::Check { manifests } => check::run(&policy.policy()?, &manifests),
        Command::Inspect { manifest, json } => {
            let (host, _stops) = host()?;
            inspect::run(host, &manifest, json)
        }
        Command::Pin { manifests } => pin::run(&manifests),
        Command::New {
            dir,
            mechanism,
            lang,
            name,
            proto,
            service,
            outlet,
        } => new::run(&new::Request {
            dir: &dir,
            mechanism,
            lang: &lang,
            name: name.as_deref(),
            proto: proto.as_deref(),
            service: service.as_deref(),
            outlet: outlet.as_deref(),
        }),
        Command::Advise {
            trust,
            perf,
            deploy,
            json,
        } => advise::run(trust, perf, deploy, json),
        Command::Bench(options) => bench::run(policy.policy()?, &options),
    }
}
