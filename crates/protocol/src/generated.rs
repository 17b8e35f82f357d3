//! Helpers for generated code: the direct path to a native plugin's
//! implementation, and the panic guard around every implementation.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Status, Transport};

/// Calls `direct` with the plugin's own `Arc<I>` when `transport` reaches a
/// plugin native to this build; otherwise hands `request` back, for the
/// encoded path. Generated clients call this before encoding anything,
/// for unary methods only: the answer is a message, plain data, for
/// nothing the plugin's code made may outlive the call (a stream's
/// `Messages` would).
///
/// # Errors
/// `Err(request)` when there is no native implementation of type `Arc<I>`.
#[inline]
pub fn native<I: ?Sized + 'static, Q, T: prost::Message>(
    transport: &impl Transport,
    service: &str,
    method: &'static str,
    request: Q,
    direct: impl FnOnce(&Arc<I>, Q) -> Result<T, Status>,
) -> Result<Result<T, Status>, Q> {
    let mut request = Some(request);
    let mut answer = None;
    let refused = transport.with_native_once(service, method, |implementation| {
        let implementation = implementation.downcast_ref::<Arc<I>>()?;
        let result = direct(implementation, request.take()?);
        let code = result
            .as_ref()
            .map_or_else(Status::code, |_| crate::Code::Ok);
        answer = Some(result);
        Some(code)
    });
    match (answer, refused) {
        (Some(_), Some(status)) => Ok(Err(status)),
        (Some(answer), None) => Ok(answer),
        (None, _) => Err(request.expect("the request is used only with an answer")),
    }
}

/// Runs one method of an implementation, catching a panic: the call then
/// fails with `Internal` and `poisoned` is set; once it is set, calls fail
/// with `Unavailable` without running. Generated servers wrap every method.
///
/// Being generic, this runs in the code of the crate that serves the
/// implementation, so a panic in a plugin's library is caught by that
/// library's own runtime and never unwinds into the host.
///
/// # Errors
/// The method's own error, `Internal` for a panic, `Unavailable` when poisoned.
#[inline]
pub fn guard<R>(
    poisoned: &AtomicBool,
    method: &str,
    call: impl FnOnce() -> Result<R, Status>,
) -> Result<R, Status> {
    if poisoned.load(Ordering::Relaxed) {
        return Err(refused(method));
    }
    catch_unwind(AssertUnwindSafe(call))
        .unwrap_or_else(|panic| Err(panicked(poisoned, method, panic)))
}

#[cold]
fn refused(method: &str) -> Status {
    Status::unavailable(format!(
        "an earlier call panicked, so the plugin's state may be corrupt and it serves no more \
         calls ({method} refused); reload the plugin"
    ))
}

#[cold]
fn panicked(poisoned: &AtomicBool, method: &str, panic: Box<dyn Any + Send>) -> Status {
    poisoned.store(true, Ordering::Relaxed);
    Status::internal(format!(
        "{method} panicked: {}",
        panic_message(panic.as_ref())
    ))
}

/// The text of a panic's payload.
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_internal_and_poisons() {
        let poisoned = AtomicBool::new(false);
        let quiet = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let error = guard::<()>(&poisoned, "/a.B/C", || panic!("boom")).unwrap_err();
        std::panic::set_hook(quiet);
        assert_eq!(error.code(), crate::Code::Internal);
        assert_eq!(error.message(), "/a.B/C panicked: boom");
        let refused = guard(&poisoned, "/a.B/C", || Ok(1)).unwrap_err();
        assert_eq!(refused.code(), crate::Code::Unavailable);
    }
}
