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
    // A cancel that came while the call ran ends it, whatever it answered;
    // a late answer too, unless the mechanism said so already.
    match gone(&caller, Instant::now()) {
        Some(Over::Cancelled) => Err(Over::Cancelled.status(plugin, method, During(""))),
        Some(Over::Late) if answer.is_ok() => {
            let why = match mechanism {
                Mechanism::Native | Mechanism::Cabi => {
                    "; an in-process plugin cannot be stopped, and returns by its deadline \
                     only if it asks outlet_guest::context::time_left"
                }
                _ => "",
            };
            Err(Over::Late.status(plugin, method, During(why)))
        }
        _ => answer,
    }
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
