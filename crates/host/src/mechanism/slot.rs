//! The answer slot of the wasm guest ABI (docs/wasm-abi.md): the 8 bytes
//! where a guest leaves the pointer and length (`u32`, little-endian) of
//! its answer. Read here with every bound checked, apart from wasmtime, so
//! that it can be fuzzed alone.

use outlet_protocol::{Code, Status};

/// Why the answer a guest points at cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotError {
    /// The slot itself lies outside the memory.
    Slot {
        /// Where the slot is.
        base: usize,
        /// The memory's size.
        memory: usize,
    },
    /// The answer is longer than the limit.
    TooLarge {
        /// The answer's length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The answer lies outside the memory.
    Outside {
        /// Where the answer starts.
        ptr: usize,
        /// The answer's length.
        len: usize,
        /// The memory's size.
        memory: usize,
    },
}

/// The status of a call whose answer `error` kept from the host.
pub fn status(plugin: &str, what: &str, error: &SlotError) -> Status {
    match *error {
        SlotError::TooLarge { len, limit } => Status::resource_exhausted(format!(
            "plugin `{plugin}`: its answer to {what} is {len} bytes, over the limit of {limit} \
             (limits.max_message_bytes)"
        )),
        SlotError::Slot { base, memory } => Status::internal(format!(
            "plugin `{plugin}`: the answer slot of {what} lies outside its memory (at {base}, \
             memory of {memory} bytes)"
        )),
        SlotError::Outside { ptr, len, memory } => Status::internal(format!(
            "plugin `{plugin}`: its answer to {what} lies outside its memory ({len} bytes at \
             {ptr}, memory of {memory} bytes)"
        )),
    }
}

/// The answer the slot at `base` in `memory` points at, of at most `limit`
/// bytes.
pub fn answer(memory: &[u8], base: usize, limit: usize) -> Result<&[u8], SlotError> {
    let slot: &[u8; 8] = base
        .checked_add(8)
        .and_then(|end| memory.get(base..end))
        .and_then(|slot| slot.try_into().ok())
        .ok_or(SlotError::Slot {
            base,
            memory: memory.len(),
        })?;
    let [p0, p1, p2, p3, l0, l1, l2, l3] = *slot;
    let ptr = u32::from_le_bytes([p0, p1, p2, p3]) as usize;
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    if len > limit {
        return Err(SlotError::TooLarge { len, limit });
    }
    ptr.checked_add(len)
        .and_then(|end| memory.get(ptr..end))
        .ok_or(SlotError::Outside {
            ptr,
            len,
            memory: memory.len(),
        })
}

/// What a guest's function returned, `code`, with the slot at `base`: the
/// answer for 0, else the error of that code with the slot's bytes as its
/// message. `what` names the call in messages.
pub fn outcome<'m>(
    memory: &'m [u8],
    base: usize,
    limit: usize,
    code: i32,
    plugin: &str,
    what: &str,
) -> Result<&'m [u8], Status> {
    let answer = answer(memory, base, limit).map_err(|error| status(plugin, what, &error))?;
    match code {
        0 => Ok(answer),
        code => Err(Status::new(
            Code::from_i32(code),
            String::from_utf8_lossy(answer).into_owned(),
        )),
    }
}
