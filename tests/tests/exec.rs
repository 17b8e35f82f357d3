//! The exec mechanism with real child processes, well-behaved and not.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use outlet_protocol::{Code, Transport};

use crate::support::{
    capture_logs, fixture, fixture_for, greet, greeter_exec, host_secret, peak_rss,
};

#[test]
fn greets_through_a_child_process_and_logs_its_stderr_under_its_name() {
    let f = fixture("polite", "", "");
    let plugin = f.load();
    let (reply, logs) = capture_logs(|| greet(&plugin, "Ada"));
    assert_eq!(reply.unwrap(), "Hello, Ada!");
    assert!(logs.contains("plugin=\"polite\""), "{logs}");
    assert!(logs.contains("greeting Ada"), "{logs}");
    // What the plugin printed to stdout went to the log, not into the reply.
    assert!(logs.contains("this line goes to stderr"), "{logs}");
    f.assert_no_leftovers();
}

#[test]
fn the_example_greeter_takes_new_config_without_a_restart() {
    let f = fixture_for(
        "greeter",
        &greeter_exec(),
        "",
        "[config]\ngreeting = \"Hello\"\n",
    );
    let plugin = f.load();
    assert_eq!(greet(&plugin, "world").unwrap(), "Hello, world!");
    let config = |g: &str| BTreeMap::from([("greeting".to_owned(), g.to_owned())]);
    plugin.configure(config("Howdy")).unwrap();
    assert_eq!(greet(&plugin, "world").unwrap(), "Howdy, world!");

    let refused = plugin.configure(config(" ")).unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("`greeting` is empty"),
        "{refused}"
    );
    assert_eq!(plugin.config()["greeting"], "Howdy");
    assert_eq!(greet(&plugin, "world").unwrap(), "Howdy, world!");
    assert_eq!(
        plugin.health().unwrap().status(),
        outlet_protocol::core::health_response::ServingStatus::Serving
    );
}

#[test]
fn a_plugin_without_configure_says_so() {
    let f = fixture("stubborn", "", "");
    let plugin = f.load();
    let error = plugin.configure(BTreeMap::new()).unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(error.message().contains("plugin `stubborn`"), "{error}");
}

#[test]
fn a_plugin_that_exits_non_zero_fails_the_call_with_its_last_words() {
    let f = fixture("quitter", "exit", "");
    let plugin = f.load_err();
    assert!(plugin.contains("plugin `quitter`"), "{plugin}");
    assert!(plugin.contains("exited with status 3"), "{plugin}");
    assert!(
        plugin.contains("giving up before reading the call"),
        "{plugin}"
    );
    f.assert_no_leftovers();
}

#[test]
fn a_plugin_that_prints_garbage_is_refused_with_what_it_printed() {
    let f = fixture("chatty", "garbage", "");
    let error = f.load_err();
    assert!(error.contains("plugin `chatty`"), "{error}");
    assert!(error.contains("does not hold a reply"), "{error}");
    assert!(error.contains("Hello, w"), "{error}");
}

#[test]
fn a_hanging_plugin_is_killed_at_its_deadline() {
    let hang = fixture("hangs", "hang", "[limits]\ntimeout_ms = 300\n");
    let started = Instant::now();
    let error = hang.load_err();
    assert!(
        error.contains("plugin `hangs`") && error.contains("300 ms"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    hang.assert_no_leftovers();

    // The deadline is per call: Hello is quick, Greet sleeps past it.
    let f = fixture("sleepy", "sleep", "[limits]\ntimeout_ms = 100\n");
    let plugin = f.load();
    let error = greet(&plugin, "x").unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded);
    assert!(error.message().contains("plugin `sleepy`"), "{error}");
    assert!(error.message().contains("limits.timeout_ms"), "{error}");
    f.assert_no_leftovers();
}

#[test]
fn a_plugin_that_replies_but_lingers_is_killed_and_its_reply_kept() {
    let f = fixture("lingerer", "linger", "[limits]\ntimeout_ms = 5000\n");
    let plugin = f.load();
    let started = Instant::now();
    let (reply, logs) = capture_logs(|| greet(&plugin, "x"));
    assert_eq!(reply.unwrap(), "Hello, x!");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(
        logs.contains("did not exit") && logs.contains("lingerer"),
        "{logs}"
    );
    f.assert_no_leftovers();
}

#[test]
fn a_gigabyte_on_stdout_is_refused_in_bounded_memory() {
    let before = peak_rss();
    let raw = fixture("flood", "flood", "");
    let error = raw.load_err();
    assert!(
        error.contains("plugin `flood`") && error.contains("xxxx"),
        "{error}"
    );

    let framed = fixture("frame-flood", "flood-frame", "");
    let error = framed.load_err();
    assert!(error.contains("1073741824 bytes"), "{error}");
    assert!(error.contains("limits.max_message_bytes"), "{error}");

    let grown = peak_rss().saturating_sub(before);
    assert!(grown < 256 << 20, "the host grew by {grown} bytes");
    raw.assert_no_leftovers();
    framed.assert_no_leftovers();
}

#[test]
fn a_flood_on_stderr_is_logged_up_to_a_limit_and_the_call_still_works() {
    let f = fixture("loud", "flood-stderr", "");
    let plugin = f.load();
    let (reply, logs) = capture_logs(|| greet(&plugin, "Bo"));
    assert_eq!(reply.unwrap(), "Hello, Bo!");
    assert!(
        logs.contains("bytes were not logged"),
        "{}",
        &logs[logs.len().saturating_sub(500)..]
    );
    assert!(logs.len() < 8 << 20, "{} bytes of logs", logs.len());
}

#[test]
fn children_of_a_plugin_die_with_its_call() {
    let f = fixture("parent", "fork-hang", "");
    let started = Instant::now();
    let (plugin, logs) = capture_logs(|| f.load());
    // The grandchild holds stdout open, and the call did not wait for it.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(logs.contains("grandchild"), "{logs}");
    assert_eq!(greet(&plugin, "x").unwrap(), "Hello, x!");
    f.assert_no_leftovers();
}

#[test]
fn the_environment_holds_only_what_the_manifest_passes() {
    let f = fixture(
        "env",
        "env",
        "[permissions]\ninherit_env = [\"PATH\", \"OUTLET_NOT_SET_ANYWHERE\"]\n",
    );
    let reply = greet(&f.load(), "x").unwrap();
    let mut vars: Vec<&str> = reply
        .split(' ')
        .map(|kv| kv.split('=').next().unwrap())
        .collect();
    vars.sort();
    assert_eq!(
        vars,
        ["OUTLET_TEST_MARKER", "OUTLET_TEST_MODE", "PATH"],
        "{reply}"
    );
}

#[test]
fn no_descriptor_of_the_host_reaches_the_child() {
    let (_dir, _file, secret) = host_secret();
    let reply = greet(&fixture("fds", "fds", "").load(), "x").unwrap();
    assert!(!reply.contains(secret.to_str().unwrap()), "{reply}");
    // Its stdio pipes (and the guest's copy of stdout), and the folder it
    // opened itself to list them: nothing else.
    for pair in reply.split(' ') {
        let target = pair.split_once('=').unwrap().1;
        assert!(
            target.starts_with("pipe:") || target.starts_with("/proc/"),
            "{reply}"
        );
    }
}

#[test]
fn resource_limits_from_the_manifest_apply_to_the_child() {
    let limits = "[limits]\nmemory_mb = 256\ncpu_seconds = 3\nopen_files = 16\n";
    let reply = greet(&fixture("limited", "limits", limits).load(), "x").unwrap();
    assert_eq!(
        reply,
        format!(
            "as=Some({})/Some({}) cpu=Some(3)/Some(4) nofile=Some(16)/Some(16)",
            256 << 20,
            256 << 20
        )
    );

    // A limit at the child's stdio: it gets its stdio before the limit, so
    // it starts, and only then runs out (this dynamically linked plugin,
    // in the loader: errno 24 is EMFILE).
    let error = fixture("few", "limits", "[limits]\nopen_files = 2\n").load_err();
    assert!(!error.contains("cannot start"), "{error}");
    assert!(
        error.contains("Error 24") || error.contains("Too many open files"),
        "{error}"
    );

    let files = fixture("files", "files", "[limits]\nopen_files = 16\n");
    let error = greet(&files.load(), "x").unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted);
    assert!(error.message().contains("Too many open files"), "{error}");

    let memory = fixture("hungry", "alloc", "[limits]\nmemory_mb = 64\n");
    let error = greet(&memory.load(), "x").unwrap_err();
    assert!(error.message().contains("plugin `hungry`"), "{error}");
    assert!(error.message().contains("memory allocation"), "{error}");

    let cpu = fixture(
        "spinner",
        "spin",
        "[limits]\ncpu_seconds = 1\ntimeout_ms = 20000\n",
    );
    let error = greet(&cpu.load(), "x").unwrap_err();
    assert!(
        error.message().contains("limits.cpu_seconds = 1"),
        "{error}"
    );
    cpu.assert_no_leftovers();
}

#[test]
fn a_panicking_plugin_fails_the_call_and_the_next_call_works() {
    let f = fixture("panicky", "panic", "");
    let plugin = f.load();
    // The generated server catches the panic in the plugin's process and
    // replies with it; the next call is a fresh process, not poisoned.
    let (error, logs) = capture_logs(|| greet(&plugin, "x").unwrap_err());
    assert_eq!(error.code(), Code::Internal);
    assert_eq!(
        error.message(),
        "/outlet.examples.greeter.v1.Greeter/Greet panicked: the test plugin panics on purpose"
    );
    assert!(
        logs.contains("panicked at") && logs.contains("panicky"),
        "{logs}"
    );
    assert!(plugin.health().is_ok());
}

#[test]
fn a_plugins_own_error_reaches_the_caller_unchanged() {
    let plugin = fixture("picky", "refuse", "").load();
    let error = greet(&plugin, "x").unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(error.message(), "names are not accepted today");
    let error = plugin
        .call("/outlet.examples.greeter.v1.Greeter/Wave", &[])
        .unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented);
}

#[test]
fn calls_from_many_threads_run_at_once() {
    let plugin = fixture("busy", "", "").load();
    std::thread::scope(|s| {
        for t in 0..8 {
            let plugin = &plugin;
            s.spawn(move || {
                for i in 0..4 {
                    let name = format!("t{t}c{i}");
                    assert_eq!(greet(plugin, &name).unwrap(), format!("Hello, {name}!"));
                }
            });
        }
    });
}

#[test]
fn after_shutdown_calls_fail_as_unavailable() {
    let plugin = fixture("done", "", "").load();
    plugin.shutdown().unwrap();
    plugin.shutdown().unwrap();
    let error = greet(&plugin, "x").unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    assert!(
        error.message().contains("plugin `done` was shut down"),
        "{error}"
    );
}

/// A pinned copy of the test plugin in a folder of its own.
fn pinned_copy(
    name: &str,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    crate::support::Fixture,
) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("plugin");
    std::fs::copy(crate::support::test_plugin(), &copy).unwrap();
    let hash = outlet_manifest::sha256_hex(&std::fs::read(&copy).unwrap());
    let f = fixture_for(name, &copy, "", &format!("sha256 = \"{hash}\"\n"));
    (dir, copy, f)
}

#[test]
fn a_binary_rewritten_in_place_with_its_size_and_mtime_restored_is_hashed_again() {
    let (_dir, copy, f) = pinned_copy("rewritten");
    // Until its last change is further back than the file system's clock
    // ticks, the file is hashed before every call anyway; from then on, its
    // stamp says whether it changed.
    let stamp = outlet_manifest::Stamp::from(&std::fs::metadata(&copy).unwrap());
    while !stamp.settled() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let plugin = f.load();
    assert_eq!(greet(&plugin, "x").unwrap(), "Hello, x!");
    // The same inode, size and modification time, other bytes: only the
    // status change time (which user space cannot set back) tells.
    let modified = std::fs::metadata(&copy).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&copy).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().write(true).open(&copy).unwrap();
        file.write_all(&bytes).unwrap();
        file.set_modified(modified).unwrap();
    }
    let after = std::fs::metadata(&copy).unwrap();
    assert_eq!(
        (after.len(), after.modified().unwrap()),
        (bytes.len() as u64, modified)
    );
    let error = greet(&plugin, "x").unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition, "{error}");
    assert!(
        error.message().contains("plugin `rewritten`")
            && error.message().contains("changed since it was loaded"),
        "{error}"
    );
    f.assert_no_leftovers();
}

#[test]
fn what_runs_is_the_file_checked_not_what_the_path_names_at_spawn() {
    let (_dir, copy, f) = pinned_copy("held");
    let plugin = f.load();
    assert_eq!(greet(&plugin, "x").unwrap(), "Hello, x!");
    // Replaced, then put back: the file at the path is checked again (its
    // inode changed) and runs; the one replaced in between never did.
    let saved = copy.with_file_name("saved");
    std::fs::rename(&copy, &saved).unwrap();
    std::fs::copy("/bin/true", &copy).unwrap();
    let error = greet(&plugin, "x").unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition, "{error}");
    std::fs::rename(&saved, &copy).unwrap();
    assert_eq!(greet(&plugin, "x").unwrap(), "Hello, x!");
}

#[test]
fn a_pinned_script_runs_through_its_interpreter_from_the_descriptor_checked() {
    // The kernel hands a `#!` script's interpreter `/dev/fd/3`: the
    // descriptor checked stays open across exec for a script.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("plugin.sh");
    let text = format!(
        "#!/bin/sh\nexec {} \"$@\"\n",
        crate::support::test_plugin().display()
    );
    std::fs::write(&script, &text).unwrap();
    let executable = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
    std::fs::set_permissions(&script, executable).unwrap();
    let hash = outlet_manifest::sha256_hex(text.as_bytes());
    let f = fixture_for("scripted", &script, "", &format!("sha256 = \"{hash}\"\n"));
    let plugin = f.load();
    assert_eq!(greet(&plugin, "x").unwrap(), "Hello, x!");
    f.assert_no_leftovers();
}
