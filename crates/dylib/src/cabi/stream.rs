//! A cabi plugin's streams (`outlet.h`: `open`, `next`, `close`, and the
//! host's `next_request`): the plugin's code pulls the caller's requests
//! through the host table as it reads them, on the host's thread, so a
//! stream is pulled as a native one is, with nothing buffered.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

use outlet_protocol::cabi::{Buf, StreamingPluginTable};
use outlet_protocol::{Code, Messages, Status};

/// The caller's requests of one stream, and the last one handed to the
/// plugin: what the `requests` pointer of `open` points at.
pub(super) struct Pulled {
    pub(super) requests: Messages<Vec<u8>>,
    /// Lent to the plugin until the stream's next `next_request` or `close`.
    pub(super) pending: Vec<u8>,
}

/// An open stream of a cabi plugin.
pub(super) struct Stream {
    pub(super) streams: &'static StreamingPluginTable,
    /// The plugin's; null once closed.
    pub(super) stream: *mut c_void,
    /// From `Box::into_raw`; freed after `close`.
    pub(super) pulled: *mut Pulled,
    pub(super) label: String,
    pub(super) limit: usize,
}

// SAFETY: `outlet.h` lets a stream be used from any host thread, one at a
// time, which `&mut self` ensures; `Pulled` is `Send`, and the table's
// functions and the library behind them live as long as the library, which
// the host keeps loaded while a stream of it is open.
unsafe impl Send for Stream {}

impl Iterator for Stream {
    type Item = Result<Vec<u8>, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.stream.is_null() {
            return None;
        }
        let next = self.streams.next.expect("checked at open");
        let free = self.streams.base.free.expect("checked at open");
        let mut code = 0;
        let mut message = None;
        // SAFETY: `next` is the table's, checked at open, which `outlet.h`
        // binds to answer as `lend` requires; `free` is the table's.
        let lent = unsafe {
            super::lend(
                &self.label,
                free,
                self.limit,
                |out| {
                    code = next(self.stream, out);
                    // -1, the end: lent as an answer of nothing.
                    match code {
                        -1 => 0,
                        code => code,
                    }
                },
                &mut |bytes| message = Some(bytes.to_vec()),
            )
        };
        let next = match (code, lent) {
            (-1, Ok(())) => None,
            (_, Ok(())) => message.map(Ok),
            (_, Err(status)) => Some(Err(status)),
        };
        if !matches!(next, Some(Ok(_))) {
            self.close();
        }
        next
    }
}

impl Stream {
    fn close(&mut self) {
        if self.stream.is_null() {
            return;
        }
        let close = self.streams.close.expect("checked at open");
        close(std::mem::replace(&mut self.stream, std::ptr::null_mut()));
    }
}

impl Drop for Stream {
    /// A stream dropped early is closed; then its requests go.
    fn drop(&mut self) {
        self.close();
        // SAFETY: `open_stream` made `pulled` with `Box::into_raw`, and the
        // plugin, closed above, reads it no more.
        drop(unsafe { Box::from_raw(self.pulled) });
    }
}

/// The host table's `next_request`.
pub(super) extern "C" fn host_next_request(
    _host: *mut c_void,
    requests: *mut c_void,
    request: *mut Buf,
) -> i32 {
    if requests.is_null() || request.is_null() {
        return Code::InvalidArgument.as_i32();
    }
    // SAFETY: `requests` is the `Pulled` that `open_stream` handed the
    // plugin's `open`, alive until the stream's `close`; the plugin calls
    // this only during its `open` and `next` of that stream, while the
    // host's thread is inside them and touches it no other way.
    let pulled = unsafe { &mut *requests.cast::<Pulled>() };
    // A panic must not unwind into the plugin's C frames.
    let next = catch_unwind(AssertUnwindSafe(|| pulled.requests.next())).unwrap_or_else(|_| {
        Some(Err(Status::internal(
            "the host panicked making the next request",
        )))
    });
    let (code, bytes) = match next {
        None => {
            // SAFETY: checked non-null above; the plugin passes a place.
            unsafe { *request = Buf::EMPTY };
            return -1;
        }
        Some(Ok(bytes)) => (0, bytes),
        Some(Err(status)) => (status.code().as_i32(), status.message().as_bytes().to_vec()),
    };
    pulled.pending = bytes;
    // SAFETY: checked non-null above; the bytes stay in `pending` until the
    // next `next_request` or the stream's close.
    unsafe {
        *request = Buf {
            ptr: pulled.pending.as_mut_ptr(),
            len: pulled.pending.len(),
        }
    };
    code
}
