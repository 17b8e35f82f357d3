//! The README's plugin code is a real plugin, and it works.

use crate::support::{fixture_for, greet};

#[test]
fn the_readme_shows_the_minimal_plugin_verbatim() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let source = std::fs::read_to_string(root.join("examples/greeter/src/bin/minimal.rs")).unwrap();
    // The plugin section's block, the one that serves a Greeter.
    let block = readme
        .split("```rust,no_run\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .find(|block| block.contains("GreeterServer"))
        .expect("the README has a ```rust,no_run block serving a Greeter");
    assert_eq!(block, source, "README.md and minimal.rs differ");
}

#[test]
fn the_minimal_plugin_greets() {
    let program = crate::support::test_plugin().with_file_name("greeter-minimal");
    let plugin = fixture_for("minimal", &program, "", "").load();
    assert_eq!(plugin.hello().version, "1.0.0");
    assert_eq!(greet(&plugin, "world").unwrap(), "Hello, world!");
}
