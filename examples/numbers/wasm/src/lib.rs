//! The numbers as a wasm plugin: its streams made in a wasmtime sandbox, a
//! message per call into the guest, its requests pulled from the host as
//! it reads them. Build it for `wasm32-unknown-unknown`.

outlet_guest::export_wasm!(numbers::plugin);
