//! The host's policy: what a manifest claims is a request, and the host
//! decides. Each test is an attack a manifest could make, tried against a
//! real host and a real plugin.

use std::path::Path;

use outlet_host::Host;
use outlet_manifest::Trust;
use outlet_manifest::policy::{Ceiling, Policy};
use outlet_protocol::Code;

use crate::support::{greet, root, test_plugin};

/// A manifest for `program` in `dir`, at `trust`, pinned by its hash.
fn pinned(
    dir: &Path,
    mechanism: &str,
    trust: &str,
    program: &Path,
    extra: &str,
) -> std::path::PathBuf {
    let sha = outlet_manifest::sha256_hex(&std::fs::read(program).unwrap());
    let file = dir.join("plugin.toml");
    let text = format!(
        "name = \"guest\"\nmechanism = \"{mechanism}\"\npath = \"{}\"\n\
         interface = \"outlet.examples.greeter.v1.Greeter\"\ntrust = \"{trust}\"\n\
         sha256 = \"{sha}\"\n{extra}",
        program.display()
    );
    std::fs::write(&file, text).unwrap();
    file
}

fn host_with(policy: Policy) -> Host {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("module-cache");
    Host::builder()
        .module_cache(Some(cache))
        .policy(policy)
        .build()
}

fn wasi_guest() -> std::path::PathBuf {
    root().join("target/wasm32-wasip1/debug/outlet_test_wasi.wasm")
}

#[test]
fn a_sandboxed_plugin_is_granted_no_folder_outside_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let plugin_dir = tmp.path().join("plugins/guest");
    std::fs::create_dir_all(plugin_dir.join("data")).unwrap();
    std::fs::write(tmp.path().join("secret.txt"), "not for plugins").unwrap();
    std::os::unix::fs::symlink(tmp.path(), plugin_dir.join("up")).unwrap();
    let grant = |host: &str| {
        pinned(
            &plugin_dir,
            "wasm",
            "sandboxed",
            &wasi_guest(),
            &format!(
                "[permissions]\ndirs = [{{ host = {host:?}, guest = \"/d\", write = true }}]\n"
            ),
        )
    };
    let host = host_with(Policy::default());
    for escape in ["../../", "up", tmp.path().to_str().unwrap()] {
        let error = host.load(grant(escape)).unwrap_err().to_string();
        assert!(
            error.contains("plugin `guest` is refused by the trust policy")
                && error.contains("permissions.dirs"),
            "{escape}: {error}"
        );
        assert!(host.names().is_empty());
    }
    let plugin = host.load(grant("data")).unwrap();
    assert_eq!(greet(&plugin, "write:/d/a.txt=mine").unwrap(), "ok");
    assert!(
        greet(&plugin, "read:/d/../../../secret.txt")
            .unwrap()
            .starts_with("error")
    );

    // The folder swapped for a link after the load: the next instance (the
    // guest exits, which ends its instance) still gets the folder checked.
    std::fs::rename(plugin_dir.join("data"), plugin_dir.join("was-data")).unwrap();
    std::os::unix::fs::symlink(tmp.path(), plugin_dir.join("data")).unwrap();
    assert!(greet(&plugin, "exit").is_err());
    assert!(
        greet(&plugin, "read:/d/secret.txt")
            .unwrap()
            .starts_with("error")
    );
    assert_eq!(greet(&plugin, "read:/d/a.txt").unwrap(), "mine");
    // A reload resolves the folder anew, and finds it is not the one admitted.
    let error = plugin.reload().unwrap_err().to_string();
    assert!(
        error.contains("not to the folder the host's policy admitted"),
        "{error}"
    );
    assert_eq!(greet(&plugin, "read:/d/a.txt").unwrap(), "mine");
}

#[test]
fn a_sandboxed_plugin_inherits_only_the_variables_the_host_allows() {
    let tmp = tempfile::tempdir().unwrap();
    let file = pinned(
        tmp.path(),
        "exec",
        "sandboxed",
        &test_plugin(),
        "[permissions]\ninherit_env = [\"PATH\"]\nenv = { OUTLET_TEST_MODE = \"env\" }\n",
    );
    let error = host_with(Policy::default())
        .load(&file)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("plugin `guest`")
            && error.contains("asks for the host's PATH")
            && error.contains("permissions.env"),
        "{error}"
    );
    let allowed = host_with(Policy::default().inherit_env("PATH"))
        .load(&file)
        .unwrap();
    assert!(greet(&allowed, "x").unwrap().contains("PATH="));
}

#[test]
fn an_omitted_limit_is_the_levels_default_not_unlimited() {
    let tmp = tempfile::tempdir().unwrap();
    // Grows its memory a MiB at a time for as long as it is let.
    let module = tmp.path().join("bomb.wat");
    std::fs::write(
        &module,
        r#"(module
  (memory (export "memory") 1)
  (data (i32.const 0) "\0a\04test\1a\01\01\22\01\01\32\22outlet.examples.greeter.v1.Greeter")
  (func (export "outlet_abi_version") (result i32) (i32.const 1))
  (func (export "outlet_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "outlet_call") (param i32 i32 i32 i32) (param $out i32) (result i32)
    (if (i32.eq (local.get 1) (i32.const 28))
      (then
        (i32.store (local.get $out) (i32.const 0))
        (i32.store offset=4 (local.get $out) (i32.const 48))
        (return (i32.const 0))))
    (loop $more (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    (i32.const 0)))"#,
    )
    .unwrap();
    let file = pinned(tmp.path(), "wasm", "sandboxed", &module, "");
    let small = Ceiling {
        default_memory_mb: 8,
        ..Ceiling::SANDBOXED
    };
    let plugin = host_with(Policy::default().ceiling(Trust::Sandboxed, small))
        .load(&file)
        .unwrap();
    let error = greet(&plugin, "x").unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted, "{error}");
    assert!(error.message().contains("limits.memory_mb = 8"), "{error}");

    // An exec child gets an address space and CPU limit it did not ask for.
    let file = pinned(
        tmp.path(),
        "exec",
        "sandboxed",
        &test_plugin(),
        "[permissions]\nenv = { OUTLET_TEST_MODE = \"limits\" }\n",
    );
    let reply = greet(&host_with(Policy::default()).load(&file).unwrap(), "x").unwrap();
    let bytes = Ceiling::SANDBOXED.default_memory_mb << 20;
    let cpu = Ceiling::SANDBOXED.default_cpu_seconds;
    assert!(
        reply.starts_with(&format!("as=Some({bytes})/Some({bytes}) cpu=Some({cpu})/")),
        "{reply}"
    );
}

#[test]
fn the_host_decides_the_most_trust_by_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let file = pinned(
        tmp.path(),
        "exec",
        "out-of-process",
        &test_plugin(),
        "[permissions]\nenv = { OUTLET_TEST_MODE = \"env\" }\n",
    );
    let wary = Policy::default().elsewhere(Trust::Sandboxed);
    let error = host_with(wary.clone()).load(&file).unwrap_err().to_string();
    assert!(
        error.contains("claims trust = \"out-of-process\"")
            && error.contains("at most \"sandboxed\""),
        "{error}"
    );
    let host = host_with(wary.trust_folder(tmp.path(), Trust::OutOfProcess));
    assert!(host.load(&file).is_ok());
}
