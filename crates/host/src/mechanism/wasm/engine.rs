//! The wasmtime engines, one per process and fuel setting, and the thread
//! that advances their epoch (the clock of call deadlines).

use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::{Config, Engine};

use super::error::WasmError;

/// How often the engines' epoch advances: the granularity of call deadlines.
const TICK: Duration = Duration::from_millis(2);
/// Instances alive at once in this process, per engine: the pool's size.
pub(super) const POOL: u32 = 1000;
/// Tables per instance, and elements per table.
pub(super) const TABLES: u32 = 2;
pub(super) const TABLE_ELEMENTS: usize = 1 << 16;

/// The engine (with or without fuel metering), made once per process, and
/// the thread that advances its epoch.
pub(super) fn engine(fuel: bool) -> Result<&'static Engine, WasmError> {
    static PLAIN: OnceLock<Result<Engine, (String, String)>> = OnceLock::new();
    static FUELED: OnceLock<Result<Engine, (String, String)>> = OnceLock::new();
    let cell = if fuel { &FUELED } else { &PLAIN };
    cell.get_or_init(|| start(fuel))
        .as_ref()
        .map_err(|(reason, fix)| WasmError::Engine {
            reason: reason.clone(),
            fix: fix.clone(),
        })
}

fn start(fuel: bool) -> Result<Engine, (String, String)> {
    // Instances come from a pool of memories and tables reserved once:
    // making one maps the module's memory image copy-on-write into a slot
    // instead of reserving and zeroing fresh memory, and dropping one
    // resets the slot instead of unmapping it.
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_core_instances(POOL)
        .total_memories(POOL)
        .total_tables(POOL * TABLES)
        .max_tables_per_module(TABLES)
        .table_elements(TABLE_ELEMENTS);
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .consume_fuel(fuel)
        .allocation_strategy(pool);
    // `perf` then names the guests' functions (see docs/wasm-abi.md).
    let perfmap =
        std::env::var_os("OUTLET_WASM_PERFMAP").is_some_and(|v| !v.is_empty() && v != "0");
    if perfmap {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    let engine = Engine::new(&config).map_err(|e| {
        let fix = match perfmap {
            true => "it was asked for a perf map by OUTLET_WASM_PERFMAP: unset it, or let \
                     this user write /tmp/perf-<pid>.map"
                .to_owned(),
            false => format!(
                "its pool of {POOL} instances reserves address space up front, so check \
                 `ulimit -v`"
            ),
        };
        (e.to_string(), fix)
    })?;
    let ticking = engine.clone();
    std::thread::Builder::new()
        .name("outlet-wasm-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(TICK);
                ticking.increment_epoch();
            }
        })
        .map_err(|e| {
            let fix = "the host could not start the thread that enforces deadlines";
            (e.to_string(), fix.to_owned())
        })?;
    Ok(engine)
}

/// The epoch deadline, in ticks, of a call that may take `timeout`.
pub(super) fn deadline_ticks(timeout: Duration) -> u64 {
    (timeout.as_millis() / TICK.as_millis()).max(1) as u64 + 1
}
