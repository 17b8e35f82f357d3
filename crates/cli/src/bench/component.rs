//! The component model's Greet, beside Outlet's Rust wasm guest: the same
//! greeting as a WebAssembly component (`bench/component/wit`, a
//! wit-bindgen guest built for wasm32-wasip2), called through the typed
//! bindings wasmtime's `bindgen!` makes, as a Rust user trying typed wasm
//! plugins would write it first. wasmtime's default settings (no epoch
//! interruption and no pooling allocator, both of which Outlet's engine
//! has; neither side meters fuel), and the WASI the guest's standard
//! library imports, with nothing granted.

use std::path::Path;

use anyhow::Context;
use greeter::GreeterClient;
use outlet_host::Host;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::greet::{BATCH, request};
use super::report::Row;
use super::stats::side_by_side;

wasmtime::component::bindgen!({
    path: "../../bench/component/wit",
    world: "greeter-component",
});

/// wasmtime's error as this command's.
fn ours<T>(result: wasmtime::Result<T>) -> anyhow::Result<T> {
    result.map_err(|error| anyhow::anyhow!("{error:#}"))
}

/// A store's data: WASI's context and resource table, empty.
struct State {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Greet into a warm component instance against Greet into Outlet's Rust
/// guest, warm, in interleaved batches.
pub fn row(host: &Host, manifests: &Path, file: &Path, calls: usize) -> anyhow::Result<Row> {
    let engine = Engine::default();
    let component = ours(Component::from_file(&engine, file)).with_context(|| {
        format!(
            "--component {}: not a component wasmtime can load; build it with `cargo build \
             --release --target wasm32-wasip2 --manifest-path bench/component/guest/Cargo.toml`",
            file.display()
        )
    })?;
    let mut linker = Linker::new(&engine);
    ours(wasmtime_wasi::p2::add_to_linker_sync(&mut linker))?;
    let state = State {
        wasi: WasiCtx::builder().build(),
        table: ResourceTable::new(),
    };
    let mut store = Store::new(&engine, state);
    let bindings = ours(GreeterComponent::instantiate(
        &mut store, &component, &linker,
    ))?;
    let name = request().name;
    let greeting = ours(
        bindings
            .outlet_bench_greeter()
            .call_greet(&mut store, &name),
    )?;
    anyhow::ensure!(
        greeting == format!("Hello, {name}!"),
        "--component {}: answered {greeting:?}",
        file.display()
    );

    let plugin = host.load(manifests.join("wasm-rust.toml"))?;
    let greeter = plugin.client::<GreeterClient<_>>()?;
    let request = request();
    let (component_greet, outlet_greet) = side_by_side(
        calls,
        BATCH,
        || {
            // A name of its own per call, as Outlet's side clones its
            // request: both pay one allocation and copy for the input.
            let name = std::hint::black_box(name.clone());
            let greeter = bindings.outlet_bench_greeter();
            std::hint::black_box(ours(greeter.call_greet(&mut store, &name))?);
            Ok(())
        },
        || {
            std::hint::black_box(greeter.greet(std::hint::black_box(request.clone()))?);
            Ok(())
        },
    )?;
    host.unload(plugin.name());
    Ok(Row {
        mechanism: "wasm",
        case: "Greet, component (WIT, bindgen!), warm",
        usual: super::wasm::USUAL,
        samples: component_greet,
        baseline: Some(("Outlet's Rust guest, warm", outlet_greet)),
    })
}
