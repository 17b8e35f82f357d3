//! The `outlet` command, run as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the command runs: a mirror of the repository's examples whose
/// artifacts are this build's (the README's test command makes it), so that
/// `examples/greeter/manifests/…` loads debug plugins into this debug
/// `outlet`, and the optimized ones `scripts/demo.sh` installs stay as they are.
fn workdir() -> PathBuf {
    let dir = root().join("target/test-examples");
    assert!(
        dir.join("examples/greeter/bin").is_dir(),
        "{} is missing: run the README's test command, which makes it",
        dir.display()
    );
    dir
}

/// Runs `outlet`, with a cache of the tests' own for compiled wasm modules
/// (the user's is left alone).
fn outlet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outlet"))
        .args(args)
        .env(
            "XDG_CACHE_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache"),
        )
        .current_dir(workdir())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const EXEC: &str = "examples/greeter/manifests/exec.toml";

#[test]
fn call_prints_the_response_as_json() {
    let out = outlet(&["call", EXEC, "Greet", "--json", r#"{"name": "world"}"#]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply, serde_json::json!({"message": "Hello, world!"}));
}

#[test]
fn call_errors_go_to_stderr_with_a_non_zero_exit() {
    let out = outlet(&["call", EXEC, "Wave", "--json", "{}"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("has no method `Wave`; its methods are Greet"));

    let out = outlet(&["call", EXEC, "Greet", "--json", r#"{"nom": 1}"#]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("outlet.examples.greeter.v1.GreetRequest"),
        "{err}"
    );

    let out = outlet(&["call", "no/such/manifest.toml", "Greet"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no/such/manifest.toml: cannot read the manifest"));
}

/// `outlet` with `input` on its stdin.
fn outlet_fed(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_outlet"))
        .args(args)
        .env(
            "XDG_CACHE_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache"),
        )
        .current_dir(workdir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn call_streams_one_line_of_json_per_message() {
    const NUMBERS: &str = "examples/numbers/manifests/native.toml";
    let out = outlet(&["call", NUMBERS, "Count", "--json", r#"{"n": 3}"#]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "{\"value\":\"1\"}\n{\"value\":\"2\"}\n{\"value\":\"3\"}\n"
    );
    // A client stream reads stdin, a line a message; blank lines are skipped.
    let out = outlet_fed(
        &["call", NUMBERS, "Sum", "--json", "-"],
        "{\"value\": 2}\n\n{\"value\": 40}\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "{\"count\":\"2\",\"sum\":\"42\"}\n");
    // What arrived is printed; an error ends the stream and the command.
    let out = outlet_fed(
        &["call", NUMBERS, "Echo", "--json", "-"],
        "{\"value\": 7}\n{\"value\": \"18446744073709551615\"}\n{\"value\": 8}\n",
    );
    assert!(!out.status.success());
    assert_eq!(text(&out.stdout), "{\"value\":\"7\"}\n");
    assert!(text(&out.stderr).contains("Echo refuses u64::MAX"));
    let out = outlet_fed(
        &["call", NUMBERS, "Sum", "--json", "-"],
        "{\"value\": 1}\n{\"nope\": 1}\n",
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("plugin `numbers-native`: line 2 of stdin") && err.contains("nope"),
        "{err}"
    );
}

#[test]
fn check_passes_good_manifests_and_refuses_bad_ones_with_reasons() {
    let out = outlet(&["check", EXEC]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).starts_with("ok "));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\nmechanism = \"native\"\npath = \"x.so\"\n\
         interface = \"a.B\"\ntrust = \"out-of-process\"\n",
    )
    .unwrap();
    let out = outlet(&["check", EXEC, bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("refused") && stdout.contains("trust = \"out-of-process\""),
        "{stdout}"
    );
    assert!(text(&out.stderr).contains("1 of 2 manifests refused"));
}

#[test]
fn the_policy_decides_how_far_a_manifest_outside_the_checkout_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let program = root().join("target/debug/greeter-exec");
    let sha = outlet_manifest::sha256_hex(&std::fs::read(&program).unwrap());
    let file = dir.path().join("greeter.toml");
    let write = |trust: &str, extra: &str| {
        let text = format!(
            "name = \"theirs\"\nmechanism = \"exec\"\npath = \"{}\"\n\
             interface = \"outlet.examples.greeter.v1.Greeter\"\ntrust = \"{trust}\"\n\
             sha256 = \"{sha}\"\n{extra}",
            program.display()
        );
        std::fs::write(&file, text).unwrap();
    };
    let check = |flags: &[&str]| {
        let mut args = vec!["check", file.to_str().unwrap()];
        args.extend(flags);
        let out = outlet(&args);
        (out.status.success(), text(&out.stdout))
    };

    // Outside the checkout, at most sandboxed unless the user says more.
    write("out-of-process", "");
    let (ok, stdout) = check(&[]);
    assert!(
        !ok && stdout.contains("plugin `theirs` is refused by the trust policy")
            && stdout.contains("at most \"sandboxed\"")
            && stdout.contains("--trust-folder"),
        "{stdout}"
    );
    let folder = format!("{}=out-of-process", dir.path().display());
    assert!(check(&["--trust-folder", &folder]).0);
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[folder]]\npath = \".\"\ntrust = \"out-of-process\"\n",
    )
    .unwrap();
    assert!(check(&["--policy", policy.to_str().unwrap()]).0);

    // Sandboxed: exec in the OS sandbox, whose reach `check` prints; a
    // policy may keep sandboxed plugins to wasm.
    write("sandboxed", "");
    let (ok, stdout) = check(&[]);
    assert!(
        ok && stdout.contains("network   none") && stdout.contains("executes  its own program\n"),
        "{stdout}"
    );
    std::fs::write(&policy, "sandboxed_mechanisms = [\"wasm\"]\n").unwrap();
    let (ok, stdout) = check(&["--policy", policy.to_str().unwrap()]);
    assert!(
        !ok && stdout.contains("only as wasm, not `exec`"),
        "{stdout}"
    );
    // Out of process with the sandbox relaxed: flagged.
    write("out-of-process", "sandbox = false\n");
    let (ok, stdout) = check(&["--trust-folder", &folder]);
    assert!(
        ok && stdout.contains("warning: `sandbox = false`")
            && stdout.contains("no OS sandbox (`sandbox = false`)"),
        "{stdout}"
    );

    // The host's variables only where the user allows them.
    write(
        "out-of-process",
        "[permissions]\ninherit_env = [\"HOME\"]\n",
    );
    let (ok, stdout) = check(&["--trust-folder", &folder]);
    assert!(!ok && stdout.contains("the host's HOME"), "{stdout}");
    assert!(check(&["--trust-folder", &folder, "--inherit-env", "HOME"]).0);

    // A policy file that is not one says so.
    std::fs::write(&policy, "elsewhere = \"everything\"\n").unwrap();
    let out = outlet(&["check", "--policy", policy.to_str().unwrap(), EXEC]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("not a policy file"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn call_reads_no_proto_that_is_not_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("z.proto");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(
        dir.path().join("x.proto"),
        "syntax = \"proto3\";\nimport \"z.proto\";\npackage a;\nservice B {}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("m.wasm"), "").unwrap();
    let manifest = dir.path().join("m.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = \"m\"\nmechanism = \"wasm\"\npath = \"m.wasm\"\ninterface = \"a.B\"\n\
             proto = \"x.proto\"\ntrust = \"sandboxed\"\nsha256 = \"{}\"\n",
            "ab".repeat(32)
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = outlet(&["call", manifest.to_str().unwrap(), "Get"]);
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("not a regular file"),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn inspect_shows_hello_and_the_negotiation() {
    let out = outlet(&["inspect", EXEC, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["hello"]["name"], "greeter");
    assert_eq!(info["negotiated"]["app_version"], 1);
    assert_eq!(
        info["negotiated"]["capabilities"],
        serde_json::json!(["configure"])
    );

    let out = outlet(&["inspect", EXEC]);
    assert!(text(&out.stdout).contains("negotiated    core v1, app v1, capabilities: configure"));
    assert_eq!(info["sandbox"]["enforced"], false, "{info:#}");

    // The rpc greeter's grant names the key-value store the command offers.
    let out = outlet(&["inspect", "examples/greeter/manifests/rpc.toml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The numbers' native plugin, whose methods stream, loads as its
    // example manifest says.
    let out = outlet(&["inspect", "examples/numbers/manifests/native.toml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("outlet.examples.numbers.v1.Numbers"),
        "{}",
        text(&out.stdout)
    );
    // The relay's names a Greeter, which it does not offer: refused, saying so.
    let out = outlet(&["inspect", "examples/greeter/manifests/relay.toml"]);
    assert!(
        text(&out.stderr).contains(
            "plugin `greeter-relay`: its manifest grants \
             `outlet.examples.greeter.v1.Greeter/Greet` under permissions.call, and this host \
             offers no service `outlet.examples.greeter.v1.Greeter` (it offers: proto.KV)"
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn inspect_reports_the_sandbox_that_holds() {
    let dir = tempfile::tempdir().unwrap();
    let program = root().join("target/debug/greeter-exec");
    let sha = outlet_manifest::sha256_hex(&std::fs::read(&program).unwrap());
    let file = dir.path().join("greeter.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"boxed\"\nmechanism = \"exec\"\npath = \"{}\"\n\
             interface = \"outlet.examples.greeter.v1.Greeter\"\ntrust = \"sandboxed\"\n\
             sha256 = \"{sha}\"\n",
            program.display()
        ),
    )
    .unwrap();
    let out = outlet(&["inspect", file.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sandbox = &info["sandbox"];
    assert_eq!(sandbox["enforced"], true, "{sandbox:#}");
    for layer in ["landlock", "seccomp", "no_new_privs", "capabilities"] {
        assert_eq!(
            sandbox["layers"][layer]["holds"], true,
            "{layer}: {sandbox:#}"
        );
        assert!(
            sandbox["layers"][layer]["level"]
                .as_str()
                .is_some_and(|l| !l.is_empty())
        );
    }
    let out = outlet(&["inspect", file.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("sandbox       enforced") && stdout.contains("landlock"),
        "{stdout}"
    );
}

#[test]
fn advise_prints_the_mechanism_first_then_the_reason() {
    let cases = [
        ("in-process", "high", "same-build", "native"),
        ("in-process", "high", "cross-platform", "cabi"),
        ("out-of-process", "medium", "independent", "rpc"),
        ("sandboxed", "medium", "independent", "rpc"),
        ("sandboxed", "high", "independent", "wasm"),
        ("out-of-process", "low", "independent", "exec"),
    ];
    for (trust, perf, deploy, expected) in cases {
        let out = outlet(&[
            "advise", "--trust", trust, "--perf", perf, "--deploy", deploy,
        ]);
        let stdout = text(&out.stdout);
        let mut lines = stdout.lines();
        assert_eq!(lines.next(), Some(expected), "{trust} {perf} {deploy}");
        assert!(!lines.next().unwrap_or_default().is_empty());
    }
    let out = outlet(&[
        "advise",
        "--trust",
        "out-of-process",
        "--perf",
        "fast",
        "--deploy",
        "independent",
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("`fast` is not one of high, medium, low"));
}

#[test]
fn demo_and_bench_run() {
    let trail = tempfile::tempdir().unwrap();
    let audit = trail.path().join("audit.jsonl");
    let metrics = trail.path().join("metrics.prom");
    let out = outlet(&[
        "demo",
        "--audit",
        audit.to_str().unwrap(),
        "--metrics",
        metrics.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    // Every demo plugin's calls, counted and timed, in Prometheus's text,
    // and one line of stats each.
    let exposition = std::fs::read_to_string(&metrics).unwrap();
    for plugin in [
        "greeter-native",
        "greeter-cabi",
        "greeter-cabi-rust",
        "greeter-rpc",
        "greeter-wasm",
        "greeter-wasm-rust",
        "greeter-exec",
        "greeter-relay",
    ] {
        let calls = format!("outlet_calls_total{{plugin=\"{plugin}\",");
        assert!(exposition.contains(&calls), "{plugin}: {exposition}");
        let timed = format!("outlet_call_duration_seconds_bucket{{plugin=\"{plugin}\",");
        assert!(exposition.contains(&timed), "{plugin}: {exposition}");
        assert!(
            stdout.contains(&format!("  {plugin} ")),
            "{plugin}: {stdout}"
        );
    }
    assert!(
        exposition.contains("code=\"PERMISSION_DENIED\"} 1"),
        "the refused call is counted by its code: {exposition}"
    );
    // The rpc greeter's guestbook wrote into the host's store, by its grant,
    // and the audit file has the call.
    let records = std::fs::read_to_string(&audit).unwrap();
    let put: serde_json::Value = records
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|record| record["method"] == "/proto.KV/Put")
        .unwrap_or_else(|| panic!("no record of the guestbook's Put: {records}"));
    assert_eq!(
        (&put["caller"], &put["callee"], &put["code"]),
        (&"greeter-rpc".into(), &"host".into(), &"Ok".into()),
        "{put}"
    );
    assert!(
        stdout.contains("\"Hello, world!\"") && stdout.contains("\"Howdy, world!\""),
        "{stdout}"
    );
    assert!(stdout.contains("refused"), "{stdout}");
    // A native plugin calls the wasm greeter through the host, by its
    // grant; the cabi greeter has none, and is refused. Both are recorded.
    assert!(
        stdout.contains("\"Bonjour, world! (relayed through the host)\""),
        "{stdout}"
    );
    let bus: Vec<serde_json::Value> = records
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|record| record["method"] == "/outlet.examples.greeter.v1.Greeter/Greet")
        .collect();
    let seen: Vec<_> = bus
        .iter()
        .map(|r| {
            (
                r["caller"].as_str(),
                r["callee"].as_str(),
                r["code"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (Some("greeter-relay"), Some("greeter-wasm-rust"), Some("Ok")),
            (
                Some("greeter-cabi-rust"),
                Some("greeter-wasm-rust"),
                Some("PermissionDenied")
            )
        ],
        "{records}"
    );
    assert_eq!(
        stdout.matches("  audit     {").count(),
        2,
        "the demo prints both records: {stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    // With go-plugin's own Go host and plugin, which the README's test
    // command builds into target/go, unless it says it cannot (a system not
    // based on Debian); on Debian they are always there.
    let go_dir = root().join("target/go");
    let mut args = vec!["bench", "--calls", "10", "--json", json.to_str().unwrap()];
    let go = std::env::var_os("OUTLET_GO_INTEROP").is_none_or(|v| v != "skip");
    if go {
        args.extend(["--go", go_dir.to_str().unwrap()]);
    } else {
        eprintln!("skipped: the bench's go-plugin rows (Go and go-plugin are not installed)");
    }
    let out = outlet(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    // The run names its machine, which the README quotes.
    assert!(
        results["machine"]["cpus"].as_u64().unwrap() > 0,
        "{results}"
    );
    let rows = results["rows"].as_array().unwrap();
    for row in rows {
        assert!(row["median_ns"].as_u64().unwrap() > 0, "{row}");
    }
    if !go {
        return;
    }
    let mechanisms: Vec<&str> = rows
        .iter()
        .map(|r| r["mechanism"].as_str().unwrap())
        .collect();
    let mut expected = vec!["native", "native", "cabi", "cabi"];
    expected.extend(["rpc"; 11]);
    expected.extend(["wasm"; 6]);
    expected.extend(["exec"; 3]);
    // Streams: the large Count, a Greet from a tokio task, small messages.
    expected.extend(["rpc", "rpc", "native", "cabi", "rpc", "wasm", "exec"]);
    expected.extend(["bus"; 3]);
    // What counting calls costs, each mechanism, then with an exporter.
    expected.extend(["native", "cabi", "rpc", "wasm", "exec", "native", "rpc"]);
    assert_eq!(mechanisms, expected);
    // The endless loop was stopped, not before its limit of 100 ms and not
    // seconds late (the bench's row is what measures it against the goal).
    let spin = rows
        .iter()
        .find(|r| r["case"].as_str().unwrap().contains("endless loop"))
        .unwrap();
    let stopped = spin["median_ns"].as_u64().unwrap();
    assert!((100_000_000..1_000_000_000).contains(&stopped), "{spin}");
    let rpc: Vec<&str> = rows
        .iter()
        .filter(|r| r["mechanism"] == "rpc")
        .map(|r| r["case"].as_str().unwrap())
        .collect();
    assert!(rpc[0].contains("Outlet host + plugin (frames)"), "{rpc:?}");
    assert!(rpc[1].contains("Outlet host + Go plugin"), "{rpc:?}");
    assert!(rpc[2].contains("Go host + Outlet plugin"), "{rpc:?}");
    assert!(rpc[6].contains("restart"), "{rpc:?}");
    // The OS sandbox's cost, beside the same plugin unconfined.
    for (row, case) in [(&rows[12], "KV Get"), (&rows[13], "start to first Get")] {
        assert!(row["case"].as_str().unwrap().starts_with(case), "{row}");
        assert!(
            row["case"].as_str().unwrap().contains("OS sandbox"),
            "{row}"
        );
        assert_eq!(row["baseline"]["case"], "unsandboxed", "{row}");
    }
    assert!(rows[22]["case"].as_str().unwrap().contains("OS sandbox"));
    assert_eq!(rows[22]["baseline"]["case"], "spawn /bin/true");
    // The checks before each start and call, beside what they precede.
    let checks = &rows[11];
    assert!(
        checks["case"]
            .as_str()
            .unwrap()
            .starts_with("checks before a start")
    );
    assert_eq!(checks["baseline"]["case"], "a start");
    assert_eq!(rows[23]["baseline"]["case"], "the call");
    assert_eq!(rows[4]["baseline"]["case"], "go-plugin Go host + Go plugin");
    for row in rows {
        assert!(row["median_ns"].as_u64().unwrap() > 0, "{row}");
        // Round trips have a baseline; costs of loading stand alone.
        assert!(
            row["ratio"].is_null() || row["ratio"].as_f64().unwrap() > 0.0,
            "{row}"
        );
    }
    let exec = &rows[21];
    assert_eq!(exec["baseline"]["case"], "spawn /bin/true");
    // The rpc plugin killed every 25 ms kept answering, and says how much.
    assert!(rpc[10].contains("killed every 25 ms"), "{rpc:?}");
    let stress = &results["stress"];
    assert!(stress["kills"].as_u64().unwrap() > 0, "{stress}");
    assert!(stress["answered"].as_u64().unwrap() > 0, "{stress}");
    // Unloading returns the memory: 100 wasm loads and 10,000 instances made
    // and dropped leave resident memory within a few MB of where it was.
    let wasm = &results["wasm_memory"];
    let before = wasm["rss_before"].as_u64().unwrap();
    let after = wasm["rss_after_100_loads_and_10000_instances"]
        .as_u64()
        .unwrap();
    assert!(after < before + (16 << 20), "{wasm}");
    let loading = &results["native_loading"];
    assert!(
        loading["rss_after_100_cycles"].as_u64().unwrap() > 0,
        "{loading}"
    );
    assert!(exec["ratio"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_signal_stops_the_command_and_its_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("hanging.toml");
    // The interface beside the manifest: `outlet call` reads it only there.
    std::fs::copy(
        root().join("examples/greeter/manifests/greeter.proto"),
        dir.path().join("greeter.proto"),
    )
    .unwrap();
    std::fs::write(
        &manifest,
        format!(
            "name = \"hanging\"\nmechanism = \"rpc\"\npath = {:?}\n\
             interface = \"outlet.examples.greeter.v1.Greeter\"\nproto = \"greeter.proto\"\n\
             trust = \"in-process\"\n[limits]\ntimeout_ms = 60000\n",
            root().join("target/debug/outlet-test-rpc"),
        ),
    )
    .unwrap();
    let trusted = format!("{}=in-process", dir.path().display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_outlet"))
        .args(["call", manifest.to_str().unwrap(), "Greet"])
        .args(["--json", r#"{"name": "pid"}"#, "--trust-folder", &trusted])
        .current_dir(workdir())
        .output()
        .unwrap();
    assert!(child.status.success(), "{}", text(&child.stderr));
    // Its plugin's process id, to look for after the signal.
    let reply: serde_json::Value = serde_json::from_slice(&child.stdout).unwrap();
    let first: u32 = reply["message"].as_str().unwrap().parse().unwrap();
    assert!(!Path::new(&format!("/proc/{first}")).exists());

    let hung = Command::new(env!("CARGO_BIN_EXE_outlet"))
        .args(["call", manifest.to_str().unwrap(), "Greet"])
        .args(["--json", r#"{"name": "hang"}"#, "--trust-folder", &trusted])
        .current_dir(workdir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The plugin's process: the command's child, started at load.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let plugin = loop {
        if let Some(pid) = children(hung.id()).first() {
            break *pid;
        }
        assert!(std::time::Instant::now() < until, "no plugin process");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &hung.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    child = hung.wait_with_output().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(child.status.code(), Some(143), "{}", text(&child.stderr));
    // The plugin's process is gone: killed (a zombie left to an init that
    // does not reap counts as gone), or never there.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let alive = || {
        std::fs::read_to_string(format!("/proc/{plugin}/stat")).is_ok_and(|stat| {
            stat.rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next())
                != Some("Z")
        })
    };
    while alive() {
        assert!(
            std::time::Instant::now() < until,
            "plugin {plugin} is still there"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The processes whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // pid (comm) state ppid …: the command may hold spaces.
            let ppid: u32 = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == parent).then(|| entry.file_name().to_str()?.parse().ok())?
        })
        .collect()
}

/// A folder of plugins, one signed and one pinned, under the key flags:
/// `check` and `inspect` take the folder, `call` the signed plugin.
#[test]
fn signed_plugins_load_only_under_a_key_the_host_trusts() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let greeter = workdir().join("examples/greeter");
    std::fs::copy(
        greeter.join("bin/greeter-exec"),
        plugins.join("greeter-exec"),
    )
    .unwrap();
    std::fs::copy(
        greeter.join("manifests/greeter.proto"),
        plugins.join("greeter.proto"),
    )
    .unwrap();
    let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let bytes = std::fs::read(plugins.join("greeter-exec")).unwrap();
    let signature = minisign::sign(Some(&pair.pk), &pair.sk, &bytes[..], None, None).unwrap();
    std::fs::write(
        plugins.join("greeter-exec.minisig"),
        signature.into_string(),
    )
    .unwrap();
    let keys = dir.path().join("keys.txt");
    std::fs::write(
        &keys,
        format!("# ours\n{} expires=2999-12-31\n", pair.pk.to_base64()),
    )
    .unwrap();
    let manifest = |name: &str, extra: &str| {
        format!(
            "name = \"{name}\"\nmechanism = \"exec\"\npath = \"greeter-exec\"\n\
             interface = \"outlet.examples.greeter.v1.Greeter\"\nproto = \"greeter.proto\"\n\
             trust = \"sandboxed\"\n{extra}"
        )
    };
    let signed = plugins.join("signed.toml");
    std::fs::write(
        &signed,
        manifest("signed", "signature = \"greeter-exec.minisig\"\n"),
    )
    .unwrap();
    std::fs::write(plugins.join("pinned.toml"), manifest("pinned", "")).unwrap();
    let run = |args: &[&str], keys_env: Option<&Path>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_outlet"));
        command
            .args(args)
            .current_dir(dir.path())
            .env_remove("OUTLET_TRUSTED_KEYS");
        command.env(
            "XDG_CACHE_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache"),
        );
        if let Some(keys) = keys_env {
            command.env("OUTLET_TRUSTED_KEYS", keys);
        }
        command.output().unwrap()
    };
    let out = run(&["pin", "plugins/pinned.toml"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // No key trusted: the signed plugin is refused, naming its key.
    let out = run(&["check", "plugins"], None);
    assert!(!out.status.success());
    let said = text(&out.stdout);
    assert!(said.contains("which the host does not trust"), "{said}");
    assert!(said.contains("ok      plugins/pinned.toml"), "{said}");
    // Trusted by a flag, or by the environment.
    let out = run(
        &["--trusted-keys", keys.to_str().unwrap(), "check", "plugins"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("signature matches"),
        "{}",
        text(&out.stdout)
    );
    // Signatures required: the pinned plugin is refused, the signed one passes.
    let out = run(
        &["--require-signature", "sandboxed", "check", "plugins"],
        Some(&keys),
    );
    assert!(!out.status.success());
    let said = text(&out.stdout);
    assert!(said.contains("ok      plugins/signed.toml"), "{said}");
    assert!(said.contains("names no `signature`"), "{said}");

    let keys_flag = ["--trusted-keys", keys.to_str().unwrap()];
    let call = [
        &keys_flag[..],
        &[
            "call",
            "plugins/signed.toml",
            "Greet",
            "--json",
            r#"{"name":"key"}"#,
        ],
    ]
    .concat();
    let out = run(&call, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Hello, key!"),
        "{}",
        text(&out.stdout)
    );
    let inspect = [&keys_flag[..], &["inspect", "plugins", "--json"]].concat();
    let out = run(&inspect, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["plugin"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pinned", "signed"]);

    // The signed artifact rebuilt: its signature no longer matches.
    std::fs::write(plugins.join("greeter-exec"), b"#!/bin/sh\n").unwrap();
    let out = run(&call, None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("does not match the bytes of"),
        "{}",
        text(&out.stderr)
    );
}
