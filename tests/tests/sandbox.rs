//! The OS sandbox of exec and rpc plugins, attacked from inside. Each test
//! loads the test plugin of both mechanisms under a manifest that grants
//! little, has it try something through a `probe:…` call (the attacks are in
//! `tests/src/probe.rs`), and checks its answer and, where it can, the world
//! outside: the file not written, the connection not made, the process
//! still alive.
//!
//! When the host runs as root, the plugin runs as an unprivileged uid: a
//! folder a test grants, or keeps from the plugin, is opened to everyone by
//! its mode, so that only the sandbox stands in the way.

use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use kv::{GetRequest, KvClient, PutRequest};
use outlet_host::{Plugin, SandboxReport};

use crate::support::{
    self, Fixture, fixture_of, greet, greeter_exec, root, rpc_plugin, test_plugin,
};

/// The mechanisms the OS sandbox confines.
const MECHANISMS: [&str; 2] = ["exec", "rpc"];

/// The test plugin of `mechanism`.
fn test_plugin_of(mechanism: &str) -> PathBuf {
    match mechanism {
        "exec" => test_plugin(),
        _ => rpc_plugin(),
    }
}

/// A manifest for `program` under `mechanism`, pinned by its hash (as
/// trust below `in-process` must be); `head` holds its `trust` line and any
/// other top-level keys, `grants` the lines of its `[permissions]`. Its
/// folder is readable by everyone, so that a folder granted inside it
/// reaches the plugin's uid.
fn confined(mechanism: &str, name: &str, program: &Path, head: &str, grants: &str) -> Fixture {
    let sha = outlet_manifest::sha256_hex(&std::fs::read(program).unwrap());
    let extra = format!("sha256 = \"{sha}\"\n[permissions]\n{grants}\n");
    let f = fixture_of(mechanism, name, program, "", &extra);
    let text = std::fs::read_to_string(&f.manifest).unwrap();
    std::fs::write(&f.manifest, text.replace("trust = \"in-process\"", head)).unwrap();
    chmod(folder(&f), 0o755);
    f
}

/// [`confined`] for the test plugin of `mechanism` at `trust`, named
/// `<test>-<mechanism>`. An rpc plugin of a host that is not root runs at
/// `open` instead of `untrusted`, which such a host refuses it (its Unix
/// sockets would be the user's to reach).
fn sandboxed(mechanism: &str, test: &str, trust: &str, grants: &str) -> Fixture {
    let name = format!("{test}-{mechanism}");
    let root = rustix::process::geteuid().is_root();
    let trust = match (mechanism, trust) {
        ("rpc", "untrusted") if !root => "open",
        _ => trust,
    };
    let head = format!("trust = \"{trust}\"");
    confined(mechanism, &name, &test_plugin_of(mechanism), &head, grants)
}

/// The folder a fixture's manifest is in.
fn folder(f: &Fixture) -> &Path {
    f.manifest.parent().unwrap()
}

/// What the plugin answers to `probe:<attack>`: `ok: …` or `denied: …`
/// (or `call failed: …`, should the call itself fail).
fn probe(plugin: &Plugin, attack: &str) -> String {
    greet(plugin, &format!("probe:{attack}"))
        .unwrap_or_else(|status| format!("call failed: {status}"))
}

/// Asserts that the plugin is denied `attack`; what it answered.
#[track_caller]
fn denied(plugin: &Plugin, attack: &str) -> String {
    let outcome = probe(plugin, attack);
    assert!(
        outcome.starts_with("denied: "),
        "{}: probe:{attack} was not denied: {outcome}",
        plugin.name()
    );
    outcome
}

/// Asserts that the plugin may do `attack`; the detail it answered.
#[track_caller]
fn allowed(plugin: &Plugin, attack: &str) -> String {
    let outcome = probe(plugin, attack);
    match outcome.strip_prefix("ok: ") {
        Some(detail) => detail.to_owned(),
        None => panic!("{}: probe:{attack} failed: {outcome}", plugin.name()),
    }
}

/// The plugin's sandbox report, asserted to be there and enforced.
#[track_caller]
fn enforced(plugin: &Plugin) -> SandboxReport {
    let report = plugin
        .sandbox()
        .unwrap_or_else(|| panic!("{} runs without the sandbox", plugin.name()));
    assert!(report.enforced, "{}: {report:?}", plugin.name());
    report
}

/// Whether the report says `layer` holds.
#[track_caller]
fn holds(report: &SandboxReport, layer: &str) -> bool {
    report
        .layers
        .iter()
        .find(|l| l.name == layer)
        .unwrap_or_else(|| panic!("the report names no layer {layer:?}: {report:?}"))
        .holds
}

/// Shuts the plugin down, and asserts that none of its processes is left.
fn done(plugin: Plugin, f: &Fixture) {
    plugin.shutdown().unwrap();
    f.assert_no_leftovers();
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A folder of a test's own, with `mode`: 0o755 for the plugin's uid to
/// read it, 0o777 to write it.
fn open_dir(mode: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), mode);
    dir
}

/// A user's home as it often is: a key in `.ssh`, which every user could
/// read by its modes (0755 folders, a 0644 file). The folder, and the key.
fn fake_home() -> (tempfile::TempDir, PathBuf) {
    let home = open_dir(0o755);
    let ssh = home.path().join(".ssh");
    std::fs::create_dir(&ssh).unwrap();
    chmod(&ssh, 0o755);
    let key = ssh.join("id_ed25519");
    std::fs::write(&key, "-----BEGIN OPENSSH PRIVATE KEY-----\n").unwrap();
    chmod(&key, 0o644);
    (home, key)
}

/// A TCP listener on loopback that never blocks on `accept`.
fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap().to_string();
    (listener, address)
}

/// A connection the plugin made, once it is there to accept.
fn accept_within_a_second(
    listener: &TcpListener,
) -> std::io::Result<(std::net::TcpStream, std::net::SocketAddr)> {
    let until = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        match listener.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock && std::time::Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(10));
            }
            accepted => return accepted,
        }
    }
}

/// Asserts that nobody connected to `listener`, after `outcome`.
#[track_caller]
fn assert_nothing_accepted(listener: &TcpListener, outcome: &str) {
    match listener.accept() {
        Err(error) if error.kind() == ErrorKind::WouldBlock => {}
        other => panic!("{outcome}; yet the listener got {other:?}"),
    }
}

/// Asserts that the plugin sends no UDP to a socket of the test's.
#[track_caller]
fn assert_udp_sends_nothing(plugin: &Plugin) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    let outcome = denied(plugin, &format!("udp:127.0.0.1:{port}"));
    let arrived = socket.recv_from(&mut [0; 16]);
    assert!(
        matches!(&arrived, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "{outcome}; yet {arrived:?} arrived"
    );
}

/// A process that is none of the plugin's business, killed when dropped.
struct Bystander(Child);

impl Bystander {
    fn start() -> Bystander {
        Bystander(Command::new("sleep").arg("30").spawn().unwrap())
    }

    fn id(&self) -> u32 {
        self.0.id()
    }

    fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_plugin_reads_none_of_the_users_files_and_writes_nowhere_ungranted() {
    let (home, key) = fake_home();
    let elsewhere = open_dir(0o777);
    for mechanism in MECHANISMS {
        for trust in ["untrusted", "open"] {
            let f = sandboxed(mechanism, &format!("snoop-{trust}"), trust, "");
            let plugin = f.load();
            denied(&plugin, &format!("read:{}", key.display()));
            denied(&plugin, &format!("list:{}", home.path().display()));
            let planted = elsewhere
                .path()
                .join(format!("planted-{mechanism}-{trust}"));
            let outcome = denied(&plugin, &format!("write:{}", planted.display()));
            assert!(!planted.exists(), "{outcome}");
            done(plugin, &f);
        }
    }
}

#[test]
fn granted_folders_are_read_and_written_as_granted() {
    for mechanism in MECHANISMS {
        let f = sandboxed(
            mechanism,
            "granted",
            "untrusted",
            "dirs = [{ host = \"shared\" }, { host = \"scratch\", write = true }]",
        );
        let (shared, scratch) = (folder(&f).join("shared"), folder(&f).join("scratch"));
        std::fs::create_dir(&shared).unwrap();
        chmod(&shared, 0o755);
        let notes = shared.join("notes.txt");
        std::fs::write(&notes, "notes the host shares").unwrap();
        chmod(&notes, 0o644);
        std::fs::create_dir(&scratch).unwrap();
        chmod(&scratch, 0o777);
        let plugin = f.load();

        let read = allowed(&plugin, &format!("read:{}", notes.display()));
        assert_eq!(read, "notes the host shares");
        assert_eq!(
            allowed(&plugin, &format!("list:{}", shared.display())),
            "1 entries"
        );
        let outcome = denied(&plugin, &format!("write:{}", notes.display()));
        let kept = std::fs::read_to_string(&notes).unwrap();
        assert_eq!(kept, "notes the host shares", "{outcome}");
        let added = shared.join("added.txt");
        let outcome = denied(&plugin, &format!("write:{}", added.display()));
        assert!(!added.exists(), "{outcome}");

        let out = scratch.join("out.txt");
        allowed(&plugin, &format!("write:{}", out.display()));
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "written by a plugin"
        );
        done(plugin, &f);
    }
}

#[test]
fn tcp_reaches_only_the_ports_granted_and_udp_nothing() {
    for mechanism in MECHANISMS {
        let (granted, granted_address) = listener();
        let (other, other_address) = listener();

        let f = sandboxed(mechanism, "offline", "untrusted", "");
        let plugin = f.load();
        let outcome = denied(&plugin, &format!("connect:{granted_address}"));
        assert_nothing_accepted(&granted, &outcome);
        denied(&plugin, "listen:127.0.0.1:0");
        assert_udp_sends_nothing(&plugin);
        done(plugin, &f);

        let grant = format!("network = {{ connect = [\"{granted_address}\"] }}");
        let f = sandboxed(mechanism, "online", "untrusted", &grant);
        let plugin = f.load();
        let outcome = allowed(&plugin, &format!("connect:{granted_address}"));
        let accepted = accept_within_a_second(&granted);
        assert!(accepted.is_ok(), "{outcome}; yet {accepted:?}");
        let outcome = denied(&plugin, &format!("connect:{other_address}"));
        assert_nothing_accepted(&other, &outcome);
        denied(&plugin, "listen:127.0.0.1:0");
        assert_udp_sends_nothing(&plugin);
        done(plugin, &f);
    }
}

#[test]
fn other_processes_cannot_be_signalled_traced_or_read() {
    let host = std::process::id();
    for mechanism in MECHANISMS {
        let mut bystander = Bystander::start();
        let f = sandboxed(mechanism, "meddler", "untrusted", "");
        let plugin = f.load();
        denied(&plugin, &format!("kill:{host}:0"));
        let outcome = denied(&plugin, &format!("kill:{}:9", bystander.id()));
        // A signal sent is delivered at once; give a death time to show.
        std::thread::sleep(Duration::from_millis(200));
        assert!(bystander.alive(), "{outcome}; yet it died");
        denied(&plugin, &format!("ptrace:{host}"));
        denied(&plugin, &format!("read:/proc/{host}/environ"));
        done(plugin, &f);
    }
}

#[test]
fn only_the_programs_granted_run() {
    for mechanism in MECHANISMS {
        let f = sandboxed(
            mechanism,
            "launcher",
            "untrusted",
            "programs = [\"/bin/true\"]",
        );
        let plugin = f.load();
        denied(&plugin, "exec:/bin/sh");
        let ran = allowed(&plugin, "exec:/bin/true");
        assert!(ran.starts_with("exit status: 0"), "{ran}");
        done(plugin, &f);
    }
}

#[test]
fn a_fork_bomb_stops_at_the_process_limit() {
    for mechanism in MECHANISMS {
        let f = sandboxed(mechanism, "bomb", "untrusted", "processes = 16");
        let plugin = f.load();
        let outcome = probe(&plugin, "forkbomb:200");
        let started: u32 = outcome
            .strip_prefix("denied: started ")
            .and_then(|rest| rest.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("the fork bomb was not stopped: {outcome}"));
        // Stopped by the limit (EAGAIN), not by anything else.
        assert!(
            started < 16 && outcome.ends_with("(os error 11)"),
            "{outcome}"
        );
        if mechanism == "rpc" {
            // The process lives on, and its threads hold the limit until
            // they end (after 3 s).
            std::thread::sleep(Duration::from_secs(4));
        }
        let reply = greet(&plugin, "world");
        assert_eq!(reply.as_deref(), Ok("Hello, world!"), "after {outcome}");
        // And the host is none the worse.
        assert!(std::thread::spawn(|| true).join().unwrap());
        assert!(Command::new("true").status().unwrap().success());
        done(plugin, &f);
    }
}

#[test]
fn the_plugin_holds_no_privilege() {
    let root = rustix::process::geteuid().is_root();
    for mechanism in MECHANISMS {
        for trust in ["untrusted", "open"] {
            let f = sandboxed(mechanism, &format!("whoami-{trust}"), trust, "");
            let plugin = f.load();
            let identity = allowed(&plugin, "identity");
            let field = |name: &str| {
                identity
                    .split(' ')
                    .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                    .unwrap_or_else(|| panic!("no {name} in {identity}"))
                    .to_owned()
            };
            assert_eq!(field("nnp"), "1", "no_new_privs: {identity}");
            assert_eq!(field("capeff"), "0", "effective capabilities: {identity}");
            assert_eq!(field("capbnd"), "0", "bounding set: {identity}");
            if root {
                assert_ne!(field("uid"), "0", "a host running as root: {identity}");
                assert_ne!(field("euid"), "0", "a host running as root: {identity}");
            }
            done(plugin, &f);
        }
    }
}

#[test]
fn a_setuid_program_runs_without_its_owners_rights() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: only root can make the setuid-root program this test runs");
        return;
    }
    // Not in /tmp, which may be mounted nosuid: in the build's own folder.
    let tools = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    chmod(tools.path(), 0o755);
    let id = tools.path().join("id");
    std::fs::copy("/usr/bin/id", &id).unwrap();
    // The owner first: a change of owner clears the setuid bit.
    std::os::unix::fs::chown(&id, Some(0), Some(0)).unwrap();
    chmod(&id, 0o4755);
    let grant = format!("programs = [{:?}]", id.display().to_string());
    // Without the sandbox, the program does run as root: the bit works here.
    let f = sandboxed("exec", "escalate-bare", "tight", "");
    let plugin = f.load();
    let unconfined = allowed(&plugin, &format!("setuid:{}", id.display()));
    assert_eq!(unconfined, "0", "the setuid bit has no effect here");
    done(plugin, &f);
    // The program's folder is approved: it is not the manifest's.
    let policy = outlet_host::Policy::default().approve_root(tools.path());
    let host = outlet_host::Host::builder().policy(policy).build();
    for mechanism in MECHANISMS {
        let f = sandboxed(mechanism, "escalate", "untrusted", &grant);
        let plugin = host.load(&f.manifest).unwrap();
        let euid = allowed(&plugin, &format!("setuid:{}", id.display()));
        assert!(euid.parse::<u32>().is_ok(), "not a uid: {euid}");
        assert_ne!(euid, "0", "the setuid program ran as root");
        done(plugin, &f);
    }
}

#[test]
fn the_sandbox_reports_each_layer_it_holds() {
    let mut layers = vec![
        "landlock",
        "seccomp",
        "no_new_privs",
        "capabilities",
        "processes",
    ];
    if rustix::process::geteuid().is_root() {
        layers.extend(["user", "namespaces"]);
    }
    for mechanism in MECHANISMS {
        let f = sandboxed(mechanism, "reported", "untrusted", "");
        let plugin = f.load();
        // After a call: an exec plugin's report is then its last call's,
        // not what a call would hold.
        assert_eq!(greet(&plugin, "world").as_deref(), Ok("Hello, world!"));
        let report = enforced(&plugin);
        for layer in &layers {
            assert!(holds(&report, layer), "{layer}: {report:?}");
        }
        done(plugin, &f);

        // In-process trust runs in the sandbox only when it asks to.
        let program = test_plugin_of(mechanism);
        let head = "trust = \"tight\"\nsandbox = true";
        let f = confined(mechanism, &format!("asked-{mechanism}"), &program, head, "");
        let plugin = f.load();
        enforced(&plugin);
        done(plugin, &f);
    }
}

#[test]
fn without_the_sandbox_the_same_probes_succeed() {
    // So the denials above are the sandbox's doing, not probes that could
    // never work: in-process trust without a `sandbox` line runs bare.
    let (home, key) = fake_home();
    let host = std::process::id();
    for mechanism in MECHANISMS {
        let (listener, address) = listener();
        let f = sandboxed(mechanism, "bare", "tight", "");
        let plugin = f.load();
        let report = plugin.sandbox();
        assert!(report.as_ref().is_none_or(|r| !r.enforced), "{report:?}");
        let read = allowed(&plugin, &format!("read:{}", key.display()));
        assert!(read.starts_with("-----BEGIN OPENSSH"), "{read}");
        allowed(&plugin, &format!("list:{}", home.path().display()));
        let outcome = allowed(&plugin, &format!("connect:{address}"));
        let accepted = accept_within_a_second(&listener);
        assert!(accepted.is_ok(), "{outcome}; yet {accepted:?}");
        allowed(&plugin, "exec:/bin/true");
        allowed(&plugin, &format!("kill:{host}:0"));
        allowed(&plugin, &format!("read:/proc/{host}/environ"));
        let bystander = Bystander::start();
        allowed(&plugin, &format!("ptrace:{}", bystander.id()));
        done(plugin, &f);
    }
}

/// go-plugin's KV example as a Go program, if the Go interop programs could
/// be built here (see `rpc.rs`).
fn go_kv_plugin() -> Option<PathBuf> {
    if let Some(why) = support::go_interop_skipped() {
        eprintln!("skipped the Go plugin: {why}");
        return None;
    }
    let path = root().join("target/go/kv-go-plugin");
    assert!(
        path.exists(),
        "{} is missing: build the Go interop programs with tests/go/build.sh",
        path.display()
    );
    Some(path)
}

/// The KV example's manifest, in `dir`, for `program` at trust `open`.
fn open_kv_manifest(dir: &Path, program: &Path) -> PathBuf {
    let sha = outlet_manifest::sha256_hex(&std::fs::read(program).unwrap());
    let manifest = dir.join("kv.toml");
    let text = std::fs::read_to_string(root().join("examples/kv/kv.toml"))
        .unwrap()
        .replace(
            "trust = \"in-process\"",
            &format!("trust = \"open\"\nsha256 = \"{sha}\""),
        )
        .replace(
            "path = \"bin/kv-plugin\"",
            &format!("path = {:?}", program.display().to_string()),
        )
        .replace(
            "\"kv.proto\"",
            &format!("{:?}", root().join("examples/kv/kv.proto")),
        );
    std::fs::write(&manifest, text).unwrap();
    manifest
}

#[test]
fn the_example_plugins_serve_in_the_default_sandbox_of_open_trust() {
    let greeters = [
        ("exec", greeter_exec()),
        ("rpc", test_plugin().with_file_name("greeter-rpc")),
    ];
    for (mechanism, program) in greeters {
        let name = format!("greeter-{mechanism}");
        let f = confined(mechanism, &name, &program, "trust = \"open\"", "");
        let plugin = f.load();
        enforced(&plugin);
        assert_eq!(greet(&plugin, "world").unwrap(), "Hello, world!");
        done(plugin, &f);
    }

    let dir = tempfile::tempdir().unwrap();
    let programs = [
        Some(test_plugin().with_file_name("kv-plugin")),
        go_kv_plugin(),
    ];
    for program in programs.into_iter().flatten() {
        let manifest = open_kv_manifest(dir.path(), &program);
        let plugin = support::host()
            .load(&manifest)
            .unwrap_or_else(|e| panic!("loading {}: {e}", program.display()));
        enforced(&plugin);
        let kv = plugin.client::<KvClient<_>>().unwrap();
        kv.put(PutRequest {
            key: "sandboxed".into(),
            value: b"and serving".to_vec(),
        })
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
        let got = kv.get(GetRequest {
            key: "sandboxed".into(),
        });
        assert_eq!(got.unwrap().value, b"and serving", "{}", program.display());
        plugin.shutdown().unwrap();
    }
}

/// A host that is not root confines its plugins as well: the plugin keeps
/// the host's uid, in a user namespace of its own (where the kernel lets
/// users make one). The host here is `outlet-test-host`, run as `nobody`
/// when the tests run as root.
#[test]
fn a_host_that_is_not_root_confines_its_plugins_too() {
    let (home, key) = fake_home();
    let f = sandboxed("exec", "unprivileged-host", "untrusted", "processes = 8");
    let mut host = Command::new("setpriv");
    if rustix::process::geteuid().is_root() {
        host.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    }
    let out = host
        .arg(test_plugin().with_file_name("outlet-test-host"))
        .arg(&f.manifest)
        .env(
            "OUTLET_TEST_PROBES",
            format!("identity\nread:{}\nforkbomb:50", key.display()),
        )
        .env("HOME", home.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |start: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(start))
            .unwrap_or_else(|| panic!("no line {start:?} in {stdout}"))
    };
    assert!(line("sandbox ").starts_with("enforced"), "{stdout}");
    let identity = line("probe identity: ");
    assert!(
        identity.contains("nnp=1")
            && identity.contains("capeff=0")
            && identity.contains("capbnd=0"),
        "{stdout}"
    );
    assert!(line("probe read:").contains("denied"), "{stdout}");
    assert!(
        line("probe forkbomb:50: ").starts_with("denied: started"),
        "{stdout}"
    );
    let user = line("layer user ");
    if user.contains("user namespace") {
        assert!(line("layer namespaces ").starts_with("holds"), "{stdout}");
        assert!(line("layer processes ").starts_with("holds"), "{stdout}");
    }
}

/// Below `in-process`, an artifact others could change is not run: the
/// file, or a folder on its path, writable by group or others (a folder
/// with the sticky bit, `/tmp`, passes).
#[test]
fn an_artifact_others_can_write_is_refused() {
    let dir = open_dir(0o755);
    let program = dir.path().join("plugin");
    std::fs::copy(test_plugin(), &program).unwrap();
    chmod(&program, 0o755);
    for trust in ["untrusted", "open"] {
        let f = confined(
            "exec",
            "writable",
            &program,
            &format!("trust = \"{trust}\""),
            "",
        );
        support::load(&f.manifest).unwrap().shutdown().unwrap();

        chmod(&program, 0o775);
        let error = f.load_err();
        assert!(
            error.contains(&format!("{} (mode 0775", program.display()))
                && error.contains("chmod go-w"),
            "{error}"
        );
        chmod(&program, 0o755);
        chmod(dir.path(), 0o777);
        let error = f.load_err();
        assert!(
            error.contains(&format!("{} (mode 0777", dir.path().display())),
            "{error}"
        );
        chmod(dir.path(), 0o755);
    }
    // Trusted code is the host's own business.
    chmod(&program, 0o777);
    let f = confined("exec", "writable", &program, "trust = \"tight\"", "");
    support::load(&f.manifest).unwrap().shutdown().unwrap();
}

/// A system call the filter kills for ends the process with SIGSYS, and
/// the call fails saying which calls those are; the host stays up, and an
/// rpc plugin is started again.
#[test]
fn a_plugin_killed_by_the_system_call_filter_is_told_why() {
    for mechanism in MECHANISMS {
        let f = sandboxed(mechanism, "sigsys", "untrusted", "");
        let plugin = f.load();
        let failed = greet(&plugin, "probe:reboot").unwrap_err();
        let message = failed.message();
        assert!(
            message.contains("SIGSYS") && message.contains("reboot"),
            "{mechanism}: {failed}"
        );
        let answer = (0..50).find_map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            greet(&plugin, "world").ok()
        });
        assert_eq!(answer.as_deref(), Some("Hello, world!"), "{mechanism}");
        done(plugin, &f);
    }
}

/// An exec plugin opens no Unix socket (it talks through its pipes); an rpc
/// plugin of a root host, which must open its own, reaches no socket of the
/// host's user (its uid is its own).
#[test]
fn unix_sockets_of_the_host_are_out_of_reach() {
    let open = open_dir(0o755);
    let path = open.path().join("everyone.sock");
    let _everyone = std::os::unix::net::UnixListener::bind(&path).unwrap();
    chmod(&path, 0o777);
    let f = sandboxed("exec", "unix", "untrusted", "");
    let plugin = f.load();
    let outcome = denied(&plugin, &format!("unix:{}", path.display()));
    assert!(outcome.contains("denied (os error 13)"), "{outcome}");
    done(plugin, &f);
    if rustix::process::geteuid().is_root() {
        let private = open_dir(0o700);
        let path = private.path().join("root.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let f = sandboxed("rpc", "unix", "untrusted", "");
        let plugin = f.load();
        denied(&plugin, &format!("unix:{}", path.display()));
        done(plugin, &f);
    }
}

/// A program is granted only from the manifest's folder, a root the host
/// approves or the system's program folders: a key is no program.
#[test]
fn a_program_grant_reaches_no_file_outside_the_manifests_folder() {
    let (_home, key) = fake_home();
    for program in [key.display().to_string(), "../outside".into()] {
        let f = sandboxed(
            "exec",
            "reach",
            "untrusted",
            &format!("programs = [{program:?}]"),
        );
        let error = f.load_err();
        assert!(
            error.contains("permissions.programs")
                && error.contains("outside the manifest's folder")
                || error.contains("climbs out"),
            "{error}"
        );
    }
}
