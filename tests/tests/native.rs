//! The native mechanism: a Rust dylib of this very build, called directly;
//! libraries of other builds refused before their Rust code runs; panics
//! contained; reloads that no call notices.

use std::collections::BTreeMap;

use std::process::Command;
use std::time::{Duration, Instant};

use greeter::{GreetRequest, GreeterClient};
use outlet_host::LoadError;
use outlet_protocol::{Code, Transport};

use crate::support::{compile_c, greet, library, load, manifest, root};

/// Mapped private copies of a plugin's library (made by reloads, each in a
/// folder `outlet-*` of its own, and removed once mapped).
fn mapped_copies(plugin: &str) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let file = format!("/{plugin}.so");
    let mut paths: Vec<&str> = maps
        .lines()
        .filter(|l| l.contains("/outlet-") && l.contains(&file))
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    paths.sort();
    paths.dedup();
    paths.len()
}

#[test]
fn the_native_greeter_is_called_directly_and_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let proto = root().join("examples/greeter/manifests/greeter.proto");
    let extra = format!(
        "proto = \"{}\"\n[config]\ngreeting = \"Hi\"\n",
        proto.display()
    );
    let file = manifest(
        dir.path(),
        "native",
        "native",
        &library("libgreeter_native.so"),
        &extra,
    );
    let plugin = load(&file).unwrap();
    assert_eq!(greet(&plugin, "Rust").unwrap(), "Hi, Rust!");
    plugin
        .configure(BTreeMap::from([("greeting".into(), "Howdy".into())]))
        .unwrap();
    assert_eq!(greet(&plugin, "Rust").unwrap(), "Howdy, Rust!");
    // By gRPC path, as `outlet call` does: through the generated server.
    let error = plugin
        .call("/outlet.examples.greeter.v1.Greeter/Wave", &[])
        .unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented);
}

#[test]
fn a_library_of_another_build_is_refused_with_both_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let source = root().join("tests/c/foreign_native.c");
    let foreign = dir.path().join("libforeign.so");
    compile_c(&source, &[], &foreign);
    let error = load(&manifest(dir.path(), "native", "foreign", &foreign, "")).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, LoadError::Library { .. }), "{text}");
    assert!(text.contains("plugin `foreign`"), "{text}");
    assert!(text.contains("rustc 1.0.0 (elsewhere)"), "{text}");
    assert!(text.contains(outlet_protocol::BUILD_FINGERPRINT), "{text}");
    assert!(text.contains("rebuild both together"), "{text}");

    let version = format!(
        "native ABI version 99, and this host speaks version {}; a native plugin must come from \
         the host's own build",
        outlet_protocol::native_abi::ABI_VERSION
    );
    for (define, expected) in [
        ("ABI=99", version.as_str()),
        ("SIZE=16", "its declaration is 16 bytes, and this host's is"),
    ] {
        let library = dir.path().join(format!("lib{}.so", &define[..3]));
        compile_c(&source, &[define], &library);
        let text = load(&manifest(dir.path(), "native", "odd", &library, ""))
            .unwrap_err()
            .to_string();
        assert!(text.contains(expected), "{text}");
    }

    let cabi = dir.path().join("libcabi.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-I"])
        .arg(root().join("include"))
        .arg(root().join("examples/greeter/c/greeter.c"))
        .arg("-o")
        .arg(&cabi)
        .status()
        .unwrap();
    assert!(status.success());
    let text = load(&manifest(dir.path(), "native", "cabi", &cabi, ""))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("does not export `OUTLET_NATIVE_PLUGIN`"),
        "{text}"
    );
}

#[test]
fn a_plugin_from_another_proto_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let proto = dir.path().join("greeter.proto");
    let original =
        std::fs::read_to_string(root().join("examples/greeter/manifests/greeter.proto")).unwrap();
    std::fs::write(
        &proto,
        original.replace("string name = 1;", "string name = 1; int32 age = 2;"),
    )
    .unwrap();
    let extra = format!("proto = \"{}\"\n", proto.display());
    let file = manifest(
        dir.path(),
        "native",
        "skewed",
        &library("libgreeter_native.so"),
        &extra,
    );
    let text = load(&file).unwrap_err().to_string();
    assert!(
        text.contains("plugin `skewed`") && text.contains("rebuild the plugin"),
        "{text}"
    );
}

#[test]
fn a_panic_is_contained_and_the_manifest_decides_what_follows() {
    let dir = tempfile::tempdir().unwrap();
    let fragile = library("liboutlet_test_native.so");

    let plugin = load(&manifest(dir.path(), "native", "fail-fast", &fragile, "")).unwrap();
    let error = greet(&plugin, "panic").unwrap_err();
    assert_eq!(error.code(), Code::Internal);
    assert!(
        error.message().contains("panicked: asked to panic"),
        "{error}"
    );
    let error = greet(&plugin, "x").unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    assert!(
        error
            .message()
            .contains("plugin `fail-fast` panicked in an earlier call"),
        "{error}"
    );
    plugin.reload().unwrap();
    assert_eq!(greet(&plugin, "x").unwrap(), "Hello, x!");

    let extra = "[limits]\non_panic = \"reload\"\n";
    let plugin = load(&manifest(
        dir.path(),
        "native",
        "self-healing",
        &fragile,
        extra,
    ))
    .unwrap();
    assert!(greet(&plugin, "panic").is_err());
    assert_eq!(greet(&plugin, "x").unwrap(), "Hello, x!");
    assert_eq!(plugin.reloads(), 1);
}

#[test]
fn a_panic_while_making_the_plugin_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("libpanic-in-make.so");
    std::fs::copy(library("liboutlet_test_native.so"), &copy).unwrap();
    let error = load(&manifest(dir.path(), "native", "unmakeable", &copy, "")).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, LoadError::Library { .. }), "{text}");
    assert!(text.contains("plugin `unmakeable`"), "{text}");
    assert!(
        text.contains("making the plugin panicked: asked to panic while being made"),
        "{text}"
    );
}

#[test]
fn a_reload_under_load_fails_no_call_and_unmaps_the_old_library() {
    let dir = tempfile::tempdir().unwrap();
    let file = manifest(
        dir.path(),
        "native",
        "reloaded",
        &library("libgreeter_native.so"),
        "",
    );
    let plugin = load(&file).unwrap();
    let client = plugin.client::<GreeterClient<_>>().unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let calls = std::thread::scope(|s| {
        let workers: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let mut calls = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let reply = client.greet(GreetRequest {
                            name: "load".into(),
                        });
                        assert_eq!(reply.unwrap().message, "Hello, load!");
                        calls += 1;
                    }
                    calls
                })
            })
            .collect();
        let started = Instant::now();
        for _ in 0..10 {
            plugin.reload().unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(started.elapsed() < Duration::from_secs(30));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        workers.into_iter().map(|w| w.join().unwrap()).sum::<u64>()
    });
    assert!(calls > 0);
    assert_eq!(plugin.reloads(), 10);
    // Only the running copy is mapped; the ten before it are gone.
    assert_eq!(mapped_copies("reloaded"), 1);
    drop(client);
    drop(plugin);
    assert_eq!(mapped_copies("reloaded"), 0);
}
