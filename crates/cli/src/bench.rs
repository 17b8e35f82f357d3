//! `outlet bench`: the seed's §9 table, measured on this machine, each
//! mechanism beside its baseline in the same run.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use greeter::{GreetRequest, Greeter, GreeterClient};
use outlet_host::Host;

/// One measured row: a mechanism's round trip and, measured interleaved
/// with it, the baseline it is judged against.
struct Row {
    mechanism: &'static str,
    case: &'static str,
    seed: &'static str,
    samples: Summary,
    baseline: Option<(&'static str, Summary)>,
}

#[derive(Clone, Copy)]
struct Summary {
    median: Duration,
    p99: Duration,
}

impl Summary {
    fn of(mut samples: Vec<Duration>) -> Summary {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Summary {
            median: at(0.5),
            p99: at(0.99),
        }
    }
}

/// The mechanisms `--only` accepts.
pub const SECTIONS: [&str; 5] = ["native", "cabi", "rpc", "wasm", "exec"];

/// What one run measured: the table's rows, lines below it, and the same
/// as JSON.
#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
    extra: serde_json::Map<String, serde_json::Value>,
}

pub fn run(
    manifests: &Path,
    calls: usize,
    json: Option<&Path>,
    only: Option<&str>,
    extism: Option<&Path>,
    go: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        calls >= 10,
        "--calls must be at least 10 to give a median and a p99"
    );
    let wants = |section: &str| only.is_none_or(|only| only == section);
    anyhow::ensure!(
        extism.is_none() || wants("wasm"),
        "--extism is measured with the wasm rows; drop --only or make it `--only wasm`"
    );
    anyhow::ensure!(
        go.is_none() || wants("rpc"),
        "--go is measured with the rpc rows; drop --only or make it `--only rpc`"
    );
    let host = Host::new();
    let mut report = Report::default();
    // exec first: once a wasm engine has mapped its code and reserved
    // memories, `fork` copies more page tables (see docs/exec.md).
    let exec_row = wants("exec")
        .then(|| exec(&host, manifests, calls))
        .transpose()?;
    if wants("native") {
        report.rows.push(native(&host, manifests, calls)?);
        native_load(&host, manifests, calls / 5, &mut report)?;
    }
    if wants("cabi") {
        report.rows.extend(cabi(&host, manifests, calls)?);
    }
    if wants("rpc") {
        rpc(&host, manifests, calls, go, &mut report)?;
    }
    if wants("wasm") {
        wasm(&host, manifests, calls, &mut report)?;
        if let Some(dir) = extism {
            self::extism(&host, manifests, dir, calls, &mut report)?;
        }
    }
    report.rows.extend(exec_row);
    print(&report, calls);
    if let Some(file) = json {
        let rows: Vec<serde_json::Value> = report.rows.iter().map(Row::json).collect();
        let mut out = serde_json::json!({ "calls": calls, "rows": rows });
        out.as_object_mut().expect("an object").extend(report.extra);
        std::fs::write(file, format!("{out:#}\n"))
            .with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print(report: &Report, calls: usize) {
    println!("Outlet bench: {calls} calls per row, each row interleaved with its baseline");
    println!(
        "{:<8} {:<40} {:>10} {:>10}  {:<30} {:>8}",
        "", "round trip", "median", "p99", "baseline (same run)", "ratio"
    );
    for row in &report.rows {
        let (name, ratio) = match &row.baseline {
            Some((name, base)) => (
                format!("{name} {}", human(base.median)),
                format!(
                    "{:.2}x",
                    row.samples.median.as_secs_f64() / base.median.as_secs_f64()
                ),
            ),
            None => (String::new(), String::new()),
        };
        println!(
            "{:<8} {:<40} {:>10} {:>10}  {:<30} {:>8}",
            row.mechanism,
            row.case,
            human(row.samples.median),
            human(row.samples.p99),
            name,
            ratio
        );
    }
    if !report.notes.is_empty() {
        println!();
    }
    for note in &report.notes {
        println!("{note}");
    }
    println!("\nseed §9 quotes, for comparison:");
    let mut seen = Vec::new();
    for row in &report.rows {
        if !seen.contains(&row.mechanism) {
            seen.push(row.mechanism);
            println!("  {:<8} {}", row.mechanism, row.seed);
        }
    }
}

impl Row {
    fn json(&self) -> serde_json::Value {
        let mut value = serde_json::json!({
            "mechanism": self.mechanism,
            "case": self.case,
            "median_ns": self.samples.median.as_nanos() as u64,
            "p99_ns": self.samples.p99.as_nanos() as u64,
        });
        if let Some((name, base)) = &self.baseline {
            value["baseline"] = serde_json::json!({
                "case": name,
                "median_ns": base.median.as_nanos() as u64,
                "p99_ns": base.p99.as_nanos() as u64,
            });
            value["ratio"] =
                serde_json::json!(self.samples.median.as_secs_f64() / base.median.as_secs_f64());
        }
        value
    }
}

/// The request every row sends: a name of 58 bytes, so that request and
/// response are about 64 bytes each once encoded.
fn request() -> GreetRequest {
    GreetRequest {
        name: "Ada Lovelace, Charles Babbage and the Analytical Engine 1843"[..58].into(),
    }
}

/// Greet calls per timed batch for in-process mechanisms, whose calls are
/// too short to time one by one.
const BATCH: u32 = 1000;

/// Times `a` and `b` in alternating batches of `batch` calls; returns the
/// per-call summary of each.
fn side_by_side(
    samples: usize,
    batch: u32,
    mut a: impl FnMut() -> anyhow::Result<()>,
    mut b: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(Summary, Summary)> {
    let time = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<Duration> {
        let started = Instant::now();
        for _ in 0..batch {
            f()?;
        }
        Ok(started.elapsed() / batch)
    };
    for _ in 0..samples / 10 {
        time(&mut a)?;
        time(&mut b)?;
    }
    let (mut first, mut second) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for _ in 0..samples {
        first.push(time(&mut a)?);
        second.push(time(&mut b)?);
    }
    Ok((Summary::of(first), Summary::of(second)))
}

/// native: Greet through the generated client, which calls the plugin's
/// implementation directly.
fn native(host: &Host, manifests: &Path, calls: usize) -> anyhow::Result<Row> {
    let file = manifests.join("native.toml");
    in_process(
        host,
        &file,
        calls,
        "native",
        "Greet, Rust dylib, direct trait call",
        "plugin package: direct call ~5 ns",
    )
}

/// Greet through an in-process plugin against the same greeter compiled
/// into this process and called directly, in interleaved batches.
fn in_process(
    host: &Host,
    file: &Path,
    calls: usize,
    mechanism: &'static str,
    case: &'static str,
    seed: &'static str,
) -> anyhow::Result<Row> {
    let plugin = host
        .load(file)
        .with_context(|| format!("loading {}", file.display()))?;
    let greeter = plugin.client::<GreeterClient<_>>()?;
    let direct = greeter::Hello::default();
    let request = request();
    let (ours, base) = side_by_side(
        calls,
        BATCH,
        || {
            std::hint::black_box(greeter.greet(std::hint::black_box(request.clone()))?);
            Ok(())
        },
        || {
            let reply = Greeter::greet(&direct, std::hint::black_box(request.clone()));
            std::hint::black_box(reply?);
            Ok(())
        },
    )?;
    host.unload(plugin.name());
    Ok(Row {
        mechanism,
        case,
        seed,
        samples: ours,
        baseline: Some(("direct Rust greet", base)),
    })
}

/// What loading native plugins costs: one (open, checks, Hello) and
/// unloading it, beside a bare `dlopen` + `dlclose` of the same file; 100
/// distinct copies one after the other; resident memory before loading,
/// with one loaded, and after 100 load and unload cycles.
fn native_load(
    host: &Host,
    manifests: &Path,
    samples: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    let manifest = outlet_manifest::Manifest::load(manifests.join("native.toml"))?;
    let dir = tempfile::tempdir()?;
    // Copies, so every load maps a file of its own (the dynamic loader
    // shares one mapping per path).
    let copy = |i: usize| -> anyhow::Result<outlet_manifest::Manifest> {
        let path = dir.path().join(format!("libgreeter_native_{i}.so"));
        if !path.exists() {
            std::fs::copy(&manifest.path, &path)
                .with_context(|| format!("copying {}", manifest.path.display()))?;
        }
        let mut copy = manifest.clone();
        copy.path = path;
        copy.name = format!("{}-{i}", manifest.name);
        Ok(copy)
    };
    let rss_before = resident()?;
    let one = copy(0)?;
    // Made on the first bare open, which comes after the host's first load:
    // only a file this process has loaded as a plugin opens bare.
    let mut bare: Option<outlet_dylib::Reopen> = None;
    let (ours, base) = side_by_side(
        samples,
        1,
        || {
            let plugin = host.load_manifest(one.clone())?;
            host.unload(plugin.name());
            Ok(())
        },
        || {
            if bare.is_none() {
                bare = Some(outlet_dylib::Reopen::new(&one.path)?);
            }
            if let Some(bare) = &bare {
                bare.open_and_close()?;
            }
            Ok(())
        },
    )?;
    let plugin = host.load_manifest(one.clone())?;
    let rss_one = resident()?;
    host.unload(plugin.name());
    drop(plugin);
    for _ in 0..100 {
        let plugin = host.load_manifest(one.clone())?;
        host.unload(plugin.name());
    }
    let rss_cycled = resident()?;

    let copies: Vec<_> = (1..=100).map(copy).collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    let loaded: Vec<_> = copies
        .into_iter()
        .map(|m| host.load_manifest(m))
        .collect::<Result<_, _>>()?;
    let hundred = started.elapsed();
    for plugin in loaded {
        host.unload(plugin.name());
    }
    report.rows.push(Row {
        mechanism: "native",
        case: "load (open, checks, Hello) + unload",
        seed: "plugin package: direct call ~5 ns",
        samples: ours,
        baseline: Some(("bare dlopen + dlclose", base)),
    });
    let rss = [rss_before, rss_one, rss_cycled];
    report.notes.push(format!(
        "native loading: 100 distinct plugins loaded in {}; resident memory {} KiB before, \
         {} KiB with one plugin loaded, {} KiB after 100 load/unload cycles",
        human(hundred),
        rss[0] >> 10,
        rss[1] >> 10,
        rss[2] >> 10
    ));
    report.extra.insert(
        "native_loading".into(),
        serde_json::json!({
            "hundred_distinct_ns": hundred.as_nanos() as u64,
            "rss_before": rss[0],
            "rss_one_loaded": rss[1],
            "rss_after_100_cycles": rss[2],
        }),
    );
    Ok(())
}
/// This process's resident memory, in bytes.
fn resident() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("no VmRSS in /proc/self/status")?;
    Ok(kb.parse::<u64>()? * 1024)
}

/// cabi: Greet through the C ABI, protobuf bytes in and out, from a C
/// plugin and from a Rust one.
fn cabi(host: &Host, manifests: &Path, calls: usize) -> anyhow::Result<Vec<Row>> {
    let seed = "c-shared: as plugin package, ~5 ns per direct call";
    [
        ("cabi.toml", "Greet, C plugin, protobuf via outlet.h"),
        (
            "cabi-rust.toml",
            "Greet, Rust plugin, protobuf via outlet.h",
        ),
    ]
    .into_iter()
    .map(|(file, case)| in_process(host, &manifests.join(file), calls, "cabi", case, seed))
    .collect()
}

/// wasm: Greet into a warm instance, from a Rust guest and a WAT one,
/// against the same greeter called directly; what a fresh instance and
/// loading cost; and whether memory comes back.
fn wasm(host: &Host, manifests: &Path, calls: usize, report: &mut Report) -> anyhow::Result<()> {
    let seed = "WASM call (wazero) ~1 µs";
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
            seed,
        )?);
    }
    let manifest = outlet_manifest::Manifest::load(manifests.join("wasm-rust.toml"))?;
    report.rows.push(Row {
        mechanism: "wasm",
        case: "fresh instance (Store, instantiate)",
        seed,
        samples: fresh_instances(host, &manifest, calls)?,
        baseline: None,
    });

    // Loading: the module from the disk cache (the loads above put it
    // there), and a module never seen, which compiles.
    let load = |manifest: outlet_manifest::Manifest| -> anyhow::Result<Duration> {
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
        seed,
        samples: Summary::of(samples),
        baseline: None,
    });
    let dir = tempfile::tempdir()?;
    let samples = (0..(calls / 100).clamp(1, 3))
        .map(|i| load(never_seen(&manifest, dir.path(), i)?))
        .collect::<anyhow::Result<_>>()?;
    report.rows.push(Row {
        mechanism: "wasm",
        case: "load, compiling (cold), Hello",
        seed,
        samples: Summary::of(samples),
        baseline: None,
    });

    let rss_before = resident()?;
    for i in 0..100 {
        let mut copy = manifest.clone();
        copy.name = format!("{}-{i}", manifest.name);
        let plugin = host.load_manifest(copy)?;
        host.unload(plugin.name());
    }
    // 10,000 instances: a guest whose Greet traps, so that every call gets
    // a fresh instance and drops it.
    let trap = misbehaving_guest(dir.path(), "trap", "(unreachable)", "")?;
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

    // An endless loop in Greet, stopped at the deadline: how long the caller
    // waits, against the manifest's limit (the goal is at most twice it).
    const LIMIT: Duration = Duration::from_millis(100);
    let spin = misbehaving_guest(
        dir.path(),
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
    report.rows.push(Row {
        mechanism: "wasm",
        case: "endless loop, stopped (DeadlineExceeded)",
        seed,
        samples: Summary::of(samples),
        baseline: Some((
            "limits.timeout_ms",
            Summary {
                median: LIMIT,
                p99: LIMIT,
            },
        )),
    });
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

/// A WAT guest that answers Hello as `name` and runs `misbehave` (a trap,
/// an endless loop) on every other call, Shutdown included, and its
/// manifest, which ends with `limits` (TOML tables).
fn misbehaving_guest(
    dir: &Path,
    name: &str,
    misbehave: &str,
    limits: &str,
) -> anyhow::Result<outlet_manifest::Manifest> {
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
    Ok(outlet_manifest::Manifest::parse(
        &format!(
            "name = \"{name}\"\nmechanism = \"wasm\"\npath = \"{}\"\n\
             interface = \"{SERVICE}\"\ntrust = \"tight\"\n{limits}",
            module.display()
        ),
        &dir.join(format!("{name}.toml")),
    )?)
}

/// A fresh instance of the plugin, readied as a call would ready it.
fn fresh_instances(
    host: &Host,
    manifest: &outlet_manifest::Manifest,
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

/// The median of a few values, one per round (an odd number of them).
fn middle<T: PartialOrd + Copy>(mut values: Vec<T>) -> T {
    values.sort_unstable_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values[values.len() / 2]
}

/// Extism beside the wasm rows: `bench/extism`'s program measures the same
/// greet through Extism (see `bench/extism/README.md`). The machine's speed
/// drifts within a run, and Extism runs in a process of its own, so the two
/// are measured in rounds: Extism's program, then the Rust guest's Greet and
/// a fresh instance here, five times over. Each row is the median of its
/// rounds' medians (and p99s); each comparison the median of the rounds'
/// ratios, each taken within one round.
fn extism(
    host: &Host,
    manifests: &Path,
    dir: &Path,
    calls: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    const ROUNDS: usize = 5;
    /// What the program measures.
    const ROWS: [&str; 5] = [
        "extism call",
        "extism create",
        "extism create+call",
        "extism compile",
        "direct greet",
    ];
    /// What one round measured: Extism's rows, and here the Rust guest's
    /// Greet and a fresh instance.
    struct Round {
        theirs: std::collections::HashMap<&'static str, Summary>,
        greet: Summary,
        fresh: Summary,
    }
    let program = dir.join("target/release/extism-bench");
    let guest = dir.join("guest/target/wasm32-unknown-unknown/release/extism_greet_guest.wasm");
    for file in [&program, &guest] {
        anyhow::ensure!(
            file.exists(),
            "{} is missing: build it as bench/extism/README.md says, or run scripts/bench.sh",
            file.display()
        );
    }
    let file = manifests.join("wasm-rust.toml");
    let manifest = outlet_manifest::Manifest::load(&file)?;
    let per_round = (calls / ROUNDS).max(10);
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let out = Command::new(&program)
            .arg(&guest)
            .arg(per_round.to_string())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", program.display()))?;
        anyhow::ensure!(
            out.status.success(),
            "{} failed: {}",
            program.display(),
            out.status
        );
        let mut measured = std::collections::HashMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let row: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{} printed {line:?}", program.display()))?;
            let ns = |key: &str| Duration::from_nanos(row[key].as_u64().unwrap_or_default());
            let summary = Summary {
                median: ns("median_ns"),
                p99: ns("p99_ns"),
            };
            measured.insert(row["row"].as_str().unwrap_or_default().to_owned(), summary);
        }
        let theirs = ROWS
            .iter()
            .map(|&name| {
                let summary = measured.get(name).copied();
                let summary = summary
                    .with_context(|| format!("{} did not measure `{name}`", program.display()))?;
                Ok((name, summary))
            })
            .collect::<anyhow::Result<_>>()?;
        rounds.push(Round {
            theirs,
            greet: in_process(host, &file, per_round, "wasm", "", "")?.samples,
            fresh: fresh_instances(host, &manifest, per_round)?,
        });
    }
    let across = |pick: &dyn Fn(&Round) -> Summary| Summary {
        median: middle(rounds.iter().map(|r| pick(r).median).collect()),
        p99: middle(rounds.iter().map(|r| pick(r).p99).collect()),
    };
    // Every round holds every row of `ROWS`.
    let theirs = |row: &str| across(&|r| r.theirs[row]);
    let seed = "Extism, the most used WASM plugin runtime (wasmtime)";
    report.rows.extend([
        Row {
            mechanism: "extism",
            case: "Greet, Plugin::call, warm plugin",
            seed,
            samples: theirs("extism call"),
            baseline: Some(("bare format! greet", theirs("direct greet"))),
        },
        Row {
            mechanism: "extism",
            case: "Plugin::new_from_compiled",
            seed,
            samples: theirs("extism create"),
            baseline: None,
        },
        Row {
            mechanism: "extism",
            case: "new_from_compiled + first call",
            seed,
            samples: theirs("extism create+call"),
            baseline: None,
        },
        Row {
            mechanism: "extism",
            case: "compile (CompiledPlugin::new)",
            seed,
            samples: theirs("extism compile"),
            baseline: None,
        },
    ]);
    // Each ratio is taken within a round; the comparison is their median.
    let ratio = |pair: &dyn Fn(&Round) -> (Duration, Duration)| {
        let ratios = rounds.iter().map(|r| {
            let (theirs, ours) = pair(r);
            theirs.as_secs_f64() / ours.as_secs_f64()
        });
        middle(ratios.collect())
    };
    let greet = ratio(&|r| (r.theirs["extism call"].median, r.greet.median));
    let instance = ratio(&|r| (r.theirs["extism create"].median, r.fresh.median));
    // Extism's create leaves instantiating the guest to the first call; set
    // that pair against a fresh instance and a Greet.
    let instance_call = ratio(&|r| {
        (
            r.theirs["extism create+call"].median,
            r.fresh.median + r.greet.median,
        )
    });
    let (warm, fresh) = (across(&|r| r.greet).median, across(&|r| r.fresh).median);
    report.notes.push(format!(
        "wasm vs extism, in {ROUNDS} interleaved rounds (medians of the rounds): Greet (Rust \
         guests) {} against {}, {greet:.1}x faster; a fresh instance {} against \
         new_from_compiled's {}, {instance:.1}x faster; a fresh instance and a Greet \
         {instance_call:.1}x faster than new_from_compiled and its first call (each ratio \
         taken within a round)",
        human(warm),
        human(theirs("extism call").median),
        human(fresh),
        human(theirs("extism create").median),
    ));
    report.extra.insert(
        "wasm_vs_extism".into(),
        serde_json::json!({
            "rounds": ROUNDS,
            "ours_greet_ns": warm.as_nanos() as u64,
            "ours_fresh_instance_ns": fresh.as_nanos() as u64,
            "greet_times_faster": greet,
            "instance_times_faster_than_create": instance,
            "instance_times_faster_than_create_and_first_call": instance_call,
        }),
    );
    Ok(())
}

/// The manifest's module with a custom section of a name never used before:
/// a hash the module cache has not seen, so loading it compiles.
fn never_seen(
    manifest: &outlet_manifest::Manifest,
    dir: &Path,
    i: usize,
) -> anyhow::Result<outlet_manifest::Manifest> {
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

/// rpc: go-plugin's KV example, a `Get` of a 64-byte value. An Outlet host
/// with the Outlet plugin (Outlet's frames) and, given `--go`, with the Go
/// plugin (gRPC); go-plugin's own Go host with the Go plugin and with the
/// Outlet plugin, in processes of their own. Four rounds, each measuring
/// all of them, so that they share the machine's moods. Then start to first
/// call, and a restart after SIGKILL.
fn rpc(
    host: &Host,
    manifests: &Path,
    calls: usize,
    go: Option<&Path>,
    report: &mut Report,
) -> anyhow::Result<()> {
    const ROUNDS: usize = 4;
    /// Calls in a row to one plugin: each sees calls back to back, as under load.
    const BLOCK: usize = 50;
    let file = manifests.join("../../kv/kv.toml");
    let manifest = outlet_manifest::Manifest::load(&file)?;
    let go_manifest = go.map(|dir| {
        let mut go = manifest.clone();
        go.name = "kv-go".into();
        go.path = dir.join("kv-go-plugin");
        go
    });
    let value = vec![b'v'; 64];
    let key = "bench".to_owned();
    let load = |manifest: &outlet_manifest::Manifest| -> anyhow::Result<_> {
        let plugin = host
            .load_manifest(manifest.clone())
            .with_context(|| format!("loading {}", manifest.path.display()))?;
        let kv = plugin.client::<kv::KvClient<_>>()?;
        kv.put(kv::PutRequest {
            key: key.clone(),
            value: value.clone(),
        })?;
        Ok((plugin, kv))
    };
    let get = |kv: &kv::KvClient<outlet_host::Plugin>| -> anyhow::Result<Duration> {
        let started = Instant::now();
        let got = kv.get(kv::GetRequest { key: key.clone() })?;
        let took = started.elapsed();
        anyhow::ensure!(
            got.value.len() == 64,
            "Get returned {} bytes",
            got.value.len()
        );
        Ok(took)
    };
    // Start to first call: load (spawn, handshake, health, Hello) and a Get.
    let first = |manifest: &outlet_manifest::Manifest, i: usize| -> anyhow::Result<Duration> {
        let mut fresh = manifest.clone();
        fresh.name = format!("{}-start-{i}", manifest.name);
        let started = Instant::now();
        let plugin = host.load_manifest(fresh)?;
        let kv = plugin.client::<kv::KvClient<_>>()?;
        kv.get(kv::GetRequest { key: key.clone() })?;
        let took = started.elapsed();
        host.unload(plugin.name());
        Ok(took)
    };
    // go-plugin's Go host: every sample it took, Gets and starts.
    let go_host = |plugin: &Path, calls: usize| -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
        let program = go.expect("given --go").join("kv-go-host");
        let out = Command::new(&program)
            .arg(plugin)
            .arg("bench")
            .arg(calls.to_string())
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
        let row: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "{} printed {:?}",
                program.display(),
                String::from_utf8_lossy(&out.stdout)
            )
        })?;
        let samples = |key: &str| -> Vec<Duration> {
            row[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|ns| ns.as_u64().map(Duration::from_nanos))
                .collect()
        };
        Ok((samples("get_ns"), samples("start_ns")))
    };

    // Kills in quick succession would count as a crash loop.
    let mut killable = manifest.clone();
    killable.limits.restarts = 100;
    let (ours, kv) = load(&killable)?;
    let theirs = go_manifest.as_ref().map(load).transpose()?;
    let starts = (calls / 100).clamp(2, 5);
    let per_round = calls.div_ceil(ROUNDS);
    let (mut lean, mut grpc) = (Vec::new(), Vec::new());
    let (mut start_ours, mut start_theirs) = (Vec::new(), Vec::new());
    let (mut go_go, mut go_ours) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    for _ in 0..BLOCK {
        get(&kv)?;
    }
    for round in 0..ROUNDS {
        for _ in 0..per_round.div_ceil(BLOCK) {
            for _ in 0..BLOCK {
                lean.push(get(&kv)?);
            }
            if let Some((_, go_kv)) = &theirs {
                for _ in 0..BLOCK {
                    grpc.push(get(go_kv)?);
                }
            }
        }
        for i in 0..starts {
            start_ours.push(first(&manifest, round * starts + i)?);
            if let Some(go_manifest) = &go_manifest {
                start_theirs.push(first(go_manifest, round * starts + i)?);
            }
        }
        if let (Some(dir), Some(_)) = (go, &theirs) {
            for (plugin, into) in [
                (dir.join("kv-go-plugin"), &mut go_go),
                (manifest.path.clone(), &mut go_ours),
            ] {
                let (gets, starts) = go_host(&plugin, per_round)?;
                into.0.extend(gets);
                into.1.extend(starts);
            }
        }
    }

    // Restart: the plugin's process killed, then Gets until one succeeds.
    let mut restarts = Vec::new();
    for _ in 0..(calls / 100).clamp(3, 10) {
        let pid = ours.process_id().context("the rpc plugin has no process")?;
        let killed = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()?;
        anyhow::ensure!(killed.success(), "kill -9 {pid} failed");
        let started = Instant::now();
        while kv.get(kv::GetRequest { key: key.clone() }).is_err() {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(5),
                "the plugin was not back within 5 s"
            );
        }
        restarts.push(started.elapsed());
    }
    host.unload(ours.name());
    if let Some((plugin, _)) = &theirs {
        host.unload(plugin.name());
    }

    let seed = "go-plugin gRPC ~50-100 µs; seed: Outlet-to-Outlet ~50 µs";
    let measured = go.is_some() && !go_go.0.is_empty();
    let go_get = measured.then(|| {
        (
            "go-plugin Go host + Go plugin",
            Summary::of(go_go.0.clone()),
        )
    });
    let go_start = measured.then(|| {
        (
            "go-plugin Go host + Go plugin",
            Summary::of(go_go.1.clone()),
        )
    });
    let mut row = |case, samples: Vec<Duration>, baseline| {
        if !samples.is_empty() {
            report.rows.push(Row {
                mechanism: "rpc",
                case,
                seed,
                samples: Summary::of(samples),
                baseline,
            });
        }
    };
    row("KV Get, Outlet host + plugin (frames)", lean, go_get);
    row("KV Get, Outlet host + Go plugin (gRPC)", grpc, go_get);
    row("KV Get, Go host + Outlet plugin (gRPC)", go_ours.0, go_get);
    row("start to first Get, Outlet plugin", start_ours, go_start);
    row("start to first Get, Go plugin", start_theirs, go_start);
    row(
        "start to first Get, Go host + Outlet plugin",
        go_ours.1,
        go_start,
    );
    row("killed to serving again (restart)", restarts, None);
    if go.is_none() {
        report.notes.push(
            "rpc: go-plugin's own Go host and plugin were not measured; give --go target/go \
             (scripts/bench.sh does, after tests/go/build.sh)"
                .into(),
        );
    }
    Ok(())
}

/// exec: a Greet round trip, one process per call, against spawning
/// `/bin/true` and waiting for it.
fn exec(host: &Host, manifests: &Path, calls: usize) -> anyhow::Result<Row> {
    let file = manifests.join("exec.toml");
    let plugin = host
        .load(&file)
        .with_context(|| format!("loading {}", file.display()))?;
    let greeter = plugin.client::<GreeterClient<_>>()?;
    let request = request();
    let spawn = || -> anyhow::Result<()> {
        let status = Command::new("/bin/true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("spawning /bin/true")?;
        anyhow::ensure!(status.success(), "/bin/true failed: {status}");
        Ok(())
    };
    for _ in 0..calls / 10 {
        spawn()?;
        greeter.greet(request.clone())?;
    }
    let (mut ours, mut base) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    for _ in 0..calls {
        let started = Instant::now();
        spawn()?;
        base.push(started.elapsed());
        let started = Instant::now();
        greeter.greet(request.clone())?;
        ours.push(started.elapsed());
    }
    host.unload(plugin.name());
    Ok(Row {
        mechanism: "exec",
        case: "Greet, one process per call",
        seed: "exec.Command (one-shot) ~5 ms (fork+exec)",
        samples: Summary::of(ours),
        baseline: Some(("spawn /bin/true", Summary::of(base))),
    })
}

fn human(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.3} ms", ns / 1e6)
    }
}
