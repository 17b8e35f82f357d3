//! A call's own deadline and cancel token, as host code set them
//! (`outlet_protocol::context`): what the host checks before and after a
//! call, whatever its mechanism. Each mechanism holds the call to them while
//! it runs (rpc, wasm, exec stop it; native and cabi cannot, and rely on the
//! plugin to look).

use std::time::{Duration, Instant};

use outlet_manifest::Mechanism;
use outlet_protocol::Status;
use outlet_protocol::context::{self, CallContext, Source};

/// Where an in-process plugin (native, cabi) asks about the call it serves:
/// it runs on the host's thread, whose context answers.
pub(crate) const HERE: Source = Source {
    time_left: time_left_here,
    cancelled: cancelled_here,
    trace: context::caller_trace,
};

/// The time left to the call served on this thread, if it has a deadline.
pub(crate) fn time_left_here() -> Option<Duration> {
    crate::services::deadline_here().map(|d| d.saturating_duration_since(Instant::now()))
}

/// Whether the caller of the call served on this thread cancelled it.
pub(crate) fn cancelled_here() -> bool {
    context::on_this_thread(|c| c.is_some_and(CallContext::is_cancelled))
}

/// Whether the call host code is making on this thread was cancelled or
/// is past its deadline: such a call is not made.
pub(crate) fn given_up() -> bool {
    context::on_this_thread(|c| c.is_some_and(|c| gone(c, Instant::now()).is_some()))
}

/// Why a call of this context is over, if it is.
fn gone(context: &CallContext, now: Instant) -> Option<Over> {
    if context.is_cancelled() {
        Some(Over::Cancelled)
    } else if context.deadline.is_some_and(|d| now >= d) {
        Some(Over::Late)
    } else {
        None
    }
}

enum Over {
    Cancelled,
    Late,
}

/// Runs `call` of `plugin`'s `method` held to the context on this thread.
pub(crate) fn held<R>(
    plugin: &str,
    mechanism: Mechanism,
    method: &str,
    call: impl FnOnce() -> Result<R, Status>,
) -> Result<R, Status> {
    let Some(caller) = context::on_this_thread(|c| c.cloned()) else {
        return call();
    };
    if let Some(over) = gone(&caller, Instant::now()) {
        return Err(over.status(plugin, method, Before));
    }
    let answer = call();
    match refused(&caller, plugin, mechanism, method, answer.is_ok()) {
        Some(status) => Err(status),
        None => answer,
    }
}

/// After a call of `plugin`'s `method` answered (`ok` or not), whether its
/// caller's context refuses the answer: a cancel that came while it ran
/// ends it, whatever it answered; a late answer too, unless the mechanism
/// said so already (not `ok`). A call from async code asks this itself.
pub(crate) fn refused(
    caller: &CallContext,
    plugin: &str,
    mechanism: Mechanism,
    method: &str,
    ok: bool,
) -> Option<Status> {
    match gone(caller, Instant::now())? {
        Over::Cancelled => Some(Over::Cancelled.status(plugin, method, During(""))),
        Over::Late if ok => {
            let why = match mechanism {
                Mechanism::Native | Mechanism::Cabi => {
                    "; an in-process plugin cannot be stopped, and returns by its deadline \
                     only if it asks outlet_guest::context::time_left"
                }
                _ => "",
            };
            Some(Over::Late.status(plugin, method, During(why)))
        }
        Over::Late => None,
    }
}

/// Why a call from async code of `caller`'s context is over before it is
/// made, if it is.
#[cfg(feature = "async")]
pub(crate) fn given_up_on(caller: &CallContext, plugin: &str, method: &str) -> Option<Status> {
    gone(caller, Instant::now()).map(|over| over.status(plugin, method, Before))
}

/// As [`refused`], for a call host code made on this thread straight to a
/// native plugin's implementation, which answered with `code`.
pub(crate) fn refused_here(
    plugin: &str,
    method: &str,
    code: outlet_protocol::Code,
) -> Option<Status> {
    let ok = code == outlet_protocol::Code::Ok;
    context::on_this_thread(|caller| refused(caller?, plugin, Mechanism::Native, method, ok))
}

/// What a `Call` frame (exec, rpc's frames) carries of the call's context:
/// the time left to `deadline` in µs (at least 1: 0 says none), and the
/// trace context of the caller on this thread.
pub(crate) fn carried(deadline: Instant) -> (u64, String, String) {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .as_micros();
    let trace = context::caller_trace();
    let (parent, state) = trace
        .as_ref()
        .map_or(("", ""), |t| (t.traceparent(), t.tracestate()));
    (
        u64::try_from(left).unwrap_or(u64::MAX).max(1),
        parent.to_owned(),
        state.to_owned(),
    )
}

/// A call not made: its caller cancelled it, or its deadline had passed.
#[cfg_attr(not(feature = "rpc"), allow(dead_code))]
pub(crate) fn not_made(plugin: &str, method: &str, cancelled: bool) -> Status {
    let over = if cancelled {
        Over::Cancelled
    } else {
        Over::Late
    };
    over.status(plugin, method, Before)
}

/// Why a stream of `plugin`'s `method` is over, if its caller cancelled it
/// or its deadline passed (before or after it was `opened`).
pub(crate) fn stream_over(
    caller: &CallContext,
    plugin: &str,
    method: &str,
    opened: bool,
) -> Option<Status> {
    let when = if opened {
        "after it was opened"
    } else {
        "before it was opened"
    };
    gone(caller, Instant::now()).map(|over| match over {
        Over::Cancelled => Status::cancelled(format!(
            "plugin `{plugin}`: the stream of {method} was cancelled by its caller {when}"
        )),
        Over::Late => Status::deadline_exceeded(format!(
            "plugin `{plugin}`: the stream of {method} passed its caller's deadline {when}"
        )),
    })
}

/// The status of a call cancelled while it ran.
pub(crate) fn cancelled(plugin: &str, method: &str) -> Status {
    Over::Cancelled.status(plugin, method, During(""))
}

/// Whether a call was given up on before it was made, or while it ran
/// (with what to add to the message).
enum When {
    Before,
    During(&'static str),
}
use When::{Before, During};

impl Over {
    fn status(&self, plugin: &str, method: &str, when: When) -> Status {
        match (self, when) {
            (Over::Cancelled, Before) => Status::cancelled(format!(
                "plugin `{plugin}`: {method} was cancelled by its caller before it was made"
            )),
            (Over::Cancelled, During(_)) => Status::cancelled(format!(
                "plugin `{plugin}`: {method} was cancelled by its caller while it ran"
            )),
            (Over::Late, Before) => Status::deadline_exceeded(format!(
                "plugin `{plugin}`: {method} was not made: its caller's deadline had passed"
            )),
            (Over::Late, During(why)) => Status::deadline_exceeded(format!(
                "plugin `{plugin}`: {method} answered after its caller's deadline{why}"
            )),
        }
    }
}
