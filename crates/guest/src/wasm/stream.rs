//! Streams in a wasm guest (guest ABI 4): `outlet_open` opens one, of the
//! method written into the input buffer; `outlet_next` makes its next
//! response; `outlet_close` drops it. Its requests are pulled from the host
//! with the `next_request` import as the plugin's code reads them. One
//! stream at a time: an instance serves one call or stream at a time.

use std::cell::RefCell;

use outlet_protocol::{Code, Messages, Status};

use super::{ANSWER, INPUT, answered, plugin};
use crate::Plugin;

thread_local! {
    /// The open stream's responses.
    static STREAM: RefCell<Option<Messages<Vec<u8>>>> = const { RefCell::new(None) };
}

/// `outlet_open`: opens a stream of the method at `method`, in the input
/// buffer; 0, or an error's code with its message in the slot at `out`.
#[doc(hidden)]
pub fn open_exported(make: fn() -> Plugin, method: (usize, usize), out: usize) -> i32 {
    close_exported();
    let name = INPUT.with(|input| {
        let input = input.borrow();
        let start = method.0.checked_sub(input.as_ptr() as usize)?;
        let bytes = input.get(start..start.checked_add(method.1)?)?;
        std::str::from_utf8(bytes).ok().map(str::to_owned)
    });
    let opened = match name {
        Some(name) => plugin(make).open(&name, Messages::new(HostRequests { ended: false })),
        None => Err(Status::invalid_argument(
            "the method is not UTF-8 inside the buffer outlet_alloc gave",
        )),
    };
    match opened {
        Ok(responses) => {
            STREAM.with(|stream| *stream.borrow_mut() = Some(responses));
            0
        }
        Err(status) => fail(out, &status),
    }
}

/// `outlet_next`: the open stream's next response in the slot at `out` and
/// 0; -1 once the stream has ended; or an error's code with its message.
#[doc(hidden)]
pub fn next_exported(out: usize) -> i32 {
    let next = STREAM.with(|stream| stream.borrow_mut().as_mut().and_then(Iterator::next));
    match next {
        Some(Ok(message)) => ANSWER.with(|answer| {
            let mut answer = answer.borrow_mut();
            *answer = message;
            answered(out, &answer);
            0
        }),
        Some(Err(status)) => {
            close_exported();
            fail(out, &status)
        }
        None => {
            close_exported();
            -1
        }
    }
}

/// `outlet_close`: drops the open stream, if there is one.
#[doc(hidden)]
pub fn close_exported() {
    let stream = STREAM.with(|stream| stream.borrow_mut().take());
    drop(stream);
}

/// Puts `status`'s message in the slot at `out`; its code.
fn fail(out: usize, status: &Status) -> i32 {
    ANSWER.with(|answer| {
        let mut answer = answer.borrow_mut();
        answer.clear();
        answer.extend_from_slice(status.message().as_bytes());
        answered(out, &answer);
    });
    match status.code().as_i32() {
        0 => Code::Unknown.as_i32(),
        code => code,
    }
}

/// The stream's requests, pulled from the host one at a time.
struct HostRequests {
    ended: bool,
}

impl Iterator for HostRequests {
    type Item = Result<Vec<u8>, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        #[cfg(target_arch = "wasm32")]
        {
            // SAFETY: the import takes nothing and returns a number.
            let packed = unsafe { super::next_request() };
            if packed < 0 {
                self.ended = true;
                return None;
            }
            let (code, len) = ((packed >> 32) as i32, (packed & 0xffff_ffff) as usize);
            let mut value = vec![0u8; len];
            // SAFETY: `value` has room for the pending value's `len` bytes.
            unsafe { super::take(value.as_mut_ptr()) };
            match code {
                0 => Some(Ok(value)),
                code => {
                    self.ended = true;
                    Some(Err(Status::new(
                        Code::from_i32(code),
                        String::from_utf8_lossy(&value).into_owned(),
                    )))
                }
            }
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.ended = true;
            Some(Err(Status::unavailable("not running as a wasm plugin")))
        }
    }
}
