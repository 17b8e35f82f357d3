//! What a cabi plugin hands the host: the buffer and code of an answer,
//! and the table its entry function returns. The answer is taken exactly
//! when the code is 0, the pointer sound and the length within the limit;
//! the plugin's buffer is freed exactly once whatever happens; a table is
//! accepted exactly when `outlet.h` says it is whole.
#![no_main]

use std::ffi::{CString, c_void};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use outlet_dylib::DylibError;
use outlet_dylib::fuzzing::{check_table, lend};
use outlet_fuzz as _;
use outlet_protocol::cabi::{ABI_VERSION, Buf, HostTable, PluginTable, StreamingPluginTable};
use outlet_protocol::{Code, Status};

static FREED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn free(_: Buf) {
    FREED.fetch_add(1, Ordering::Relaxed);
}
extern "C" fn hello(_: *const HostTable, _: *const u8, _: usize, _: *mut Buf) -> i32 {
    0
}
extern "C" fn call(_: *const u8, _: usize, _: *const u8, _: usize, _: *mut Buf) -> i32 {
    0
}
extern "C" fn configure(_: *const u8, _: usize, _: *mut Buf) -> i32 {
    0
}
extern "C" fn shutdown() {}
extern "C" fn open(
    _: *const u8,
    _: usize,
    _: *mut c_void,
    _: *mut *mut c_void,
    _: *mut Buf,
) -> i32 {
    0
}
extern "C" fn next(_: *mut c_void, _: *mut Buf) -> i32 {
    0
}
extern "C" fn close(_: *mut c_void) {}

fn reply(data: &[u8]) {
    let Some((&[c0, c1, c2, c3, flags, l0, l1, n0], bytes)) = data.split_first_chunk::<8>() else {
        return;
    };
    let code = i32::from_le_bytes([c0, c1, c2, c3]);
    let limit = usize::from(u16::from_le_bytes([l0, l1])) % 2048;
    let null = flags & 1 == 1;
    // A null pointer may come with any length; a real one with at most
    // the bytes it points at (more is beyond what the host can check).
    let len = match null {
        true => usize::from(n0) * usize::from(flags >> 1),
        false => usize::from(n0).min(bytes.len()),
    };
    let out = Buf {
        ptr: if null {
            std::ptr::null_mut()
        } else {
            bytes.as_ptr().cast_mut()
        },
        len,
    };
    FREED.store(0, Ordering::Relaxed);
    let mut got = None;
    let answers = |buf: *mut Buf| {
        // SAFETY: `lend` passes a valid pointer to its `Buf`.
        unsafe { *buf = out };
        code
    };
    // SAFETY: the answer is null or points at `len` bytes of `bytes`, which
    // outlive the call; `free` frees nothing.
    let answer = unsafe {
        lend("fuzz", free, limit, answers, &mut |bytes| {
            got = Some(bytes.to_vec())
        })
    };
    assert_eq!(FREED.load(Ordering::Relaxed), usize::from(!null));
    let sound = !(null && len != 0);
    let taken: &[u8] = if null { &[] } else { &bytes[..len] };
    match answer {
        Ok(()) => {
            assert!(code == 0 && sound && len <= limit);
            assert_eq!(got.as_deref(), Some(taken));
        }
        Err(status) => {
            assert!(got.is_none());
            check_failure(&status, code, sound, len, limit, taken);
        }
    }
}

fn check_failure(status: &Status, code: i32, sound: bool, len: usize, limit: usize, taken: &[u8]) {
    if !sound {
        assert_eq!(status.code(), Code::Internal);
    } else if len > limit {
        assert_eq!(status.code(), Code::ResourceExhausted);
    } else {
        assert_ne!(code, 0);
        assert_eq!(status.message(), String::from_utf8_lossy(taken));
    }
}

fn table(data: &[u8]) {
    let Some((&[v, s0, s1, present], rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let abi_version = if v & 0x80 == 0 {
        ABI_VERSION
    } else {
        u32::from(v)
    };
    let full = std::mem::size_of::<StreamingPluginTable>() as u32;
    // Any size up to a little past the whole table.
    let struct_size = u32::from(u16::from_le_bytes([s0, s1])) % (full + 16);
    let bit = |n: u8| present & (1 << n) != 0;
    let text = |part: &[u8]| {
        let clean: Vec<u8> = part.iter().copied().filter(|&b| b != 0).collect();
        CString::new(clean).expect("no NUL")
    };
    let (name, version) = rest.split_at(rest.len() / 2);
    let (name, version) = (text(name), text(version));
    let table = StreamingPluginTable {
        base: PluginTable {
            abi_version,
            struct_size,
            name: if rest.first() == Some(&0xff) {
                std::ptr::null()
            } else {
                name.as_ptr()
            },
            version: if rest.last() == Some(&0xfe) {
                std::ptr::null()
            } else {
                version.as_ptr()
            },
            hello: bit(0).then_some(hello as _),
            call: bit(1).then_some(call as _),
            free: (present != 0xff).then_some(free as _),
            configure: bit(2).then_some(configure as _),
            shutdown: bit(3).then_some(shutdown as _),
        },
        open: bit(4).then_some(open as _),
        next: bit(5).then_some(next as _),
        close: bit(6).then_some(close as _),
    };
    let path = Path::new("/plugins/libfuzz.so");
    // SAFETY: the whole `StreamingPluginTable` is readable through the
    // pointer, so every size up to it is, and a larger `struct_size` makes
    // the host read no more than it; the strings are NUL-terminated; all
    // outlive the call.
    let checked = unsafe { check_table(path, (&raw const table).cast::<PluginTable>()) };
    let base = &table.base;
    let whole = base.hello.is_some()
        && base.call.is_some()
        && base.free.is_some()
        && base.configure.is_some()
        && base.shutdown.is_some()
        && !base.name.is_null()
        && !base.version.is_null();
    let streams = [bit(4), bit(5), bit(6)];
    let reaches = struct_size as usize >= std::mem::size_of::<StreamingPluginTable>();
    let ok = abi_version == ABI_VERSION
        && struct_size as usize >= std::mem::size_of::<PluginTable>()
        && whole
        && (!reaches || streams.iter().all(|&b| b) || streams.iter().all(|&b| !b));
    match checked {
        Ok(checked) => {
            assert!(ok);
            assert_eq!(checked.name, String::from_utf8_lossy(name.as_bytes()));
            assert_eq!(checked.version, String::from_utf8_lossy(version.as_bytes()));
            assert_eq!(checked.streams.is_some(), reaches && streams[0]);
        }
        Err(error) => {
            assert!(!ok, "refused a whole table: {error}");
            assert!(error.to_string().contains("libfuzz.so"));
            if abi_version != ABI_VERSION {
                assert!(matches!(error, DylibError::AbiVersion { .. }));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((&which, rest)) if which & 1 == 0 => reply(rest),
        Some((_, rest)) => table(rest),
        None => {}
    }
});
