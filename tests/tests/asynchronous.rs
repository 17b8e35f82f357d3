//! Calls from async code (the generated clients' `_async` methods): on a
//! current-thread runtime, calls of plugins in other processes (rpc, exec)
//! and of wasm plugins overlap instead of blocking the runtime's one thread.

use std::time::{Duration, Instant};

use greeter::{GreetRequest, GreetResponse, Greeter, GreeterClient, GreeterServer};
use outlet_host::Plugin;
use outlet_protocol::context::Cancel;
use outlet_protocol::{Code, Status};

use crate::bus::{V1, link};
use crate::support::{fixture, host, rpc_fixture};

/// A Greeter of the host's own that takes 50 ms, as I/O would.
struct Slow;

impl Greeter for Slow {
    fn greet(&self, request: GreetRequest) -> Result<GreetResponse, Status> {
        std::thread::sleep(Duration::from_millis(50));
        Ok(GreetResponse {
            message: format!("slowly, {}", request.name),
        })
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A current-thread runtime whose blocking pool has one thread: calls that
/// went there would run one after another.
fn one_blocking_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .build()
        .unwrap()
}

/// The plugin's stats of its Greet.
fn greets(plugin: &Plugin) -> outlet_host::MethodStats {
    let stats = plugin.stats();
    let greet = stats.methods.iter().find(|m| m.method.ends_with("/Greet"));
    greet
        .cloned()
        .unwrap_or_else(|| panic!("no Greet in {stats:?}"))
}

/// Makes `n` calls of `name` at once from one current-thread runtime; how
/// long all took, and their answers.
fn at_once(
    runtime: &tokio::runtime::Runtime,
    plugin: &Plugin,
    n: usize,
    name: &str,
) -> (Duration, Vec<Result<String, Status>>) {
    let client: GreeterClient<Plugin> = plugin.client().unwrap();
    let started = Instant::now();
    let answers = runtime.block_on(futures_util::future::join_all((0..n).map(|_| async {
        let request = GreetRequest { name: name.into() };
        client.greet_async(request).await.map(|r| r.message)
    })));
    (started.elapsed(), answers)
}

#[test]
fn a_hundred_calls_of_50_ms_overlap_on_one_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let rpc = rpc_fixture("async-rpc", "", "");
    let exec = fixture("async-exec", "nap", "");
    let host = host();
    host.offer(GreeterServer::new(Slow)).unwrap();
    let wasm_manifest = link(
        dir.path(),
        "async-wasm",
        V1,
        Some(&format!("/{V1}/Greet")),
        "",
    );
    // rpc's calls never reach the blocking pool: with one thread there,
    // they would take 5 s.
    let cases = [
        (
            "rpc",
            host.load(&rpc.manifest).unwrap(),
            "sleep:50",
            one_blocking_thread(),
        ),
        ("exec", host.load(&exec.manifest).unwrap(), "ada", runtime()),
        ("wasm", host.load(wasm_manifest).unwrap(), "ada", runtime()),
    ];
    for (mechanism, plugin, name, runtime) in cases {
        let (took, answers) = at_once(&runtime, &plugin, 100, name);
        assert_eq!(answers.len(), 100);
        for answer in &answers {
            assert!(answer.is_ok(), "{mechanism}: {answer:?}");
        }
        // One after another, they would take 5 s.
        assert!(
            took < Duration::from_millis(2500),
            "{mechanism}: 100 calls of 50 ms took {took:?}"
        );
        // Counted once each.
        let greets = greets(&plugin);
        assert_eq!(
            (greets.calls, greets.in_flight),
            (100, 0),
            "{mechanism}: {greets:?}"
        );
        plugin.shutdown().unwrap();
    }
}

#[test]
fn an_async_call_keeps_its_deadline_and_cancel_and_a_dropped_one_is_cancelled() {
    let rpc = rpc_fixture("async-held", "", "");
    let plugin = host().load(&rpc.manifest).unwrap();
    let client: GreeterClient<Plugin> = plugin.client().unwrap();
    let runtime = runtime();
    let greet = |client: &GreeterClient<Plugin>, name: &str| {
        let request = GreetRequest { name: name.into() };
        runtime.block_on(client.greet_async(request))
    };
    // Answered over Outlet's frames, on the runtime.
    let pid = plugin.process_id().unwrap().to_string();
    assert_eq!(greet(&client, "pid").unwrap().message, pid);

    let late = client.clone().with_timeout(Duration::from_millis(20));
    let error = greet(&late, "hang").unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded, "{error}");
    assert!(error.message().contains("plugin `async-held`"), "{error}");

    let cancel = Cancel::new();
    let cancelling = cancel.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        cancelling.cancel();
    });
    let error = greet(&client.clone().with_cancel(&cancel), "hang").unwrap_err();
    canceller.join().unwrap();
    assert_eq!(error.code(), Code::Cancelled, "{error}");

    // A call whose future is dropped (a timeout of the caller's runtime).
    let dropped = runtime.block_on(async {
        let request = GreetRequest {
            name: "hang".into(),
        };
        tokio::time::timeout(Duration::from_millis(20), client.greet_async(request)).await
    });
    assert!(dropped.is_err(), "the call answered: {dropped:?}");
    assert_eq!(greet(&client, "pid").unwrap().message, pid, "serves on");
    // The dropped call is counted as cancelled, and none is left in flight.
    let greets = greets(&plugin);
    assert_eq!(greets.in_flight, 0, "{greets:?}");
    assert!(
        greets.errors.contains(&(Code::Cancelled, 2)),
        "one cancelled by its token, one dropped: {greets:?}"
    );
    plugin.shutdown().unwrap();
}

#[test]
fn an_in_process_async_call_runs_inline() {
    let dir = tempfile::tempdir().unwrap();
    let library = crate::support::library("libgreeter_native.so");
    let file = crate::support::manifest(dir.path(), "native", "async-native", &library, "");
    let native = host().load(file).unwrap();
    let (_, answers) = at_once(&runtime(), &native, 3, "ada");
    for answer in answers {
        assert!(answer.unwrap().contains("ada"));
    }
    native.shutdown().unwrap();
}
