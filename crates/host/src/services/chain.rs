//! Chains of calls through the host: the [`Frame`] of each call, which
//! plugins it went through and when its time is up, kept per thread while
//! the call is served (in-process plugins call back on the thread that
//! called them), and what a mechanism reads of it: the time left.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outlet_protocol::context::{self, CallContext, Cancel};

/// The most plugins one chain of calls may go through.
pub(crate) const MAX_CHAIN: usize = 8;

/// One call in a chain of calls through the host: the plugin serving it,
/// the call it was made within, and when its time is up.
#[derive(Debug)]
pub(crate) struct Frame {
    plugin: Arc<str>,
    outer: Option<Arc<Frame>>,
    /// How many plugins the chain holds, this one's included.
    pub(super) depth: usize,
    /// When the calls made within this one must be done: the sooner of
    /// `imposed` and the serving plugin's own limit.
    pub(super) deadline: Option<Instant>,
    /// The deadline the call it was made within imposes on it.
    imposed: Option<Instant>,
    /// The token host code gave the outermost call, if any: it cancels the
    /// whole chain, on whichever thread a call of it runs.
    pub(super) cancel: Option<Cancel>,
}

impl Frame {
    /// A chain that starts with `plugin`.
    pub(super) fn root(plugin: Arc<str>, deadline: Option<Instant>) -> Frame {
        Frame {
            plugin,
            outer: None,
            depth: 1,
            deadline,
            imposed: None,
            cancel: None,
        }
    }

    /// A call to `plugin` made within `outer`.
    pub(super) fn inner(outer: &Arc<Frame>, plugin: Arc<str>, deadline: Option<Instant>) -> Frame {
        Frame {
            plugin,
            outer: Some(outer.clone()),
            depth: outer.depth + 1,
            deadline,
            imposed: outer.deadline,
            cancel: outer.cancel.clone(),
        }
    }

    /// The plugin serving the call.
    pub(super) fn serving(&self) -> &str {
        &self.plugin
    }

    /// The plugins of the chain, the outermost first.
    pub(super) fn chain(&self) -> Vec<&str> {
        let mut chain = Vec::with_capacity(self.depth);
        let mut frame = Some(self);
        while let Some(f) = frame {
            chain.push(&*f.plugin);
            frame = f.outer.as_deref();
        }
        chain.reverse();
        chain
    }

    /// Whether `plugin` is in the chain.
    pub(super) fn holds(&self, plugin: &str) -> bool {
        let mut frame = Some(self);
        while let Some(f) = frame {
            if *f.plugin == *plugin {
                return true;
            }
            frame = f.outer.as_deref();
        }
        false
    }

    /// `a → b → c`.
    pub(super) fn path(&self) -> String {
        self.chain().join(" → ")
    }

    /// The frame of a call host code makes to `plugin`, which may take
    /// `limit`: within the call being served on this thread, if any.
    pub(crate) fn enter(plugin: &Arc<str>, limit: Duration) -> Arc<Frame> {
        let outer = match current() {
            // The bus made it already, routing a call to this plugin.
            Some(frame) if frame.serving() == &**plugin => return frame,
            outer => outer,
        };
        // The plugin's own limit, or its caller's deadline if sooner.
        let own = Instant::now() + limit;
        let own = caller_deadline().map_or(own, |d| d.min(own));
        let mut frame = match outer {
            Some(outer) => {
                let deadline = outer.deadline.map_or(own, |d| d.min(own));
                Frame::inner(&outer, plugin.clone(), Some(deadline))
            }
            None => Frame::root(plugin.clone(), Some(own)),
        };
        if let Some(cancel) = caller_cancel() {
            frame.cancel = Some(cancel);
        }
        Arc::new(frame)
    }
}

thread_local! {
    /// The call this thread is serving, in a chain of calls through the
    /// host, if the plugin serving it may call on.
    static CURRENT: Cell<Option<Arc<Frame>>> = const { Cell::new(None) };
    /// When the call this thread is serving must be done, if it was made
    /// through the host or by a plugin that may call on.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The call this thread is serving, taken out of its slot if `plugin`
/// serves it (to be put back with [`put_back`]), which saves its count two
/// atomic operations.
pub(super) fn take_serving(plugin: &str) -> Option<Arc<Frame>> {
    CURRENT.with(|current| match current.take() {
        Some(frame) if frame.serving() == plugin => Some(frame),
        other => {
            current.set(other);
            None
        }
    })
}

fn current() -> Option<Arc<Frame>> {
    CURRENT.with(|current| {
        let frame = current.take();
        current.set(frame.clone());
        frame
    })
}

/// Puts a frame [`take_serving`] took back into this thread's slot.
pub(super) fn put_back(frame: Arc<Frame>, taken: bool) {
    if taken {
        CURRENT.with(|current| current.set(Some(frame)));
    }
}

/// Runs `f` as the call of `frame`, on this thread: held to the deadline
/// the call it was made within imposes (the mechanism adds the plugin's own
/// limit).
pub(crate) fn within<R>(frame: Arc<Frame>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<Frame>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|current| current.set(self.0.take()));
        }
    }
    let deadline = frame.imposed;
    let _restore = Restore(CURRENT.with(|current| current.replace(Some(frame))));
    until(deadline, f)
}

/// Runs `f` as a call that must be done by `deadline`, on this thread.
pub(crate) fn until<R>(deadline: Option<Instant>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            DEADLINE.with(|current| current.set(self.0));
        }
    }
    let _restore = Restore(DEADLINE.with(|current| current.replace(deadline)));
    f()
}

/// What a call that ran out of time ran into, for its message: the time
/// left to the call it was made in, if that is up, else the plugin's own
/// `limits.timeout_ms`.
pub(crate) fn limit_hit(timeout_ms: u64) -> String {
    let now = Instant::now();
    if caller_deadline().is_some_and(|d| now >= d) {
        return "its caller's deadline (CallOptions, a client's with_timeout or with_deadline)"
            .into();
    }
    if DEADLINE.with(Cell::get).is_some_and(|d| now >= d) {
        "the time left to it (by the call it was made in through the host, a health check or \
         a shutdown)"
            .into()
    } else {
        format!("{timeout_ms} ms (limits.timeout_ms)")
    }
}

/// The call this thread is serving, to be carried to another thread that
/// serves it on (wasm's, for a module with WASI).
#[cfg(feature = "wasm")]
pub(crate) struct Carried(Option<Arc<Frame>>, Option<Instant>, Option<CallContext>);

/// What this thread is serving, for [`Carried::resume`] on another.
#[cfg(feature = "wasm")]
pub(crate) fn carry() -> Carried {
    Carried(
        current(),
        DEADLINE.with(Cell::get),
        context::on_this_thread(|c| c.cloned()),
    )
}

#[cfg(feature = "wasm")]
impl Carried {
    /// Runs `f` as part of the carried call, on this thread.
    pub(crate) fn resume<R>(self, f: impl FnOnce() -> R) -> R {
        let f = || match self.2 {
            Some(caller) => context::scope(caller, f),
            None => f(),
        };
        match self.0 {
            Some(frame) => within(frame, || until(self.1, f)),
            None => until(self.1, f),
        }
    }
}

/// `limit`, or less if the call this thread is serving has less time left,
/// by the call it was made in or its caller's deadline: how long a
/// mechanism lets a call run.
pub(crate) fn time_left(limit: Duration) -> Duration {
    match deadline_here() {
        Some(deadline) => limit.min(deadline.saturating_duration_since(Instant::now())),
        None => limit,
    }
}

/// When the call this thread is serving must be done, by the call it was
/// made in or its caller's deadline, if either says.
pub(crate) fn deadline_here() -> Option<Instant> {
    context::sooner(DEADLINE.with(Cell::get), caller_deadline())
}

/// The deadline the host code calling on this thread set (its client's
/// `CallOptions`), if any.
fn caller_deadline() -> Option<Instant> {
    context::on_this_thread(|c| c.and_then(|c| c.deadline))
}

/// The token the host code calling on this thread may cancel the call by.
pub(crate) fn caller_cancel() -> Option<Cancel> {
    context::on_this_thread(|c| c.and_then(|c| c.cancel.clone()))
}

/// Runs `call` of the chain of `frame` where its cancel reaches it: on a
/// thread of its own (an rpc plugin's broker's), the chain's token comes
/// with it; on the caller's thread, it is there already.
pub(super) fn cancelled_with<R>(frame: &Frame, call: impl FnOnce() -> R) -> R {
    match &frame.cancel {
        Some(cancel) if !outlet_protocol::context::is_set() => {
            let chain = CallContext::new(None, Some(cancel.clone()));
            outlet_protocol::context::scope(chain, call)
        }
        _ => call(),
    }
}
