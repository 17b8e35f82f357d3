//! The greeter as a wasm plugin: the same greeter as the exec greeter (it
//! can also relay to the Greeter its host offers), in a wasmtime sandbox.
//! Build it for `wasm32-unknown-unknown`.

outlet_guest::export_wasm!(plugin);

/// The greeter, relaying through the host when configured to.
fn plugin() -> outlet_guest::Plugin {
    greeter::plugin_calling(outlet_guest::wasm::Host)
}

/// Small blocks reused from free lists: a call's strings cost a few
/// instructions each (see `outlet_guest::wasm::Allocator`).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOC: outlet_guest::wasm::Allocator = outlet_guest::wasm::Allocator::new();
