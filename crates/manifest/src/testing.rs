//! What the unit tests share: a good manifest and helpers to parse variants of it.

use std::path::Path;

use crate::{Manifest, ManifestError};

/// A manifest that passes every check, to be edited into ones that do not.
pub(crate) const GOOD: &str = r#"
    name = "greeter"
    mechanism = "exec"
    path = "bin/greeter"
    interface = "outlet.examples.greeter.v1.Greeter"
    proto = "greeter.proto"
    trust = "in-process"
    [limits]
    timeout_ms = 250
    memory_mb = 64
    [permissions]
    env = { LANG = "C" }
    [config]
    greeting = "Hi"
    retries = 3
"#;

/// Parses `text` as `plugins/greeter.toml`.
pub(crate) fn parse(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(text, Path::new("plugins/greeter.toml"))
}

/// The message of the error that parsing `text` fails with.
///
/// # Panics
/// If `text` parses.
pub(crate) fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}
