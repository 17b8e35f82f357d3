//! The greeter as an Extism plugin: `greet` takes the input bytes as a UTF-8
//! name and returns `Hello, {name}!`, the same work as Outlet's greeter.
//! Built for `wasm32-unknown-unknown`, without WASI, for `extism-bench`.

use extism_pdk::{plugin_fn, FnResult};

/// Greets the name given as input.
#[plugin_fn]
pub fn greet(name: String) -> FnResult<String> {
    Ok(format!("Hello, {name}!"))
}
