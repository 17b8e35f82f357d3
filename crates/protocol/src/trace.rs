//! W3C trace context (`traceparent`, `tracestate`): what ties a plugin's
//! work to the trace of the host's request that caused it.

use std::sync::{Arc, OnceLock};

/// A W3C trace context: a `traceparent` (`00-<trace id>-<parent id>-<flags>`)
/// and its `tracestate`, as an HTTP or gRPC request carries them. Cheap to
/// clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    traceparent: Arc<str>,
    tracestate: Arc<str>,
}

/// The longest `tracestate` carried, as the W3C spec lets a carrier cut it.
const MAX_TRACESTATE: usize = 512;

impl TraceContext {
    /// A trace context from its two header values, if `traceparent` is one
    /// (version `00`: 55 characters of lowercase hex and dashes, ids not
    /// all zero). A `tracestate` over 512 bytes is dropped, as the spec
    /// allows.
    pub fn new(traceparent: &str, tracestate: &str) -> Option<TraceContext> {
        if !valid(traceparent) {
            return None;
        }
        let tracestate = if tracestate.len() <= MAX_TRACESTATE && tracestate.is_ascii() {
            tracestate
        } else {
            ""
        };
        Some(TraceContext {
            traceparent: traceparent.into(),
            tracestate: tracestate.into(),
        })
    }

    /// The `traceparent` header's value.
    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    /// The `tracestate` header's value (may be empty).
    pub fn tracestate(&self) -> &str {
        &self.tracestate
    }

    /// The trace id: 32 hex digits.
    pub fn trace_id(&self) -> &str {
        &self.traceparent[3..35]
    }
}

fn valid(traceparent: &str) -> bool {
    let bytes = traceparent.as_bytes();
    let hex = |range: std::ops::Range<usize>| {
        bytes[range.clone()]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            && bytes[range].iter().any(|b| *b != b'0')
    };
    bytes.len() == 55
        && traceparent.starts_with("00-")
        && bytes[35] == b'-'
        && bytes[52] == b'-'
        && hex(3..35)
        && hex(36..52)
        && bytes[53..55].iter().all(|b| b.is_ascii_hexdigit())
}

/// Where the host's current trace context comes from when a call sets none
/// itself (`CallOptions::trace`): for example the current OpenTelemetry
/// span's. Set once; later settings are ignored.
pub fn set_trace_source(source: fn() -> Option<TraceContext>) {
    let _ = TRACE_SOURCE.set(source);
}

static TRACE_SOURCE: OnceLock<fn() -> Option<TraceContext>> = OnceLock::new();

/// The trace context host code has, when a call sets none itself.
pub(crate) fn from_source() -> Option<TraceContext> {
    TRACE_SOURCE.get().and_then(|source| source())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_w3c_traceparent_is_taken_and_anything_else_refused() {
        let trace = TraceContext::new(PARENT, "congo=t61rcWkgMzE").unwrap();
        assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(trace.tracestate(), "congo=t61rcWkgMzE");
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::new(bad, ""), None, "{bad:?}");
        }
        let long = "k=".to_owned() + &"v".repeat(600);
        assert_eq!(TraceContext::new(PARENT, &long).unwrap().tracestate(), "");
    }
}
