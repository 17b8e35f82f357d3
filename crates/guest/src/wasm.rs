//! The wasm mechanism's guest side: the exports of `docs/wasm-abi.md`, and
//! the host's imports as Rust functions.
//!
//! [`export_wasm!`](crate::export_wasm) defines the exports; a crate built
//! for `wasm32-unknown-unknown` with it is a plugin. The module is single
//! threaded: one instance serves one call at a time.

use std::cell::RefCell;
use std::sync::OnceLock;

use outlet_protocol::Status;

use crate::Plugin;

mod alloc;
mod stream;
pub use alloc::Allocator;
#[doc(hidden)]
pub use stream::{close_exported, next_exported, open_exported};

/// The version of the guest ABI: 4, which exports streams (`outlet_open`,
/// `outlet_next`, `outlet_close`, importing `next_request`); 3 imported
/// `time_left`, `cancelled` and `trace`; 2 kept the call buffer until the
/// next `outlet_alloc`.
pub const ABI_VERSION: i32 = 4;

static PLUGIN: OnceLock<Plugin> = OnceLock::new();

thread_local! {
    /// Where the host writes the next call.
    static INPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The last answer, kept until the next call.
    static ANSWER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "outlet")]
unsafe extern "C" {
    fn log(level: i32, ptr: *const u8, len: usize);
    fn config(key_ptr: *const u8, key_len: usize) -> i64;
    fn call(
        method_ptr: *const u8,
        method_len: usize,
        request_ptr: *const u8,
        request_len: usize,
    ) -> i64;
    fn take(ptr: *mut u8);
    fn time_left() -> i64;
    fn cancelled() -> i32;
    fn trace(which: i32) -> i64;
    fn next_request() -> i64;
}

/// The trace context of the call being served, from the host.
fn host_trace() -> Option<outlet_protocol::context::TraceContext> {
    let part = |which: i32| -> Option<String> {
        #[cfg(target_arch = "wasm32")]
        {
            // SAFETY: the import takes a number and returns one.
            let len = usize::try_from(unsafe { trace(which) }).ok()?;
            let mut value = vec![0u8; len];
            // SAFETY: `take` writes the pending value, `len` bytes, at the
            // pointer, which has room for them.
            unsafe { take(value.as_mut_ptr()) };
            String::from_utf8(value).ok()
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = which;
            None
        }
    };
    outlet_protocol::context::TraceContext::new(&part(0)?, &part(1).unwrap_or_default())
}

/// The time left to the call being served, from the host.
fn host_time_left() -> Option<std::time::Duration> {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the import takes nothing and returns a number.
    let left = unsafe { time_left() };
    #[cfg(not(target_arch = "wasm32"))]
    let left = -1;
    u64::try_from(left)
        .ok()
        .map(std::time::Duration::from_micros)
}

/// Whether the host's caller cancelled the call being served.
fn host_cancelled() -> bool {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the import takes nothing and returns a number.
    return unsafe { cancelled() } != 0;
    #[cfg(not(target_arch = "wasm32"))]
    false
}

/// Logs a line through the host, at 0 trace … 4 error.
pub fn host_log(level: i32, message: &str) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the import reads `len` bytes at `ptr`, which `message` holds.
    unsafe {
        log(level, message.as_ptr(), message.len())
    };
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (level, message);
}

/// The value of a config key, as the host holds it.
pub fn host_config(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    {
        // SAFETY: the import reads `key_len` bytes at `key_ptr`.
        let len = unsafe { config(key.as_ptr(), key.len()) };
        let len = usize::try_from(len).ok()?;
        let mut value = vec![0u8; len];
        // SAFETY: `value` has room for the pending value's `len` bytes.
        unsafe { take(value.as_mut_ptr()) };
        String::from_utf8(value).ok()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = key;
        None
    }
}

/// The host, as a transport: a plugin calls the services its host offers
/// through a generated client over it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Host;

impl outlet_protocol::Transport for Host {
    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        #[cfg(target_arch = "wasm32")]
        {
            // SAFETY: the import reads the two byte ranges it is given.
            let packed = unsafe {
                call(
                    method.as_ptr(),
                    method.len(),
                    request.as_ptr(),
                    request.len(),
                )
            };
            let (code, len) = ((packed >> 32) as i32, (packed & 0xffff_ffff) as usize);
            let mut answer = vec![0u8; len];
            // SAFETY: `answer` has room for the pending answer's `len` bytes.
            unsafe { take(answer.as_mut_ptr()) };
            match code {
                0 => Ok(answer),
                code => Err(Status::new(
                    outlet_protocol::Code::from_i32(code),
                    String::from_utf8_lossy(&answer).into_owned(),
                )),
            }
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = (method, request);
            Err(Status::unavailable("not running as a wasm plugin"))
        }
    }
}

/// `outlet_alloc`: a buffer for the host to write calls into, valid until
/// the next `outlet_alloc`.
#[doc(hidden)]
pub fn alloc(len: usize) -> *mut u8 {
    INPUT.with(|input| {
        let mut input = input.borrow_mut();
        if input.len() != len {
            // The old buffer goes first, so that both are never held.
            *input = Vec::new();
            if input.try_reserve_exact(len).is_err() {
                return std::ptr::null_mut();
            }
            input.resize(len, 0);
        }
        input.as_mut_ptr()
    })
}

/// `outlet_call`: runs the call written into the input buffer.
#[doc(hidden)]
pub fn call_exported(
    make: fn() -> Plugin,
    method: (usize, usize),
    request: (usize, usize),
    out: usize,
) -> i32 {
    INPUT.with(|input| {
        ANSWER.with(|answer| {
            let input = input.borrow();
            let mut answer = answer.borrow_mut();
            answer.clear();
            let base = input.as_ptr() as usize;
            let slice = |(ptr, len): (usize, usize)| {
                ptr.checked_sub(base)
                    .and_then(|start| input.get(start..start.checked_add(len)?))
            };
            let code = match (slice(method), slice(request)) {
                (Some(method), Some(request)) => {
                    let plugin = plugin(make);
                    let result = std::str::from_utf8(method)
                        .map_err(|_| Status::invalid_argument("the method is not UTF-8"))
                        .and_then(|method| plugin.handle(method, request, &mut answer));
                    match result {
                        Ok(()) => 0,
                        Err(status) => {
                            answer.clear();
                            answer.extend_from_slice(status.message().as_bytes());
                            status.code().as_i32()
                        }
                    }
                }
                _ => {
                    answer
                        .extend_from_slice(b"the call is not inside the buffer outlet_alloc gave");
                    outlet_protocol::Code::InvalidArgument.as_i32()
                }
            };
            drop(input);
            answered(out, &answer);
            code
        })
    })
}

/// Writes where `answer` lies into the 8-byte slot at `out`, which the ABI
/// puts at the start of the input buffer (and nowhere else).
fn answered(out: usize, answer: &[u8]) {
    let slot = (answer.as_ptr() as u64) | ((answer.len() as u64) << 32);
    INPUT.with(|input| {
        let mut input = input.borrow_mut();
        if out == input.as_ptr() as usize
            && let Some(bytes) = input.get_mut(..8)
        {
            bytes.copy_from_slice(&slot.to_le_bytes());
        }
    });
}

/// The plugin, made on first use (with the host as its context's source).
fn plugin(make: fn() -> Plugin) -> &'static Plugin {
    PLUGIN.get_or_init(|| {
        outlet_protocol::context::set_source(outlet_protocol::context::Source {
            time_left: host_time_left,
            cancelled: host_cancelled,
            trace: host_trace,
        });
        make()
    })
}

/// Exports a Rust plugin as a wasm module with the exports of
/// `docs/wasm-abi.md`. Build the crate as a `cdylib` for
/// `wasm32-unknown-unknown`.
///
/// ```text
/// outlet_guest::export_wasm!(greeter::plugin);
/// ```
#[macro_export]
macro_rules! export_wasm {
    ($make:path) => {
        /// The guest ABI's version.
        #[unsafe(no_mangle)]
        pub extern "C" fn outlet_abi_version() -> i32 {
            $crate::wasm::ABI_VERSION
        }

        /// A buffer for the host to write calls into, kept until the next
        /// `outlet_alloc`.
        #[unsafe(no_mangle)]
        pub extern "C" fn outlet_alloc(len: usize) -> *mut u8 {
            $crate::wasm::alloc(len)
        }

        /// Runs one call.
        #[unsafe(no_mangle)]
        pub extern "C" fn outlet_call(
            method_ptr: usize,
            method_len: usize,
            request_ptr: usize,
            request_len: usize,
            out_ptr: usize,
        ) -> i32 {
            $crate::wasm::call_exported(
                $make,
                (method_ptr, method_len),
                (request_ptr, request_len),
                out_ptr,
            )
        }

        /// Opens a stream of the method written into the input buffer.
        #[unsafe(no_mangle)]
        pub extern "C" fn outlet_open(method_ptr: usize, method_len: usize, out_ptr: usize) -> i32 {
            $crate::wasm::open_exported($make, (method_ptr, method_len), out_ptr)
        }

        /// The open stream's next response; -1 once it has ended.
        #[unsafe(no_mangle)]
        pub extern "C" fn outlet_next(out_ptr: usize) -> i32 {
            $crate::wasm::next_exported(out_ptr)
        }

        /// Drops the open stream.
        #[unsafe(no_mangle)]
        pub extern "C" fn outlet_close() {
            $crate::wasm::close_exported()
        }
    };
}
