//! The C ABI of `include/outlet.h`, as Rust types: the one definition that
//! the host's loader and the guest SDK's exporter share. Only types and
//! constants live here; the code that crosses the boundary is in
//! `outlet-dylib` (host) and `outlet_guest::cabi` (plugin).
//!
//! Function pointers are `Option`s, so a table with a null entry is
//! representable and can be refused instead of called.

use std::ffi::{c_char, c_void};

/// The ABI version this build speaks (`OUTLET_ABI_VERSION`).
pub const ABI_VERSION: u32 = 1;

/// The symbol a cabi plugin exports (`OUTLET_ENTRY_SYMBOL`).
pub const ENTRY_SYMBOL: &str = "outlet_plugin_entry";

/// Bytes written by one side, released by the same side (`outlet_buf`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Buf {
    /// The bytes; null when `len` is 0.
    pub ptr: *mut u8,
    /// How many.
    pub len: usize,
}

impl Buf {
    /// No bytes.
    pub const EMPTY: Buf = Buf {
        ptr: std::ptr::null_mut(),
        len: 0,
    };
}

/// `outlet_host_table`: what the host offers a plugin.
#[repr(C)]
#[derive(Debug)]
pub struct HostTable {
    /// [`ABI_VERSION`].
    pub abi_version: u32,
    /// `size_of::<HostTable>()` as the host built it.
    pub struct_size: u32,
    /// Opaque to the plugin: passed back to the functions below.
    pub host: *mut c_void,
    /// Logs one line (UTF-8, not NUL-terminated) at a level 0–4
    /// (trace, debug, info, warn, error).
    pub log: Option<extern "C" fn(host: *mut c_void, level: i32, message: *const u8, len: usize)>,
    /// Calls into the host; returns a gRPC code and writes the answer.
    pub call: Option<
        extern "C" fn(
            host: *mut c_void,
            method: *const u8,
            method_len: usize,
            request: *const u8,
            request_len: usize,
            response: *mut Buf,
        ) -> i32,
    >,
    /// Releases an answer of `call`.
    pub free_response: Option<extern "C" fn(host: *mut c_void, response: Buf)>,
    /// The time left to the call being served, in microseconds; -1 when it
    /// has no deadline. Present when `struct_size` reaches it.
    pub time_left: Option<extern "C" fn(host: *mut c_void) -> i64>,
    /// 1 when the caller of the call being served cancelled it, else 0.
    pub cancelled: Option<extern "C" fn(host: *mut c_void) -> i32>,
    /// The W3C trace context of the call being served: `which` 0 its
    /// `traceparent`, 1 its `tracestate`. Copies at most `cap` bytes to
    /// `buf` and returns the value's length (0: none).
    pub trace:
        Option<extern "C" fn(host: *mut c_void, which: i32, buf: *mut u8, cap: usize) -> usize>,
    /// A stream's next request, pulled by the plugin's `open` and `next`
    /// of that stream (`requests` is what `open` was given): 0 with the
    /// request in `*request` (the host's, valid until the stream's next
    /// `next_request` or its `close`), -1 once there are none, or a code
    /// with a message. Present when `struct_size` reaches it.
    pub next_request:
        Option<extern "C" fn(host: *mut c_void, requests: *mut c_void, request: *mut Buf) -> i32>,
}

/// `outlet_plugin_table`: what a plugin offers the host.
#[repr(C)]
#[derive(Debug)]
pub struct PluginTable {
    /// [`ABI_VERSION`].
    pub abi_version: u32,
    /// `size_of::<PluginTable>()` as the plugin built it.
    pub struct_size: u32,
    /// The plugin's name, NUL-terminated.
    pub name: *const c_char,
    /// The plugin's version, NUL-terminated.
    pub version: *const c_char,
    /// Hello: an encoded `HelloRequest` in, an encoded `HelloResponse` out.
    pub hello: Option<
        extern "C" fn(
            host: *const HostTable,
            request: *const u8,
            request_len: usize,
            response: *mut Buf,
        ) -> i32,
    >,
    /// One call of the interface, by gRPC path.
    pub call: Option<
        extern "C" fn(
            method: *const u8,
            method_len: usize,
            request: *const u8,
            request_len: usize,
            response: *mut Buf,
        ) -> i32,
    >,
    /// Releases a buffer the plugin wrote.
    pub free: Option<extern "C" fn(buffer: Buf)>,
    /// Configure: an encoded `ConfigureRequest` in, nothing out.
    pub configure:
        Option<extern "C" fn(request: *const u8, request_len: usize, response: *mut Buf) -> i32>,
    /// The last call.
    pub shutdown: Option<extern "C" fn()>,
}

/// `outlet_plugin_table` with the functions of streams after the first
/// fields (a [`PluginTable`]): what a plugin whose `struct_size` reaches
/// them offers. Null functions, or a shorter table: no streams.
#[repr(C)]
#[derive(Debug)]
pub struct StreamingPluginTable {
    /// The fields of every version.
    pub base: PluginTable,
    /// Opens a stream of `method` (a gRPC path) whose requests the plugin
    /// pulls with the host's `next_request`, passing `requests`: 0 with
    /// `*stream` set, or a code with a message in `*response`.
    pub open: Option<
        extern "C" fn(
            method: *const u8,
            method_len: usize,
            requests: *mut c_void,
            stream: *mut *mut c_void,
            response: *mut Buf,
        ) -> i32,
    >,
    /// The stream's next response: 0 with it in `*response`, -1 once the
    /// stream has ended, or a code with a message (the stream is then
    /// over). `*response` is released with `free` in every case.
    pub next: Option<extern "C" fn(stream: *mut c_void, response: *mut Buf) -> i32>,
    /// Releases a stream, ended or not: the last call about it.
    pub close: Option<extern "C" fn(stream: *mut c_void)>,
}
