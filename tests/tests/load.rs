//! Loading: manifests, artifacts, hashes, policy and Hello, through the Host.

use outlet_host::LoadError;
use outlet_manifest::sha256_hex;
use outlet_protocol::{Client, Code, Transport};

use crate::support::{fixture, fixture_for, greet, host, test_plugin};

#[test]
fn a_pinned_artifact_loads_and_a_wrong_pin_is_refused() {
    let hash = sha256_hex(&std::fs::read(test_plugin()).unwrap());
    let good = fixture("pinned", "", &format!("sha256 = \"{hash}\"\n"));
    assert_eq!(greet(&good.load(), "x").unwrap(), "Hello, x!");

    let wrong = "0".repeat(64);
    let bad = fixture("mispinned", "", &format!("sha256 = \"{wrong}\"\n"));
    let error = bad.load_err();
    assert!(error.contains("plugin `mispinned`"), "{error}");
    assert!(error.contains(&hash) && error.contains(&wrong), "{error}");
}

#[test]
fn an_artifact_changed_after_load_must_still_match_its_pin() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("plugin");
    std::fs::copy(test_plugin(), &copy).unwrap();
    let hash = sha256_hex(&std::fs::read(&copy).unwrap());
    let f = fixture_for("swapped", &copy, "", &format!("sha256 = \"{hash}\"\n"));
    let plugin = f.load();
    assert_eq!(greet(&plugin, "x").unwrap(), "Hello, x!");
    // Replace the binary (a new file, as a build would write it).
    let other = dir.path().join("other");
    std::fs::copy("/bin/true", &other).unwrap();
    std::fs::rename(&other, &copy).unwrap();
    let error = greet(&plugin, "x").unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(error.message().contains("plugin `swapped`"), "{error}");
    assert!(
        error.message().contains("changed since it was loaded"),
        "{error}"
    );
}

#[test]
fn a_missing_artifact_names_the_plugin_and_the_path() {
    let f = fixture_for("ghost", std::path::Path::new("/nonexistent/plugin"), "", "");
    let error = f.load_err();
    assert!(error.contains("plugin `ghost`"), "{error}");
    assert!(error.contains("/nonexistent/plugin"), "{error}");
    assert!(error.contains("fix `path`"), "{error}");
}

#[test]
fn no_common_version_names_both_sides() {
    let f = fixture("future", "version7", "versions = [1, 2]\n");
    let error = f.load_err();
    assert!(error.contains("plugin `future`"), "{error}");
    assert!(error.contains("[1, 2]") && error.contains("[7]"), "{error}");
}

#[test]
fn hello_reports_the_plugin_and_the_negotiation() {
    let plugin = fixture("hello", "", "versions = [1, 2]\n").load();
    assert_eq!(plugin.hello().name, "test-plugin");
    assert_eq!(
        plugin.hello().services,
        ["outlet.examples.greeter.v1.Greeter"]
    );
    assert_eq!(plugin.negotiated().app_version, 1);
    assert!(plugin.negotiated().capabilities.is_empty());
}

#[test]
fn one_host_refuses_two_plugins_of_one_name() {
    let f = fixture("twin", "", "");
    let host = host();
    host.load(&f.manifest).unwrap();
    let error = host.load(&f.manifest).unwrap_err();
    assert!(matches!(error, LoadError::Duplicate { .. }), "{error}");
    assert_eq!(host.names(), ["twin"]);
    host.unload("twin").unwrap().unwrap();
    host.load(&f.manifest).unwrap();
}

#[test]
fn a_client_for_another_interface_is_refused() {
    struct Other<T>(T);
    impl<T: Transport> Client for Other<T> {
        type Transport = T;
        const SERVICE: &'static str = "acme.Other";
        fn from_transport(transport: T) -> Self {
            Other(transport)
        }
    }
    let plugin = fixture("greeter-only", "", "").load();
    let error = plugin.client::<Other<_>>().err().unwrap().to_string();
    assert!(error.contains("plugin `greeter-only` implements `outlet.examples.greeter.v1.Greeter`, not `acme.Other`"), "{error}");
}
