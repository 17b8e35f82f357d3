//! The wasm mechanism: a WebAssembly module in a wasmtime sandbox. The guest
//! ABI is `docs/wasm-abi.md`; the guest reaches nothing but the functions
//! of module `outlet` linked here.
//!
//! Costs: compiling a module is milliseconds, so compiled modules are cached
//! on disk, keyed by the module's hash and the engine's. An instance is made
//! from an `InstancePre` in a few microseconds, in memory from the engine's
//! pooling allocator. A call copies the request into linear memory, runs the
//! guest and copies the answer out. Each plugin keeps up to `SLOTS` warm
//! instances, one per slot; a thread calls through a slot of its own (or
//! the next free one), so calls from many threads run at once, each in its
//! own instance, with no lock shared by all of them. A trap discards the
//! instance; the next call gets a fresh one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use outlet_manifest::{Limits, Manifest};
use outlet_protocol::{Code, Status, core};
use wasmtime::{
    Caller, Config, Engine, Extern, InstancePre, Linker, Memory, Module, Store, StoreLimits,
    StoreLimitsBuilder, Trap, TypedFunc,
};

use super::wasi::{self, Grants};
use super::{Backend, Session};
use crate::LoadError;
use crate::services::HostServices;

/// This thread's slot: threads are numbered in the order they first call a
/// wasm plugin, so that up to `SLOTS` threads each have one of their own.
fn home_slot() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static HOME: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS;
    }
    HOME.with(|home| *home)
}

/// How often the engines' epoch advances: the granularity of call deadlines.
const TICK: Duration = Duration::from_millis(2);
/// Instances kept per plugin, one per slot: a thread calls through "its"
/// slot, or the next free one.
const SLOTS: usize = 16;
/// Instances alive at once in this process, per engine: the pool's size.
const POOL: u32 = 1000;
/// Tables per instance, and elements per table.
const TABLES: u32 = 2;
const TABLE_ELEMENTS: usize = 1 << 16;

/// The engine (with or without fuel metering), made once per process, and
/// the thread that advances its epoch.
fn engine(fuel: bool) -> Result<&'static Engine, String> {
    static PLAIN: OnceLock<Result<Engine, String>> = OnceLock::new();
    static FUELED: OnceLock<Result<Engine, String>> = OnceLock::new();
    let cell = if fuel { &FUELED } else { &PLAIN };
    cell.get_or_init(|| {
        // Instances come from a pool of memories and tables reserved once:
        // making one maps the module's memory image copy-on-write into a
        // slot instead of reserving and zeroing fresh memory, and dropping
        // one resets the slot instead of unmapping it.
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
        let engine = Engine::new(&config).map_err(|e| match perfmap {
            true => format!(
                "cannot start wasmtime with OUTLET_WASM_PERFMAP set: {e}; unset it, or let \
                 this user write /tmp/perf-<pid>.map"
            ),
            false => format!(
                "cannot start wasmtime: {e}; its pool of {POOL} instances reserves address \
                 space up front, so check `ulimit -v`"
            ),
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
            .map_err(|e| e.to_string())?;
        Ok(engine)
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// What the host functions of one plugin share.
struct Env {
    plugin: String,
    services: Arc<HostServices>,
    session: RwLock<Session>,
}

/// The store's limits, and whether one of them refused a request: that,
/// not a message the guest could imitate, says a trap was the memory limit.
struct Limiter {
    limits: StoreLimits,
    hit: bool,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grown = self.limits.memory_growing(current, desired, maximum);
        self.hit |= !matches!(grown, Ok(true));
        grown
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grown = self.limits.table_growing(current, desired, maximum);
        self.hit |= !matches!(grown, Ok(true));
        grown
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// A store's data.
struct State {
    env: Arc<Env>,
    limits: Limiter,
    /// The value `take` hands over next.
    pending: Vec<u8>,
    /// The WASI context, for a module that imports WASI.
    wasi: Option<wasmtime_wasi::p1::WasiP1Ctx>,
}

/// The store's WASI context; one granting nothing if it was not given one.
fn wasi_of(state: &mut State) -> &mut wasmtime_wasi::p1::WasiP1Ctx {
    let plugin = &state.env.plugin;
    state
        .wasi
        .get_or_insert_with(|| wasi::locked(plugin.as_str().into()))
}

/// One instance, ready for calls.
struct Instance {
    store: Store<State>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    call: TypedFunc<(i32, i32, i32, i32, i32), i32>,
    /// The buffer `outlet_alloc` gave last, reused while calls fit it.
    buffer: (usize, usize),
    /// Whether the guest keeps that buffer until the next `outlet_alloc`
    /// (ABI version 2), rather than for one call (version 1).
    reuse: bool,
    /// The session generation this instance was configured for.
    generation: u64,
}

pub(crate) struct Wasm {
    env: Arc<Env>,
    pre: InstancePre<State>,
    limits: Limits,
    fuel: Option<u64>,
    /// What WASI grants, for a module that imports WASI.
    grants: Option<Grants>,
    /// Warm instances. A call holds its slot's lock while it runs in the
    /// slot's instance; no lock is shared by all calls.
    slots: Box<[Mutex<Option<Instance>>]>,
    generation: std::sync::atomic::AtomicU64,
}

impl Wasm {
    pub(crate) fn new(manifest: &Manifest, services: Arc<HostServices>) -> Result<Wasm, LoadError> {
        let plugin = manifest.name.clone();
        let refuse = |why: String| LoadError::Wasm {
            plugin: plugin.clone(),
            why,
        };
        let engine = engine(manifest.limits.fuel.is_some()).map_err(&refuse)?;
        let module =
            load_module(engine, &manifest.path, manifest.sha256.as_deref()).map_err(&refuse)?;
        for (name, want) in [
            ("memory", "memory"),
            ("outlet_abi_version", "func"),
            ("outlet_alloc", "func"),
            ("outlet_call", "func"),
        ] {
            let found = module.get_export(name);
            let ok = matches!(
                (&found, want),
                (Some(wasmtime::ExternType::Memory(_)), "memory")
                    | (Some(wasmtime::ExternType::Func(_)), "func")
            );
            if !ok {
                return Err(refuse(format!(
                    "the module does not export the {want} `{name}` that docs/wasm-abi.md asks for"
                )));
            }
        }
        let mut linker: Linker<State> = Linker::new(engine);
        link(&mut linker).map_err(|e| refuse(e.to_string()))?;
        let imports_wasi = module.imports().any(|i| i.module() == wasi::MODULE);
        if imports_wasi {
            wasi::link(&mut linker, wasi_of).map_err(|e| refuse(e.to_string()))?;
        }
        let pre = linker.instantiate_pre(&module).map_err(|e| {
            refuse(format!(
                "{e}; a wasm plugin may import log, config, call and take from module \
                 `outlet`, and WASI preview 1 (`{}`), nothing else",
                wasi::MODULE
            ))
        })?;
        let grants = match imports_wasi {
            true => Some(Grants::new(manifest).map_err(&refuse)?),
            false => None,
        };
        let wasm = Wasm {
            env: Arc::new(Env {
                plugin,
                services,
                session: RwLock::new(Session::default()),
            }),
            pre,
            limits: manifest.limits.clone(),
            fuel: manifest.limits.fuel,
            grants,
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
            generation: Default::default(),
        };
        // One instance now: a module that cannot start fails the load.
        let instance = wasm.instantiate().map_err(|status| LoadError::Wasm {
            plugin: manifest.name.clone(),
            why: status.message().to_owned(),
        })?;
        *wasm.slots[home_slot()]
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(instance);
        Ok(wasm)
    }

    fn plugin(&self) -> &str {
        &self.env.plugin
    }

    fn instantiate(&self) -> Result<Instance, Status> {
        let plugin = self.plugin();
        // One memory and a few small tables: `memory_size` holds per memory,
        // so more memories would multiply it.
        let mut limits = StoreLimitsBuilder::new()
            .trap_on_grow_failure(true)
            .instances(1)
            .memories(1)
            .tables(TABLES as usize)
            .table_elements(TABLE_ELEMENTS);
        if let Some(mb) = self.limits.memory_mb {
            let bytes = mb
                .checked_mul(1 << 20)
                .and_then(|b| usize::try_from(b).ok());
            limits = limits.memory_size(bytes.unwrap_or(usize::MAX));
        }
        let state = State {
            env: self.env.clone(),
            limits: Limiter {
                limits: limits.build(),
                hit: false,
            },
            pending: Vec::new(),
            wasi: match &self.grants {
                Some(grants) => Some(grants.context().map_err(|why| {
                    Status::failed_precondition(format!("plugin `{plugin}`: {why}"))
                })?),
                None => None,
            },
        };
        let mut store = Store::new(self.pre.module().engine(), state);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(deadline_ticks(self.limits.timeout()));
        if let Some(fuel) = self.fuel {
            store
                .set_fuel(fuel)
                .map_err(|e| Status::internal(format!("plugin `{plugin}`: {e}")))?;
        }
        let instance = self.pre.instantiate(&mut store).map_err(|e| {
            if e.is::<wasmtime::PoolConcurrencyLimitError>() {
                return Status::resource_exhausted(format!(
                    "plugin `{plugin}`: no room for another wasm instance: this process \
                     holds {POOL} already, the most its pool has; unload plugins or make \
                     fewer calls at once"
                ));
            }
            let hit = store.data().limits.hit;
            trapped(plugin, "starting the module", e, &self.limits, hit)
        })?;
        let bad = |what: &str, e: wasmtime::Error| {
            Status::internal(format!("plugin `{plugin}`: its export {what}: {e}"))
        };
        // A WASI reactor (what Rust builds a `cdylib` for wasm32-wasip1 as)
        // runs its constructors in `_initialize`, before anything else.
        if let Ok(initialize) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
            initialize.call(&mut store, ()).map_err(|e| {
                let hit = store.data().limits.hit;
                trapped(plugin, "_initialize", e, &self.limits, hit)
            })?;
        }
        let version: TypedFunc<(), i32> = instance
            .get_typed_func(&mut store, "outlet_abi_version")
            .map_err(|e| bad("outlet_abi_version", e))?;
        let version = version
            .call(&mut store, ())
            .map_err(|e| trapped(plugin, "outlet_abi_version", e, &self.limits, false))?;
        if !(1..=2).contains(&version) {
            return Err(Status::failed_precondition(format!(
                "plugin `{plugin}` speaks guest ABI version {version}, and this host versions 1 \
                 and 2; rebuild it against docs/wasm-abi.md"
            )));
        }
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| Status::internal(format!("plugin `{plugin}` exports no memory")))?;
        let alloc = instance
            .get_typed_func(&mut store, "outlet_alloc")
            .map_err(|e| bad("outlet_alloc", e))?;
        let call = instance
            .get_typed_func(&mut store, "outlet_call")
            .map_err(|e| bad("outlet_call", e))?;
        Ok(Instance {
            store,
            memory,
            alloc,
            call,
            buffer: (0, 0),
            reuse: version >= 2,
            generation: 0,
        })
    }

    /// Configures an instance made before the last Configure (or never
    /// configured) with the config the host holds.
    fn ready(&self, instance: &mut Instance) -> Result<(), Status> {
        let generation = self.generation.load(std::sync::atomic::Ordering::Acquire);
        if instance.generation != generation {
            let (config, configurable) = {
                let session = self.env.session.read().unwrap_or_else(|e| e.into_inner());
                (
                    session.config.clone(),
                    session
                        .negotiated
                        .supports(outlet_protocol::capability::CONFIGURE),
                )
            };
            if configurable && !config.is_empty() {
                let request =
                    outlet_protocol::prost::Message::encode_to_vec(&core::ConfigureRequest {
                        config: config.into_iter().collect(),
                    });
                self.run(instance, core::CONFIGURE, &request, &mut |_| {})?;
            }
            instance.generation = generation;
        }
        Ok(())
    }

    /// Runs `f` in a warm instance: the one in this thread's slot, or in the
    /// next slot not in use; made there first if the slot is empty. With
    /// every slot in use (more threads than slots, or a call nested in a
    /// call), in an instance made for the call. An instance that failed in
    /// a way that may have left it broken is dropped.
    fn in_some_instance(
        &self,
        f: impl FnOnce(&mut Instance) -> Result<(), Status>,
    ) -> Result<(), Status> {
        let broken = |result: &Result<(), Status>| {
            matches!(result, Err(status) if matches!(
                status.code(),
                Code::DeadlineExceeded | Code::ResourceExhausted | Code::Internal
            ))
        };
        let home = home_slot();
        for i in 0..SLOTS {
            let cell = &self.slots[(home + i) % SLOTS];
            let mut slot = match cell.try_lock() {
                Ok(slot) => slot,
                Err(std::sync::TryLockError::WouldBlock) => continue,
                // A panic while the slot was held: its instance may be
                // halfway through a call, so it goes.
                Err(std::sync::TryLockError::Poisoned(poisoned)) => {
                    let mut slot = poisoned.into_inner();
                    *slot = None;
                    cell.clear_poison();
                    slot
                }
            };
            let instance = match &mut *slot {
                Some(instance) => instance,
                empty => empty.insert(self.instantiate()?),
            };
            let result = self.ready(instance).and_then(|()| f(instance));
            if broken(&result) {
                *slot = None;
            }
            return result;
        }
        let mut instance = self.instantiate()?;
        self.ready(&mut instance).and_then(|()| f(&mut instance))
    }

    /// One call into one instance.
    fn run(
        &self,
        instance: &mut Instance,
        method: &str,
        request: &[u8],
        response: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Status> {
        let plugin = self.plugin();
        let limit = self.limits.max_message_bytes;
        let store = &mut instance.store;
        store.data_mut().pending.clear();
        store.set_epoch_deadline(deadline_ticks(self.limits.timeout()));
        if let Some(fuel) = self.fuel {
            store
                .set_fuel(fuel)
                .map_err(|e| Status::internal(format!("plugin `{plugin}`: {e}")))?;
        }
        let total = 8 + method.len() + request.len();
        let Ok(total_i32) = i32::try_from(total) else {
            return Err(Status::resource_exhausted(format!(
                "plugin `{plugin}`: a call of {total} bytes does not fit a wasm guest"
            )));
        };
        if !instance.reuse || total > instance.buffer.1 {
            // Room for this call and a little more, so that calls of
            // slightly different sizes do not each ask again; for large
            // calls, and if the guest refuses more, just for this one.
            let more = match total {
                ..=65536 if instance.reuse => total.next_power_of_two().max(256) as i32,
                _ => total_i32,
            };
            instance.buffer = (0, 0);
            for len in [more, total_i32] {
                let base = instance.alloc.call(&mut *store, len).map_err(|e| {
                    let hit = store.data().limits.hit;
                    trapped(plugin, method, e, &self.limits, hit)
                })? as u32 as usize;
                if base != 0 {
                    instance.buffer = (base, len as usize);
                    break;
                }
            }
        }
        let base = instance.buffer.0;
        let memory = instance.memory.data_mut(&mut *store);
        let Some(area) = memory.get_mut(base..base + total).filter(|_| base != 0) else {
            instance.buffer = (0, 0);
            return Err(Status::resource_exhausted(format!(
                "plugin `{plugin}`: outlet_alloc gave no room for a call of {total} bytes"
            )));
        };
        area[..8].fill(0);
        area[8..8 + method.len()].copy_from_slice(method.as_bytes());
        area[8 + method.len()..].copy_from_slice(request);
        let at = |offset: usize| (base + offset) as i32;
        let code = instance
            .call
            .call(
                &mut *store,
                (
                    at(8),
                    method.len() as i32,
                    at(8 + method.len()),
                    request.len() as i32,
                    at(0),
                ),
            )
            .map_err(|e| {
                let hit = store.data().limits.hit;
                trapped(plugin, method, e, &self.limits, hit)
            })?;
        let memory = instance.memory.data(&*store);
        let slot = &memory[base..base + 8];
        let ptr = u32::from_le_bytes(slot[..4].try_into().expect("4 bytes")) as usize;
        let len = u32::from_le_bytes(slot[4..].try_into().expect("4 bytes")) as usize;
        if len > limit {
            return Err(Status::resource_exhausted(format!(
                "plugin `{plugin}`: its answer to {method} is {len} bytes, over the limit of \
                 {limit} (limits.max_message_bytes)"
            )));
        }
        let Some(answer) = ptr.checked_add(len).and_then(|end| memory.get(ptr..end)) else {
            return Err(Status::internal(format!(
                "plugin `{plugin}`: its answer to {method} lies outside its memory ({len} bytes \
                 at {ptr}, memory of {} bytes)",
                memory.len()
            )));
        };
        match code {
            0 => {
                response(answer);
                Ok(())
            }
            code => Err(Status::new(
                Code::from_i32(code),
                String::from_utf8_lossy(answer).into_owned(),
            )),
        }
    }
}

fn deadline_ticks(timeout: Duration) -> u64 {
    (timeout.as_millis() / TICK.as_millis()).max(1) as u64 + 1
}

/// A failure inside the guest, as a status naming the plugin.
fn trapped(
    plugin: &str,
    what: &str,
    error: wasmtime::Error,
    limits: &Limits,
    limit_hit: bool,
) -> Status {
    let chain = format!("{error:?}");
    if limit_hit {
        return Status::resource_exhausted(format!(
            "plugin `{plugin}`: {what} asked for more memory than limits.memory_mb = {} allows",
            limits.memory_mb.unwrap_or_default()
        ));
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return Status::internal(format!(
            "plugin `{plugin}`: {what} ended the instance (WASI proc_exit({})); a wasm plugin \
             returns from its calls instead",
            exit.0
        ));
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Status::deadline_exceeded(format!(
            "plugin `{plugin}`: {what} did not finish within {} ms (limits.timeout_ms); it was \
             stopped",
            limits.timeout_ms
        )),
        Some(Trap::OutOfFuel) => Status::resource_exhausted(format!(
            "plugin `{plugin}`: {what} used up its fuel ({} units, limits.fuel)",
            limits.fuel.unwrap_or_default()
        )),
        Some(trap) => Status::internal(format!("plugin `{plugin}`: {what} trapped: {trap}")),
        None => Status::internal(format!(
            "plugin `{plugin}`: {what} failed: {}",
            chain.lines().next().unwrap_or_default()
        )),
    }
}

impl Backend for Wasm {
    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        let mut answer = Vec::new();
        self.call_with(method, request, &mut |bytes| answer = bytes.to_vec())?;
        Ok(answer)
    }

    fn call_with(
        &self,
        method: &str,
        request: &[u8],
        response: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Status> {
        let limit = self.limits.max_message_bytes;
        if request.len() > limit {
            return Err(Status::resource_exhausted(format!(
                "plugin `{}`: the request to {method} is {} bytes, over the limit of {limit} \
                 (limits.max_message_bytes)",
                self.plugin(),
                request.len()
            )));
        }
        // A guest calling the host, which calls a guest, and so on: each
        // level a store of its own, so the depth is bounded here.
        thread_local! {
            static DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
        }
        if DEPTH.get() >= 8 {
            return Err(Status::resource_exhausted(format!(
                "plugin `{}`: calls between wasm plugins and the host nest more than 8 deep",
                self.plugin()
            )));
        }
        /// Counts one level while alive, also while a panic unwinds.
        struct Level;
        impl Drop for Level {
            fn drop(&mut self) {
                DEPTH.set(DEPTH.get() - 1);
            }
        }
        // wasmtime-wasi blocks on a tokio runtime of its own inside WASI
        // calls, which panics on a thread that runs a runtime already: such
        // a call runs on a thread of its own, at the cost of starting it.
        if self.grants.is_some() && tokio::runtime::Handle::try_current().is_ok() {
            let depth = DEPTH.get();
            let mut answer = Vec::new();
            let result = std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        DEPTH.set(depth);
                        self.call_with(method, request, &mut |bytes| answer = bytes.to_vec())
                    })
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            });
            return result.map(|()| response(&answer));
        }
        DEPTH.set(DEPTH.get() + 1);
        let _level = Level;
        self.in_some_instance(|instance| self.run(instance, method, request, response))
    }

    fn fresh_instance(&self) -> Option<Result<(), Status>> {
        Some(self.instantiate().map(drop))
    }

    fn set_session(&self, session: Session) {
        *self.env.session.write().unwrap_or_else(|e| e.into_inner()) = session;
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    fn stop(&self) {
        for slot in &self.slots {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

/// Links the host functions of `docs/wasm-abi.md`: nothing else.
fn link(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "outlet",
        "log",
        |mut caller: Caller<'_, State>, level: i32, ptr: i32, len: i32| {
            let line = read(&mut caller, ptr, len)?;
            crate::log::numbered(&caller.data().env.plugin, level, &line);
            Ok(())
        },
    )?;
    linker.func_wrap(
        "outlet",
        "config",
        |mut caller: Caller<'_, State>, ptr: i32, len: i32| {
            let key = read(&mut caller, ptr, len)?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let value = {
                let session = caller
                    .data()
                    .env
                    .session
                    .read()
                    .unwrap_or_else(|e| e.into_inner());
                session.config.get(&key).cloned()
            };
            Ok(match value {
                Some(value) => {
                    let len = value.len() as i64;
                    caller.data_mut().pending = value.into_bytes();
                    len
                }
                None => -1,
            })
        },
    )?;
    linker.func_wrap(
        "outlet",
        "call",
        |mut caller: Caller<'_, State>, mptr: i32, mlen: i32, rptr: i32, rlen: i32| {
            let method = read(&mut caller, mptr, mlen)?;
            let request = read(&mut caller, rptr, rlen)?;
            let method = String::from_utf8_lossy(&method).into_owned();
            let env = caller.data().env.clone();
            let (code, answer) = match env.services.call(&env.plugin, &method, &request) {
                // The length must fit the low 32 bits of the answer.
                Ok(bytes) if bytes.len() > u32::MAX as usize / 2 => (
                    i64::from(Code::ResourceExhausted.as_i32()),
                    b"the host's answer is too large for a wasm guest".to_vec(),
                ),
                Ok(bytes) => (0i64, bytes),
                Err(status) => (
                    i64::from(status.code().as_i32()),
                    status.message().as_bytes().to_vec(),
                ),
            };
            let len = answer.len() as i64;
            caller.data_mut().pending = answer;
            Ok((code << 32) | len)
        },
    )?;
    linker.func_wrap(
        "outlet",
        "take",
        |mut caller: Caller<'_, State>, ptr: i32| {
            let pending = std::mem::take(&mut caller.data_mut().pending);
            let memory = memory(&mut caller)?;
            memory
                .write(&mut caller, ptr as u32 as usize, &pending)
                .map_err(|_| wasmtime::Error::msg("take: the destination lies outside the memory"))
        },
    )?;
    Ok(())
}

fn memory(caller: &mut Caller<'_, State>) -> wasmtime::Result<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => Ok(memory),
        _ => Err(wasmtime::Error::msg("the module exports no memory")),
    }
}

/// Bytes the guest points at, bounds-checked.
fn read(caller: &mut Caller<'_, State>, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    let memory = memory(caller)?;
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    memory
        .data(&*caller)
        .get(ptr..ptr.saturating_add(len))
        .map(<[u8]>::to_vec)
        .ok_or_else(|| wasmtime::Error::msg("a host function was given bytes outside the memory"))
}

/// Compiles a module, or loads it from the on-disk cache.
fn load_module(engine: &Engine, path: &Path, sha256: Option<&str>) -> Result<Module, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let hash = outlet_manifest::sha256_hex(&bytes);
    // The bytes compiled are the bytes checked: the file may have changed
    // since the manifest's check.
    if let Some(expected) = sha256.filter(|expected| *expected != hash) {
        return Err(format!(
            "{} has SHA-256 {hash}, but the manifest says {expected}; if the new module is the \
             one you mean to run, put its hash in `sha256`",
            path.display()
        ));
    }
    let text = std::str::from_utf8(&bytes).is_ok();
    if !text && !bytes.starts_with(b"\0asm") {
        return Err(format!(
            "{} is not WebAssembly (neither a binary module nor text); build it for \
             wasm32-unknown-unknown, or give a .wat file",
            path.display()
        ));
    }
    let key = {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        format!("{hash}-{:016x}", hasher.finish())
    };
    let cached = cache_dir().map(|dir| dir.join(format!("{key}.cwasm")));
    if let Some(serialized) = cached.as_ref().and_then(|file| read_private(file)) {
        #[allow(unsafe_code)]
        // SAFETY: `deserialize` trusts the bytes to be wasmtime's own output
        // for this engine. They are: this function wrote them, under a name
        // holding the module's hash and the engine's compatibility hash, in
        // a cache folder that `cache_dir` checked is a real folder (no
        // symlink) owned by this user and writable by no one else, and
        // `read_private` checked the same of the file before reading it into
        // memory (so nothing can change it under the module afterwards).
        if let Ok(module) = unsafe { Module::deserialize(engine, &serialized) } {
            return Ok(module);
        }
    }
    let module = Module::new(engine, &bytes).map_err(|e| {
        format!(
            "{} does not compile: {}",
            path.display(),
            e.to_string().lines().next().unwrap_or_default()
        )
    })?;
    if let (Some(file), Ok(serialized)) = (cached, module.serialize()) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let temp = file.with_extension(format!("{}.tmp", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .and_then(|mut f| f.write_all(&serialized));
        if written.is_ok() {
            let _ = std::fs::rename(&temp, &file);
        } else {
            let _ = std::fs::remove_file(&temp);
        }
    }
    Ok(module)
}

/// `$XDG_CACHE_HOME/outlet/wasm` (or `~/.cache/…`): used only if it and
/// `outlet/` are real folders owned by this user that no one else can write.
fn cache_dir() -> Option<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let outlet = base.join("outlet");
    let dir = outlet.join("wasm");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .ok()?;
    (private(&outlet, true) && private(&dir, true)).then_some(dir)
}

/// Whether `path` is a real folder (or file) owned by this user that no
/// one else can write; symlinks are not followed.
fn private(path: &Path, folder: bool) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    let kind = if folder {
        meta.is_dir()
    } else {
        meta.is_file()
    };
    kind && meta.uid() == rustix::process::geteuid().as_raw() && meta.mode() & 0o022 == 0
}

/// A cache file's bytes, if it is a private file of this user's.
fn read_private(file: &Path) -> Option<Vec<u8>> {
    private(file, false)
        .then(|| std::fs::read(file).ok())
        .flatten()
}
