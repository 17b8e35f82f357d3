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

mod abi;
pub(crate) mod cache;
mod engine;
mod error;
mod instance;
mod stream;
mod wasi;

use std::sync::{Arc, Mutex, RwLock};

use outlet_manifest::{Limits, Manifest};
use outlet_protocol::{Code, Status, Transport, core};
use wasmtime::{InstancePre, Linker};

use super::{Backend, Session};
use crate::error::LoadError;
use crate::services::HostServices;
pub use error::WasmError;
use instance::{Instance, State};
use wasi::Grants;

/// Instances kept per plugin, one per slot: a thread calls through "its"
/// slot, or the next free one.
const SLOTS: usize = 16;

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

/// What the host functions of one plugin share.
struct Env {
    plugin: String,
    /// The plugin as the host's services know it, with its grants.
    caller: crate::services::Caller,
    services: Arc<HostServices>,
    session: RwLock<Session>,
    /// The guest's `log` lines, held to the log's rate.
    log: Mutex<crate::log::Limiter>,
}

/// A loaded wasm plugin: its module ready to instantiate, and its warm
/// instances.
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
    /// Compiles the module (or loads it from `module_cache`), links the host
    /// functions, and makes one instance, so that a module that cannot
    /// start fails the load.
    pub(crate) fn new(
        manifest: &Manifest,
        services: Arc<HostServices>,
        module_cache: Option<&std::path::Path>,
    ) -> Result<Wasm, LoadError> {
        let plugin = manifest.name.clone();
        let refuse = |error: WasmError| LoadError::Wasm {
            plugin: plugin.clone(),
            error,
        };
        let engine = engine::engine(manifest.limits.fuel.is_some()).map_err(refuse)?;
        let module = cache::load_module(engine, manifest, module_cache)?;
        abi::check_exports(&module).map_err(refuse)?;
        let mut linker: Linker<State> = Linker::new(engine);
        let link_error = |e: wasmtime::Error| WasmError::Link {
            reason: e.to_string(),
        };
        abi::link(&mut linker).map_err(|e| refuse(link_error(e)))?;
        let imports_wasi = module.imports().any(|i| i.module() == wasi::MODULE);
        if imports_wasi {
            wasi::link(&mut linker, instance::wasi_of).map_err(|e| refuse(link_error(e)))?;
        }
        let pre = linker.instantiate_pre(&module).map_err(|e| {
            refuse(WasmError::Imports {
                reason: e.to_string(),
            })
        })?;
        let grants = match imports_wasi {
            true => Some(Grants::new(manifest).map_err(refuse)?),
            false => None,
        };
        let wasm = Wasm {
            env: Arc::new(Env {
                plugin,
                caller: crate::services::Caller::of(manifest),
                services,
                session: RwLock::new(Session::default()),
                log: Mutex::new(crate::log::Limiter::new("log")),
            }),
            pre,
            limits: manifest.limits.clone(),
            fuel: manifest.limits.fuel,
            grants,
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
            generation: Default::default(),
        };
        let instance = wasm.instantiate().map_err(|status| {
            // Its message names the plugin, as a call's would; the load
            // error names it once.
            let named = format!("plugin `{}`: ", manifest.name);
            let message = status.message();
            LoadError::Wasm {
                plugin: manifest.name.clone(),
                error: WasmError::Start {
                    code: status.code(),
                    reason: message.strip_prefix(&named).unwrap_or(message).to_owned(),
                },
            }
        })?;
        *wasm.slots[home_slot()]
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(instance);
        Ok(wasm)
    }

    fn plugin(&self) -> &str {
        &self.env.plugin
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
}

impl Transport for Wasm {
    fn open(
        &self,
        method: &str,
        requests: outlet_protocol::Messages<Vec<u8>>,
    ) -> Result<outlet_protocol::Messages<Vec<u8>>, Status> {
        self.open_stream(method, requests)
    }

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
            // The call, its chain and its deadline go with it.
            let (depth, carried) = (DEPTH.get(), crate::services::carry());
            let mut answer = Vec::new();
            let result = std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        DEPTH.set(depth);
                        carried.resume(|| {
                            self.call_with(method, request, &mut |bytes| answer = bytes.to_vec())
                        })
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
}

impl Backend for Wasm {
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
