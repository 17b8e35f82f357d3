//! One wasm instance: its store and limits, how it is made, and one call
//! into it through the guest ABI (docs/wasm-abi.md): the request copied
//! into a buffer the guest allocates, the answer read back from its memory.

use std::sync::Arc;
use std::time::Instant;

use outlet_manifest::Limits;
use outlet_protocol::Status;
use outlet_protocol::context::{Cancel, TraceContext};
use wasmtime::{Memory, Store, StoreLimits, StoreLimitsBuilder, Trap, TypedFunc};

use super::engine::{POOL, TABLE_ELEMENTS, TABLES, deadline_ticks};
use super::{Env, Wasm, wasi};
use crate::mechanism::slot;

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
pub(super) struct State {
    pub(super) env: Arc<Env>,
    limits: Limiter,
    /// The value `take` hands over next.
    pub(super) pending: Vec<u8>,
    /// The instance's memory, once instantiated.
    pub(super) memory: Option<wasmtime::Memory>,
    /// The WASI context, for a module that imports WASI.
    pub(super) wasi: Option<wasmtime_wasi::p1::WasiP1Ctx>,
    /// The running call's deadline, its caller's cancel token and its trace
    /// context, for the `time_left`, `cancelled` and `trace` imports.
    pub(super) call: (Instant, Option<Cancel>, Option<TraceContext>),
    /// The open stream's requests, for the `next_request` import.
    pub(super) requests: Option<outlet_protocol::Messages<Vec<u8>>>,
    /// The open stream's deadline and the plugin's time limit: each call
    /// into the guest is held to them, afresh once the caller's code has
    /// made a request.
    pub(super) stream: Option<(Option<Instant>, std::time::Duration)>,
}

impl State {
    /// Whether one of the store's limits refused a request.
    pub(super) fn limit_hit(&self) -> bool {
        self.limits.hit
    }
}

/// The store's WASI context; one granting nothing if it was not given one.
pub(super) fn wasi_of(state: &mut State) -> &mut wasmtime_wasi::p1::WasiP1Ctx {
    let plugin = &state.env.plugin;
    state
        .wasi
        .get_or_insert_with(|| wasi::locked(plugin.as_str().into()))
}

/// One instance, ready for calls.
pub(super) struct Instance {
    pub(super) store: Store<State>,
    pub(super) memory: Memory,
    pub(super) alloc: TypedFunc<i32, i32>,
    pub(super) call: TypedFunc<(i32, i32, i32, i32, i32), i32>,
    /// The buffer `outlet_alloc` gave last, reused while calls fit it.
    pub(super) buffer: (usize, usize),
    /// Whether the guest keeps that buffer until the next `outlet_alloc`
    /// (ABI version 2 and later), rather than for one call (version 1).
    pub(super) reuse: bool,
    /// The guest ABI version it speaks (streams from 4 on).
    pub(super) version: i32,
    /// The instance, for the exports only streams need.
    pub(super) handle: wasmtime::Instance,
    /// The session generation this instance was configured for.
    pub(super) generation: u64,
}

impl Instance {
    /// Writes the answer slot, `method` and `request` into a buffer of the
    /// guest's (asking `outlet_alloc` for one if the last is too small);
    /// where the slot is.
    pub(super) fn place(
        &mut self,
        plugin: &str,
        limits: &Limits,
        method: &str,
        request: &[u8],
    ) -> Result<usize, Status> {
        let instance = self;
        let store = &mut instance.store;
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
                    trapped(plugin, method, e, limits, hit)
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
        Ok(base)
    }
    /// Readies the instance for a call into it until `deadline` (held to
    /// `cancel` too, at every epoch tick), with its fuel filled.
    pub(super) fn arm(
        &mut self,
        plugin: &str,
        limits: &Limits,
        deadline: Instant,
        cancel: Option<Cancel>,
    ) -> Result<(), Status> {
        let store = &mut self.store;
        store.data_mut().pending.clear();
        store.data_mut().call = (
            deadline,
            cancel.clone(),
            outlet_protocol::context::caller_trace(),
        );
        match cancel {
            None => {
                store.epoch_deadline_trap();
                store.set_epoch_deadline(deadline_ticks(
                    deadline.saturating_duration_since(Instant::now()),
                ));
            }
            // Its store looks at the token on every epoch tick (a few ms),
            // not only at the deadline.
            Some(cancel) => {
                // The deadline as the store holds it: a stream's moves on
                // as its caller's code makes requests (`next_request`).
                store.epoch_deadline_callback(move |store| {
                    if cancel.is_cancelled() {
                        return Err(wasmtime::Error::msg("the call was cancelled by its caller"));
                    }
                    if Instant::now() >= store.data().call.0 {
                        return Err(Trap::Interrupt.into());
                    }
                    Ok(wasmtime::UpdateDeadline::Continue(1))
                });
                store.set_epoch_deadline(1);
            }
        }
        if let Some(fuel) = limits.fuel {
            store
                .set_fuel(fuel)
                .map_err(|e| Status::internal(format!("plugin `{plugin}`: {e}")))?;
        }
        Ok(())
    }
}

impl Wasm {
    pub(super) fn instantiate(&self) -> Result<Instance, Status> {
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
            memory: None,
            requests: None,
            stream: None,
            call: (Instant::now() + self.limits.timeout(), None, None),
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
        if !(1..=4).contains(&version) {
            return Err(Status::failed_precondition(format!(
                "plugin `{plugin}`: it speaks guest ABI version {version}, and this host versions 1 \
                 to 4; rebuild it against docs/wasm-abi.md"
            )));
        }
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| Status::internal(format!("plugin `{plugin}` exports no memory")))?;
        store.data_mut().memory = Some(memory);
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
            version,
            handle: instance,
            generation: 0,
        })
    }

    /// One call into one instance.
    pub(super) fn run(
        &self,
        instance: &mut Instance,
        method: &str,
        request: &[u8],
        response: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Status> {
        let plugin = self.plugin();
        // At most the time left to the call it is made in, if any.
        let left = crate::services::time_left(self.limits.timeout());
        let deadline = Instant::now() + left;
        instance.arm(
            plugin,
            &self.limits,
            deadline,
            crate::services::caller_cancel(),
        )?;
        let base = instance.place(plugin, &self.limits, method, request)?;
        let at = |offset: usize| (base + offset) as i32;
        let store = &mut instance.store;
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
        let limit = self.limits.max_message_bytes;
        let memory = instance.memory.data(&instance.store);
        response(slot::outcome(memory, base, limit, code, plugin, method)?);
        Ok(())
    }
}

/// A failure inside the guest, as a status naming the plugin.
pub(super) fn trapped(
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
            "plugin `{plugin}`: {what} did not finish within {}; it was stopped",
            crate::services::limit_hit(limits.timeout_ms)
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
