//! What a call carries besides its message: when it must be done (its
//! deadline) and whether its caller gave up on it (a [`Cancel`] token).
//!
//! On the host's side a generated client sets them for one call
//! (`client.with_timeout(…)`, `.with_cancel(…)`); the mechanism enforces
//! them and tells the plugin. On the plugin's side, code asks [`deadline`],
//! [`time_left`] and [`cancelled`] about the call it is serving:
//!
//! ```
//! use std::time::Duration;
//! use outlet_protocol::context::{self, Cancel, CallOptions};
//!
//! let cancel = Cancel::new();
//! let options = CallOptions::new().timeout(Duration::from_secs(1)).cancel(&cancel);
//! context::with(&options, || {
//!     assert!(context::time_left().unwrap() <= Duration::from_secs(1));
//!     assert!(!context::cancelled());
//!     cancel.cancel();
//!     assert!(context::cancelled());
//! });
//! assert!(context::deadline().is_none(), "nothing outside the call");
//! ```

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use crate::trace::{TraceContext, set_trace_source};

/// A way for a caller to give up on its calls: [`Cancel::cancel`] makes
/// every call made with the token (and each call those make through the
/// host) stop as soon as its mechanism can, failing with `Cancelled`.
/// Cheap to clone; clones are one token.
#[derive(Clone, Default)]
pub struct Cancel(Arc<Flag>);

type Watcher = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Flag {
    cancelled: AtomicBool,
    /// Asked as well, for a token that stands for a cancel the plugin
    /// learns of by looking (a connection the host closed, a signal).
    probe: Option<Box<dyn Fn() -> bool + Send + Sync>>,
    watchers: Mutex<Vec<(u64, Watcher)>>,
    next: AtomicU64,
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Cancel {
    /// A token not cancelled yet.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// A token that is cancelled when `probe` says so (asked each time),
    /// for a mechanism's guest side: its watchers run only on an explicit
    /// [`Cancel::cancel`], not when the probe turns.
    #[doc(hidden)]
    pub fn probe(probe: impl Fn() -> bool + Send + Sync + 'static) -> Cancel {
        Cancel(Arc::new(Flag {
            probe: Some(Box::new(probe)),
            ..Flag::default()
        }))
    }

    /// Cancels the calls made with this token. Harmless twice.
    pub fn cancel(&self) {
        if self.0.cancelled.swap(true, Ordering::AcqRel) {
            return;
        }
        let watchers =
            std::mem::take(&mut *self.0.watchers.lock().unwrap_or_else(|e| e.into_inner()));
        for (_, watcher) in watchers {
            watcher();
        }
    }

    /// Whether it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::Acquire) || self.0.probe.as_ref().is_some_and(|p| p())
    }

    /// Runs `f` once, on the cancelling thread, when the token is cancelled
    /// (at once if it is already): how a mechanism wakes a call that waits.
    /// Dropping the returned guard takes `f` back, unless a cancel took it
    /// first: it may then run just after the guard is gone, so it owns what
    /// it touches.
    pub fn watch(&self, f: impl FnOnce() + Send + 'static) -> Watch<'_> {
        let id = self.0.next.fetch_add(1, Ordering::Relaxed);
        let mut watchers = self.0.watchers.lock().unwrap_or_else(|e| e.into_inner());
        if self.0.cancelled.load(Ordering::Acquire) {
            drop(watchers);
            f();
        } else {
            watchers.push((id, Box::new(f)));
        }
        Watch { cancel: self, id }
    }
}

/// Keeps a [`Cancel::watch`]er registered; dropping it removes it.
#[must_use = "the watcher is removed when this is dropped"]
pub struct Watch<'a> {
    cancel: &'a Cancel,
    id: u64,
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let mut watchers = self
            .cancel
            .0
            .watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        watchers.retain(|(id, _)| *id != self.id);
    }
}

/// What a caller asks of one call: a time limit, a deadline, a token to
/// cancel it by. The default asks nothing: the manifest's
/// `limits.timeout_ms` alone holds the call.
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    cancel: Option<Cancel>,
    trace: Option<TraceContext>,
}

impl CallOptions {
    /// Nothing asked.
    pub fn new() -> CallOptions {
        CallOptions::default()
    }

    /// The call must be done within `timeout` of its start. A plugin's own
    /// `limits.timeout_ms` still holds if it is shorter.
    pub fn timeout(mut self, timeout: Duration) -> CallOptions {
        self.timeout = Some(timeout);
        self
    }

    /// The call must be done by `deadline`.
    pub fn deadline(mut self, deadline: Instant) -> CallOptions {
        self.deadline = Some(deadline);
        self
    }

    /// The call stops, failing with `Cancelled`, when `cancel` is cancelled.
    pub fn cancel(mut self, cancel: &Cancel) -> CallOptions {
        self.cancel = Some(cancel.clone());
        self
    }

    /// The call carries `trace` to the plugin (else the host's current
    /// trace context, see [`set_trace_source`]).
    pub fn trace(mut self, trace: TraceContext) -> CallOptions {
        self.trace = Some(trace);
        self
    }

    /// Whether it asks nothing.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.timeout.is_none()
            && self.deadline.is_none()
            && self.cancel.is_none()
            && self.trace.is_none()
    }

    /// The call's context, for a call starting now: what a transport
    /// holds an async call to ([`crate::Transport::call_async`]).
    pub fn start(&self) -> CallContext {
        // A timeout past what the clock can hold is no deadline.
        let after = self.timeout.and_then(|t| Instant::now().checked_add(t));
        CallContext {
            deadline: sooner(self.deadline, after),
            cancel: self.cancel.clone(),
            trace: self.trace.clone(),
        }
    }
}

/// The deadline and cancel token of the call being made or served on this
/// thread.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CallContext {
    /// When it must be done.
    pub deadline: Option<Instant>,
    /// How its caller gives up on it.
    pub cancel: Option<Cancel>,
    /// The trace it is part of.
    pub trace: Option<TraceContext>,
}

impl CallContext {
    /// A context of a deadline and a token.
    pub fn new(deadline: Option<Instant>, cancel: Option<Cancel>) -> CallContext {
        CallContext {
            deadline,
            cancel,
            trace: None,
        }
    }

    /// This context, part of `trace`.
    pub fn with_trace(mut self, trace: Option<TraceContext>) -> CallContext {
        self.trace = trace;
        self
    }

    /// Whether its caller gave up on it.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(Cancel::is_cancelled)
    }
}

/// The sooner of two deadlines.
pub fn sooner(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

thread_local! {
    static CURRENT: RefCell<Option<CallContext>> = const { RefCell::new(None) };
}

/// Where a plugin's mechanism answers for the call it serves when it is
/// not on this thread's context: a native or cabi plugin's host, a wasm
/// guest's imports. Set once by the guest side of a mechanism.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct Source {
    /// The time left to the call being served, if it has a deadline.
    pub time_left: fn() -> Option<Duration>,
    /// Whether its caller gave up on it.
    pub cancelled: fn() -> bool,
    /// The trace it is part of.
    pub trace: fn() -> Option<TraceContext>,
}

/// Sets where this plugin's calls are answered for (the first setting holds).
#[doc(hidden)]
pub fn set_source(source: Source) {
    let _ = SOURCE.set(source);
}

static SOURCE: OnceLock<Source> = OnceLock::new();

/// Runs `f` as a call made with `options`, within the call this thread is
/// making or serving, if any: the sooner deadline holds, and either token
/// cancels it. With no options, just runs `f`.
#[inline]
pub fn with<R>(options: &CallOptions, f: impl FnOnce() -> R) -> R {
    if options.is_empty() {
        return f();
    }
    scope(options.start(), f)
}

/// Runs `f` within `context`, nested in the call this thread is making or
/// serving, if any.
pub fn scope<R>(context: CallContext, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<CallContext>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|current| *current.borrow_mut() = self.0.take());
        }
    }
    let mut context = context;
    // With a token of its own inside a call with another: a third token,
    // which either cancels.
    let mut either = None;
    if let Some(outer) = current() {
        context.deadline = sooner(context.deadline, outer.deadline);
        context.trace = context.trace.or(outer.trace);
        context.cancel = match (context.cancel.take(), outer.cancel) {
            (Some(inner), Some(outer)) => {
                // Asks both (a token that is only looked at, a guest's,
                // runs no watchers), and is woken by either.
                let (a, b) = (inner.clone(), outer.clone());
                let both = Cancel::probe(move || a.is_cancelled() || b.is_cancelled());
                either = Some((inner, outer, both.clone()));
                Some(both)
            }
            (inner, outer) => inner.or(outer),
        };
    }
    let _watches = either.as_ref().map(|(inner, outer, both)| {
        let (a, b) = (both.clone(), both.clone());
        (
            inner.watch(move || a.cancel()),
            outer.watch(move || b.cancel()),
        )
    });
    let _restore = Restore(CURRENT.with(|current| current.replace(Some(context))));
    f()
}

/// The context of the call being made or served on this thread, if one
/// was set here (a plugin whose mechanism answers for it elsewhere asks
/// [`time_left`] and [`cancelled`]).
pub fn current() -> Option<CallContext> {
    CURRENT.with(|current| current.borrow().clone())
}

/// When the call being served must be done, if it has a deadline: its
/// caller's, or the plugin's own `limits.timeout_ms`. (Not on
/// `wasm32-unknown-unknown`, which has no clock: ask [`time_left`].)
pub fn deadline() -> Option<Instant> {
    match on_this_thread(|c| c.map(|c| c.deadline)) {
        Some(deadline) => deadline,
        None => time_left().map(|left| Instant::now() + left),
    }
}

/// The time left to the call being served, if it has a deadline.
pub fn time_left() -> Option<Duration> {
    match on_this_thread(|c| c.map(|c| c.deadline)) {
        Some(deadline) => deadline.map(|d| d.saturating_duration_since(Instant::now())),
        None => SOURCE.get().and_then(|source| (source.time_left)()),
    }
}

/// Whether the caller of the call being served gave up on it. A plugin
/// that may run long asks now and then, and returns early with
/// [`Status::cancelled`](crate::Status::cancelled) when it did.
pub fn cancelled() -> bool {
    match on_this_thread(|c| c.map(CallContext::is_cancelled)) {
        Some(cancelled) => cancelled,
        None => SOURCE.get().is_some_and(|source| (source.cancelled)()),
    }
}

/// The trace context of the call host code is making on this thread: set
/// for the call, else the host's current one ([`set_trace_source`]). What
/// the host sends the plugin.
#[doc(hidden)]
pub fn caller_trace() -> Option<TraceContext> {
    on_this_thread(|c| c.and_then(|c| c.trace.clone())).or_else(crate::trace::from_source)
}

/// The trace context of the call being made or served: set for the call,
/// else its mechanism's (a plugin's), else the host's current one
/// ([`set_trace_source`]).
pub fn trace() -> Option<TraceContext> {
    on_this_thread(|c| c.and_then(|c| c.trace.clone()))
        .or_else(|| SOURCE.get().and_then(|source| (source.trace)()))
        .or_else(crate::trace::from_source)
}

/// Whether this thread is inside a call's context at all: cheaper than
/// [`current`], for a caller's fast path.
#[inline]
pub fn is_set() -> bool {
    CURRENT.with(|current| current.borrow().is_some())
}

/// Runs `f` with the context set on this thread (not a mechanism's
/// source), without cloning it: what the host reads on a call's path.
#[doc(hidden)]
pub fn on_this_thread<R>(f: impl FnOnce(Option<&CallContext>) -> R) -> R {
    CURRENT.with(|current| f(current.borrow().as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watcher_runs_once_on_cancel_and_not_after_its_guard_is_dropped() {
        let cancel = Cancel::new();
        let runs = Arc::new(AtomicU64::new(0));
        let counted = runs.clone();
        let kept = cancel.watch(move || {
            counted.fetch_add(1, Ordering::Relaxed);
        });
        let dropped = runs.clone();
        drop(cancel.watch(move || {
            dropped.fetch_add(10, Ordering::Relaxed);
        }));
        cancel.cancel();
        cancel.cancel();
        assert_eq!(runs.load(Ordering::Relaxed), 1);
        drop(kept);
        let late = runs.clone();
        let _at_once = cancel.watch(move || {
            late.fetch_add(100, Ordering::Relaxed);
        });
        assert_eq!(
            runs.load(Ordering::Relaxed),
            101,
            "a cancelled token runs it at once"
        );
    }

    #[test]
    fn nested_calls_keep_the_sooner_deadline_and_either_token_cancels() {
        let (outer, inner) = (Cancel::new(), Cancel::new());
        let soon = Instant::now() + Duration::from_millis(50);
        let options = CallOptions::new().deadline(soon).cancel(&outer);
        with(&options, || {
            let later = CallOptions::new()
                .timeout(Duration::from_secs(60))
                .cancel(&inner);
            with(&later, || {
                assert_eq!(deadline(), Some(soon));
                assert!(!cancelled());
                outer.cancel();
                assert!(cancelled(), "the outer token cancels the inner call");
            });
            assert!(cancelled());
        });
        assert!(!is_set());
        assert!(!inner.is_cancelled());
    }

    #[test]
    fn a_guests_probe_token_cancels_a_call_nested_in_its_call() {
        let hung_up = Arc::new(AtomicBool::new(false));
        let seen = hung_up.clone();
        let host = CallContext::new(
            None,
            Some(Cancel::probe(move || seen.load(Ordering::Relaxed))),
        );
        let own = Cancel::new();
        scope(host, || {
            with(&CallOptions::new().cancel(&own), || {
                assert!(!cancelled());
                hung_up.store(true, Ordering::Relaxed);
                assert!(cancelled(), "the outer probe counts inside");
            });
        });
    }

    #[test]
    fn a_timeout_too_long_for_the_clock_is_no_deadline() {
        with(&CallOptions::new().timeout(Duration::MAX), || {
            assert_eq!(deadline(), None);
            assert!(is_set());
        });
    }

    #[test]
    fn a_probe_token_asks_each_time() {
        let flag = Arc::new(AtomicBool::new(false));
        let seen = flag.clone();
        let cancel = Cancel::probe(move || seen.load(Ordering::Relaxed));
        assert!(!cancel.is_cancelled());
        flag.store(true, Ordering::Relaxed);
        assert!(cancel.is_cancelled());
    }
}
