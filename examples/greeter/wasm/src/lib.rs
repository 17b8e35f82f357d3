//! The greeter as a wasm plugin: the same `greeter::plugin()` as the exec
//! greeter, in a wasmtime sandbox. Build it for `wasm32-unknown-unknown`.

outlet_guest::export_wasm!(greeter::plugin);

/// Small blocks reused from free lists: a call's strings cost a few
/// instructions each (see `outlet_guest::wasm::Allocator`).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOC: outlet_guest::wasm::Allocator = outlet_guest::wasm::Allocator::new();
