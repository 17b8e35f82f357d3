//! The rpc mechanism with real child processes, well-behaved and not, and
//! with real Go go-plugin hosts and plugins.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kv::{GetRequest, KvClient, PutRequest};
use outlet_protocol::Code;

use crate::support::{
    GREETER_GRANT, Shouting, capture_logs, fixture_of, go_program, greet, host, host_secret, root,
    rpc_fixture, rpc_plugin, test_plugin,
};

/// The Rust KV example plugin, built beside the test plugins.
fn kv_plugin() -> PathBuf {
    test_plugin().with_file_name("kv-plugin")
}

fn kv_manifest(dir: &std::path::Path, program: &std::path::Path) -> PathBuf {
    kv_manifest_with(dir, program, "")
}

/// The KV example's manifest for `program`, with `handshake` added to its
/// `[handshake]` table.
fn kv_manifest_with(dir: &std::path::Path, program: &std::path::Path, handshake: &str) -> PathBuf {
    let manifest = dir.join("kv.toml");
    let text = std::fs::read_to_string(root().join("examples/kv/kv.toml"))
        .unwrap()
        .replace("[handshake]", &format!("[handshake]\n{handshake}"))
        .replace("bin/kv-plugin", &program.display().to_string())
        .replace(
            "\"kv.proto\"",
            &format!("{:?}", root().join("examples/kv/kv.proto")),
        );
    std::fs::write(&manifest, text).unwrap();
    manifest
}

/// Puts `value` under `key` through the KV interface, and gets it back.
fn put_then_get(plugin: &outlet_host::Plugin, key: &str, value: &[u8]) -> Vec<u8> {
    let kv = plugin.client::<KvClient<_>>().unwrap();
    kv.put(PutRequest {
        key: key.into(),
        value: value.to_vec(),
    })
    .unwrap();
    kv.get(GetRequest { key: key.into() }).unwrap().value
}

#[test]
fn greets_over_grpc_and_logs_stderr_and_stdout_under_its_name() {
    let f = rpc_fixture("polite-rpc", "", "");
    // The plugin's log lines go where events went on the thread that loaded it.
    let ((plugin, reply), logs) = capture_logs(|| {
        let plugin = f.load();
        let reply = greet(&plugin, "Ada");
        // The log lines come from the plugin's threads: give them a moment.
        std::thread::sleep(Duration::from_millis(200));
        (plugin, reply)
    });
    assert_eq!(reply.unwrap(), "Hello, Ada!");
    assert!(
        plugin
            .hello()
            .services
            .contains(&"outlet.examples.greeter.v1.Greeter".to_owned())
    );
    // Both sides are Outlet: calls take Outlet's frames, not gRPC.
    assert!(
        plugin.negotiated().supports("rpc-frames"),
        "{:?}",
        plugin.negotiated()
    );
    let first = greet(&plugin, "pid").unwrap();
    assert_eq!(
        greet(&plugin, "pid").unwrap(),
        first,
        "one process serves every call"
    );
    let logs: String = logs
        .lines()
        .filter(|l| l.contains("outlet::plugin"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(logs.contains("plugin=\"polite-rpc\""), "{logs}");
    assert!(logs.contains("greeting Ada"), "{logs}");
    assert!(logs.contains("this line goes to the log"), "{logs}");
    plugin.shutdown().unwrap();
    let error = greet(&plugin, "Ada").unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    f.assert_no_leftovers();
}

#[test]
fn the_kv_example_puts_and_gets() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = host().load(kv_manifest(dir.path(), &kv_plugin())).unwrap();
    assert_eq!(put_then_get(&plugin, "hello", b"world"), b"world");
    plugin.shutdown().unwrap();
}

#[test]
fn an_outlet_host_runs_a_go_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let Some(go_plugin) = go_program("kv-go-plugin") else {
        return;
    };
    let manifest = kv_manifest(dir.path(), &go_plugin);
    let (plugin, logs) = capture_logs(|| {
        let plugin = host().load(&manifest).unwrap();
        assert_eq!(put_then_get(&plugin, "from-rust", b"to go"), b"to go");
        std::thread::sleep(Duration::from_millis(200));
        plugin
    });
    // A plain go-plugin plugin: no Outlet core service, so no extra
    // capabilities, and plain gRPC.
    assert!(
        plugin.negotiated().capabilities.is_empty(),
        "{:?}",
        plugin.negotiated()
    );
    assert_eq!(plugin.hello().services, ["proto.KV"]);
    assert_eq!(
        plugin.health().unwrap().status(),
        outlet_protocol::core::health_response::ServingStatus::Serving
    );
    let logs: String = logs
        .lines()
        .filter(|l| l.contains("outlet::plugin"))
        .collect::<Vec<_>>()
        .join("\n");
    // Its hclog JSON line on stderr, at its level, under its name.
    assert!(
        logs.contains("INFO") && logs.contains("put key=\"from-rust\""),
        "{logs}"
    );
    assert!(logs.contains("plugin=\"kv\""), "{logs}");
    let started = Instant::now();
    plugin.shutdown().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the Go plugin did not exit on the controller's Shutdown"
    );
}

/// A call's deadline reaches a go-plugin plugin as its context's deadline
/// (`grpc-timeout`), a cancel as its context cancelled (the stream reset),
/// and its trace context as `traceparent` metadata.
#[test]
fn a_go_plugin_sees_its_calls_deadline_cancel_and_trace_in_its_context() {
    let dir = tempfile::tempdir().unwrap();
    let Some(go_plugin) = go_program("kv-go-plugin") else {
        return;
    };
    let plugin = host().load(kv_manifest(dir.path(), &go_plugin)).unwrap();
    let kv = plugin.client::<KvClient<_>>().unwrap();
    let wait = || GetRequest {
        key: "wait-for-the-context".into(),
    };
    // How the plugin's context ended, once it has said.
    let ended = || {
        let asked = Instant::now();
        loop {
            let said = kv
                .get(GetRequest {
                    key: "how-the-context-ended".into(),
                })
                .unwrap()
                .value;
            if !said.is_empty() || asked.elapsed() > Duration::from_secs(5) {
                kv.put(PutRequest {
                    key: "how-the-context-ended".into(),
                    value: Vec::new(),
                })
                .unwrap();
                return String::from_utf8(said).unwrap();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };

    let cancel = outlet_protocol::context::Cancel::new();
    let canceller = crate::support::cancel_after(&cancel, Duration::from_millis(200));
    let started = Instant::now();
    let error = kv.clone().with_cancel(&cancel).get(wait()).unwrap_err();
    canceller.join().unwrap();
    assert_eq!(error.code(), Code::Cancelled, "{error}");
    assert!(started.elapsed() < Duration::from_secs(3), "{error}");
    let why = ended();
    assert!(why.starts_with("context canceled; deadline in "), "{why}");

    let started = Instant::now();
    let error = kv
        .clone()
        .with_timeout(Duration::from_millis(300))
        .get(wait())
        .unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded, "{error}");
    assert!(started.elapsed() < Duration::from_secs(3), "{error}");
    // Its context got the call's 300 ms (grpc-timeout), and ended by it,
    // or by the host's dropping the stream at the same moment.
    let why = ended();
    let (how, left) = why
        .split_once("; deadline in ")
        .unwrap_or_else(|| panic!("{why}"));
    let left: u64 = left
        .trim_end_matches(" ms")
        .parse()
        .unwrap_or_else(|_| panic!("{why}"));
    assert!(left <= 300, "{why}");
    assert!(
        ["context deadline exceeded", "context canceled"].contains(&how),
        "{why}"
    );

    // The call's trace context, as gRPC metadata, which OpenTelemetry's
    // gRPC instrumentation reads.
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let trace = outlet_protocol::context::TraceContext::new(parent, "").unwrap();
    let options = outlet_protocol::context::CallOptions::new().trace(trace);
    let seen = outlet_protocol::context::with(&options, || {
        kv.get(GetRequest {
            key: "the-calls-traceparent".into(),
        })
    })
    .unwrap()
    .value;
    assert_eq!(String::from_utf8(seen).unwrap(), parent);
    plugin.shutdown().unwrap();
}

#[test]
fn a_go_host_runs_an_outlet_plugin_and_stops_it() {
    let Some(go_host) = go_program("kv-go-host") else {
        return;
    };
    let output = Command::new(go_host)
        .args([
            kv_plugin().to_str().unwrap(),
            "put-get",
            "from-go",
            "to rust",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // 3 means the plugin had to be killed: it did not stop on Shutdown.
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "to rust\n",
        "{stderr}"
    );
}

/// The TCP ports process `pid` listens on, from `/proc`.
fn tcp_listening(pid: u32) -> Vec<String> {
    let sockets: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let fields: Vec<&str> = row.split_whitespace().collect();
            // Local address, state (0A is LISTEN), and the socket's inode.
            (fields[3] == "0A" && sockets.iter().any(|s| s == fields[9]))
                .then(|| fields[1].to_owned())
        })
        .collect()
}

#[test]
fn mutual_tls_over_tcp_between_an_outlet_host_and_plugin() {
    let f = rpc_fixture(
        "tls-rpc",
        "",
        &format!("[handshake]\nauto_mtls = true\nnetwork = \"tcp\"\n{GREETER_GRANT}"),
    );
    let host = host();
    host.offer(greeter::GreeterServer::new(Shouting)).unwrap();
    let plugin = host.load(&f.manifest).unwrap();
    assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");
    // Outlet's frames are never sent around TLS.
    assert!(!plugin.negotiated().supports("rpc-frames"));
    let listening = tcp_listening(plugin.process_id().unwrap());
    assert!(
        !listening.is_empty() && listening.iter().all(|a| a.starts_with("0100007F:")),
        "it listens on 127.0.0.1 over TCP: {listening:?}"
    );
    // The broker stream runs over TLS too.
    assert_eq!(
        greet(&plugin, "host:Ada").unwrap(),
        "the host says: HELLO, ADA!"
    );
    plugin.shutdown().unwrap();
    f.assert_no_leftovers();
}

#[test]
fn mutual_tls_with_go_plugin_both_ways() {
    // An Outlet host and a Go plugin: go-plugin answers PLUGIN_CLIENT_CERT
    // with a P-521 certificate of its own in the handshake line.
    let dir = tempfile::tempdir().unwrap();
    let Some(go_plugin) = go_program("kv-go-plugin") else {
        return;
    };
    let manifest = kv_manifest_with(dir.path(), &go_plugin, "auto_mtls = true");
    let plugin = host().load(&manifest).unwrap();
    assert_eq!(put_then_get(&plugin, "over", b"tls"), b"tls");
    plugin.shutdown().unwrap();

    // A Go host with AutoMTLS and the Rust KV plugin.
    let Some(go_host) = go_program("kv-go-host") else {
        return;
    };
    let output = Command::new(go_host)
        .args([kv_plugin().to_str().unwrap(), "put-get", "tls", "both ways"])
        .env("KV_AUTO_MTLS", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "both ways\n");
    assert!(
        stderr.contains("configuring client automatic mTLS"),
        "{stderr}"
    );
}

#[test]
fn bad_starts_are_refused_with_the_cause_and_leave_nothing_running() {
    let cases = [
        ("cookie", "other-cookie", "", "magic cookie"),
        (
            "garbage",
            "garbage",
            "",
            "is not a go-plugin handshake line",
        ),
        ("netrpc", "netrpc", "", "`netrpc`"),
        ("version7", "version7", "", "speaks interface versions [7]"),
        (
            "silent",
            "silent",
            "[limits]\nstart_timeout_ms = 300\n",
            "no handshake line within 300 ms",
        ),
    ];
    for (name, mode, extra, expected) in cases {
        let f = rpc_fixture(name, mode, extra);
        let error = f.load_err();
        assert!(error.contains(&format!("plugin `{name}` (rpc)")), "{error}");
        assert!(error.contains(expected), "{name}: {error}");
        f.assert_no_leftovers();
    }
}

#[test]
fn a_plugin_calls_the_hosts_services_over_the_broker_during_a_call() {
    let f = rpc_fixture("caller-rpc", "", GREETER_GRANT);
    let host = host();
    host.offer(greeter::GreeterServer::new(Shouting)).unwrap();
    let plugin = host.load(&f.manifest).unwrap();
    assert!(host.withdraw("outlet.examples.greeter.v1.Greeter"));
    let error = greet(&plugin, "host:Ada").unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented, "{error}");
    assert!(
        error.message().contains("plugin `caller-rpc` called"),
        "{error}"
    );
    host.offer(greeter::GreeterServer::new(Shouting)).unwrap();
    assert_eq!(
        greet(&plugin, "host:Ada").unwrap(),
        "the host says: HELLO, ADA!"
    );
    // A plugin whose manifest grants no such call is refused, by the name
    // the host knows it by.
    let ungranted = rpc_fixture("ungranted-rpc", "", "");
    let refused = greet(&host.load(&ungranted.manifest).unwrap(), "host:Ada").unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused}");
    assert!(
        refused
            .message()
            .contains("plugin `ungranted-rpc` may not call")
            && refused
                .message()
                .contains("add \"outlet.examples.greeter.v1.Greeter/Greet\""),
        "{refused}"
    );
    // A restarted process is offered the host's services afresh.
    assert_eq!(greet(&plugin, "die").unwrap_err().code(), Code::Unavailable);
    assert_eq!(
        greet(&plugin, "host:Bob").unwrap(),
        "the host says: HELLO, BOB!"
    );
    plugin.shutdown().unwrap();
    f.assert_no_leftovers();
}

/// Starts the test plugin as something other than the host would: the
/// process, and the address from its handshake line. Its stdout is drained
/// on a thread, so that its prints do not fail.
fn start_by_hand(dir: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(rpc_plugin())
        .env_clear()
        .env("OUTLET_PLUGIN", "outlet")
        .env("PLUGIN_PROTOCOL_VERSIONS", "1")
        .env("PLUGIN_UNIX_SOCKET_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let address = line.trim().split('|').nth(3).unwrap().to_owned();
    (child, address)
}

fn attach_manifest(dir: &std::path::Path, address: &str, pid: Option<u32>, grant: &str) -> PathBuf {
    let manifest = dir.join("attached.toml");
    let pid = pid.map(|pid| format!("pid = {pid}")).unwrap_or_default();
    let text = format!(
        "name = \"attached\"\nmechanism = \"rpc\"\n\
         interface = \"outlet.examples.greeter.v1.Greeter\"\ntrust = \"out-of-process\"\n\
         {grant}[reattach]\naddress = {address:?}\n{pid}\n"
    );
    std::fs::write(&manifest, text).unwrap();
    manifest
}

#[test]
fn attaching_checks_the_process_and_never_signals_another() {
    let dir = tempfile::tempdir().unwrap();
    let (mut running, address) = start_by_hand(dir.path());
    let pid = running.id();

    // The manifest names a process that is not the plugin: refused, and
    // that process is left alone.
    let mut decoy = Command::new("sleep").arg("3600").spawn().unwrap();
    let error = host()
        .load(attach_manifest(dir.path(), &address, Some(decoy.id()), ""))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&format!(
            "the process listening on {address} is {pid}, not {}",
            decoy.id()
        )),
        "{error}"
    );
    assert!(error.contains("nothing was signalled"), "{error}");
    assert!(
        decoy.try_wait().unwrap().is_none(),
        "the decoy was signalled"
    );
    decoy.kill().unwrap();
    decoy.wait().unwrap();

    // The right process: attached, called, calling back into the host, and
    // stopped by the controller's Shutdown.
    let host = host();
    host.offer(greeter::GreeterServer::new(Shouting)).unwrap();
    let plugin = host
        .load(attach_manifest(
            dir.path(),
            &address,
            Some(pid),
            GREETER_GRANT,
        ))
        .unwrap();
    assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");
    assert_eq!(plugin.process_id(), Some(pid));
    assert_eq!(
        greet(&plugin, "host:Ada").unwrap(),
        "the host says: HELLO, ADA!"
    );
    plugin.shutdown().unwrap();
    let status = running.wait().unwrap();
    assert!(
        status.success(),
        "it exited by itself on Shutdown: {status:?}"
    );
}

#[test]
fn a_host_that_asks_gets_the_plugins_stdout_over_the_stdio_stream() {
    use http::uri::PathAndQuery;
    use outlet_protocol::prost::Message;
    use outlet_rpc::wire::{self, StdioData};

    // Asked the way a go-plugin 1.4 host asks, over a connection of our own.
    let dir = tempfile::tempdir().unwrap();
    let (mut running, address) = start_by_hand(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let send = outlet_rpc::client::dial(outlet_rpc::Network::Unix, &address, None)
            .await
            .unwrap();
        let mut grpc = outlet_rpc::client::client(send);
        let calls = grpc.clone();
        let unary = |path: &'static str, body: Vec<u8>| {
            let mut grpc = calls.clone();
            async move {
                grpc.ready().await.unwrap();
                let request = tonic::Request::new(bytes::Bytes::from(body));
                grpc.unary(request, PathAndQuery::from_static(path), outlet_rpc::Raw)
                    .await
            }
        };
        grpc.ready().await.unwrap();
        let mut stdio = grpc
            .server_streaming(
                tonic::Request::new(bytes::Bytes::new()),
                PathAndQuery::from_static(wire::STDIO),
                outlet_rpc::Raw,
            )
            .await
            .unwrap()
            .into_inner();
        // Greeting makes the plugin print a line on stdout.
        let request = greeter::GreetRequest { name: "Ada".into() }.encode_to_vec();
        unary("/outlet.examples.greeter.v1.Greeter/Greet", request)
            .await
            .unwrap();
        let mut printed = String::new();
        while !printed.contains("this line goes to the log") {
            let chunk = tokio::time::timeout(Duration::from_secs(5), stdio.message())
                .await
                .expect("the line came over the stream")
                .unwrap()
                .unwrap();
            let data = StdioData::decode(chunk).unwrap();
            assert_eq!(data.channel, 1, "stdout");
            printed.push_str(&String::from_utf8_lossy(&data.data));
        }
        // One reader at a time.
        let second = grpc
            .server_streaming(
                tonic::Request::new(bytes::Bytes::new()),
                PathAndQuery::from_static(wire::STDIO),
                outlet_rpc::Raw,
            )
            .await
            .unwrap_err();
        assert_eq!(second.code(), tonic::Code::AlreadyExists, "{second}");
        // At Shutdown the stream ends, and the plugin exits by itself.
        unary(wire::SHUTDOWN, wire::Empty {}.encode_to_vec())
            .await
            .unwrap();
        let end = tokio::time::timeout(Duration::from_secs(5), stdio.message()).await;
        assert!(matches!(end, Ok(Ok(None) | Err(_))), "{end:?}");
    });
    assert!(running.wait().unwrap().success());
}

#[test]
fn an_attached_plugin_is_not_restarted_and_without_a_pid_never_signalled() {
    let dir = tempfile::tempdir().unwrap();
    // Without a pid (as for a plugin on another machine): no process id,
    // and a stop is only the controller's Shutdown.
    let (mut remote, address) = start_by_hand(dir.path());
    let plugin = host()
        .load(attach_manifest(dir.path(), &address, None, ""))
        .unwrap();
    assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");
    assert_eq!(plugin.process_id(), None);
    plugin.shutdown().unwrap();
    assert!(remote.wait().unwrap().success());

    // With a pid, its death is seen through its pidfd; the host cannot
    // start it again, and says so.
    let (mut local, address) = start_by_hand(dir.path());
    let plugin = host()
        .load(attach_manifest(dir.path(), &address, Some(local.id()), ""))
        .unwrap();
    local.kill().unwrap();
    local.wait().unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    let error = loop {
        let error = greet(&plugin, "Ada").unwrap_err();
        if error.message().contains("does not restart it") || Instant::now() > until {
            break error;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(error.code(), Code::Unavailable, "{error}");
    assert!(
        error
            .message()
            .contains("plugin `attached`, attached to at"),
        "{error}"
    );
}

#[test]
fn a_plugin_that_dies_in_a_call_fails_that_call_and_is_restarted() {
    let f = rpc_fixture("fragile", "", "");
    let plugin = f.load();
    let before = greet(&plugin, "pid").unwrap();
    let error = greet(&plugin, "die").unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error}");
    assert!(
        error.message().contains("plugin `fragile` died during"),
        "{error}"
    );
    assert!(error.message().contains("signal 6"), "{error}");
    // The next call waits for the restart, then goes through.
    let after = greet(&plugin, "pid").unwrap();
    assert_ne!(before, after, "a new process serves");
    assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");
    assert_eq!(plugin.process_id().map(|p| p.to_string()), Some(after));

    // Killed from outside, between calls: once the host has seen it die,
    // the next call waits for the restart.
    let pid = plugin.process_id().unwrap();
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");
    assert_ne!(plugin.process_id(), Some(pid));
    plugin.shutdown().unwrap();
    f.assert_no_leftovers();
}

#[test]
fn no_descriptor_of_the_host_reaches_the_plugin_process() {
    let (_dir, _file, secret) = host_secret();
    let f = rpc_fixture("fds", "", "");
    let reply = greet(&f.load(), "fds").unwrap();
    assert!(!reply.contains(secret.to_str().unwrap()), "{reply}");
}

#[test]
fn a_restarted_plugin_gets_its_config_again() {
    let program = test_plugin().with_file_name("greeter-rpc");
    let f = fixture_of(
        "rpc",
        "configured",
        &program,
        "",
        "[config]\ngreeting = \"Howdy\"\n",
    );
    let plugin = f.load();
    assert_eq!(greet(&plugin, "Ada").unwrap(), "Howdy, Ada!");
    let pid = plugin.process_id().unwrap();
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while plugin.process_id().is_none_or(|p| p == pid) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(greet(&plugin, "Ada").unwrap(), "Howdy, Ada!");
    plugin.shutdown().unwrap();
    f.assert_no_leftovers();
}

#[test]
fn a_plugin_used_and_dropped_inside_an_async_runtime_harms_nothing() {
    let f = rpc_fixture("async-host", "", "");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let plugin = f.load();
        assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");
        assert!(plugin.health().is_ok());
        // Loading went over gRPC (health, Hello): its connections, each with
        // a runtime of its own, are dropped here, inside this runtime.
        plugin.shutdown().unwrap();
    });
    f.assert_no_leftovers();
}

#[test]
fn restarts_stop_at_the_limit_and_a_reload_tries_again() {
    let flag = tempfile::tempdir().unwrap();
    let flag = flag.path().join("fail");
    let mode = format!("fail-if:{}", flag.display());
    let f = rpc_fixture("doomed", &mode, "[limits]\nrestarts = 2\n");
    let plugin = f.load();
    std::fs::write(&flag, "").unwrap();
    let _ = greet(&plugin, "die");
    // Two restarts fail (the flag), then the plugin is given up on.
    let until = Instant::now() + Duration::from_secs(10);
    let error = loop {
        let error = greet(&plugin, "Ada").unwrap_err();
        if error.message().contains("times in a row") || Instant::now() > until {
            break error;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(error.code(), Code::Unavailable);
    assert!(
        error
            .message()
            .contains("plugin `doomed` died, and was restarted 2 times in a row"),
        "{error}"
    );
    assert!(error.message().contains("exited with status 4"), "{error}");
    assert!(error.message().contains("Plugin::reload"), "{error}");
    // Failing fast: no process is started for it.
    let started = Instant::now();
    assert!(greet(&plugin, "Ada").is_err());
    assert!(started.elapsed() < Duration::from_millis(100));

    std::fs::remove_file(&flag).unwrap();
    plugin.reload().unwrap();
    assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");
    plugin.shutdown().unwrap();
    f.assert_no_leftovers();
}

#[test]
fn a_hung_call_hits_its_deadline_and_a_reply_over_the_limit_is_refused() {
    let f = rpc_fixture(
        "slow",
        "",
        "[limits]\ntimeout_ms = 300\nmax_message_bytes = 100000\n",
    );
    let plugin = f.load();
    let started = Instant::now();
    let error = greet(&plugin, "hang").unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded, "{error}");
    assert!(error.message().contains("plugin `slow`"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let error = greet(&plugin, "big").unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted, "{error}");
    assert!(
        error.message().contains("limits.max_message_bytes"),
        "{error}"
    );
    let error = greet(&plugin, &"n".repeat(200_000)).unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted, "{error}");

    assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");
    plugin.shutdown().unwrap();
    f.assert_no_leftovers();
}

#[test]
fn stopping_ends_the_whole_process_group_and_a_flood_of_stderr_harms_nothing() {
    let f = rpc_fixture("flooding", "flood-stderr", "");
    let plugin = f.load();
    let forked = greet(&plugin, "fork").unwrap();
    assert!(forked.starts_with("forked "), "{forked}");
    for _ in 0..20 {
        assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");
    }
    plugin.shutdown().unwrap();
    // The `sleep` child carries the fixture's marker in its environment.
    f.assert_no_leftovers();
}

#[test]
fn a_host_killed_with_sigkill_takes_its_plugins_along() {
    // An Outlet plugin, which also watches its parent, and a Go plugin,
    // which has only the parent-death signal the host gave it (where Go
    // can be installed: the Outlet half runs everywhere).
    let f = rpc_fixture("orphan", "", "");
    let dir = tempfile::tempdir().unwrap();
    let mut manifests = vec![f.manifest.clone()];
    let mut names = vec!["orphan"];
    if let Some(go_plugin) = go_program("kv-go-plugin") {
        manifests.push(kv_manifest(dir.path(), &go_plugin));
        names.push("kv");
    }
    let mut host = Command::new(test_plugin().with_file_name("outlet-test-host"))
        .args(&manifests)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(host.stdout.take().unwrap());
    let mut pids = Vec::new();
    for name in names {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let pid = line
            .trim()
            .strip_prefix(&format!("loaded {name} "))
            .unwrap_or_else(|| panic!("{line}"));
        pids.push(pid.to_owned());
    }
    host.kill().unwrap();
    host.wait().unwrap();
    // Within a second, each is gone (or a zombie waiting for init).
    let until = Instant::now() + Duration::from_secs(1);
    let alive = |pid: &String| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.rsplit(')').next().unwrap_or("").starts_with(" Z"))
    };
    while pids.iter().any(alive) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let left: Vec<_> = pids.iter().filter(|pid| alive(pid)).collect();
    assert!(left.is_empty(), "still running: {left:?} of {pids:?}");
    f.assert_no_leftovers();
}

#[test]
fn reload_switches_to_a_new_process_without_failing_a_call() {
    let f = rpc_fixture("reloaded", "", "");
    let plugin = f.load();
    let before = greet(&plugin, "pid").unwrap();
    std::thread::scope(|scope| {
        let callers: Vec<_> = (0..3)
            .map(|_| {
                scope.spawn(|| {
                    for _ in 0..100 {
                        assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");
                    }
                })
            })
            .collect();
        plugin.reload().unwrap();
        for caller in callers {
            caller.join().unwrap();
        }
    });
    assert_ne!(greet(&plugin, "pid").unwrap(), before);
    plugin.shutdown().unwrap();
    f.assert_no_leftovers();
}

/// Whether `listener` has a connection waiting (it must be non-blocking).
fn was_connected<T>(accepted: std::io::Result<T>) -> bool {
    match accepted {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_handshake_naming_an_address_not_the_plugins_own_is_refused_before_any_connection() {
    // Another service, on a Unix socket and a TCP port of its own.
    let elsewhere = tempfile::tempdir().unwrap();
    let service = elsewhere.path().join("service.sock");
    let unix = std::os::unix::net::UnixListener::bind(&service).unwrap();
    unix.set_nonblocking(true).unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let port = tcp.local_addr().unwrap().port();
    // And one in the port range the host gives its plugins.
    let in_range = (10000..=25000)
        .find_map(|port| std::net::TcpListener::bind(("127.0.0.1", port)).ok())
        .unwrap();
    in_range.set_nonblocking(true).unwrap();
    let in_range_port = in_range.local_addr().unwrap().port();
    let service = service.display().to_string();

    let mut cases = vec![
        (
            "outside",
            format!("line:1|1|unix|{service}|grpc|"),
            "",
            format!("names the socket {service}, which is outside that folder"),
        ),
        (
            "dotdot",
            format!("line:1|1|unix|{{dir}}/../../..{service}|grpc|"),
            "",
            format!("which is outside that folder (it resolves to {service})"),
        ),
        (
            "symlink",
            format!("symlink:{service}"),
            "",
            format!("which is outside that folder (it resolves to {service})"),
        ),
        (
            "remote",
            "line:1|1|tcp|0.0.0.0:15000|grpc|".to_owned(),
            "",
            "names the TCP address 0.0.0.0:15000, and the host connects only to 127.0.0.1 \
             or [::1] on a port between 10000 and 25000"
                .to_owned(),
        ),
        (
            "plain-tcp",
            format!("line:1|1|tcp|127.0.0.1:{in_range_port}|grpc|"),
            "",
            format!(
                "it listens on TCP (127.0.0.1:{in_range_port}), and the manifest does not ask \
                 for mutual TLS"
            ),
        ),
    ];
    // An ephemeral port is outside the range, but for an unusual kernel.
    if !(10000..=25000).contains(&port) {
        cases.push((
            "out-of-range",
            format!("line:1|1|tcp|127.0.0.1:{port}|grpc|"),
            "",
            format!("names the TCP address 127.0.0.1:{port}"),
        ));
    }
    for (name, mode, extra, expected) in cases {
        let f = rpc_fixture(name, &mode, extra);
        let error = f.load_err();
        assert!(error.contains(&format!("plugin `{name}` (rpc)")), "{error}");
        assert!(error.contains(&expected), "{name}: {error}");
        assert!(error.contains("the plugin was killed"), "{name}: {error}");
        f.assert_no_leftovers();
        assert!(
            !was_connected(unix.accept()),
            "{name}: the service was reached"
        );
        assert!(
            !was_connected(tcp.accept()),
            "{name}: the service was reached"
        );
        assert!(
            !was_connected(in_range.accept()),
            "{name}: the service was reached"
        );
    }
}

#[test]
fn the_guest_refuses_to_listen_on_tcp_without_the_hosts_certificate() {
    let mut child = Command::new(rpc_plugin())
        .env_clear()
        .env("OUTLET_PLUGIN", "outlet")
        .env("PLUGIN_PROTOCOL_VERSIONS", "1")
        .env("OUTLET_PLUGIN_NETWORK", "tcp")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    if child.try_wait().unwrap().is_none() {
        child.kill().unwrap();
        child.wait().unwrap();
        panic!("it served TCP without mutual TLS");
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty(), "it printed a handshake line");
    assert!(
        stderr.contains("plugin `test-rpc`: its host asks it to listen on TCP")
            && stderr.contains("PLUGIN_CLIENT_CERT is not set")
            && stderr.contains("auto_mtls = true"),
        "{stderr}"
    );
}

#[test]
fn an_attached_plugins_socket_is_checked_on_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (mut running, address) = start_by_hand(dir.path());
    let manifest = attach_manifest(dir.path(), &address, Some(running.id()), "");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("[limits]\ntimeout_ms = 500\n");
    std::fs::write(&manifest, text).unwrap();
    let plugin = host().load(&manifest).unwrap();
    assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");

    // Another process (this one) takes the socket's path over; the call
    // that hangs takes the host's only connection along with it.
    std::fs::remove_file(&address).unwrap();
    let thief = std::os::unix::net::UnixListener::bind(&address).unwrap();
    let error = greet(&plugin, "hang").unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded, "{error}");

    // The next connection reaches the thief: refused before a byte is sent.
    let error = greet(&plugin, "Ada").unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error}");
    assert!(
        error.message().contains(&format!(
            "the process listening on {address} is process {} (`",
            std::process::id()
        )) && error
            .message()
            .contains(&format!("process {} (reattach.pid)", running.id())),
        "{error}"
    );
    assert!(error.message().contains("plugin `attached`"), "{error}");
    thief.set_nonblocking(true).unwrap();
    let (mut stream, _) = thief.accept().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut sent = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut sent).unwrap();
    assert!(sent.is_empty(), "the host sent {} bytes", sent.len());
    drop(plugin);
    running.kill().unwrap();
    running.wait().unwrap();
}

#[test]
fn a_started_plugins_socket_is_checked_on_every_connection() {
    // Over Outlet's frames, and over gRPC (mutual TLS on the Unix socket).
    for (name, extra) in [
        ("swapped", ""),
        ("swapped-tls", "[handshake]\nauto_mtls = true\n"),
    ] {
        // Another process's socket (this one's), in a folder of its own.
        let elsewhere = tempfile::tempdir().unwrap();
        let service = elsewhere.path().join("service.sock");
        let thief = std::os::unix::net::UnixListener::bind(&service).unwrap();
        let f = rpc_fixture(
            name,
            "",
            &format!("{extra}[limits]\ntimeout_ms = 5000\nmax_message_bytes = 100000\n"),
        );
        let plugin = f.load();
        let pid = plugin.process_id().unwrap();
        assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");

        // After the host checked its address, the plugin renames a link to
        // that socket over its own; a reply over the limit takes the host's
        // connection along, so the next call makes a new one.
        let swap = format!("swap:{}", service.display());
        assert_eq!(greet(&plugin, &swap).unwrap(), "swapped");
        let error = greet(&plugin, "big").unwrap_err();
        assert_eq!(error.code(), Code::ResourceExhausted, "{name}: {error}");

        // It reaches this process: refused before a byte is sent.
        let error = greet(&plugin, "Ada").unwrap_err();
        assert_eq!(error.code(), Code::Unavailable, "{name}: {error}");
        let message = error.message();
        assert!(message.contains(&format!("plugin `{name}`")), "{message}");
        assert!(
            message.contains(&format!("is process {} (`", std::process::id()))
                && message.contains(&format!("the plugin's process {pid} and its descendants"))
                && message.contains("nothing was sent")
                && message.contains("Plugin::reload"),
            "{message}"
        );
        drop(plugin);
        // Every connection that reached this process (the call's, and a
        // Shutdown's if it needed one) was closed without a byte.
        thief.set_nonblocking(true).unwrap();
        let mut connections = 0;
        while let Ok((mut stream, _)) = thief.accept() {
            connections += 1;
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut sent = Vec::new();
            std::io::Read::read_to_end(&mut stream, &mut sent).unwrap();
            assert!(
                sent.is_empty(),
                "{name}: the host sent {} bytes",
                sent.len()
            );
        }
        assert!(connections >= 1, "{name}: the host never reached the link");
        f.assert_no_leftovers();
    }
}

#[test]
fn a_started_plugins_socket_may_lead_to_a_process_of_its_own() {
    let f = rpc_fixture("relaying", "", "[limits]\nmax_message_bytes = 100000\n");
    let plugin = f.load();
    // A child of the plugin's serves on a socket of its own, and the
    // plugin's socket becomes a link to it.
    let child = greet(&plugin, "relay").unwrap();
    assert_ne!(child, plugin.process_id().unwrap().to_string());
    let error = greet(&plugin, "big").unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted, "{error}");
    // The new connection reaches the child, a descendant: served.
    assert_eq!(greet(&plugin, "pid").unwrap(), child);
    assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");
    plugin.shutdown().unwrap();
    f.assert_no_leftovers();
}

/// A certificate and key for the host, PEM, as a tool would make them.
fn host_identity() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["host".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn reattach_over_tcp_takes_a_loopback_address_or_a_pinned_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = host_identity();
    std::fs::write(dir.path().join("host.pem"), &cert).unwrap();
    std::fs::write(dir.path().join("host.key"), &key).unwrap();
    // The plugin, started by something else with the host's certificate.
    let mut running = Command::new(rpc_plugin())
        .env_clear()
        .env("OUTLET_PLUGIN", "outlet")
        .env("PLUGIN_PROTOCOL_VERSIONS", "1")
        .env("OUTLET_PLUGIN_NETWORK", "tcp")
        .env("PLUGIN_CLIENT_CERT", &cert)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(running.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let fields: Vec<&str> = line.trim().split('|').collect();
    let (address, plugin_cert) = (fields[3], fields[5]);
    assert!(address.starts_with("127.0.0.1:"), "{line}");
    let der = outlet_rpc::tls::Identity::from_line(plugin_cert).unwrap();
    let hex = |bytes: [u8; 32]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
    let pin = hex(outlet_rpc::tls::sha256(&der));

    let manifest = |address: &str, pin: Option<&str>| {
        let file = dir.path().join("tcp.toml");
        let pinned = pin
            .map(|pin| {
                format!("cert_sha256 = \"{pin}\"\nclient_cert = \"host.pem\"\nclient_key = \"host.key\"\n")
            })
            .unwrap_or_default();
        std::fs::write(
            &file,
            format!(
                "name = \"tcp\"\nmechanism = \"rpc\"\n\
                 interface = \"outlet.examples.greeter.v1.Greeter\"\ntrust = \"out-of-process\"\n\
                 [reattach]\nnetwork = \"tcp\"\naddress = \"{address}\"\n{pinned}"
            ),
        )
        .unwrap();
        file
    };
    // Beyond loopback, only with a pin; nothing is dialled to find out.
    // (0.0.0.0 is not a loopback address, yet a connection to it would stay
    // on this machine, should the check ever let one through.)
    let error = host()
        .load(manifest("0.0.0.0:15000", None))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("field `reattach.address`") && error.contains("not a loopback address"),
        "{error}"
    );
    // Another certificate's pin: refused at the TLS handshake.
    let wrong = hex(outlet_rpc::tls::sha256(b"another certificate"));
    let error = host()
        .load(manifest(address, Some(&wrong)))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&format!("its certificate's SHA-256 is {pin}"))
            && error.contains(&format!("the pinned one (cert_sha256) is {wrong}")),
        "{error}"
    );
    // Its own: attached, over mutual TLS.
    let plugin = host().load(manifest(address, Some(&pin))).unwrap();
    assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");
    plugin.shutdown().unwrap();
    assert!(running.wait().unwrap().success());
}

/// The folder the host made for plugin process `pid`, from its environment.
fn socket_folder(pid: u32) -> PathBuf {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let var = environ
        .split(|b| *b == 0)
        .find_map(|var| var.strip_prefix(b"PLUGIN_UNIX_SOCKET_DIR="))
        .expect("PLUGIN_UNIX_SOCKET_DIR in the plugin's environment");
    PathBuf::from(String::from_utf8(var.to_vec()).unwrap())
}

#[test]
fn only_the_plugins_own_processes_may_call_the_host_through_its_broker() {
    use std::io::{Read, Write};
    use std::os::unix::process::CommandExt;
    let f = rpc_fixture("guarded", "", GREETER_GRANT);
    let host = host();
    host.offer(greeter::GreeterServer::new(Shouting)).unwrap();
    let (plugin, logs) = capture_logs(|| {
        let plugin = host.load(&f.manifest).unwrap();
        // The broker serves once the plugin has called through it.
        assert_eq!(
            greet(&plugin, "host:Ada").unwrap(),
            "the host says: HELLO, ADA!"
        );
        let socket = socket_folder(plugin.process_id().unwrap()).join("host.sock");
        // This process is neither the plugin's nor in its process group: it
        // connects, and is closed on without a byte.
        let mut intruder = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        intruder
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = intruder.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        let mut answer = [0; 64];
        match intruder.read(&mut answer) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Ok(n) => panic!(
                "the host's services answered another process: {:?}",
                &answer[..n]
            ),
            Err(e) => panic!("the connection was neither served nor closed: {e}"),
        }
        // Nor is a process that joined the plugin's process group (as a
        // process of the host's session, another plugin say, can).
        let joined = Command::new(rpc_plugin())
            .env("OUTLET_TEST_MODE", format!("intrude:{}", socket.display()))
            .process_group(i32::try_from(plugin.process_id().unwrap()).unwrap())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&joined.stdout).trim(), "closed");
        // The plugin's own calls go on, and a child of its own is served.
        assert_eq!(
            greet(&plugin, "host:Bob").unwrap(),
            "the host says: HELLO, BOB!"
        );
        let child = greet(&plugin, &format!("intrude:{}", socket.display())).unwrap();
        assert!(child.starts_with("answered "), "{child}");
        plugin
    });
    let refused = format!(
        "refused a connection to the host's services from process {}",
        std::process::id()
    );
    let line = logs
        .lines()
        .find(|line| line.contains(&refused))
        .unwrap_or_else(|| panic!("no warning: {logs}"));
    assert!(line.contains("WARN") && line.contains("guarded"), "{line}");
    assert!(line.contains("must be its child"), "{line}");
    plugin.shutdown().unwrap();
    f.assert_no_leftovers();
}

/// A host process, killed (and reaped) when dropped, should a test fail.
struct HostProcess(std::process::Child);

impl HostProcess {
    fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the test host under umask 000, with `tmp` as its temporary
/// folder, and returns it once it has loaded `manifest`.
fn start_host_in(tmp: &std::path::Path, manifest: &std::path::Path) -> HostProcess {
    let mut host = Command::new("sh")
        .args(["-c", "umask 000; exec \"$0\" \"$@\""])
        .arg(test_plugin().with_file_name("outlet-test-host"))
        .arg(manifest)
        .env("TMPDIR", tmp)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(host.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let host = HostProcess(host);
    assert!(line.starts_with("loaded "), "{line:?}");
    host
}

/// The rpc folders in `tmp` named for host process `pid`.
fn folders_of(tmp: &std::path::Path, pid: u32) -> Vec<PathBuf> {
    let prefix = format!("outlet-rpc-{pid}-");
    std::fs::read_dir(tmp)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(&prefix))
        })
        .collect()
}

#[test]
fn socket_folders_are_private_under_any_umask_and_a_killed_hosts_go_with_the_next_host() {
    use std::os::unix::fs::PermissionsExt;
    let f = rpc_fixture("private", "", "");
    let tmp = tempfile::tempdir().unwrap();
    // Folders of a host that is gone, and of one that is alive (this test).
    let dead = {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let gone = tmp.path().join(format!("outlet-rpc-{dead}-before"));
    let live = tmp
        .path()
        .join(format!("outlet-rpc-{}-before", std::process::id()));
    for dir in [&gone, &live] {
        std::fs::create_dir(dir).unwrap();
        std::fs::write(dir.join("plugin-before"), "").unwrap();
    }

    let first = start_host_in(tmp.path(), &f.manifest);
    assert!(!gone.exists(), "the dead host's folder was left");
    assert!(live.exists(), "a live host's folder was removed");
    let folders = folders_of(tmp.path(), first.0.id());
    assert_eq!(folders.len(), 1, "{folders:?}");
    let mode = std::fs::symlink_metadata(&folders[0])
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o700, "{}", folders[0].display());
    let inside: Vec<String> = std::fs::read_dir(&folders[0])
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        inside
            .iter()
            .any(|name| name.starts_with("plugin-test-rpc-")),
        "no plugin socket in it: {inside:?}"
    );

    // Killed, the host leaves its folder; the next host removes it.
    first.kill();
    assert!(folders[0].exists());
    let second = start_host_in(tmp.path(), &f.manifest);
    assert!(
        !folders[0].exists(),
        "the killed host's folder is still there"
    );
    assert_eq!(folders_of(tmp.path(), second.0.id()).len(), 1);
    assert!(live.exists());
    second.kill();
    f.assert_no_leftovers();
}

#[test]
fn a_restart_checks_the_program_again_and_never_runs_a_replaced_one() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("plugin");
    std::fs::copy(rpc_plugin(), &copy).unwrap();
    let hash = outlet_manifest::sha256_hex(&std::fs::read(&copy).unwrap());
    let f = fixture_of(
        "rpc",
        "repinned",
        &copy,
        "",
        &format!("sha256 = \"{hash}\"\n[limits]\nrestarts = 2\n"),
    );
    let plugin = f.load();
    assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");

    // Replaced (as a build would: a new file renamed over it) by a program
    // that would leave a mark if it ever ran.
    let marker = dir.path().join("it-ran");
    let other = dir.path().join("other");
    std::fs::write(&other, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    let executable = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
    std::fs::set_permissions(&other, executable).unwrap();
    std::fs::rename(&other, &copy).unwrap();

    let pid = plugin.process_id().unwrap();
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    // The restarts are refused, each before it starts anything; then the
    // plugin is given up on, and calls say why.
    let until = Instant::now() + Duration::from_secs(20);
    let error = loop {
        let error = greet(&plugin, "Ada").unwrap_err();
        if error.message().contains("SHA-256") || Instant::now() > until {
            break error;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(error.code(), Code::Unavailable, "{error}");
    let text = error.message();
    assert!(
        text.contains("plugin `repinned`")
            && text.contains(&hash)
            && text.contains("checked again before starting it")
            && text.contains("put its hash in `sha256`"),
        "{text}"
    );
    assert!(!marker.exists(), "the replaced program ran");
    drop(plugin);
    f.assert_no_leftovers();
}

#[test]
fn a_plugin_without_a_controller_is_sent_sigterm_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(bare) = go_program("bare-go-plugin") else {
        return;
    };
    let plugin = host().load(kv_manifest(dir.path(), &bare)).unwrap();
    assert_eq!(
        plugin.health().unwrap().status(),
        outlet_protocol::core::health_response::ServingStatus::Serving
    );
    let pid = plugin.process_id().unwrap();
    // Its controller answers Shutdown Unimplemented: no grace is spent
    // waiting for an exit that was never asked for.
    let started = Instant::now();
    plugin.shutdown().unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1000), "the stop took {took:?}");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "its process is still there"
    );
}

#[test]
fn a_host_shuts_down_every_plugin_at_once_within_its_grace() {
    let dir = tempfile::tempdir().unwrap();
    let host = host();
    let (calm, busy) = (
        rpc_fixture("calm", "", ""),
        rpc_fixture("busy", "", "[limits]\ntimeout_ms = 60000\n"),
    );
    host.load(&calm.manifest).unwrap();
    let busy_plugin = host.load(&busy.manifest).unwrap();
    host.load(crate::support::manifest(
        dir.path(),
        "exec",
        "one-shot",
        &crate::support::greeter_exec(),
        "",
    ))
    .unwrap();
    let bare = go_program("bare-go-plugin");
    if let Some(bare) = &bare {
        host.load(kv_manifest(dir.path(), bare)).unwrap();
    }
    // A call that will not end by itself.
    let hung = std::thread::spawn(move || greet(&busy_plugin, "hang"));
    std::thread::sleep(Duration::from_millis(100));

    let started = Instant::now();
    let stopped = host.shutdown(Duration::from_millis(500));
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "it took {took:?}");
    assert!(host.names().is_empty());
    let names: Vec<&str> = stopped.iter().map(|(name, _)| name.as_str()).collect();
    let mut expected = vec!["busy", "calm", "one-shot"];
    if bare.is_some() {
        expected.insert(2, "kv");
    }
    assert_eq!(names, expected);
    for (name, answer) in &stopped {
        match name.as_str() {
            "busy" => {
                let error = answer.as_ref().unwrap_err();
                assert!(
                    error
                        .message()
                        .contains("calls were still running after 500 ms")
                        && error.message().contains("killed"),
                    "{error}"
                );
            }
            _ => assert!(answer.is_ok(), "{name}: {answer:?}"),
        }
    }
    // The call in flight ended with its process.
    let ended = hung.join().unwrap().unwrap_err();
    assert_eq!(ended.code(), Code::Unavailable, "{ended}");
    calm.assert_no_leftovers();
    busy.assert_no_leftovers();
}
