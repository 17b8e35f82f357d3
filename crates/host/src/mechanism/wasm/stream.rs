//! Streams to a wasm plugin (guest ABI 4): an instance made for the stream
//! and dropped with it. `outlet_open` opens the stream in it; each response
//! is one `outlet_next`, the guest's code pulling the caller's requests
//! with the `next_request` import as it reads them; `outlet_close` drops
//! it. So nothing is buffered between the caller and the plugin, as in a
//! native plugin, while the guest stays in its sandbox. Each call into the
//! guest is held to the caller's deadline and cancel and to
//! `limits.timeout_ms`, each response to `limits.max_message_bytes`.

use std::time::Instant;

use outlet_manifest::Limits;
use outlet_protocol::context::Cancel;
use outlet_protocol::{Messages, Status};
use wasmtime::TypedFunc;

use super::Wasm;
use super::instance::{Instance, trapped};
use crate::mechanism::slot;

/// The exports of a guest that streams.
struct Exports {
    open: TypedFunc<(i32, i32, i32), i32>,
    next: TypedFunc<i32, i32>,
    close: TypedFunc<(), ()>,
}

impl Wasm {
    pub(super) fn open_stream(
        &self,
        method: &str,
        requests: Messages<Vec<u8>>,
    ) -> Result<Messages<Vec<u8>>, Status> {
        let plugin = self.plugin();
        if let Some(refused) = wasi_on_runtime(self.grants.is_some(), plugin) {
            return Err(refused);
        }
        let mut instance = self.instantiate()?;
        self.ready(&mut instance)?;
        let exports = exports(&mut instance).ok_or_else(|| {
            Status::unimplemented(format!(
                "plugin `{plugin}`: {method} streams, and its module has none (guest ABI \
                 version {}, without outlet_open, outlet_next and outlet_close); rebuild it \
                 with outlet-guest, or see docs/wasm-abi.md",
                instance.version
            ))
        })?;
        let mut stream = Stream {
            wasi: self.grants.is_some(),
            plugin: plugin.to_owned(),
            limits: self.limits.clone(),
            method: method.to_owned(),
            deadline: crate::services::deadline_here(),
            cancel: crate::services::caller_cancel(),
            instance: Some(instance),
            exports,
            base: 0,
        };
        stream.open(requests)?;
        Ok(Messages::new(stream))
    }
}

/// The stream exports of `instance`'s module, if it has them all.
fn exports(instance: &mut Instance) -> Option<Exports> {
    if instance.version < 4 {
        return None;
    }
    let (handle, store) = (instance.handle, &mut instance.store);
    Some(Exports {
        open: handle.get_typed_func(&mut *store, "outlet_open").ok()?,
        next: handle.get_typed_func(&mut *store, "outlet_next").ok()?,
        close: handle.get_typed_func(&mut *store, "outlet_close").ok()?,
    })
}

/// A stream of a plugin that imports WASI cannot be read on a thread that
/// runs a tokio runtime: wasmtime-wasi blocks on a runtime of its own
/// inside WASI calls.
fn wasi_on_runtime(wasi: bool, plugin: &str) -> Option<Status> {
    (wasi && tokio::runtime::Handle::try_current().is_ok()).then(|| {
        Status::failed_precondition(format!(
            "plugin `{plugin}`: a stream of a plugin that imports WASI cannot be read on a \
             thread of a tokio runtime (its blocking pool included); read it on a thread of \
             its own (std::thread)"
        ))
    })
}

/// One open stream, in an instance of its own.
struct Stream {
    /// Whether the module imports WASI.
    wasi: bool,
    plugin: String,
    limits: Limits,
    method: String,
    deadline: Option<Instant>,
    cancel: Option<Cancel>,
    /// `None` once the stream ended: the instance goes with it.
    instance: Option<Instance>,
    exports: Exports,
    /// Where the guest's answer slot is.
    base: usize,
}

impl Stream {
    fn open(&mut self, requests: Messages<Vec<u8>>) -> Result<(), Status> {
        let opened = self.opening(requests);
        if opened.is_err() {
            // The guest's side is not open (or is broken): nothing to close.
            self.end(false);
        }
        opened
    }

    fn opening(&mut self, requests: Messages<Vec<u8>>) -> Result<(), Status> {
        self.arm()?;
        let timeout = self.limits.timeout();
        let instance = self.instance.as_mut().expect("open");
        instance.store.data_mut().requests = Some(requests);
        instance.store.data_mut().stream = Some((self.deadline, timeout));
        // The method goes where a call's would, after the answer slot.
        let base = instance.place(&self.plugin, &self.limits, &self.method, &[])?;
        self.base = base;
        let at = |offset: usize| (base + offset) as i32;
        let args = (at(8), self.method.len() as i32, at(0));
        let code = self.call(|exports, store| exports.open.call(store, args))?;
        match code {
            // An open stream leaves nothing in the slot.
            0 => Ok(()),
            code => self.outcome(code).map(drop),
        }
    }

    /// Readies the instance for one call into it.
    fn arm(&mut self) -> Result<(), Status> {
        let timeout = Instant::now() + self.limits.timeout();
        let until = self.deadline.map_or(timeout, |d| d.min(timeout));
        let instance = self.instance.as_mut().expect("armed while open");
        instance.arm(&self.plugin, &self.limits, until, self.cancel.clone())
    }

    /// Calls into the guest, as `f` does.
    fn call<R>(
        &mut self,
        f: impl FnOnce(&Exports, &mut wasmtime::Store<super::instance::State>) -> wasmtime::Result<R>,
    ) -> Result<R, Status> {
        self.arm()?;
        let instance = self.instance.as_mut().expect("open");
        f(&self.exports, &mut instance.store).map_err(|e| {
            // Stopped by its caller's cancel, at an epoch tick.
            if self.cancel.as_ref().is_some_and(Cancel::is_cancelled) {
                return crate::deadline::cancelled(&self.plugin, &self.method);
            }
            if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
                let over = match self.deadline {
                    Some(deadline) if Instant::now() >= deadline => {
                        "passed its caller's deadline".to_owned()
                    }
                    _ => format!(
                        "had no message for {} ms (limits.timeout_ms)",
                        self.limits.timeout_ms
                    ),
                };
                return Status::deadline_exceeded(format!(
                    "plugin `{}`: the stream of {} {over}; it was stopped",
                    self.plugin, self.method
                ));
            }
            let hit = instance.store.data().limit_hit();
            let what = format!("the stream of {}", self.method);
            trapped(&self.plugin, &what, e, &self.limits, hit)
        })
    }

    /// What the guest returned, `code`, with its answer slot: the message
    /// for 0, else the error.
    fn outcome(&self, code: i32) -> Result<Vec<u8>, Status> {
        let instance = self.instance.as_ref().expect("open");
        let what = format!("the stream of {}", self.method);
        let memory = instance.memory.data(&instance.store);
        let limit = self.limits.max_message_bytes;
        slot::outcome(memory, self.base, limit, code, &self.plugin, &what).map(<[u8]>::to_vec)
    }

    fn step(&mut self) -> Result<Option<Vec<u8>>, Status> {
        let base = self.base as i32;
        let code = self.call(|exports, store| exports.next.call(store, base))?;
        match code {
            -1 => Ok(None),
            code => self.outcome(code).map(Some),
        }
    }

    /// Ends the stream: the guest drops its side (when it can still run),
    /// and the instance goes.
    fn end(&mut self, clean: bool) {
        // Not where wasmtime-wasi cannot run the guest's WASI calls.
        let clean = clean && wasi_on_runtime(self.wasi, &self.plugin).is_none();
        if clean && self.instance.is_some() {
            let _ = self.call(|exports, store| exports.close.call(store, ()));
        }
        self.instance = None;
    }
}

impl Iterator for Stream {
    type Item = Result<Vec<u8>, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        self.instance.as_ref()?;
        let next = match wasi_on_runtime(self.wasi, &self.plugin) {
            Some(refused) => Some(Err(refused)),
            None => self.step().transpose(),
        };
        match &next {
            Some(Ok(_)) => {}
            // The guest closed its side itself.
            None | Some(Err(_)) => self.end(false),
        }
        next
    }
}

impl Drop for Stream {
    /// A stream its reader dropped early: the guest drops its side.
    fn drop(&mut self) {
        self.end(true);
    }
}
