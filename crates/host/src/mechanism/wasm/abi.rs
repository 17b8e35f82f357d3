//! The host functions of the guest ABI (docs/wasm-abi.md), and the exports
//! it asks of a module.

use std::time::Instant;

use outlet_protocol::Code;
use wasmtime::{AsContextMut, Caller, Extern, Linker, Memory, Module};

use super::error::WasmError;
use super::instance::State;

/// Checks that `module` exports what the guest ABI asks for.
pub(super) fn check_exports(module: &Module) -> Result<(), WasmError> {
    for (name, kind) in [
        ("memory", "memory"),
        ("outlet_abi_version", "func"),
        ("outlet_alloc", "func"),
        ("outlet_call", "func"),
    ] {
        let found = module.get_export(name);
        let ok = matches!(
            (&found, kind),
            (Some(wasmtime::ExternType::Memory(_)), "memory")
                | (Some(wasmtime::ExternType::Func(_)), "func")
        );
        if !ok {
            return Err(WasmError::MissingExport { name, kind });
        }
    }
    Ok(())
}

/// Links the host functions of `docs/wasm-abi.md`: nothing else.
pub(super) fn link(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "outlet",
        "log",
        |mut caller: Caller<'_, State>, level: i32, ptr: i32, len: i32| {
            let line = read(&mut caller, ptr, len)?;
            let env = &caller.data().env;
            let mut limit = env.log.lock().unwrap_or_else(|e| e.into_inner());
            limit.numbered(&env.plugin, level, &line);
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
            // The answer goes where the last one went, and the method and
            // request are read where the guest left them: no copies.
            let mut answer = std::mem::take(&mut caller.data_mut().pending);
            answer.clear();
            let memory = memory(&mut caller)?;
            let (data, state) = memory.data_and_store_mut(&mut caller);
            let (method, request) = (slice(data, mptr, mlen)?, slice(data, rptr, rlen)?);
            let method = String::from_utf8_lossy(method);
            let env = &state.env;
            let answered = env
                .services
                .call_with(&env.caller, &method, request, &mut |bytes| {
                    answer.extend_from_slice(bytes);
                });
            let code = match answered {
                // The length must fit the low 32 bits of the answer.
                Ok(()) if answer.len() > u32::MAX as usize / 2 => {
                    answer.clear();
                    answer.extend_from_slice(b"the host's answer is too large for a wasm guest");
                    Code::ResourceExhausted.as_i32()
                }
                Ok(()) => 0,
                Err(status) => {
                    answer.clear();
                    answer.extend_from_slice(status.message().as_bytes());
                    status.code().as_i32()
                }
            };
            let len = answer.len() as i64;
            state.pending = answer;
            Ok((i64::from(code) << 32) | len)
        },
    )?;
    // The running call's time left in microseconds, and whether its caller
    // cancelled it: what `outlet_guest::context` asks.
    linker.func_wrap("outlet", "time_left", |caller: Caller<'_, State>| {
        let left = caller
            .data()
            .call
            .0
            .saturating_duration_since(Instant::now());
        i64::try_from(left.as_micros()).unwrap_or(i64::MAX)
    })?;
    linker.func_wrap("outlet", "cancelled", |caller: Caller<'_, State>| {
        i32::from(
            caller
                .data()
                .call
                .1
                .as_ref()
                .is_some_and(|c| c.is_cancelled()),
        )
    })?;
    // The running call's trace context: 0 its traceparent, 1 its
    // tracestate; the length, fetched with `take`, or -1 if it has none.
    linker.func_wrap(
        "outlet",
        "trace",
        |mut caller: Caller<'_, State>, which: i32| {
            let state = caller.data_mut();
            let value = state.call.2.as_ref().map(|trace| match which {
                0 => trace.traceparent(),
                _ => trace.tracestate(),
            });
            Ok(match value {
                Some(value) => {
                    let len = value.len() as i64;
                    state.pending = value.as_bytes().to_vec();
                    len
                }
                None => -1,
            })
        },
    )?;
    // The open stream's next request: -1 once there is none; else the
    // code (0, or the error the requests failed with) in the high 32 bits
    // and the length of the request or message, fetched with `take`.
    linker.func_wrap("outlet", "next_request", |mut caller: Caller<'_, State>| {
        let state = caller.data_mut();
        let Some(requests) = state.requests.as_mut() else {
            return -1;
        };
        let (code, value) = match requests.next() {
            None => {
                state.requests = None;
                return -1;
            }
            Some(Ok(request)) if request.len() <= u32::MAX as usize / 2 => (0, request),
            Some(Ok(_)) => (
                Code::ResourceExhausted.as_i32(),
                b"the request is too large for a wasm guest".to_vec(),
            ),
            Some(Err(status)) => (status.code().as_i32(), status.message().as_bytes().to_vec()),
        };
        if code != 0 {
            state.requests = None;
        }
        let len = value.len() as i64;
        state.pending = value;
        // The time the caller's code took is not the plugin's: its limit
        // starts again.
        if let Some((deadline, timeout)) = state.stream {
            let now = Instant::now();
            let until = deadline.map_or(now + timeout, |d| d.min(now + timeout));
            state.call.0 = until;
            if state.call.1.is_none() {
                let ticks = super::engine::deadline_ticks(until.saturating_duration_since(now));
                caller.as_context_mut().set_epoch_deadline(ticks);
            }
        }
        (i64::from(code) << 32) | len
    })?;
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
    // Found once per instance; before that (a host function called while
    // the module starts), by its name.
    if let Some(memory) = caller.data().memory {
        return Ok(memory);
    }
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => Ok(memory),
        _ => Err(wasmtime::Error::msg("the module exports no memory")),
    }
}

/// The bytes the guest points at in `data`, its memory, bounds-checked.
fn slice(data: &[u8], ptr: i32, len: i32) -> wasmtime::Result<&[u8]> {
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    data.get(ptr..ptr.saturating_add(len))
        .ok_or_else(|| wasmtime::Error::msg("a host function was given bytes outside the memory"))
}

/// Bytes the guest points at, bounds-checked.
fn read(caller: &mut Caller<'_, State>, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    let memory = memory(caller)?;
    slice(memory.data(&*caller), ptr, len).map(<[u8]>::to_vec)
}
