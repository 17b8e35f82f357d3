//! What the tests share: manifests for the test plugin, log capture, and a
//! look at the process table.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use greeter::{GreetRequest, GreeterClient};
use outlet_host::{Host, LoadError, Plugin};
use outlet_protocol::Status;

/// The misbehaving test plugin.
pub fn test_plugin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_outlet-test-plugin"))
}

/// The example greeter's exec plugin, built beside the test plugin.
pub fn greeter_exec() -> PathBuf {
    let path = test_plugin().with_file_name("greeter-exec");
    assert!(
        path.exists(),
        "{} is missing: build the workspace's binaries first (`cargo build --workspace --bins`, \
         as the README's test command does)",
        path.display()
    );
    path
}

/// Why the Go interop tests cannot run here, if they cannot: the README's
/// test command sets `OUTLET_GO_INTEROP=skip` (and says why) on a system
/// where it cannot install Go and go-plugin, one not based on Debian.
pub fn go_interop_skipped() -> Option<&'static str> {
    (std::env::var_os("OUTLET_GO_INTEROP").is_some_and(|v| v == "skip"))
        .then_some("Go and go-plugin could not be installed on this system (not Debian-based)")
}

/// A file this process holds open without close-on-exec, as a host that
/// opened it through C or inherited it would: a descriptor a plugin must
/// not get. Keep the returned values alive for the test's length.
pub fn host_secret() -> (tempfile::TempDir, std::fs::File, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("host-secret");
    std::fs::write(&path, "the host's secret").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    rustix::io::fcntl_setfd(&file, rustix::io::FdFlags::empty()).unwrap();
    (dir, file, path)
}

/// The outlet-test-rpc plugin.
pub fn rpc_plugin() -> PathBuf {
    test_plugin().with_file_name("outlet-test-rpc")
}

/// A host for one test, with the tests' own module cache (not the user's).
pub fn host() -> Host {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("module-cache");
    Host::builder().module_cache(Some(cache)).build()
}

/// Loads a manifest into a host of its own.
pub fn load(file: &Path) -> Result<Plugin, LoadError> {
    host().load(file)
}

/// A folder holding one manifest, for one test.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub manifest: PathBuf,
    /// A value in the plugin's environment that marks its processes.
    pub marker: String,
}

/// A manifest for the test plugin in `mode`; `extra` is appended to it
/// (tables such as `[limits]` go there).
pub fn fixture(name: &str, mode: &str, extra: &str) -> Fixture {
    fixture_for(name, &test_plugin(), mode, extra)
}

pub fn fixture_for(name: &str, program: &Path, mode: &str, extra: &str) -> Fixture {
    fixture_of("exec", name, program, mode, extra)
}

/// A manifest for the rpc test plugin in `mode`, as [`fixture`].
pub fn rpc_fixture(name: &str, mode: &str, extra: &str) -> Fixture {
    fixture_of("rpc", name, &rpc_plugin(), mode, extra)
}

/// As [`fixture_for`], for a plugin of `mechanism`.
pub fn fixture_of(mechanism: &str, name: &str, program: &Path, mode: &str, extra: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("{name}-{}", std::process::id());
    let manifest = dir.path().join(format!("{name}.toml"));
    let extra = if extra.contains("[permissions]") {
        extra.replace(
            "[permissions]",
            &format!("[permissions]\nenv = {{ OUTLET_TEST_MODE = \"{mode}\", OUTLET_TEST_MARKER = \"{marker}\" }}"),
        )
    } else {
        format!(
            "{extra}\n[permissions]\nenv = {{ OUTLET_TEST_MODE = \"{mode}\", OUTLET_TEST_MARKER = \"{marker}\" }}\n"
        )
    };
    let text = format!(
        "name = \"{name}\"\nmechanism = \"{mechanism}\"\npath = \"{}\"\n\
         interface = \"outlet.examples.greeter.v1.Greeter\"\ntrust = \"in-process\"\n{extra}",
        program.display()
    );
    std::fs::write(&manifest, text).unwrap();
    Fixture {
        _dir: dir,
        manifest,
        marker,
    }
}

impl Fixture {
    pub fn load(&self) -> Plugin {
        host()
            .load(&self.manifest)
            .unwrap_or_else(|e| panic!("loading {}: {e}", self.manifest.display()))
    }

    /// The error loading fails with, as text.
    pub fn load_err(&self) -> String {
        match host().load(&self.manifest) {
            Ok(plugin) => panic!("{} loaded: {plugin:?}", self.manifest.display()),
            Err(error) => error.to_string(),
        }
    }

    /// Asserts that no process of this fixture is left: none alive, and no
    /// zombie of this test process. A killed process takes a moment to die,
    /// so this looks again for up to two seconds.
    pub fn assert_no_leftovers(&self) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let left = self.leftovers();
            if left.is_empty() {
                return;
            }
            assert!(
                std::time::Instant::now() < until,
                "processes left behind: {left:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn leftovers(&self) -> Vec<String> {
        let me = std::process::id().to_string();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            // A zombie's environment reads empty: any zombie child of this
            // process counts, marked or not.
            if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) {
                let fields: Vec<&str> = stat
                    .rsplit(')')
                    .next()
                    .unwrap_or_default()
                    .split_whitespace()
                    .collect();
                if fields.len() > 1 && fields[0] == "Z" && fields[1] == me {
                    found.push(format!("pid {pid}: a zombie of this test process"));
                    continue;
                }
            }
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            let wanted = format!("OUTLET_TEST_MARKER={}", self.marker);
            if !environ
                .split(|b| *b == 0)
                .any(|var| var == wanted.as_bytes())
            {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid …
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap()
                .split_whitespace()
                .collect();
            let (state, ppid) = (fields[0], fields[1]);
            if state != "Z" || ppid == me {
                found.push(format!("pid {pid} state {state} ppid {ppid}"));
            }
        }
        found
    }
}

/// The `[permissions]` that let a test plugin call the Greeter a test's
/// host offers.
pub const GREETER_GRANT: &str =
    "[permissions]\ncall = [\"outlet.examples.greeter.v1.Greeter/*\"]\n";

/// One Greet call.
/// A Greeter a host offers its plugins: it shouts the name back.
pub struct Shouting;

impl greeter::Greeter for Shouting {
    fn greet(&self, request: GreetRequest) -> Result<greeter::GreetResponse, Status> {
        Ok(greeter::GreetResponse {
            message: format!("HELLO, {}!", request.name.to_uppercase()),
        })
    }
}

pub fn greet(plugin: &Plugin, name: &str) -> Result<String, Status> {
    let client = plugin.client::<GreeterClient<_>>().unwrap();
    Ok(client.greet(GreetRequest { name: name.into() })?.message)
}

/// Runs `f` with `tracing` events of this thread captured as text.
pub fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    capture(tracing_subscriber::fmt::format::FmtSpan::NONE, f)
}

/// As [`capture_logs`], with a line for each span as it closes.
pub fn capture_spans<T>(f: impl FnOnce() -> T) -> (T, String) {
    capture(tracing_subscriber::fmt::format::FmtSpan::CLOSE, f)
}

fn capture<T>(
    spans: tracing_subscriber::fmt::format::FmtSpan,
    f: impl FnOnce() -> T,
) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(spans)
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    (result, text)
}

/// The peak resident memory of this test process, in bytes.
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A shared library built next to the test plugin by cargo.
pub fn library(name: &str) -> PathBuf {
    test_plugin().with_file_name(name)
}

/// A manifest for a plugin of `mechanism` at `library`; `extra` is appended.
pub fn manifest(dir: &Path, mechanism: &str, name: &str, library: &Path, extra: &str) -> PathBuf {
    let file = dir.join(format!("{name}.toml"));
    let text = format!(
        "name = \"{name}\"\nmechanism = \"{mechanism}\"\npath = \"{}\"\n\
         interface = \"outlet.examples.greeter.v1.Greeter\"\ntrust = \"in-process\"\n{extra}",
        library.display()
    );
    std::fs::write(&file, text).unwrap();
    file
}

/// Builds a C source into a shared library with the system compiler.
pub fn compile_c(source: &Path, defines: &[&str], out: &Path) {
    let mut cc = std::process::Command::new("cc");
    cc.args(["-shared", "-fPIC", "-O2", "-I"])
        .arg(root().join("include"))
        .arg(source)
        .arg("-o")
        .arg(out);
    for define in defines {
        cc.arg(format!("-D{define}"));
    }
    let status = cc.status().expect("run the system C compiler, `cc`");
    assert!(status.success(), "cc failed on {}", source.display());
}

/// A guest in WebAssembly text: Hello answers like the WAT greeter's, but
/// naming `service` (34 bytes long, as the greeter's name is), and `greet`
/// is the body of what any other call does, with `$out` the answer slot.
pub fn wat_guest_of(dir: &Path, name: &str, service: &str, imports: &str, greet: &str) -> PathBuf {
    assert_eq!(
        service.len(),
        34,
        "{service}: Hello's bytes hold a 34-byte name"
    );
    let text = format!(
        r#"(module
  {imports}
  (memory (export "memory") 1)
  (data (i32.const 0) "\0a\04test\1a\01\01\22\01\01\32\22{service}")
  (func (export "outlet_abi_version") (result i32) (i32.const 1))
  (func (export "outlet_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "outlet_call")
    (param $method i32) (param $method_len i32) (param $request i32) (param $request_len i32)
    (param $out i32) (result i32)
    (if (i32.eq (local.get $method_len) (i32.const 28))
      (then
        (i32.store (local.get $out) (i32.const 0))
        (i32.store offset=4 (local.get $out) (i32.const 48))
        (return (i32.const 0))))
    {greet})
)"#
    );
    let file = dir.join(format!("{name}.wat"));
    std::fs::write(&file, text).unwrap();
    file
}

/// The Rust greeter guest, built for wasm32 by the README's test command.
pub fn rust_guest() -> PathBuf {
    let path = root().join("target/wasm32-unknown-unknown/debug/greeter_wasm.wasm");
    assert!(
        path.exists(),
        "{} is missing: run the README's test command, which builds it",
        path.display()
    );
    path
}

/// The tests' native and cabi library (`tests/native`): a greeter that
/// misbehaves on request, and relays "host:<name>" to the Greeter its host
/// offers.
pub fn test_library() -> PathBuf {
    test_plugin().with_file_name("liboutlet_test_native.so")
}

/// Cancels `cancel` after `after`, on a thread of its own: join it once the
/// call it cancels has returned.
pub fn cancel_after(
    cancel: &outlet_protocol::context::Cancel,
    after: std::time::Duration,
) -> std::thread::JoinHandle<()> {
    let cancel = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(after);
        cancel.cancel();
    })
}

/// A program built by `tests/go/build.sh`, which the README's test command
/// runs; `None`, said on stderr, where that command found no way to install
/// Go and go-plugin (a system not based on Debian). On Debian it always
/// builds them, and a missing program fails the test.
pub fn go_program(name: &str) -> Option<PathBuf> {
    if let Some(why) = go_interop_skipped() {
        eprintln!("skipped: this test runs go-plugin's Go programs, and {why}");
        return None;
    }
    let path = root().join("target/go").join(name);
    assert!(
        path.exists(),
        "{} is missing: build the Go interop programs with tests/go/build.sh (the README's test \
         command does)",
        path.display()
    );
    Some(path)
}
