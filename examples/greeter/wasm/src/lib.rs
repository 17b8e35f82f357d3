//! The greeter as a wasm plugin: the same `greeter::plugin()` as the exec
//! greeter, in a wasmtime sandbox. Build it for `wasm32-unknown-unknown`.

outlet_guest::export_wasm!(greeter::plugin);
