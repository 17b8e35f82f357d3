//! Streams (`examples/numbers`): a `Count` of 1 GiB in 16 KiB messages on
//! rpc, the Outlet host and plugin against go-plugin's own Go host and Go
//! plugin (given `--go`), in rounds, with the host's resident memory
//! watched during the stream; and small messages (a `Count` with no
//! payload) per mechanism, each message's share beside a unary Greet of
//! the same mechanism. And a unary rpc call from a tokio task beside the
//! blocking one.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use greeter::GreeterClient;
use numbers::{CountRequest, NumbersClient};
use outlet_host::{Host, Plugin};

use super::report::{Report, Row, human};
use super::stats::{Summary, middle, resident};

/// The usual figures of the wasm and exec rows, as their sections say them.
const WASM_USUAL: &str = super::wasm::USUAL;
const EXEC_USUAL: &str = super::exec::USUAL;

/// The large stream: 65,536 messages of 16 KiB; 1,024 of them (16 MiB)
/// in a run of fewer than [`FULL`] calls (a quick look, a test).
const PAYLOAD: u32 = 16 << 10;
const LARGE: u64 = (1 << 30) / PAYLOAD as u64;
const FULL: usize = 500;
const ROUNDS: usize = 3;

pub fn rows(
    host: &Host,
    manifests: &Path,
    calls: usize,
    go: Option<&Path>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let numbers = manifests.join("../../numbers/manifests");
    let rpc = numbers.join("rpc.toml");
    let n = if calls >= FULL { LARGE } else { LARGE / 64 };
    large(host, &rpc, go, n, report)?;
    report.rows.push(from_async(host, manifests, calls)?);
    // Each beside the greeter of its mechanism (the wasm one in Rust).
    for (mechanism, greeter, usual) in [
        ("native", "native", "plugin package: direct call ~5 ns"),
        (
            "cabi",
            "cabi-rust",
            "c-shared: as plugin package, ~5 ns per direct call",
        ),
        ("rpc", "rpc", "go-plugin gRPC ~50-100 µs"),
        ("wasm", "wasm-rust", WASM_USUAL),
        ("exec", "exec", EXEC_USUAL),
    ] {
        let row = small(
            host,
            (
                &numbers.join(format!("{mechanism}.toml")),
                &manifests.join(format!("{greeter}.toml")),
            ),
            calls,
            mechanism,
            usual,
        )?;
        report.notes.push(per_second(&row));
        report.rows.push(row);
    }
    Ok(())
}

/// What reading one large `Count` to its end took, and how much the
/// reader's resident memory grew meanwhile.
struct Read {
    took: Duration,
    grew: u64,
}

/// The large `Count` through an Outlet host, in rounds with go-plugin's Go
/// host and Go plugin.
fn large(
    host: &Host,
    rpc: &Path,
    go: Option<&Path>,
    n: u64,
    report: &mut Report,
) -> anyhow::Result<()> {
    let plugin = load(host, rpc)?;
    let client = plugin.client::<NumbersClient<_>>()?;
    // Once unmeasured, as every round's first calls warm what they touch.
    read_large(&client, 1024)?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        ours.push(read_large(&client, n)?);
        if let Some(dir) = go {
            theirs.push(go_host(dir, n)?);
        }
    }
    host.unload(plugin.name());
    let took = |reads: &[Read]| reads.iter().map(|r| r.took).collect::<Vec<_>>();
    let gib = (n * u64::from(PAYLOAD)) as f64 / f64::from(1 << 30);
    let gib_per_s = |took: Duration| gib / took.as_secs_f64();
    let grew = |reads: &[Read]| middle(reads.iter().map(|r| r.grew).collect()) as f64 / 1e6;
    report.rows.push(Row {
        mechanism: "rpc",
        case: match n {
            LARGE => "Count: 1 GiB in 16 KiB messages, read",
            _ => "Count: 16 MiB in 16 KiB messages, read (a short run)",
        },
        usual: "go-plugin gRPC ~50-100 µs",
        samples: Summary::of(took(&ours)),
        baseline: (!theirs.is_empty())
            .then(|| ("go-plugin Go host + Go plugin", Summary::of(took(&theirs)))),
    });
    let ours_median = Summary::of(took(&ours)).median;
    let mut note = format!(
        "rpc: a Count of {} MiB in 16 KiB messages: {:.2} GiB/s through the Outlet host and \
         plugin (median of {ROUNDS}); the host's resident memory grew by {:.1} MB during it",
        (n * u64::from(PAYLOAD)) >> 20,
        gib_per_s(ours_median),
        grew(&ours)
    );
    if !theirs.is_empty() {
        let go_median = Summary::of(took(&theirs)).median;
        note.push_str(&format!(
            "; go-plugin's Go host and plugin: {:.2} GiB/s, its host's memory grew by {:.1} MB",
            gib_per_s(go_median),
            grew(&theirs)
        ));
    }
    report.notes.push(note);
    report.extra.insert(
        "stream_1gib".into(),
        serde_json::json!({
            "bytes": n * u64::from(PAYLOAD),
            "outlet_ns": took(&ours).iter().map(|d| d.as_nanos() as u64).collect::<Vec<_>>(),
            "outlet_grew_bytes": ours.iter().map(|r| r.grew).collect::<Vec<_>>(),
            "go_ns": took(&theirs).iter().map(|d| d.as_nanos() as u64).collect::<Vec<_>>(),
            "go_grew_bytes": theirs.iter().map(|r| r.grew).collect::<Vec<_>>(),
        }),
    );
    Ok(())
}

fn load(host: &Host, file: &Path) -> anyhow::Result<Plugin> {
    host.load(file)
        .with_context(|| format!("loading {}", file.display()))
}

/// Reads a `Count` of `n` messages of 16 KiB to its end, checking each.
fn read_large(client: &NumbersClient<Plugin>, n: u64) -> anyhow::Result<Read> {
    let before = resident()?;
    let mut peak = before;
    let started = Instant::now();
    let mut read = 0;
    for number in client.count(CountRequest {
        n,
        payload_bytes: PAYLOAD,
    })? {
        let number = number?;
        read += 1;
        anyhow::ensure!(
            number.value == read && number.payload.len() == PAYLOAD as usize,
            "message {read} of the Count is not the one sent"
        );
        if read % 1024 == 0 {
            peak = peak.max(resident()?);
        }
    }
    let took = started.elapsed();
    anyhow::ensure!(read == n, "the Count ended after {read} of {n} messages");
    Ok(Read {
        took,
        grew: peak.saturating_sub(before),
    })
}

/// go-plugin's Go host from `dir` reading the same `Count` of `n` messages
/// from the Go plugin.
fn go_host(dir: &Path, n: u64) -> anyhow::Result<Read> {
    let program = dir.join("numbers-go-host");
    let (n_text, payload) = (n.to_string(), PAYLOAD.to_string());
    let args = ["count", n_text.as_str(), payload.as_str()];
    let row = super::go::run_go(&program, &dir.join("numbers-go-plugin"), &args)?;
    let field = |key: &str| row[key].as_u64().unwrap_or_default();
    anyhow::ensure!(
        field("messages") == n,
        "{} read {} messages",
        program.display(),
        field("messages")
    );
    Ok(Read {
        took: Duration::from_nanos(field("elapsed_ns")),
        grew: field("rss_peak_kib").saturating_sub(field("rss_before_kib")) * 1024,
    })
}

/// Small messages: each message's share of a `Count` with no payload,
/// beside a unary Greet of the same mechanism, in alternating rounds.
fn small(
    host: &Host,
    (numbers, greeter): (&Path, &Path),
    calls: usize,
    mechanism: &'static str,
    usual: &'static str,
) -> anyhow::Result<Row> {
    // The greeter's grant of the host's store is not needed here.
    let mut greeting = outlet_manifest::Manifest::load(greeter)?;
    greeting.permissions.call.clear();
    let (numbers, greeter) = (load(host, numbers)?, host.load_manifest(greeting)?);
    let count = numbers.client::<NumbersClient<_>>()?;
    let greet = greeter.client::<GreeterClient<_>>()?;
    // Long enough a stream that opening it is a small part; Greets in
    // batches back to back, as the Greet rows and the rpc rows' blocks
    // time them.
    let (per_stream, batch): (u64, u32) = match mechanism {
        "native" | "cabi" | "wasm" => (10_000, 1000),
        "exec" => (1000, 5),
        _ => (1000, 50),
    };
    let (mut messages, mut unary) = (Vec::new(), Vec::new());
    for round in 0..=calls / 10 {
        let started = Instant::now();
        let mut read: u32 = 0;
        for number in count.count(CountRequest {
            n: per_stream,
            payload_bytes: 0,
        })? {
            std::hint::black_box(number?);
            read += 1;
        }
        let each = started.elapsed() / read;
        anyhow::ensure!(
            u64::from(read) == per_stream,
            "the Count ended after {read} messages"
        );
        let started = Instant::now();
        for _ in 0..batch {
            std::hint::black_box(greet.greet(super::greet::request())?);
        }
        let greeted = started.elapsed() / batch;
        // The first round warms up.
        if round > 0 {
            messages.push(each);
            unary.push(greeted);
        }
    }
    host.unload(numbers.name());
    host.unload(greeter.name());
    let row = Row {
        mechanism,
        case: "Count, no payload: each message",
        usual,
        samples: Summary::of(messages),
        baseline: Some(("a unary Greet", Summary::of(unary))),
    };
    Ok(row)
}

/// A unary Greet of the rpc greeter from a tokio task (a runtime of two
/// workers, as a server's), beside the same Greet from blocking code, in
/// alternating blocks of 50 calls each timed.
fn from_async(host: &Host, manifests: &Path, calls: usize) -> anyhow::Result<Row> {
    let mut greeting = outlet_manifest::Manifest::load(manifests.join("rpc.toml"))?;
    greeting.permissions.call.clear();
    let plugin = host.load_manifest(greeting)?;
    let client = plugin.client::<GreeterClient<_>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (mut tasks, mut blocking) = (Vec::new(), Vec::new());
    for round in 0..=calls.div_ceil(50) {
        let async_client = client.clone();
        let timed = runtime.block_on(runtime.spawn(async move {
            let mut timed = Vec::with_capacity(50);
            for _ in 0..50 {
                let started = Instant::now();
                std::hint::black_box(async_client.greet_async(super::greet::request()).await?);
                timed.push(started.elapsed());
            }
            Ok::<_, outlet_protocol::Status>(timed)
        }))??;
        let mut timed_blocking = Vec::with_capacity(50);
        for _ in 0..50 {
            let started = Instant::now();
            std::hint::black_box(client.greet(super::greet::request())?);
            timed_blocking.push(started.elapsed());
        }
        // The first round warms up.
        if round > 0 {
            tasks.extend(timed);
            blocking.extend(timed_blocking);
        }
    }
    host.unload(plugin.name());
    Ok(Row {
        mechanism: "rpc",
        case: "Greet from a tokio task (async)",
        usual: "go-plugin gRPC ~50-100 µs",
        samples: Summary::of(tasks),
        baseline: Some(("the same Greet, blocking", Summary::of(blocking))),
    })
}

/// Messages per second at a message's median time, for the notes.
fn per_second(row: &Row) -> String {
    format!(
        "{}: {:.0} small messages/s in a stream, {:.0} unary calls/s (each message {})",
        row.mechanism,
        1.0 / row.samples.median.as_secs_f64(),
        row.baseline
            .as_ref()
            .map_or(0.0, |(_, base)| 1.0 / base.median.as_secs_f64()),
        human(row.samples.median)
    )
}
