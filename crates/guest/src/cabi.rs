//! The cabi mechanism's guest side: a Rust plugin behind the C ABI of
//! `include/outlet.h`, for hosts in any language.
//!
//! [`export_cabi!`](crate::export_cabi) defines the entry symbol; the
//! functions of the table are here. Every one catches panics, which become a
//! status with the panic's message: nothing unwinds into the host.

use std::cell::{Cell, RefCell};
use std::ffi::CString;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, Ordering};

use outlet_protocol::cabi::{ABI_VERSION, Buf, HostTable, StreamingPluginTable};
use outlet_protocol::core;
use outlet_protocol::{Messages, Status};

use crate::Plugin;

pub use outlet_protocol::cabi::PluginTable;

static PLUGIN: OnceLock<Plugin> = OnceLock::new();
static EXPORTED: OnceLock<Exported> = OnceLock::new();

/// The table, and the strings its `name` and `version` point into.
struct Exported {
    table: StreamingPluginTable,
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
            table: StreamingPluginTable {
                base: PluginTable {
                    abi_version: ABI_VERSION,
                    struct_size: std::mem::size_of::<StreamingPluginTable>() as u32,
                    name: name.as_ptr(),
                    version: version.as_ptr(),
                    hello: Some(hello),
                    call: Some(call),
                    free: Some(free),
                    configure: Some(configure),
                    shutdown: Some(shutdown),
                },
                open: Some(open),
                next: Some(next),
                close: Some(close),
            },
            _name: name,
            _version: version,
        }
    });
    &exported.table.base
}

thread_local! {
    /// Answers are written here and lent to the host until it calls `free`
    /// (on this thread, before its next call: `outlet.h`), so a call
    /// allocates nothing for its answer.
    static ANSWER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Whether `ANSWER` is lent out now. A call that comes while it is (the
    /// host called again from inside its handling of an answer) gets a
    /// buffer of its own.
    static LENT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the plugin, catching panics, and hands its answer (the
/// response, or the status's message) to the host through `out`.
fn answer(out: *mut Buf, f: impl FnOnce(&Plugin, &mut Vec<u8>) -> Result<(), Status>) -> i32 {
    if out.is_null() {
        return outlet_protocol::Code::InvalidArgument.as_i32();
    }
    let run = |buffer: &mut Vec<u8>| {
        let result = catch_unwind(AssertUnwindSafe(|| {
            let plugin = PLUGIN
                .get()
                .ok_or_else(|| Status::internal("the entry symbol was not called"))?;
            f(plugin, buffer)
        }));
        let status = match result {
            Ok(Ok(())) => return 0,
            Ok(Err(status)) => status,
            Err(panic) => Status::internal(panic_message(panic)),
        };
        buffer.clear();
        buffer.extend_from_slice(status.message().as_bytes());
        status.code().as_i32()
    };
    let shared = !LENT.get() && ANSWER.with(|cell| cell.try_borrow_mut().is_ok());
    let (code, lent) = if shared {
        ANSWER.with(|cell| {
            let mut buffer = cell.borrow_mut();
            buffer.clear();
            let code = run(&mut buffer);
            LENT.set(true);
            let lent = Buf {
                ptr: buffer.as_mut_ptr(),
                len: buffer.len(),
            };
            (code, lent)
        })
    } else {
        let mut buffer = Vec::new();
        let code = run(&mut buffer);
        let boxed = Box::into_raw(buffer.into_boxed_slice());
        let lent = Buf {
            ptr: boxed.cast::<u8>(),
            len: boxed.len(),
        };
        (code, lent)
    };
    // SAFETY: `out` is non-null, and `outlet.h` has the host pass a place
    // for the answer that is valid for the call.
    unsafe { *out = lent };
    code
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".into());
    format!("the plugin panicked: {message}")
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

/// The host's table, from Hello; valid until `shutdown` returns.
static HOST: AtomicPtr<HostTable> = AtomicPtr::new(std::ptr::null_mut());

/// The host's table, if Hello gave one, and whether it is long enough to
/// hold the field that ends at `end` (a table from an older host is shorter).
fn host_table(end: usize) -> Option<&'static HostTable> {
    let table = HOST.load(Ordering::Acquire);
    if table.is_null() {
        return None;
    }
    // SAFETY: as in `Host::call`: the table the host passed to Hello, valid
    // until `shutdown` returns, which clears `HOST` first. Its first fields
    // are in every version; later ones are read only if `struct_size` says
    // the host's table has them.
    let table = unsafe { &*table };
    (table.struct_size as usize >= end).then_some(table)
}

/// The end of a function-pointer field that starts at `offset`.
const fn end_of(offset: usize) -> usize {
    offset + std::mem::size_of::<usize>()
}

/// The time left to the call being served, from the host.
fn host_time_left() -> Option<std::time::Duration> {
    let table = host_table(end_of(std::mem::offset_of!(HostTable, time_left)))?;
    let left = (table.time_left?)(table.host);
    u64::try_from(left)
        .ok()
        .map(std::time::Duration::from_micros)
}

/// The trace context of the call being served, from the host.
fn host_trace() -> Option<outlet_protocol::context::TraceContext> {
    let table = host_table(end_of(std::mem::offset_of!(HostTable, trace)))?;
    let trace = table.trace?;
    let part = |which| {
        let mut buf = [0u8; 512];
        let len = trace(table.host, which, buf.as_mut_ptr(), buf.len());
        buf.get(..len)
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .map(str::to_owned)
    };
    outlet_protocol::context::TraceContext::new(&part(0)?, &part(1).unwrap_or_default())
}

/// Whether the host's caller cancelled the call being served.
fn host_cancelled() -> bool {
    host_table(end_of(std::mem::offset_of!(HostTable, cancelled)))
        .and_then(|table| Some((table.cancelled?)(table.host) != 0))
        .unwrap_or(false)
}

/// The host, as a transport: a plugin calls the services its host offers
/// through a generated client over it, e.g. `GreeterClient::new(Host)`.
/// Calls fail with `Unavailable` before Hello and after Shutdown.
#[derive(Debug, Clone, Copy, Default)]
pub struct Host;

impl outlet_protocol::Transport for Host {
    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        let table = HOST.load(Ordering::Acquire);
        if table.is_null() {
            return Err(Status::unavailable(
                "the host is not reachable: no Hello yet, or after Shutdown",
            ));
        }
        // SAFETY: `HOST` holds the table the host passed to Hello, which
        // `outlet.h` keeps valid until `shutdown` returns; `shutdown` clears
        // `HOST` first.
        let table = unsafe { &*table };
        let (Some(call), Some(free)) = (table.call, table.free_response) else {
            return Err(Status::unimplemented("the host offers no calls"));
        };
        let mut out = Buf::EMPTY;
        let code = call(
            table.host,
            method.as_ptr(),
            method.len(),
            request.as_ptr(),
            request.len(),
            &mut out,
        );
        let bytes = if out.ptr.is_null() {
            Vec::new()
        } else {
            // SAFETY: the host wrote `len` bytes at `ptr`, valid until
            // `free_response`, called right after this copy.
            let bytes = unsafe { std::slice::from_raw_parts(out.ptr, out.len) }.to_vec();
            free(table.host, out);
            bytes
        };
        match code {
            0 => Ok(bytes),
            code => Err(Status::new(
                outlet_protocol::Code::from_i32(code),
                String::from_utf8_lossy(&bytes).into_owned(),
            )),
        }
    }
}

extern "C" fn hello(host: *const HostTable, request: *const u8, len: usize, out: *mut Buf) -> i32 {
    let request = borrowed(request, len);
    answer(out, |plugin, out| {
        if host.is_null() {
            return Err(Status::failed_precondition(
                "Hello came without a host table",
            ));
        }
        HOST.store(host.cast_mut(), Ordering::Release);
        outlet_protocol::context::set_source(outlet_protocol::context::Source {
            time_left: host_time_left,
            cancelled: host_cancelled,
            trace: host_trace,
        });
        plugin.handle(core::HELLO, request, out)
    })
}

extern "C" fn call(
    method: *const u8,
    method_len: usize,
    request: *const u8,
    len: usize,
    out: *mut Buf,
) -> i32 {
    let method = std::str::from_utf8(borrowed(method, method_len));
    let request = borrowed(request, len);
    answer(out, |plugin, out| {
        let method = method.map_err(|_| Status::invalid_argument("the method is not UTF-8"))?;
        plugin.handle(method, request, out)
    })
}

extern "C" fn configure(request: *const u8, len: usize, out: *mut Buf) -> i32 {
    let request = borrowed(request, len);
    answer(out, |plugin, out| {
        plugin.handle(core::CONFIGURE, request, out)
    })
}

extern "C" fn free(buffer: Buf) {
    let shared = ANSWER.with(|cell| {
        cell.try_borrow_mut()
            .is_ok_and(|mut b| LENT.get() && b.as_mut_ptr() == buffer.ptr)
    });
    if shared {
        LENT.set(false); // this thread's answer buffer, kept for the next call
        return;
    }
    if buffer.ptr.is_null() {
        return;
    }
    let slice = std::ptr::slice_from_raw_parts_mut(buffer.ptr, buffer.len);
    // SAFETY: an answer that is not the lent `ANSWER` was made by `answer`
    // with `Box::into_raw` of a boxed slice of this length, and `outlet.h`
    // has the host free each answer once.
    drop(unsafe { Box::from_raw(slice) });
}

/// A stream's responses, behind the pointer `open` hands the host.
type OpenStream = Messages<Vec<u8>>;

extern "C" fn open(
    method: *const u8,
    method_len: usize,
    requests: *mut std::ffi::c_void,
    stream: *mut *mut std::ffi::c_void,
    out: *mut Buf,
) -> i32 {
    let method = std::str::from_utf8(borrowed(method, method_len));
    let requests = HostRequests(requests);
    answer(out, |plugin, _| {
        let method = method.map_err(|_| Status::invalid_argument("the method is not UTF-8"))?;
        if stream.is_null() {
            return Err(Status::invalid_argument(
                "open was given no place for the stream",
            ));
        }
        let responses: OpenStream = plugin.open(method, Messages::new(requests))?;
        // SAFETY: checked non-null; `outlet.h` has the host pass a place
        // for the stream, valid for the call.
        unsafe { *stream = Box::into_raw(Box::new(responses)).cast() };
        Ok(())
    })
}

extern "C" fn next(stream: *mut std::ffi::c_void, out: *mut Buf) -> i32 {
    if stream.is_null() {
        return outlet_protocol::Code::InvalidArgument.as_i32();
    }
    // SAFETY: a stream `open` made with `Box::into_raw`, not closed yet, and
    // used by one host thread at a time (`outlet.h`).
    let responses = unsafe { &mut *stream.cast::<OpenStream>() };
    let mut ended = false;
    let code = answer(out, |_, out| match responses.next() {
        Some(Ok(message)) => {
            out.extend_from_slice(&message);
            Ok(())
        }
        Some(Err(status)) => Err(status),
        None => {
            ended = true;
            Ok(())
        }
    });
    if ended { -1 } else { code }
}

extern "C" fn close(stream: *mut std::ffi::c_void) {
    if stream.is_null() {
        return;
    }
    // SAFETY: a stream `open` made with `Box::into_raw`; `outlet.h` makes
    // `close` the last call about it.
    let responses = unsafe { Box::from_raw(stream.cast::<OpenStream>()) };
    // Its code's panics stay here.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(responses)));
}

/// A stream's requests, pulled from the host with its `next_request`.
struct HostRequests(*mut std::ffi::c_void);

// SAFETY: the host's `requests` handle is used by one thread at a time, the
// one the host calls `open` or `next` of its stream on (`outlet.h`).
unsafe impl Send for HostRequests {}

impl Iterator for HostRequests {
    type Item = Result<Vec<u8>, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        let Some(table) = host_table(end_of(std::mem::offset_of!(HostTable, next_request))) else {
            return Some(Err(Status::failed_precondition(
                "the host offers no next_request: it is older than streams",
            )));
        };
        let next_request = table.next_request?;
        let mut request = Buf::EMPTY;
        let code = next_request(table.host, self.0, &mut request);
        if code == -1 {
            return None;
        }
        let bytes = if request.ptr.is_null() {
            Vec::new()
        } else {
            // SAFETY: the host lent `len` bytes at `ptr`, valid until the
            // stream's next `next_request` or its close; copied at once.
            unsafe { std::slice::from_raw_parts(request.ptr, request.len) }.to_vec()
        };
        Some(match code {
            0 => Ok(bytes),
            code => Err(Status::new(
                outlet_protocol::Code::from_i32(code),
                String::from_utf8_lossy(&bytes).into_owned(),
            )),
        })
    }
}

extern "C" fn shutdown() {
    let _ = catch_unwind(|| {
        HOST.store(std::ptr::null_mut(), Ordering::Release);
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
