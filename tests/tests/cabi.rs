//! The cabi mechanism: shared libraries in C and Rust behind `outlet.h`,
//! built for real, loaded for real, and broken on purpose.

use std::collections::BTreeMap;

use std::process::Command;

use outlet_host::LoadError;
use outlet_protocol::Code;

use crate::support::{
    GREETER_GRANT, capture_logs, compile_c, greet, host, load, manifest, root, test_plugin,
};

fn config(greeting: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("greeting".to_owned(), greeting.to_owned())])
}

#[test]
fn the_c_greeter_built_here_greets_configures_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let library = dir.path().join("libgreeter_c.so");
    compile_c(&root().join("examples/greeter/c/greeter.c"), &[], &library);
    let file = manifest(dir.path(), "cabi", "c-greeter", &library, "");
    let (plugin, logs) = capture_logs(|| load(&file).unwrap());
    assert!(
        logs.contains("greeter-c ready") && logs.contains("plugin=\"c-greeter\""),
        "{logs}"
    );
    assert_eq!(plugin.hello().name, "greeter-c");
    assert_eq!(greet(&plugin, "C").unwrap(), "Hello, C!");

    plugin.configure(config("Howdy")).unwrap();
    assert_eq!(greet(&plugin, "C").unwrap(), "Howdy, C!");
    let refused = plugin.configure(config("")).unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("`greeting`"), "{refused}");
    assert_eq!(greet(&plugin, "C").unwrap(), "Howdy, C!");

    let error =
        outlet_protocol::Transport::call(&plugin, "/outlet.examples.greeter.v1.Greeter/Wave", &[])
            .unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented);
    // A reload loads a fresh copy: its statics start over, and the config
    // the host holds is applied to it.
    plugin.reload().unwrap();
    assert_eq!(greet(&plugin, "C").unwrap(), "Howdy, C!");
    assert_eq!(plugin.reloads(), 1);
    plugin.shutdown().unwrap();
}

#[test]
fn the_rust_cabi_greeter_serves_the_same_plugin() {
    let library = test_plugin().with_file_name("libgreeter_cabi.so");
    let dir = tempfile::tempdir().unwrap();
    let file = manifest(
        dir.path(),
        "cabi",
        "rust-cabi",
        &library,
        "[config]\ngreeting = \"Hi\"\n",
    );
    let plugin = load(&file).unwrap();
    assert_eq!(plugin.hello().name, "greeter");
    assert_eq!(greet(&plugin, "Rust").unwrap(), "Hi, Rust!");
    // The guest's own error crosses the ABI with its code.
    let refused = plugin.configure(config(" ")).unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
}

#[test]
fn files_that_are_not_cabi_plugins_are_refused_before_their_code_runs() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.so");
    std::fs::write(&text, "these are not the bytes of a library").unwrap();
    let error = load(&manifest(dir.path(), "cabi", "text", &text, ""))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("plugin `text`") && error.contains("not an ELF file"),
        "{error}"
    );

    let object = dir.path().join("greeter.o");
    let status = Command::new("cc")
        .args(["-c", "-fPIC", "-I"])
        .arg(root().join("include"))
        .arg(root().join("examples/greeter/c/greeter.c"))
        .arg("-o")
        .arg(&object)
        .status()
        .unwrap();
    assert!(status.success());
    let error = load(&manifest(dir.path(), "cabi", "object", &object, ""))
        .unwrap_err()
        .to_string();
    assert!(error.contains("not a shared object"), "{error}");

    let error = load(&manifest(dir.path(), "cabi", "program", &test_plugin(), ""))
        .unwrap_err()
        .to_string();
    assert!(error.contains("plugin `program`: cannot load"), "{error}");
}

#[test]
fn broken_tables_are_refused_with_what_was_found() {
    let dir = tempfile::tempdir().unwrap();
    let source = root().join("tests/c/bad_plugins.c");
    let cases = [
        ("NO_ENTRY", "does not export `outlet_plugin_entry`"),
        ("NULL_TABLE", "returned no table"),
        (
            "ABI_VERSION=2",
            "ABI version 2, and this host speaks version 1",
        ),
        ("SMALL_TABLE", "its table is 16 bytes"),
        ("NO_CONFIGURE", "its table has no `configure`"),
        ("HALF_STREAMS", "its table has no `next`"),
    ];
    for (define, expected) in cases {
        let name = define
            .split('=')
            .next()
            .unwrap()
            .to_lowercase()
            .replace('_', "-");
        let library = dir.path().join(format!("lib{name}.so"));
        compile_c(&source, &[define], &library);
        let error = load(&manifest(dir.path(), "cabi", &name, &library, "")).unwrap_err();
        assert!(
            matches!(error, LoadError::Library { .. }),
            "{define}: {error}"
        );
        let text = error.to_string();
        assert!(
            text.contains(&format!("plugin `{name}`")) && text.contains(expected),
            "{text}"
        );
    }
}

#[test]
fn bad_answers_fail_the_call_and_the_host_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let source = root().join("tests/c/bad_plugins.c");

    let library = dir.path().join("libnull.so");
    compile_c(&source, &["NULL_ANSWER"], &library);
    let plugin = load(&manifest(dir.path(), "cabi", "null", &library, "")).unwrap();
    let error = greet(&plugin, "x").unwrap_err();
    assert_eq!(error.code(), Code::Internal);
    assert!(
        error
            .message()
            .contains("plugin `null` answered with a null pointer"),
        "{error}"
    );

    let library = dir.path().join("libhuge.so");
    compile_c(&source, &["HUGE_ANSWER"], &library);
    let limits = "[limits]\nmax_message_bytes = 65536\n";
    let plugin = load(&manifest(dir.path(), "cabi", "huge", &library, limits)).unwrap();
    let error = greet(&plugin, "x").unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted);
    assert!(
        error
            .message()
            .contains("1048576 bytes, over the limit of 65536"),
        "{error}"
    );
    // Still callable: the failure was the call's, not the plugin's.
    assert!(plugin.health().is_ok());
}

#[test]
fn a_plugin_calls_the_services_its_host_offers() {
    let library = crate::support::test_library();
    let dir = tempfile::tempdir().unwrap();
    let file = manifest(dir.path(), "cabi", "caller", &library, GREETER_GRANT);

    // A grant of a service the host does not offer is refused at load.
    let host = host();
    let refused = host.load(&file).unwrap_err().to_string();
    assert!(
        refused.contains("plugin `caller`")
            && refused.contains("offers no service `outlet.examples.greeter.v1.Greeter`"),
        "{refused}"
    );
    host.offer(greeter::GreeterServer::new(crate::support::Shouting))
        .unwrap();
    let plugin = host.load(&file).unwrap();
    // Taken off offer, it is unimplemented.
    assert!(host.withdraw("outlet.examples.greeter.v1.Greeter"));
    let error = greet(&plugin, "host:Ada").unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented);
    assert!(
        error.message().contains("plugin `caller` called"),
        "{error}"
    );
    assert!(
        error
            .message()
            .contains("no service `outlet.examples.greeter.v1.Greeter`"),
        "{error}"
    );

    host.offer(greeter::GreeterServer::new(crate::support::Shouting))
        .unwrap();
    assert_eq!(
        greet(&plugin, "host:Ada").unwrap(),
        "the host says: HELLO, ADA!"
    );
    // Without the grant, the same call is refused.
    let file = manifest(dir.path(), "cabi", "ungranted", &library, "");
    let refused = greet(&host.load(&file).unwrap(), "host:Ada").unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused}");
    assert!(
        refused
            .message()
            .contains("plugin `ungranted` may not call"),
        "{refused}"
    );
}

#[test]
fn one_library_loaded_twice_keeps_two_states() {
    let dir = tempfile::tempdir().unwrap();
    let library = dir.path().join("libgreeter_c.so");
    compile_c(&root().join("examples/greeter/c/greeter.c"), &[], &library);
    let host = host();
    let first = host
        .load(manifest(dir.path(), "cabi", "first", &library, ""))
        .unwrap();
    let second = host
        .load(manifest(dir.path(), "cabi", "second", &library, ""))
        .unwrap();
    first.configure(config("Howdy")).unwrap();
    // The C greeter keeps its greeting in a static: the second load got a
    // private copy of the library, with statics of its own.
    assert_eq!(greet(&first, "x").unwrap(), "Howdy, x!");
    assert_eq!(greet(&second, "x").unwrap(), "Hello, x!");
    first.shutdown().unwrap();
    assert_eq!(greet(&second, "x").unwrap(), "Hello, x!");
}

#[test]
fn a_library_that_would_find_its_dependencies_beside_it_is_refused_before_dlopen() {
    let dir = tempfile::tempdir().unwrap();
    // A constructor runs at dlopen, before any check of the library could:
    // it leaves a marker, so that the test tells whether dlopen ran.
    let marker = dir.path().join("constructed");
    let constructor = dir.path().join("constructor.c");
    std::fs::write(
        &constructor,
        "#include <stdio.h>\n__attribute__((constructor)) static void constructed(void) {\n\
         FILE *f = fopen(MARKER, \"w\"); if (f) fclose(f); }\n",
    )
    .unwrap();
    let build = |name: &str, flags: &[&str]| {
        let library = dir.path().join(name);
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-I"])
            .arg(root().join("include"))
            .arg(format!("-DMARKER=\"{}\"", marker.display()))
            .arg(root().join("examples/greeter/c/greeter.c"))
            .arg(&constructor)
            .arg("-o")
            .arg(&library)
            .args(flags)
            .status()
            .expect("run the system C compiler, `cc`");
        assert!(status.success());
        library
    };
    let library = build("librpathed.so", &["-Wl,-rpath,$ORIGIN/deps"]);
    let error = load(&manifest(dir.path(), "cabi", "rpathed", &library, "")).unwrap_err();
    assert!(matches!(error, LoadError::Library { .. }), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("plugin `rpathed`")
            && text.contains("`$ORIGIN/deps`")
            && text.contains("link the plugin without an rpath"),
        "{text}"
    );
    assert!(!marker.exists(), "the refused library was loaded");

    // The same library without the rpath loads, and its constructor runs.
    let plain = build("libplain.so", &[]);
    let plugin = load(&manifest(dir.path(), "cabi", "plain", &plain, "")).unwrap();
    assert_eq!(greet(&plugin, "x").unwrap(), "Hello, x!");
    assert!(marker.exists(), "the constructor did not run at dlopen");
}

#[test]
fn a_pinned_library_is_loaded_from_a_private_copy_of_the_bytes_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let library = dir.path().join("libgreeter_c.so");
    compile_c(&root().join("examples/greeter/c/greeter.c"), &[], &library);
    let hash = outlet_manifest::sha256_hex(&std::fs::read(&library).unwrap());
    let pin = format!("sha256 = \"{hash}\"\n");
    let plugin = load(&manifest(dir.path(), "cabi", "pinned-c", &library, &pin)).unwrap();
    assert_eq!(greet(&plugin, "C").unwrap(), "Hello, C!");
    // Not the artifact: a copy, gone from the disk once mapped.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(!maps.contains(library.to_str().unwrap()), "{maps}");
    assert!(maps.contains("/pinned-c.so (deleted)"), "{maps}");
    // A reload checks the artifact again: a changed one is refused.
    let mut rebuilt = std::fs::read(&library).unwrap();
    rebuilt.push(0);
    std::fs::write(&library, rebuilt).unwrap();
    let refused = plugin.reload().unwrap_err().to_string();
    assert!(
        refused.contains("plugin `pinned-c`") && refused.contains(&hash),
        "{refused}"
    );
    assert_eq!(greet(&plugin, "C").unwrap(), "Hello, C!");
    plugin.shutdown().unwrap();
}

#[test]
fn a_signed_library_is_loaded_from_a_private_copy_of_the_bytes_verified() {
    let dir = tempfile::tempdir().unwrap();
    let library = dir.path().join("libgreeter_c.so");
    compile_c(&root().join("examples/greeter/c/greeter.c"), &[], &library);
    let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let bytes = std::fs::read(&library).unwrap();
    let signature = minisign::sign(Some(&pair.pk), &pair.sk, &bytes[..], None, None).unwrap();
    std::fs::write(dir.path().join("lib.minisig"), signature.into_string()).unwrap();
    let signed = "signature = \"lib.minisig\"\n";
    let file = manifest(dir.path(), "cabi", "signed-c", &library, signed);
    let key = outlet_manifest::signing::TrustedKey::parse(&pair.pk.to_base64()).unwrap();
    let host = outlet_host::Host::builder()
        .policy(outlet_host::Policy::default().trust_key(key))
        .build();
    let plugin = host.load(&file).unwrap();
    assert_eq!(greet(&plugin, "C").unwrap(), "Hello, C!");
    // Signed bytes are pinned bytes: a copy is loaded, not the path.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(!maps.contains(library.to_str().unwrap()), "{maps}");
    assert!(maps.contains("/signed-c.so (deleted)"), "{maps}");
    plugin.shutdown().unwrap();
}

#[test]
fn a_table_of_before_streams_loads_and_says_it_has_none() {
    let dir = tempfile::tempdir().unwrap();
    let library = dir.path().join("libold.so");
    compile_c(
        &root().join("tests/c/bad_plugins.c"),
        &["OLD_TABLE"],
        &library,
    );
    let plugin = load(&manifest(dir.path(), "cabi", "old", &library, "")).unwrap();
    assert!(greet(&plugin, "x").is_ok());
    let count = "/outlet.examples.numbers.v1.Numbers/Count";
    let opened =
        outlet_protocol::Transport::open(&plugin, count, outlet_protocol::Messages::empty());
    let error = opened.unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented, "{error}");
    assert!(
        error.message().contains("plugin `old`: ")
            && error.message().contains("its table has no streams"),
        "{error}"
    );
}
