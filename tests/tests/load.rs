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

/// A folder of manifests: each that passes loads, each that fails is
/// reported with its own error, whatever order they come in.
#[test]
fn a_folder_loads_every_good_manifest_and_reports_each_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path();
    let plugin = test_plugin();
    let manifest = |name: &str, extra: &str| {
        format!(
            "name = \"{name}\"\nmechanism = \"exec\"\npath = \"{}\"\n\
             interface = \"outlet.examples.greeter.v1.Greeter\"\ntrust = \"in-process\"\n{extra}",
            plugin.display()
        )
    };
    let write = |file: &str, text: &str| std::fs::write(folder.join(file), text).unwrap();
    write("good.toml", &manifest("good", ""));
    // Signed by a key the host trusts, and by one it does not.
    let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let stranger = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let bytes = std::fs::read(&plugin).unwrap();
    for (file, pair) in [("plugin.minisig", &pair), ("stranger.minisig", &stranger)] {
        let signature = minisign::sign(Some(&pair.pk), &pair.sk, &bytes[..], None, None).unwrap();
        write(file, &signature.into_string());
    }
    write(
        "signed.toml",
        &manifest("signed", "signature = \"plugin.minisig\"\n"),
    );
    write(
        "stranger.toml",
        &manifest("stranger", "signature = \"stranger.minisig\"\n"),
    );
    let whole = manifest("half", "");
    write("half.toml", &whole[..whole.len() / 2]);
    write("twin-a.toml", &manifest("twin", ""));
    write("twin-b.toml", &manifest("twin", ""));
    write(
        "missing.toml",
        &manifest("missing", "").replace(&*plugin.to_string_lossy(), "/nowhere/plugin"),
    );
    std::os::unix::fs::symlink(folder.join("gone"), folder.join("dangling.toml")).unwrap();
    write(".editing.toml", "not a manifest");
    write("notes.txt", "not a manifest");

    let key = outlet_manifest::signing::TrustedKey::parse(&pair.pk.to_base64()).unwrap();
    let host = outlet_host::Host::builder()
        .policy(outlet_host::Policy::default().trust_key(key))
        .build();
    let loaded = host.load_dir(folder).unwrap();
    let names: Vec<&str> = loaded.plugins.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["good", "signed"]);
    for plugin in &loaded.plugins {
        assert_eq!(greet(plugin, "dir").unwrap(), "Hello, dir!");
    }
    let failed: Vec<(String, String)> = (loaded.failed.iter())
        .map(|(file, error)| {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            (name, error.to_string())
        })
        .collect();
    let files: Vec<&str> = failed.iter().map(|(file, _)| file.as_str()).collect();
    assert_eq!(
        files,
        [
            "dangling.toml",
            "half.toml",
            "missing.toml",
            "stranger.toml",
            "twin-a.toml",
            "twin-b.toml"
        ]
    );
    let expect = [
        "cannot read the manifest",
        "half.toml",
        "plugin `missing`: cannot read its artifact /nowhere/plugin",
        "which the host does not trust",
        "plugin `twin` is also named by",
        "plugin `twin` is also named by",
    ];
    for ((file, error), expected) in failed.iter().zip(expect) {
        assert!(error.contains(expected), "{file}: {error}");
        assert!(
            error.contains(file.as_str()) || error.contains("plugin `"),
            "{file}: {error}"
        );
    }
    assert!(failed[4].1.contains("twin-b.toml") && failed[5].1.contains("twin-a.toml"));
    let stranger_id = outlet_manifest::signing::TrustedKey::parse(&stranger.pk.to_base64())
        .unwrap()
        .id()
        .to_owned();
    assert!(failed[3].1.contains(&stranger_id), "{}", failed[3].1);

    // A folder that cannot be read is the only error of the call.
    let error = host.load_dir(folder.join("none")).unwrap_err().to_string();
    assert!(
        error.contains("cannot read the folder of manifests"),
        "{error}"
    );
}
