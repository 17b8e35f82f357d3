//! Lifecycle events: what happens to each plugin, for host code to watch
//! ([`crate::Host::events`]).
//!
//! Each subscriber has a queue of its own, of a fixed size. An event is put
//! on it without waiting: a subscriber that does not keep up loses the
//! events its queue has no room for, and is told how many with an
//! [`EventKind::Lost`] as soon as there is room again. So no call, restart
//! or load ever waits on a subscriber, and one that never reads costs its
//! queue and nothing more.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

use outlet_manifest::Mechanism;

/// Something that happened to a plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The plugin's name, from its manifest.
    pub plugin: String,
    /// When it happened.
    pub time: SystemTime,
    /// What happened.
    pub kind: EventKind,
}

/// What happened to a plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// It was loaded: started, said Hello, and took its config.
    Loaded {
        /// Its mechanism.
        mechanism: Mechanism,
    },
    /// Its process ended when the host had not stopped it (rpc).
    Died {
        /// The process's id.
        pid: u32,
        /// Its exit code, if it exited.
        code: Option<i32>,
        /// The signal that killed it, if one did.
        signal: Option<i32>,
        /// How it ended, in words.
        how: String,
        /// Its last lines of stderr.
        stderr: String,
    },
    /// A new process is being started in the place of one that died, after
    /// a pause (rpc).
    Restarting {
        /// Which start in a row this is, from 1.
        attempt: u32,
        /// The pause before it.
        pause: Duration,
    },
    /// A new process serves it (rpc).
    Restarted {
        /// The new process's id.
        pid: u32,
    },
    /// It died, and it is not restarted again: calls fail until it is
    /// reloaded (rpc).
    GaveUp {
        /// Why, as calls are told.
        why: String,
    },
    /// A fresh instance replaced the running one (`Plugin::reload`, or
    /// `on_panic = "reload"`).
    Reloaded,
    /// A call panicked inside it (native): its state may be corrupt, and
    /// what comes next is its manifest's `on_panic`. Told when the host
    /// sees it: at once for a call by gRPC path, at the next call for a
    /// typed call, which goes straight to the plugin's trait.
    Poisoned,
    /// Its health check (`limits.health_interval_ms`) failed after passing,
    /// or passed after failing. While it fails, calls fail fast with
    /// `Unavailable`.
    HealthChanged {
        /// Whether it serves now.
        serving: bool,
        /// Why: what the check found.
        why: String,
    },
    /// It was unloaded (`Host::unload`).
    Unloaded,
    /// This subscriber's queue was full: this many events were lost (the
    /// event's plugin is the one of the event that found room again).
    Lost {
        /// How many.
        count: u64,
    },
}

/// One subscriber's events, in the order they happened.
#[derive(Debug)]
pub struct Events {
    receiver: Receiver<Event>,
}

impl Events {
    /// The next event, waiting at most `timeout`; `None` if none came.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.receiver.recv_timeout(timeout).ok()
    }

    /// The next event, if one is waiting.
    pub fn try_recv(&self) -> Option<Event> {
        self.receiver.try_recv().ok()
    }
}

impl Iterator for Events {
    type Item = Event;

    /// Waits for the next event; ends when the host is gone.
    fn next(&mut self) -> Option<Event> {
        self.receiver.recv().ok()
    }
}

/// Where a host's events go: its subscribers' queues.
#[derive(Default)]
pub(crate) struct Hub {
    subscribers: Mutex<Vec<Subscriber>>,
    /// Whether there is any, so that an event nobody takes costs one load.
    any: AtomicBool,
}

struct Subscriber {
    queue: SyncSender<Event>,
    /// Events lost since it was last told.
    lost: u64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("any", &self.any.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A new subscriber, whose queue holds `capacity` events (at least 1).
    pub(crate) fn subscribe(&self, capacity: usize) -> Events {
        let (queue, receiver) = std::sync::mpsc::sync_channel(capacity.max(1));
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subscribers.push(Subscriber { queue, lost: 0 });
        self.any.store(true, Ordering::Release);
        Events { receiver }
    }

    /// Tells every subscriber, without waiting for any.
    pub(crate) fn emit(&self, plugin: &str, kind: EventKind) {
        self.emit_with(plugin, || kind);
    }

    /// As [`Hub::emit`], making the event only if someone takes it.
    pub(crate) fn emit_with(&self, plugin: &str, kind: impl FnOnce() -> EventKind) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let event = Event {
            plugin: plugin.to_owned(),
            time: SystemTime::now(),
            kind: kind(),
        };
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subscribers.retain_mut(|subscriber| subscriber.offer(&event));
        self.any.store(!subscribers.is_empty(), Ordering::Release);
    }
}

impl Subscriber {
    /// Puts `event` on the queue if there is room, after the count of what
    /// was lost before it; whether the subscriber is still there.
    fn offer(&mut self, event: &Event) -> bool {
        if self.lost > 0 {
            let lost = Event {
                plugin: event.plugin.clone(),
                time: event.time,
                kind: EventKind::Lost { count: self.lost },
            };
            match self.queue.try_send(lost) {
                Ok(()) => self.lost = 0,
                Err(TrySendError::Full(_)) => {
                    self.lost += 1;
                    return true;
                }
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
        match self.queue.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.lost += 1;
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_subscriber_loses_events_and_is_told_how_many() {
        let hub = Hub::default();
        let slow = hub.subscribe(2);
        let fast = hub.subscribe(16);
        for _ in 0..5 {
            hub.emit("p", EventKind::Reloaded);
        }
        assert_eq!(slow.try_recv().unwrap().kind, EventKind::Reloaded);
        assert_eq!(slow.try_recv().unwrap().kind, EventKind::Reloaded);
        assert_eq!(slow.try_recv(), None);
        hub.emit("p", EventKind::Unloaded);
        assert_eq!(slow.try_recv().unwrap().kind, EventKind::Lost { count: 3 });
        assert_eq!(slow.try_recv().unwrap().kind, EventKind::Unloaded);
        // The other subscriber lost nothing.
        assert_eq!(fast.receiver.try_iter().count(), 6);
        // A subscriber that went away is forgotten.
        drop((slow, fast));
        hub.emit("p", EventKind::Unloaded);
        assert!(!hub.any.load(Ordering::Relaxed));
    }
}
