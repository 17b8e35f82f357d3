//! Loading a cabi plugin: open → ELF check → entry symbol → table header
//! (ABI version, size) → every function present → use. Each step fails
//! with its own error carrying the path and what was found.

use std::ffi::{CStr, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use outlet_protocol::cabi::{
    ABI_VERSION, Buf, ENTRY_SYMBOL, HostTable, PluginTable, StreamingPluginTable,
};
use outlet_protocol::{Code, Messages, Status};

use crate::DylibError;

mod stream;

use stream::{Pulled, Stream, host_next_request};

/// Receives a plugin's log line, at a level 0–4 (trace … error).
pub type LogHook = Box<dyn Fn(i32, &[u8]) + Send + Sync>;
/// Serves a plugin's call into the host, by gRPC path.
pub type CallHook = Box<dyn Fn(&str, &[u8]) -> Result<Vec<u8>, Status> + Send + Sync>;

/// What the host does when a plugin logs or calls back into it.
pub struct Hooks {
    /// Log lines.
    pub log: LogHook,
    /// Calls into the host.
    pub call: CallHook,
    /// Where the plugin asks about the call it serves (on the host's thread).
    pub context: outlet_protocol::context::Source,
}

/// A loaded cabi plugin. Calls may come from many threads, as `outlet.h`
/// requires plugins to allow.
pub struct CabiLibrary {
    table: &'static PluginTable,
    /// The same table with the functions of streams, if it has them.
    streams: Option<&'static StreamingPluginTable>,
    /// Who the host calls this plugin, for error messages.
    label: String,
    name: String,
    version: String,
    /// Handed to the plugin in Hello; boxed so its address is stable.
    host: Box<HostTable>,
    /// What `host.host` points to: from `Box::into_raw`, freed in `Drop`.
    hooks: *mut Hooks,
    path: PathBuf,
    /// Declared last: dropped (unmapped) after everything that points into it.
    _library: libloading::Library,
}

// SAFETY: the plugin table holds function pointers and static strings;
// `outlet.h` requires a plugin to accept calls from several threads at once.
// `Hooks` is `Send + Sync`, and `HostTable` only points at it.
unsafe impl Send for CabiLibrary {}
// SAFETY: as for `Send`; no method takes `&mut self`.
unsafe impl Sync for CabiLibrary {}

impl std::fmt::Debug for CabiLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CabiLibrary")
            .field("path", &self.path)
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl CabiLibrary {
    /// Opens a cabi plugin and checks its table. Runs the library's
    /// initializers and its entry function, nothing else.
    ///
    /// # Safety
    /// Loading a library runs its code in this process with no isolation:
    /// the caller must trust it (Outlet's policy allows cabi only for
    /// `trust = "in-process"`). The library must implement `include/outlet.h`
    /// truthfully beyond what can be checked: that its functions have the
    /// declared signatures and never unwind into the host.
    ///
    /// # Errors
    /// [`DylibError`], naming the path and what was found.
    pub unsafe fn open(path: &Path, label: &str, hooks: Hooks) -> Result<CabiLibrary, DylibError> {
        crate::elf::check(path)?;
        // SAFETY: the caller vouches for the library (this function's contract).
        let library = unsafe { crate::open(path)? };
        let table = {
            // SAFETY: `outlet.h` declares the entry symbol with exactly this
            // signature (an `Option`, since a symbol's value may be null);
            // the caller vouches that the library follows it.
            let entry = unsafe {
                library
                    .get::<Option<extern "C" fn() -> *const PluginTable>>(ENTRY_SYMBOL.as_bytes())
            };
            let Some(entry) = entry.ok().and_then(|symbol| *symbol) else {
                return Err(DylibError::MissingSymbol {
                    path: path.to_owned(),
                    symbol: ENTRY_SYMBOL,
                });
            };
            entry()
        };
        // SAFETY: the entry function returned it; the caller vouches that
        // the library follows `outlet.h`, whose table lives as long as the
        // library. `'static` stands for that: `CabiLibrary` unloads the
        // library (`_library`, its last field) only when it drops, after
        // the fields that borrow the table.
        let Checked {
            table,
            streams,
            name,
            version,
        } = unsafe { check_table(path, table)? };
        let hooks = Box::into_raw(Box::new(hooks));
        let host = Box::new(HostTable {
            abi_version: ABI_VERSION,
            struct_size: std::mem::size_of::<HostTable>() as u32,
            host: hooks.cast::<c_void>(),
            log: Some(host_log),
            call: Some(host_call),
            free_response: Some(host_free),
            time_left: Some(host_time_left),
            cancelled: Some(host_cancelled),
            trace: Some(host_trace),
            next_request: Some(host_next_request),
        });
        Ok(CabiLibrary {
            table,
            streams,
            label: label.to_owned(),
            name,
            version,
            host,
            hooks,
            path: path.to_owned(),
            _library: library,
        })
    }

    /// The name in the plugin's table.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version in the plugin's table.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Hello, with an encoded `HelloRequest`; hands the plugin the host table.
    ///
    /// # Errors
    /// The plugin's status; `ResourceExhausted` for an answer over `limit`.
    pub fn hello(&self, request: &[u8], limit: usize) -> Result<Vec<u8>, Status> {
        let hello = self.table.hello.expect("checked at open");
        let host: *const HostTable = &*self.host;
        let f = |out| hello(host, request.as_ptr(), request.len(), out);
        // SAFETY: `f` calls the table's `hello` with the `Buf` it is given.
        unsafe { self.answer(limit, f) }
    }

    /// One call of the interface, by gRPC path.
    ///
    /// # Errors
    /// As [`CabiLibrary::hello`].
    pub fn call(&self, method: &str, request: &[u8], limit: usize) -> Result<Vec<u8>, Status> {
        let mut answer = Vec::new();
        self.call_with(method, request, limit, &mut |bytes| answer = bytes.to_vec())?;
        Ok(answer)
    }

    /// One call of the interface, lending the answer to `response` before
    /// the plugin frees it: no copy.
    ///
    /// # Errors
    /// As [`CabiLibrary::hello`].
    pub fn call_with(
        &self,
        method: &str,
        request: &[u8],
        limit: usize,
        response: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Status> {
        let call = self.table.call.expect("checked at open");
        let (m, r) = (method.as_ptr(), request.as_ptr());
        let f = |out| call(m, method.len(), r, request.len(), out);
        // SAFETY: `f` calls the table's `call` with the `Buf` it is given.
        unsafe { self.lend(limit, f, response) }
    }

    /// Configure, with an encoded `ConfigureRequest`.
    ///
    /// # Errors
    /// As [`CabiLibrary::hello`].
    pub fn configure(&self, request: &[u8], limit: usize) -> Result<Vec<u8>, Status> {
        let configure = self.table.configure.expect("checked at open");
        let f = |out| configure(request.as_ptr(), request.len(), out);
        // SAFETY: `f` calls the table's `configure` with the `Buf` it is
        // given.
        unsafe { self.answer(limit, f) }
    }

    /// Opens a stream of `method` (see `outlet.h`): the plugin pulls the
    /// caller's `requests` as it reads them, and each response is held to
    /// `limit`. `None` if the plugin's table has no streams.
    ///
    /// # Errors
    /// The plugin's status from `open`.
    pub fn open_stream(
        &self,
        method: &str,
        requests: Messages<Vec<u8>>,
        limit: usize,
    ) -> Option<Result<Messages<Vec<u8>>, Status>> {
        let streams = self.streams?;
        let open = streams.open.expect("checked at open");
        let pulled = Box::into_raw(Box::new(Pulled {
            requests,
            pending: Vec::new(),
        }));
        let mut stream = std::ptr::null_mut();
        let f = |out| {
            open(
                method.as_ptr(),
                method.len(),
                pulled.cast::<c_void>(),
                &mut stream,
                out,
            )
        };
        // SAFETY: `f` calls the table's `open` with the `Buf` it is given.
        let opened = unsafe { self.answer(limit, f) };
        let stream = Stream {
            streams,
            stream,
            pulled,
            label: self.label.clone(),
            limit,
        };
        Some(match opened {
            Ok(_) if stream.stream.is_null() => Err(Status::internal(format!(
                "plugin `{}`: its open of {method} returned no stream",
                self.label
            ))),
            Ok(_) => Ok(Messages::new(stream)),
            Err(status) => Err(status),
        })
    }

    /// The plugin's last call.
    pub fn shutdown(&self) {
        (self.table.shutdown.expect("checked at open"))();
    }

    /// Runs one function of the table and takes its answer as bytes.
    ///
    /// # Safety
    /// As [`CabiLibrary::lend`].
    unsafe fn answer(
        &self,
        limit: usize,
        f: impl FnOnce(*mut Buf) -> i32,
    ) -> Result<Vec<u8>, Status> {
        let mut answer = Vec::new();
        // SAFETY: this function's contract is `lend`'s.
        unsafe { self.lend(limit, f, &mut |bytes| answer = bytes.to_vec())? };
        Ok(answer)
    }

    /// Runs one function of the table and lends its answer to `response`
    /// on success; on failure the answer is the status's message. The
    /// plugin's buffer is released with its `free` in every case.
    ///
    /// # Safety
    /// `f` only calls one of this table's functions with the `Buf` it is
    /// given (whose answer `outlet.h` binds as the free function [`lend`]
    /// requires).
    unsafe fn lend(
        &self,
        limit: usize,
        f: impl FnOnce(*mut Buf) -> i32,
        response: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Status> {
        let free = self.table.free.expect("checked at open");
        // SAFETY: `f` runs a function of the table checked at open (this
        // function's contract), which `outlet.h` binds to answer as `lend`
        // requires; `free` is the table's.
        unsafe { lend(&self.label, free, limit, f, response) }
    }
}

/// A plugin's table, checked: its functions, name and version.
#[derive(Debug)]
pub struct Checked<'a> {
    /// The functions every plugin has.
    pub table: &'a PluginTable,
    /// The same table with the functions of streams, if it has them.
    pub streams: Option<&'a StreamingPluginTable>,
    /// The name in the table.
    pub name: String,
    /// The version in the table.
    pub version: String,
}

/// Checks the table a plugin's entry function returned (step 4 and 5 of
/// loading): its ABI version, its size, every function present (those of
/// streams all or none), its name and version.
///
/// # Safety
/// `table` is null, or points at a table laid out as `outlet.h` says,
/// aligned for it and readable for at least 8 bytes (ABI version and size)
/// and for as much of a `StreamingPluginTable` as its `struct_size` says,
/// with `name` and `version` null or NUL-terminated, all valid for `'a`.
///
/// # Errors
/// [`DylibError`], naming `path` and what was found.
pub unsafe fn check_table<'a>(
    path: &Path,
    table: *const PluginTable,
) -> Result<Checked<'a>, DylibError> {
    if table.is_null() {
        return Err(DylibError::NullTable {
            path: path.to_owned(),
        });
    }
    // SAFETY: every version of the table starts with two `u32`s (ABI
    // version and size), so these 8 bytes can be read whatever the
    // version.
    let [abi_version, struct_size] = unsafe { *table.cast::<[u32; 2]>() };
    if abi_version != ABI_VERSION {
        return Err(DylibError::AbiVersion {
            path: path.to_owned(),
            expected: ABI_VERSION,
            found: abi_version,
        });
    }
    let expected = std::mem::size_of::<PluginTable>();
    if (struct_size as usize) < expected {
        return Err(DylibError::TableSize {
            path: path.to_owned(),
            expected,
            found: struct_size as usize,
        });
    }
    let raw = table;
    // SAFETY: version and size say the pointer holds a whole
    // `PluginTable` of this ABI, which lives for `'a` (this function's
    // contract).
    let table: &'a PluginTable = unsafe { &*raw };
    let missing = [
        ("hello", table.hello.is_none()),
        ("call", table.call.is_none()),
        ("free", table.free.is_none()),
        ("configure", table.configure.is_none()),
        ("shutdown", table.shutdown.is_none()),
    ]
    .into_iter()
    .find_map(|(name, null)| null.then_some(name));
    let text = |ptr: *const std::ffi::c_char, field: &'static str| {
        if ptr.is_null() {
            return Err(DylibError::NullField {
                path: path.to_owned(),
                field,
            });
        }
        // SAFETY: non-null, and `outlet.h` requires a NUL-terminated
        // static string.
        Ok(unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned())
    };
    if let Some(field) = missing {
        return Err(DylibError::NullField {
            path: path.to_owned(),
            field,
        });
    }
    let name = text(table.name, "name")?;
    let version = text(table.version, "version")?;
    let streams = if struct_size as usize >= std::mem::size_of::<StreamingPluginTable>() {
        // SAFETY: `struct_size` says the table goes on past the first
        // fields with the functions of streams, as `outlet.h` lays them
        // out (a `StreamingPluginTable` begins with a `PluginTable`).
        let streaming: &'a StreamingPluginTable = unsafe { &*raw.cast::<StreamingPluginTable>() };
        let present = [
            ("open", streaming.open.is_some()),
            ("next", streaming.next.is_some()),
            ("close", streaming.close.is_some()),
        ];
        // All three or none.
        match present.iter().filter(|(_, set)| *set).count() {
            0 => None,
            3 => Some(streaming),
            _ => {
                let (field, _) = present.into_iter().find(|(_, set)| !set).expect("one");
                return Err(DylibError::NullField {
                    path: path.to_owned(),
                    field,
                });
            }
        }
    } else {
        None
    };
    Ok(Checked {
        table,
        streams,
        name,
        version,
    })
}

/// Runs one function of a plugin's table and lends its answer to
/// `response` on success; on failure the answer is the status's message.
/// The plugin's buffer is released with its `free` in every case.
///
/// # Safety
/// When `f` returns, the `Buf` it was given holds a null pointer, or a
/// pointer to `len` readable bytes (at most `isize::MAX`) that stay valid
/// until `free` is called with that `Buf`, as `outlet.h` requires of a
/// plugin's functions; `free` accepts it.
pub unsafe fn lend(
    label: &str,
    free: extern "C" fn(Buf),
    limit: usize,
    f: impl FnOnce(*mut Buf) -> i32,
    response: &mut dyn FnMut(&[u8]),
) -> Result<(), Status> {
    let mut out = Buf::EMPTY;
    let code = f(&mut out);
    if out.ptr.is_null() && out.len != 0 {
        return Err(Status::internal(format!(
            "plugin `{label}` answered with a null pointer and a length of {} bytes",
            out.len
        )));
    }
    /// Frees the plugin's buffer however this function is left, a
    /// panic in `response` included.
    struct Release(Buf, extern "C" fn(Buf));
    impl Drop for Release {
        fn drop(&mut self) {
            if !self.0.ptr.is_null() {
                (self.1)(self.0);
            }
        }
    }
    let _release = Release(out, free);
    if out.len > limit {
        return Err(Status::resource_exhausted(format!(
            "plugin `{label}`: its answer is {} bytes, over the limit of {limit} \
             (limits.max_message_bytes)",
            out.len
        )));
    }
    let bytes = if out.ptr.is_null() {
        &[][..]
    } else {
        // SAFETY: non-null, so it points at `len` bytes kept until `free`
        // (this function's contract), which `_release` calls only after
        // the last use of `bytes` below.
        unsafe { std::slice::from_raw_parts(out.ptr, out.len) }
    };
    match code {
        0 => {
            response(bytes);
            Ok(())
        }
        code => Err(Status::new(
            Code::from_i32(code),
            String::from_utf8_lossy(bytes).into_owned(),
        )),
    }
}

impl Drop for CabiLibrary {
    fn drop(&mut self) {
        // SAFETY: `open` made `hooks` with `Box::into_raw`, and nothing uses
        // it after this: the plugin may call back only until `shutdown`, and
        // the library is unmapped right after this, when `_library` drops.
        drop(unsafe { Box::from_raw(self.hooks) });
    }
}

fn hooks<'a>(host: *mut c_void) -> &'a Hooks {
    // SAFETY: `host` is the pointer `CabiLibrary::open` put in the host
    // table: a leaked `Box<Hooks>` that the `CabiLibrary` frees only when it
    // is dropped, after the plugin's last call.
    unsafe { &*host.cast::<Hooks>() }
}

extern "C" fn host_log(host: *mut c_void, level: i32, message: *const u8, len: usize) {
    if message.is_null() {
        return;
    }
    // SAFETY: `outlet.h` makes `message` point at `len` bytes for the call.
    let message = unsafe { std::slice::from_raw_parts(message, len) };
    // A panic must not unwind into the plugin's C frames.
    let _ = catch_unwind(AssertUnwindSafe(|| (hooks(host).log)(level, message)));
}

extern "C" fn host_call(
    host: *mut c_void,
    method: *const u8,
    method_len: usize,
    request: *const u8,
    request_len: usize,
    response: *mut Buf,
) -> i32 {
    if response.is_null() {
        return Code::InvalidArgument.as_i32();
    }
    let bytes = |ptr: *const u8, len: usize| {
        if ptr.is_null() {
            &[][..]
        } else {
            // SAFETY: `outlet.h` makes the pointer valid for `len` bytes
            // for the duration of the call.
            unsafe { std::slice::from_raw_parts(ptr, len) }
        }
    };
    let method = String::from_utf8_lossy(bytes(method, method_len));
    let request = bytes(request, request_len);
    let result = catch_unwind(AssertUnwindSafe(|| (hooks(host).call)(&method, request)))
        .unwrap_or_else(|_| Err(Status::internal("the host panicked serving the call")));
    let (code, answer) = match result {
        Ok(bytes) => (0, bytes),
        Err(status) => (status.code().as_i32(), status.message().as_bytes().to_vec()),
    };
    let answer = Box::into_raw(answer.into_boxed_slice());
    // SAFETY: checked non-null above; the plugin passes a place to write.
    unsafe {
        *response = Buf {
            ptr: answer.cast::<u8>(),
            len: answer.len(),
        };
    }
    code
}

extern "C" fn host_time_left(host: *mut c_void) -> i64 {
    match (hooks(host).context.time_left)() {
        Some(left) => i64::try_from(left.as_micros()).unwrap_or(i64::MAX),
        None => -1,
    }
}

extern "C" fn host_cancelled(host: *mut c_void) -> i32 {
    i32::from((hooks(host).context.cancelled)())
}

extern "C" fn host_trace(host: *mut c_void, which: i32, buf: *mut u8, cap: usize) -> usize {
    let Some(trace) = (hooks(host).context.trace)() else {
        return 0;
    };
    let value = match which {
        0 => trace.traceparent(),
        _ => trace.tracestate(),
    };
    let len = value.len().min(cap);
    if !buf.is_null() && len > 0 {
        // SAFETY: `outlet.h` has the plugin pass `cap` writable bytes at
        // `buf`; at most `cap` are written.
        unsafe { std::ptr::copy_nonoverlapping(value.as_ptr(), buf, len) };
    }
    value.len()
}

extern "C" fn host_free(_host: *mut c_void, response: Buf) {
    if !response.ptr.is_null() {
        let slice = std::ptr::slice_from_raw_parts_mut(response.ptr, response.len);
        // SAFETY: `host_call` made this buffer with `Box::into_raw` of a
        // boxed slice of exactly this length; `outlet.h` hands it back once.
        drop(unsafe { Box::from_raw(slice) });
    }
}
