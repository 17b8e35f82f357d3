//! `outlet new`: each kind of project is written, built with its own build
//! command, pinned, tested and called, as its README says; and bad requests
//! are refused, leaving nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `program` in `dir`, with this build's `outlet` on PATH and as
/// `$OUTLET`, and the tests' own cache for compiled wasm modules.
fn run(dir: &Path, program: &str, args: &[&str]) -> Output {
    let outlet = Path::new(env!("CARGO_BIN_EXE_outlet"));
    let path = format!(
        "{}:{}",
        outlet.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .env("PATH", path)
        .env("OUTLET", outlet)
        .env("XDG_CACHE_HOME", scratch().join("cache"));
    // A native plugin loads only into a host of its very build: a debug
    // `outlet` takes plugins built with debug assertions.
    if cfg!(debug_assertions) {
        command.env("CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS", "true");
    }
    command.output().unwrap()
}

/// Where the projects go, and their shared cargo target folder (so that
/// Outlet's crates are built once for all of them).
fn scratch() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("outlet-new")
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Why Go projects cannot be built here, if they cannot (as the interop
/// tests: only where Debian's go-plugin packages cannot be installed).
fn go_skipped() -> bool {
    std::env::var_os("OUTLET_GO_INTEROP").is_some_and(|v| v == "skip")
}

/// `outlet new` into a fresh folder `name`: the project's folder.
fn new(name: &str, args: &[&str]) -> PathBuf {
    let parent = scratch().join("projects");
    std::fs::create_dir_all(&parent).unwrap();
    let dir = parent.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let mut all = vec!["new", dir.to_str().unwrap()];
    all.extend(args);
    ok(
        &run(&parent, env!("CARGO_BIN_EXE_outlet"), &all),
        "outlet new",
    );
    // Rust projects share one target folder.
    if dir.join("Cargo.toml").exists() {
        let target = scratch().join("target");
        std::fs::create_dir_all(&target).unwrap();
        std::os::unix::fs::symlink(&target, dir.join("target")).unwrap();
    }
    dir
}

/// The README's commands, in order: build, pin (for a sandboxed plugin),
/// test, and the `outlet call` line; what the call printed, or its error.
fn readme_commands(dir: &Path) -> Result<String, String> {
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README has a ```sh block");
    let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
    let (call, steps) = lines.split_last().unwrap();
    for step in steps {
        let step = step.split(" #").next().unwrap();
        let out = run(dir, "sh", &["-c", step]);
        ok(&out, step);
        // As written, the project builds and tests without a warning.
        let said = text(&out.stderr);
        assert!(!said.contains("warning"), "{step} warned:\n{said}");
    }
    let out = run(dir, "sh", &["-c", call]);
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

fn greeter(name: &str, mechanism: &str, lang: &str) {
    let dir = new(name, &["--mechanism", mechanism, "--lang", lang]);
    let answer = readme_commands(&dir).unwrap();
    let reply: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        reply,
        serde_json::json!({"message": "Hello, world!"}),
        "{name}"
    );
    let manifest = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    assert!(
        manifest.contains(&format!("name = \"{name}\"")),
        "{manifest}"
    );
}

#[test]
fn a_rust_exec_greeter_builds_tests_and_answers() {
    greeter("hello-exec", "exec", "rust");
    // Only what Outlet's own workspace already builds with.
    let dir = scratch().join("projects/hello-exec");
    let theirs = std::fs::read_to_string(dir.join("Cargo.lock")).unwrap();
    let ours =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock"))
            .unwrap();
    let packages = |lock: &str| -> Vec<String> {
        let lock: toml::Table = toml::from_str(lock).unwrap();
        lock["package"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{} {}",
                    p["name"].as_str().unwrap(),
                    p["version"].as_str().unwrap()
                )
            })
            .collect()
    };
    let ours = packages(&ours);
    for package in packages(&theirs) {
        assert!(
            ours.contains(&package) || package.starts_with("hello-exec "),
            "{package} is not in Outlet's Cargo.lock"
        );
    }
}

#[test]
fn a_rust_rpc_greeter_answers() {
    greeter("hello-rpc", "rpc", "rust");
}

#[test]
fn a_rust_native_greeter_answers() {
    greeter("hello-native", "native", "rust");
}

#[test]
fn a_rust_cabi_greeter_answers() {
    greeter("hello-cabi", "cabi", "rust");
}

#[test]
fn a_rust_wasm_greeter_answers() {
    greeter("hello-wasm", "wasm", "rust");
}

#[test]
fn a_c_cabi_greeter_answers() {
    greeter("hello-c", "cabi", "c");
}

#[test]
fn a_wat_greeter_answers() {
    greeter("hello-wat", "wasm", "wat");
}

#[test]
fn a_go_rpc_greeter_answers() {
    if go_skipped() {
        eprintln!("skipped: Go and go-plugin could not be installed on this system");
        return;
    }
    greeter("hello-go", "rpc", "go");
}

/// A service of four shapes of method, each stubbed.
const SHAPES: &str = r#"
syntax = "proto3";
package shapes.v1;

message Ask { string what = 1; }
message Answer { string text = 1; uint32 count = 2; }

service Shapes {
  rpc One(Ask) returns (Answer);
  rpc Many(Ask) returns (stream Answer);
  rpc Gather(stream Ask) returns (Answer);
  rpc Talk(stream Ask) returns (stream Answer);
}
"#;

fn stubs(name: &str, mechanism: &str, lang: &str) {
    let protos = scratch().join("protos");
    std::fs::create_dir_all(&protos).unwrap();
    let proto = protos.join("shapes.proto");
    std::fs::write(&proto, SHAPES).unwrap();
    let dir = new(
        name,
        &[
            "--mechanism",
            mechanism,
            "--lang",
            lang,
            "--proto",
            proto.to_str().unwrap(),
            "--service",
            "Shapes",
        ],
    );
    let source: String = std::fs::read_dir(&dir)
        .unwrap()
        .chain(std::fs::read_dir(dir.join("src")).into_iter().flatten())
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .collect();
    assert!(source.contains("TODO"), "{name}: no TODO");
    let refused = readme_commands(&dir).unwrap_err();
    assert!(
        refused.to_lowercase().contains("unimplemented"),
        "{name}: {refused}"
    );
    assert!(
        refused.contains(&format!("{name}: One is not implemented yet")),
        "{name}: {refused}"
    );
}

/// Well-known types, messages named as Rust's and Outlet's own types, a
/// method named by a keyword: stubs of a library plugin that build.
const TRICKY: &str = r#"
syntax = "proto3";
package tricky.v1;

import "google/protobuf/empty.proto";
import "google/protobuf/timestamp.proto";

message Status { string text = 1; google.protobuf.Timestamp at = 2; }
message Result { int32 code = 1; }
message Plugin { string name = 1; }

service Tricky {
  rpc Ping(google.protobuf.Empty) returns (Status);
  rpc Type(Result) returns (google.protobuf.Empty);
  rpc Named(Plugin) returns (stream Result);
}
"#;

#[test]
fn stubs_of_well_known_types_and_clashing_names_build() {
    let protos = scratch().join("protos");
    std::fs::create_dir_all(&protos).unwrap();
    let proto = protos.join("tricky.proto");
    std::fs::write(&proto, TRICKY).unwrap();
    let proto = proto.to_str().unwrap();
    let dir = new(
        "tricky-cabi",
        &[
            "--mechanism",
            "cabi",
            "--proto",
            proto,
            "--service",
            "tricky.v1.Tricky",
        ],
    );
    let refused = readme_commands(&dir).unwrap_err();
    assert!(
        refused.contains("tricky-cabi: Ping is not implemented yet"),
        "{refused}"
    );
}

/// A service of no methods: every kind builds without a warning, loads
/// and says Hello (its README's last line is `outlet inspect`).
#[test]
fn a_service_of_no_methods_builds_and_loads() {
    let protos = scratch().join("protos");
    std::fs::create_dir_all(&protos).unwrap();
    let proto = protos.join("quiet.proto");
    std::fs::write(
        &proto,
        "syntax = \"proto3\";\npackage quiet.v1;\nservice Quiet {}\n",
    )
    .unwrap();
    let proto = proto.to_str().unwrap();
    let mut kinds = vec![
        ("quiet-exec", "exec", "rust"),
        ("quiet-c", "cabi", "c"),
        ("quiet-wat", "wasm", "wat"),
    ];
    if !go_skipped() {
        kinds.push(("quiet-go", "rpc", "go"));
    }
    for (name, mechanism, lang) in kinds {
        let args = [
            "--mechanism",
            mechanism,
            "--lang",
            lang,
            "--proto",
            proto,
            "--service",
            "Quiet",
        ];
        let dir = new(name, &args);
        let said = readme_commands(&dir).unwrap();
        assert!(said.contains("quiet.v1.Quiet"), "{name}: {said}");
    }
}

#[test]
fn stubs_of_another_service_build_and_answer_unimplemented() {
    stubs("shapes-exec", "exec", "rust");
    stubs("shapes-c", "cabi", "c");
    stubs("shapes-wat", "wasm", "wat");
    if !go_skipped() {
        stubs("shapes-go", "rpc", "go");
    }
}

#[test]
fn bad_requests_are_refused_and_leave_nothing() {
    let parent = scratch().join("refused");
    let _ = std::fs::remove_dir_all(&parent);
    std::fs::create_dir_all(parent.join("full")).unwrap();
    std::fs::write(parent.join("full/keep.txt"), "mine").unwrap();
    std::fs::write(parent.join("bad.proto"), "syntax = \"proto3\";\nmessage {").unwrap();
    std::fs::write(parent.join("good.proto"), SHAPES).unwrap();
    std::fs::write(
        parent.join("bare.proto"),
        "syntax = \"proto3\";\nservice S {}\n",
    )
    .unwrap();
    std::fs::create_dir(parent.join("empty")).unwrap();
    std::os::unix::fs::symlink(parent.join("empty"), parent.join("link")).unwrap();
    let cases: [(&[&str], &str); 11] = [
        (
            &["new", "full", "--mechanism", "exec"],
            "exists and is not empty",
        ),
        (
            &["new", "p", "--mechanism", "exec", "--lang", "c"],
            "for exec choose --lang rust",
        ),
        (
            &["new", "p", "--mechanism", "wasm", "--lang", "go"],
            "choose --lang rust or wat",
        ),
        (
            &["new", "p", "--mechanism", "exec", "--lang", "cobol"],
            "not a language",
        ),
        (
            &[
                "new",
                "p",
                "--mechanism",
                "exec",
                "--proto",
                "bad.proto",
                "--service",
                "S",
            ],
            "does not compile",
        ),
        (
            &[
                "new",
                "p",
                "--mechanism",
                "exec",
                "--proto",
                "good.proto",
                "--service",
                "Nope",
            ],
            "declares no such service; it declares shapes.v1.Shapes",
        ),
        (
            &["new", "Bad_Name", "--mechanism", "exec"],
            "cannot name a plugin",
        ),
        (&["new", "link", "--mechanism", "exec"], "is a link"),
        (
            &["new", "test", "--mechanism", "exec"],
            "cargo or Rust uses it",
        ),
        (
            &[
                "new",
                "p",
                "--mechanism",
                "exec",
                "--proto",
                "bare.proto",
                "--service",
                "S",
            ],
            "declares no `package`",
        ),
        (
            &[
                "new",
                "p",
                "--mechanism",
                "exec",
                "--proto",
                "nowhere.proto",
                "--service",
                "S",
            ],
            "cannot read it",
        ),
    ];
    for (args, expected) in cases {
        let out = run(&parent, env!("CARGO_BIN_EXE_outlet"), args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let error = text(&out.stderr);
        assert!(error.contains(expected), "{args:?}: {error}");
    }
    let out = run(
        &parent,
        env!("CARGO_BIN_EXE_outlet"),
        &["new", "p", "--mechanism", "exec", "--outlet", "/"],
    );
    assert!(
        text(&out.stderr).contains("not an Outlet checkout"),
        "{}",
        text(&out.stderr)
    );
    // Nothing was written: no project, no staging folder, nothing in `full`.
    let mut left: Vec<String> = std::fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "bad.proto",
            "bare.proto",
            "empty",
            "full",
            "good.proto",
            "link"
        ]
    );
    assert_eq!(std::fs::read_dir(parent.join("full")).unwrap().count(), 1);
    assert_eq!(std::fs::read_dir(parent.join("empty")).unwrap().count(), 0);
}

/// `outlet new .` in an empty folder fills that folder, which stays the
/// same folder (a shell in it still sees the project).
#[test]
fn an_empty_folder_is_filled_in_place() {
    use std::os::unix::fs::MetadataExt;
    let dir = scratch().join("in-place");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let before = std::fs::metadata(&dir).unwrap().ino();
    let out = run(
        &dir,
        env!("CARGO_BIN_EXE_outlet"),
        &[
            "new",
            ".",
            "--mechanism",
            "wasm",
            "--lang",
            "wat",
            "--name",
            "in-place",
        ],
    );
    ok(&out, "outlet new .");
    assert_eq!(std::fs::metadata(&dir).unwrap().ino(), before);
    let manifest = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    assert!(manifest.contains("name = \"in-place\""), "{manifest}");
}
