//! What a plugin's calls did: counted per plugin and method as they
//! happen, read as a snapshot ([`Plugin::stats`](crate::Plugin::stats)), and
//! published through the `metrics` crate's facade, so that any exporter
//! (Prometheus, StatsD, OpenTelemetry) picks them up:
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `outlet_calls_total` | counter | plugin, method, mechanism, code |
//! | `outlet_call_duration_seconds` | histogram | plugin, method, mechanism |
//! | `outlet_calls_in_flight` | gauge | plugin, method, mechanism |
//! | `outlet_request_bytes_total`, `outlet_response_bytes_total` | counter | plugin, method, mechanism |
//! | `outlet_restarts_total`, `outlet_reloads_total` | counter | plugin, mechanism |
//!
//! `code` is gRPC's name for the call's status code (`OK`, `DEADLINE_EXCEEDED`, …). Install
//! the exporter's recorder before loading plugins: a plugin's metrics are
//! registered with the recorder installed when it is loaded (or, per method,
//! first called). With none installed, publishing costs a branch.
//!
//! Calls of an in-process plugin (native, cabi, wasm) take from a hundred
//! nanoseconds to a microsecond, where reading the clock twice costs fifty:
//! one in [`IN_PROCESS_TIMED`] of them is timed, all of them counted. Every
//! call of rpc and exec plugins (tens of microseconds and more) is timed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Label};
use outlet_manifest::Mechanism;
use outlet_protocol::Code;

/// The upper bounds of the latency histogram's buckets, in seconds (the last
/// bucket takes the rest): from a quarter of a microsecond, for native
/// calls, to ten seconds.
pub const LATENCY_BOUNDS: [f64; 23] = [
    250e-9, 500e-9, 1e-6, 2.5e-6, 5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3,
    5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0, 2.5, 10.0,
];

/// One in how many calls of an in-process plugin (native, cabi, wasm) is timed.
pub const IN_PROCESS_TIMED: u64 = 64;

/// Methods counted per plugin: the first 63 called apart, and in the last
/// slot, under `*`, calls of any others (by a gRPC path made up at run
/// time, `outlet call`).
const MAX_METHODS: usize = 64;

/// gRPC's names of the status codes, by number.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// What one plugin's calls did, since it was loaded.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PluginStats {
    /// The plugin's name.
    pub plugin: String,
    /// Its mechanism.
    pub mechanism: Mechanism,
    /// How many times its process was restarted after dying (rpc).
    pub restarts: u64,
    /// How many times it was reloaded.
    pub reloads: u64,
    /// Each method called, in the order first called.
    pub methods: Vec<MethodStats>,
}

impl PluginStats {
    /// Every method's calls.
    pub fn calls(&self) -> u64 {
        self.methods.iter().map(|m| m.calls).sum()
    }

    /// Every method's failed calls.
    pub fn errors(&self) -> u64 {
        self.methods.iter().map(MethodStats::errors).sum()
    }
}

/// What the calls of one method did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MethodStats {
    /// Its gRPC path, `/package.Service/Method`.
    pub method: String,
    /// Calls answered (or failed).
    pub calls: u64,
    /// Calls running now.
    pub in_flight: u64,
    /// Failed calls, by code.
    pub errors: Vec<(Code, u64)>,
    /// Bytes of requests sent to the plugin, and of answers from it (0 for
    /// native calls, which encode nothing).
    pub bytes_in: u64,
    /// See `bytes_in`.
    pub bytes_out: u64,
    /// How long the timed calls took.
    pub latency: Latency,
}

impl MethodStats {
    /// Its failed calls, whatever their code.
    pub fn errors(&self) -> u64 {
        self.errors.iter().map(|(_, n)| n).sum()
    }
}

/// A histogram of call durations: how many timed calls took at most each
/// of [`LATENCY_BOUNDS`] (and, last, the rest).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Latency {
    /// Calls per bucket, not cumulative: `counts[i]` took at most
    /// `LATENCY_BOUNDS[i]` and more than the bound before.
    pub counts: Vec<u64>,
    /// The calls timed.
    pub timed: u64,
    /// Their total duration.
    pub sum: Duration,
}

impl Latency {
    /// The mean duration of the timed calls.
    pub fn mean(&self) -> Option<Duration> {
        let mean = self.sum.as_nanos().checked_div(u128::from(self.timed))?;
        Some(Duration::from_nanos(
            u64::try_from(mean).unwrap_or(u64::MAX),
        ))
    }

    /// The bound of the bucket the `q` quantile (0–1) falls in: an upper
    /// bound on it, `None` if nothing was timed or it lies past the last bound.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let rank = (q.clamp(0.0, 1.0) * self.timed as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return LATENCY_BOUNDS.get(i).map(|s| Duration::from_secs_f64(*s));
            }
        }
        None
    }
}

/// One plugin's counts, kept across its reloads and restarts.
pub(crate) struct Meter {
    plugin: String,
    mechanism: Mechanism,
    /// Filled in order, under `adding`; read without a lock.
    methods: Box<[OnceLock<MethodMeter>]>,
    adding: Mutex<()>,
    restarts: AtomicU64,
    #[cfg_attr(not(feature = "rpc"), allow(dead_code))]
    restarts_total: Counter,
    reloads_total: Counter,
}

impl Meter {
    pub(crate) fn new(plugin: &str, mechanism: Mechanism) -> Meter {
        let labels = [
            Label::new("plugin", plugin.to_owned()),
            Label::new("mechanism", mechanism.name()),
        ];
        Meter {
            plugin: plugin.to_owned(),
            mechanism,
            methods: (0..MAX_METHODS).map(|_| OnceLock::new()).collect(),
            adding: Mutex::new(()),
            restarts: AtomicU64::new(0),
            restarts_total: metrics::counter!("outlet_restarts_total", labels.iter()),
            reloads_total: metrics::counter!("outlet_reloads_total", labels.iter()),
        }
    }

    /// Counts a restart of the plugin's process.
    #[cfg_attr(not(feature = "rpc"), allow(dead_code))]
    pub(crate) fn restarted(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
        self.restarts_total.increment(1);
    }

    /// Counts a reload.
    pub(crate) fn reloaded(&self) {
        self.reloads_total.increment(1);
    }

    /// The counts of `method`, made on its first call.
    #[inline]
    pub(crate) fn method(&self, method: &str) -> &MethodMeter {
        self.lookup(method, None)
    }

    /// As [`Meter::method`], for a path the caller's code holds for as long
    /// as the process runs (a generated client's): found again by where it
    /// lives, with no compare.
    #[inline]
    pub(crate) fn method_static(&self, method: &'static str) -> &MethodMeter {
        self.lookup(method, Some(method.as_ptr() as usize))
    }

    #[inline]
    fn lookup(&self, method: &str, key: Option<usize>) -> &MethodMeter {
        match self.find(method, key) {
            Some(found) => found,
            None => self.add(method, key),
        }
    }

    #[cold]
    fn add(&self, method: &str, key: Option<usize>) -> &MethodMeter {
        let _one_at_a_time = self.adding.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = self.find(method, key) {
            return found;
        }
        // The last slot takes every method past the others.
        let slot = self
            .methods
            .iter()
            .find(|slot| slot.get().is_none())
            .unwrap_or(&self.methods[MAX_METHODS - 1]);
        let other = std::ptr::eq(slot, &self.methods[MAX_METHODS - 1]);
        slot.get_or_init(|| MethodMeter::new(self, method, other, key))
    }

    #[inline]
    fn find(&self, method: &str, key: Option<usize>) -> Option<&MethodMeter> {
        let mut last = None;
        for slot in &self.methods {
            let found = slot.get()?;
            // The same `&'static str` as last time, most often: no compare.
            let same =
                key.is_some_and(|key| key == found.key && found.method.len() == method.len());
            if same || *found.method == *method {
                return Some(found);
            }
            last = Some(found);
        }
        last
    }

    /// A snapshot.
    pub(crate) fn stats(&self, reloads: u64) -> PluginStats {
        PluginStats {
            plugin: self.plugin.clone(),
            mechanism: self.mechanism,
            restarts: self.restarts.load(Ordering::Relaxed),
            reloads,
            methods: self
                .methods
                .iter()
                .map_while(OnceLock::get)
                .map(MethodMeter::stats)
                .collect(),
        }
    }
}

/// One method's counts, and its metrics as published.
pub(crate) struct MethodMeter {
    method: Box<str>,
    /// Where the path lives, if it was first asked for by a `&'static str`
    /// (a generated client's): known again without comparing. 0 otherwise.
    key: usize,
    /// Whether one call in [`IN_PROCESS_TIMED`] is timed (in-process
    /// mechanisms), or all.
    sampled: bool,
    started: AtomicU64,
    finished: AtomicU64,
    errors: [AtomicU64; 17],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    timed: AtomicU64,
    nanos: AtomicU64,
    published: Published,
}

/// A method's handles on the metrics recorder.
struct Published {
    labels: Vec<Label>,
    /// `outlet_calls_total`, per code, registered on the first call with it.
    calls: [OnceLock<Counter>; 17],
    duration: Histogram,
    in_flight: Gauge,
    bytes_in: Counter,
    bytes_out: Counter,
}

impl MethodMeter {
    /// The counts of `method`, or of every method past the most counted
    /// apart (`other`), under `*`.
    fn new(meter: &Meter, method: &str, other: bool, key: Option<usize>) -> MethodMeter {
        let method = if other { "*" } else { method };
        let labels = vec![
            Label::new("plugin", meter.plugin.clone()),
            Label::new("method", method.to_owned()),
            Label::new("mechanism", meter.mechanism.name()),
        ];
        MethodMeter {
            method: method.into(),
            key: key.filter(|_| !other).unwrap_or(0),
            sampled: matches!(
                meter.mechanism,
                Mechanism::Native | Mechanism::Cabi | Mechanism::Wasm
            ),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            errors: Default::default(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            buckets: Default::default(),
            timed: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
            published: Published {
                calls: Default::default(),
                duration: metrics::histogram!("outlet_call_duration_seconds", labels.iter()),
                in_flight: metrics::gauge!("outlet_calls_in_flight", labels.iter()),
                bytes_in: metrics::counter!("outlet_request_bytes_total", labels.iter()),
                bytes_out: metrics::counter!("outlet_response_bytes_total", labels.iter()),
                labels,
            },
        }
    }

    /// Counts a call starting: with the time it started, if it is timed.
    #[inline]
    pub(crate) fn start(&self) -> Option<Instant> {
        let n = self.started.fetch_add(1, Ordering::Relaxed);
        self.published.in_flight.increment(1.0);
        (!self.sampled || n.is_multiple_of(IN_PROCESS_TIMED)).then(Instant::now)
    }

    /// Takes back a [`MethodMeter::start`] of a call that was not made.
    pub(crate) fn unstart(&self) {
        self.started.fetch_sub(1, Ordering::Relaxed);
        self.published.in_flight.decrement(1.0);
    }

    /// Counts a call ending with `code`, its request and answer that long.
    #[inline]
    pub(crate) fn finish(&self, started: Option<Instant>, code: Code, bytes: (usize, usize)) {
        if let Some(started) = started {
            let took = started.elapsed();
            let seconds = took.as_secs_f64();
            let bucket = LATENCY_BOUNDS.partition_point(|bound| *bound < seconds);
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
            self.timed.fetch_add(1, Ordering::Relaxed);
            let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
            self.nanos.fetch_add(nanos, Ordering::Relaxed);
            self.published.duration.record(seconds);
        }
        self.finished.fetch_add(1, Ordering::Relaxed);
        let published = &self.published;
        published.in_flight.decrement(1.0);
        let code = (code.as_i32() as usize).min(16);
        if code != 0 {
            self.errors[code].fetch_add(1, Ordering::Relaxed);
        }
        published.calls[code]
            .get_or_init(|| {
                let mut labels = published.labels.clone();
                labels.push(Label::new("code", CODE_NAMES[code]));
                metrics::counter!("outlet_calls_total", labels)
            })
            .increment(1);
        if bytes != (0, 0) {
            self.bytes_in.fetch_add(bytes.0 as u64, Ordering::Relaxed);
            self.bytes_out.fetch_add(bytes.1 as u64, Ordering::Relaxed);
            published.bytes_in.increment(bytes.0 as u64);
            published.bytes_out.increment(bytes.1 as u64);
        }
    }

    fn stats(&self) -> MethodStats {
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let calls = load(&self.finished);
        MethodStats {
            method: self.method.to_string(),
            calls,
            in_flight: load(&self.started).saturating_sub(calls),
            errors: (1..17)
                .filter_map(|code| {
                    let n = load(&self.errors[code]);
                    (n > 0).then(|| (Code::from_i32(code as i32), n))
                })
                .collect(),
            bytes_in: load(&self.bytes_in),
            bytes_out: load(&self.bytes_out),
            latency: Latency {
                counts: self.buckets.iter().map(load).collect(),
                timed: load(&self.timed),
                sum: Duration::from_nanos(load(&self.nanos)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_per_method_with_their_codes_and_times() {
        let meter = Meter::new("p", Mechanism::Rpc);
        let greet = meter.method("/s.S/Greet");
        let started = greet.start();
        assert!(started.is_some(), "an rpc call is always timed");
        assert_eq!(meter.stats(0).methods[0].in_flight, 1);
        greet.finish(started, Code::Ok, (10, 20));
        let started = greet.start();
        greet.finish(started, Code::Unavailable, (10, 0));
        let dynamic = String::from("/s.S/Greet");
        assert!(
            std::ptr::eq(meter.method(&dynamic), greet),
            "found by its text"
        );
        let stats = meter.stats(2);
        assert_eq!((stats.reloads, stats.calls(), stats.errors()), (2, 2, 1));
        let method = &stats.methods[0];
        assert_eq!(
            (method.method.as_str(), method.in_flight),
            ("/s.S/Greet", 0)
        );
        assert_eq!(method.errors, [(Code::Unavailable, 1)]);
        assert_eq!((method.bytes_in, method.bytes_out), (20, 20));
        assert_eq!(method.latency.timed, 2);
        assert_eq!(method.latency.counts.iter().sum::<u64>(), 2);
        assert!(method.latency.quantile(0.99).is_some());
    }

    #[test]
    fn in_process_calls_are_all_counted_and_some_timed() {
        let meter = Meter::new("p", Mechanism::Native);
        let greet = meter.method("/s.S/Greet");
        for _ in 0..80 {
            let started = greet.start();
            greet.finish(started, Code::Ok, (0, 0));
        }
        let stats = &meter.stats(0).methods[0];
        assert_eq!(stats.calls, 80);
        assert_eq!(stats.latency.timed, 80u64.div_ceil(IN_PROCESS_TIMED));
    }

    #[test]
    fn methods_past_the_most_counted_apart_share_one_entry() {
        let meter = Meter::new("p", Mechanism::Exec);
        for i in 0..MAX_METHODS + 10 {
            let method = meter.method(&format!("/s.S/M{i}"));
            method.finish(method.start(), Code::Unimplemented, (0, 0));
        }
        let stats = meter.stats(0);
        assert_eq!(stats.methods.len(), MAX_METHODS);
        let other = stats.methods.last().unwrap();
        assert_eq!((other.method.as_str(), other.calls), ("*", 11));
        assert_eq!(stats.calls(), (MAX_METHODS + 10) as u64);
    }

    #[test]
    fn a_quantile_is_the_bound_of_its_bucket() {
        let mut counts = vec![0; LATENCY_BOUNDS.len() + 1];
        counts[2] = 99; // ≤ 1 µs
        counts[11] = 1; // ≤ 1 ms
        let latency = Latency {
            counts,
            timed: 100,
            sum: Duration::from_millis(1),
        };
        assert_eq!(latency.quantile(0.5), Some(Duration::from_micros(1)));
        assert_eq!(latency.quantile(1.0), Some(Duration::from_millis(1)));
        assert_eq!(Latency::default().quantile(0.5), None);
    }
}
