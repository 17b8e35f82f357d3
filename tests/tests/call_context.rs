//! What a call carries besides its message, on every mechanism: its own
//! deadline and cancel token (the example greeter with `pause_ms` takes 5 s
//! over a greeting unless it is stopped, or stops itself on seeing its
//! caller gone: native and cabi, which only the plugin can stop), its trace
//! context, and the span it runs in.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use greeter::{GreetRequest, GreeterClient};
use outlet_host::Plugin;
use outlet_protocol::context::{self, CallOptions, Cancel, TraceContext};
use outlet_protocol::core::{Call, Reply};
use outlet_protocol::prost::Message;
use outlet_protocol::{Code, frame};

use crate::support::{fixture, greeter_exec, host, library, manifest, rust_guest, test_plugin};

const MECHANISMS: [&str; 5] = ["native", "cabi", "rpc", "wasm", "exec"];

/// Far under the greeter's 5 s pause, far over a deadline's few hundred ms.
const PROMPT: Duration = Duration::from_secs(3);

fn artifact(mechanism: &str) -> PathBuf {
    match mechanism {
        "native" => library("libgreeter_native.so"),
        "cabi" => library("libgreeter_cabi.so"),
        "rpc" => test_plugin().with_file_name("greeter-rpc"),
        "wasm" => rust_guest(),
        "exec" => greeter_exec(),
        other => unreachable!("{other}"),
    }
}

/// The example greeter of `mechanism`, pausing 5 s per greeting, its own
/// limit 20 s.
fn pausing(dir: &Path, mechanism: &str) -> Plugin {
    let name = format!("pausing-{mechanism}");
    let file = manifest(
        dir,
        mechanism,
        &name,
        &artifact(mechanism),
        "[limits]\ntimeout_ms = 20000\n[config]\npause_ms = \"5000\"\n",
    );
    host()
        .load(&file)
        .unwrap_or_else(|e| panic!("{mechanism}: {e}"))
}

fn request() -> GreetRequest {
    GreetRequest {
        name: "late".into(),
    }
}

/// The plugin still serves: without its pause, a greeting comes at once.
fn serves_again(plugin: &Plugin, mechanism: &str) {
    plugin
        .configure(BTreeMap::from([("pause_ms".into(), "0".into())]))
        .unwrap_or_else(|e| panic!("{mechanism}: {e}"));
    let client: GreeterClient<Plugin> = plugin.client().unwrap();
    let reply = client
        .greet(request())
        .unwrap_or_else(|e| panic!("{mechanism}: {e}"));
    assert_eq!(reply.message, "Hello, late!", "{mechanism}");
}

#[test]
fn a_call_fails_with_deadline_exceeded_at_its_own_timeout_on_every_mechanism() {
    let dir = tempfile::tempdir().unwrap();
    for mechanism in MECHANISMS {
        let plugin = pausing(dir.path(), mechanism);
        let client: GreeterClient<Plugin> = plugin.client().unwrap();
        let client = client.with_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let error = client.greet(request()).unwrap_err();
        let took = started.elapsed();
        assert_eq!(error.code(), Code::DeadlineExceeded, "{mechanism}: {error}");
        assert!(took < PROMPT, "{mechanism}: took {took:?}: {error}");
        assert!(took >= Duration::from_millis(290), "{mechanism}: {took:?}");
        serves_again(&plugin, mechanism);
    }
}

#[test]
fn a_cancelled_call_fails_with_cancelled_at_once_on_every_mechanism() {
    let dir = tempfile::tempdir().unwrap();
    for mechanism in MECHANISMS {
        let plugin = pausing(dir.path(), mechanism);
        let cancel = Cancel::new();
        let client: GreeterClient<Plugin> = plugin.client().unwrap();
        let client = client.with_cancel(&cancel);
        let canceller = crate::support::cancel_after(&cancel, Duration::from_millis(200));
        let started = Instant::now();
        let error = client.greet(request()).unwrap_err();
        let took = started.elapsed();
        canceller.join().unwrap();
        assert_eq!(error.code(), Code::Cancelled, "{mechanism}: {error}");
        assert!(error.message().contains(plugin.name()), "{error}");
        assert!(took < PROMPT, "{mechanism}: took {took:?}: {error}");
        serves_again(&plugin, mechanism);
    }
}

#[test]
fn a_call_already_given_up_on_is_not_made() {
    let dir = tempfile::tempdir().unwrap();
    for mechanism in MECHANISMS {
        let plugin = pausing(dir.path(), mechanism);
        let cancel = Cancel::new();
        cancel.cancel();
        let client: GreeterClient<Plugin> = plugin.client().unwrap();
        let error = client
            .clone()
            .with_cancel(&cancel)
            .greet(request())
            .unwrap_err();
        assert_eq!(error.code(), Code::Cancelled, "{mechanism}: {error}");
        assert!(error.message().contains("before it was made"), "{error}");
        let past = Instant::now() - Duration::from_millis(1);
        let error = client.with_deadline(past).greet(request()).unwrap_err();
        assert_eq!(error.code(), Code::DeadlineExceeded, "{mechanism}: {error}");
        assert!(error.message().contains("had passed"), "{error}");
    }
}

/// The exec guest reads the time left from the call, and the greeter stops
/// there on its own: run by hand, with no host to kill it.
#[test]
fn an_exec_guest_learns_its_deadline_from_the_call() {
    let call = Call {
        method: "/outlet.examples.greeter.v1.Greeter/Greet".into(),
        body: request().encode_to_vec(),
        config: [("pause_ms".to_owned(), "5000".to_owned())].into(),
        timeout_us: 200_000,
        ..Call::default()
    };
    let mut child = Command::new(greeter_exec())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&frame::encode(&call))
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
    let reply = frame::read(&mut &output.stdout[..], 1 << 20).unwrap();
    let status = Reply::decode(&reply[..]).unwrap().status.unwrap();
    assert_eq!(status.code, Code::DeadlineExceeded.as_i32(), "{status:?}");
    assert!(status.message.contains("deadline came"), "{status:?}");
}

/// An exec plugin that takes SIGTERM and goes on is killed shortly after.
#[test]
fn an_exec_plugin_that_ignores_its_cancel_is_killed() {
    let f = fixture("deaf", "deaf", "[limits]\ntimeout_ms = 20000\n");
    let plugin = f.load();
    let cancel = Cancel::new();
    let canceller = crate::support::cancel_after(&cancel, Duration::from_millis(300));
    let client: GreeterClient<Plugin> = plugin.client().unwrap();
    let started = Instant::now();
    let error = client.with_cancel(&cancel).greet(request()).unwrap_err();
    canceller.join().unwrap();
    assert_eq!(error.code(), Code::Cancelled, "{error}");
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
    f.assert_no_leftovers();
}

/// A reload made within a call that was given up on stops at its Hello:
/// it fails, naming the plugin, the running instance stays, and the
/// process it started goes.
#[test]
fn a_reload_within_a_cancelled_call_fails_and_leaves_nothing() {
    let f = crate::support::rpc_fixture("reload-cancelled", "", "");
    let plugin = f.load();
    let running = plugin.process_id();
    let cancel = Cancel::new();
    cancel.cancel();
    let options = CallOptions::new().cancel(&cancel);
    let error = context::with(&options, || plugin.reload()).unwrap_err();
    let error = error.to_string();
    assert!(error.contains("reload-cancelled"), "{error}");
    assert!(error.contains("cancelled"), "{error}");
    assert_eq!(plugin.process_id(), running);
    assert_eq!(
        crate::support::greet(&plugin, "still").unwrap(),
        "Hello, still!"
    );
    plugin.shutdown().unwrap();
    f.assert_no_leftovers();
}

/// The trace context a call carries reaches the plugin on every mechanism:
/// the greeter with `traced` names the trace id it was called in.
#[test]
fn a_calls_trace_context_reaches_the_plugin_on_every_mechanism() {
    let dir = tempfile::tempdir().unwrap();
    let trace = TraceContext::new(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "congo=t61rcWkgMzE",
    )
    .unwrap();
    for mechanism in MECHANISMS {
        let plugin = pausing(dir.path(), mechanism);
        plugin
            .configure(BTreeMap::from([
                ("pause_ms".into(), "0".into()),
                ("traced".into(), "true".into()),
            ]))
            .unwrap();
        let client: GreeterClient<Plugin> = plugin.client().unwrap();
        let options = CallOptions::new().trace(trace.clone());
        let reply = context::with(&options, || client.greet(request()))
            .unwrap_or_else(|e| panic!("{mechanism}: {e}"));
        assert_eq!(
            reply.message, "Hello, late! (trace 4bf92f3577b34da6a3ce929d0e0e4736)",
            "{mechanism}"
        );
        let reply = client.greet(request()).unwrap();
        assert_eq!(reply.message, "Hello, late! (no trace)", "{mechanism}");
    }
}

/// Each call runs in a `tracing` span naming the plugin, method, mechanism
/// and code.
#[test]
fn each_call_runs_in_a_span_with_its_plugin_method_mechanism_and_code() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = pausing(dir.path(), "exec");
    let ((), text) = crate::support::capture_spans(|| {
        let client: GreeterClient<Plugin> = plugin.client().unwrap();
        let error = client
            .with_timeout(Duration::from_millis(100))
            .greet(request())
            .unwrap_err();
        assert_eq!(error.code(), Code::DeadlineExceeded);
    });
    let closed = text
        .lines()
        .find(|line| line.contains("call{") && line.contains("close"))
        .unwrap_or_else(|| panic!("no span closed: {text}"));
    for field in [
        "plugin=pausing-exec",
        "method=\"/outlet.examples.greeter.v1.Greeter/Greet\"",
        "mechanism=\"exec\"",
        "code=DeadlineExceeded",
    ] {
        assert!(closed.contains(field), "{field}: {closed}");
    }
}

/// A cancel reaches every call of the chain it cancels, even one an rpc
/// plugin makes through the host on a thread of its own: the callee stops.
#[test]
fn a_cancel_reaches_a_call_an_rpc_plugin_makes_through_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let host = host();
    let callee = host
        .load(manifest(
            dir.path(),
            "native",
            "paused-callee",
            &artifact("native"),
            "[config]\npause_ms = \"5000\"\n",
        ))
        .unwrap();
    host.offer_plugin(&callee).unwrap();
    // The test rpc plugin greets "host:<name>" by asking the host's Greeter.
    let relay = crate::support::rpc_fixture(
        "relaying",
        "",
        "[limits]\ntimeout_ms = 20000\n[permissions]\n\
         call = [\"outlet.examples.greeter.v1.Greeter/Greet\"]\n",
    );
    let relay = host.load(&relay.manifest).unwrap();
    let cancel = Cancel::new();
    let canceller = crate::support::cancel_after(&cancel, Duration::from_millis(300));
    let client: GreeterClient<Plugin> = relay.client().unwrap();
    let relayed = GreetRequest {
        name: "host:late".into(),
    };
    let error = client.with_cancel(&cancel).greet(relayed).unwrap_err();
    canceller.join().unwrap();
    assert_eq!(error.code(), Code::Cancelled, "{error}");
    // The callee's call, on the relay's broker thread, stops too.
    let stopped = Instant::now() + PROMPT;
    while callee.stats().methods.iter().any(|m| m.in_flight > 0) {
        assert!(
            Instant::now() < stopped,
            "the callee's call was not cancelled"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(callee.stats().calls() >= 1, "{:?}", callee.stats());
}
