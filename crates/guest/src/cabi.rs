//! The cabi mechanism's guest side: a Rust plugin behind the C ABI of
//! `include/outlet.h`, for hosts in any language.
//!
//! [`export_cabi!`](crate::export_cabi) defines the entry symbol; the
//! functions of the table are here. Every one catches panics, which become a
//! status with the panic's message: nothing unwinds into the host.

use std::ffi::CString;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use outlet_protocol::Status;
use outlet_protocol::cabi::{ABI_VERSION, Buf, HostTable};
use outlet_protocol::core;

use crate::Plugin;

pub use outlet_protocol::cabi::PluginTable;

static PLUGIN: OnceLock<Plugin> = OnceLock::new();
static EXPORTED: OnceLock<Exported> = OnceLock::new();

/// The table, and the strings its `name` and `version` point into.
struct Exported {
    table: PluginTable,
    _name: CString,
    _version: CString,
}

// SAFETY: the table's pointers are to functions and to the two `CString`s
// beside it, which are never written after `entry` builds them; sharing it
// between threads shares nothing mutable.
unsafe impl Sync for Exported {}
// SAFETY: as for `Sync`: nothing in it is tied to a thread.
unsafe impl Send for Exported {}

/// Makes the plugin and returns the table behind the entry symbol, or null
/// if making the plugin panicked. Called by [`export_cabi!`](crate::export_cabi).
#[doc(hidden)]
pub fn entry(make: fn() -> Plugin) -> *const PluginTable {
    let Ok(plugin) = catch_unwind(|| PLUGIN.get_or_init(make)) else {
        eprintln!("outlet-guest: making the plugin panicked; it cannot be loaded");
        return std::ptr::null();
    };
    let exported = EXPORTED.get_or_init(|| {
        let text = |s: &str| CString::new(s.replace('\0', "")).unwrap_or_default();
        let (name, version) = (text(plugin.name()), text(plugin.version()));
        Exported {
            table: PluginTable {
                abi_version: ABI_VERSION,
                struct_size: std::mem::size_of::<PluginTable>() as u32,
                name: name.as_ptr(),
                version: version.as_ptr(),
                hello: Some(hello),
                call: Some(call),
                free: Some(free),
                configure: Some(configure),
                shutdown: Some(shutdown),
            },
            _name: name,
            _version: version,
        }
    });
    &exported.table
}

/// Runs `f` with the plugin (made on first use), catching panics, and writes
/// its answer (the bytes, or the status's message) into `out`.
fn answer(out: *mut Buf, f: impl FnOnce(&Plugin) -> Result<Vec<u8>, Status>) -> i32 {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let plugin = PLUGIN
            .get()
            .ok_or_else(|| Status::internal("the entry symbol was not called"))?;
        f(plugin)
    }))
    .unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with no message".into());
        Err(Status::internal(format!("the plugin panicked: {message}")))
    });
    let (code, bytes) = match result {
        Ok(bytes) => (0, bytes),
        Err(status) => (status.code().as_i32(), status.message().as_bytes().to_vec()),
    };
    if out.is_null() {
        return outlet_protocol::Code::InvalidArgument.as_i32();
    }
    let bytes = Box::into_raw(bytes.into_boxed_slice());
    // SAFETY: `out` is non-null, and `outlet.h` has the host pass a place
    // for the answer that is valid for the call.
    unsafe {
        *out = Buf {
            ptr: bytes.cast::<u8>(),
            len: bytes.len(),
        };
    }
    code
}

/// The bytes the host lends for a call.
fn borrowed<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: `outlet.h` has the host pass `len` readable bytes at `ptr`,
    // valid until the call returns; the slice does not outlive the call.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

extern "C" fn hello(host: *const HostTable, request: *const u8, len: usize, out: *mut Buf) -> i32 {
    let request = borrowed(request, len);
    answer(out, |plugin| {
        if host.is_null() {
            return Err(Status::failed_precondition("Hello came without a host table"));
        }
        plugin.call(core::HELLO, request)
    })
}

extern "C" fn call(
    method: *const u8,
    method_len: usize,
    request: *const u8,
    len: usize,
    out: *mut Buf,
) -> i32 {
    let method = String::from_utf8_lossy(borrowed(method, method_len));
    let request = borrowed(request, len);
    answer(out, |plugin| plugin.call(&method, request))
}

extern "C" fn configure(request: *const u8, len: usize, out: *mut Buf) -> i32 {
    let request = borrowed(request, len);
    answer(out, |plugin| plugin.call(core::CONFIGURE, request))
}

extern "C" fn free(buffer: Buf) {
    if !buffer.ptr.is_null() {
        let slice = std::ptr::slice_from_raw_parts_mut(buffer.ptr, buffer.len);
        // SAFETY: `answer` made this buffer with `Box::into_raw` of a boxed
        // slice of this length, and `outlet.h` has the host free it once.
        drop(unsafe { Box::from_raw(slice) });
    }
}

extern "C" fn shutdown() {
    let _ = catch_unwind(|| {
        if let Some(plugin) = PLUGIN.get() {
            let _ = plugin.call(core::SHUTDOWN, &[]);
        }
    });
}

/// Exports a Rust plugin through the C ABI of `include/outlet.h`: defines
/// the entry symbol `outlet_plugin_entry`. Build the crate as a `cdylib`.
///
/// The argument is a function that makes the [`Plugin`]; it runs once, on
/// the host's first call.
///
/// ```text
/// outlet_guest::export_cabi!(greeter::plugin);
/// ```
#[macro_export]
macro_rules! export_cabi {
    ($make:path) => {
        /// The entry symbol of `include/outlet.h`.
        #[unsafe(no_mangle)]
        pub extern "C" fn outlet_plugin_entry() -> *const $crate::cabi::PluginTable {
            $crate::cabi::entry($make)
        }
    };
}
