//! A plugin's log lines become `tracing` events tagged with its name.
//!
//! A line is either plain text (logged at INFO) or an hclog JSON object, as
//! go-plugin plugins write them: `{"@level":"debug","@message":"…", …}`.
//!
//! One policy holds for every mechanism's plugin: a line is kept up to
//! [`MAX_LINE`] bytes, and each of its streams (rpc's stdout, stderr and
//! stdio stream; a wasm guest's `log` import, stdout and stderr; a cabi
//! plugin's `log`) logs at most [`LINES_PER_SECOND`] lines a second
//! ([`Limiter`]); the rest are counted and said. An exec plugin's stderr
//! is also held to 1 MiB a call.

use std::time::{Duration, Instant};

/// The longest log line kept; longer lines are cut.
pub(crate) const MAX_LINE: usize = 4096;

/// Log lines a plugin's stream may write per second; the rest are counted
/// and dropped.
pub(crate) const LINES_PER_SECOND: u32 = 1000;

/// Holds one stream of a plugin's log lines to [`LINES_PER_SECOND`], and
/// says how many it dropped.
#[derive(Debug)]
pub(crate) struct Limiter {
    stream: &'static str,
    window: Instant,
    logged: u32,
    dropped: u64,
}

impl Limiter {
    pub(crate) fn new(stream: &'static str) -> Limiter {
        Limiter {
            stream,
            window: Instant::now(),
            logged: 0,
            dropped: 0,
        }
    }

    /// Whether the next line may be logged; a line refused is counted,
    /// and the count said once its second is over.
    pub(crate) fn admit(&mut self, plugin: &str) -> bool {
        if self.window.elapsed() >= Duration::from_secs(1) {
            if self.dropped > 0 {
                tracing::warn!(
                    target: "outlet::plugin",
                    plugin,
                    "{} lines of its {} were dropped: over {LINES_PER_SECOND} a second",
                    self.dropped,
                    self.stream
                );
            }
            (self.window, self.logged, self.dropped) = (Instant::now(), 0, 0);
        }
        if self.logged < LINES_PER_SECOND {
            self.logged += 1;
            true
        } else {
            self.dropped += 1;
            false
        }
    }

    /// Logs `line` as [`line`] does, if admitted.
    #[cfg_attr(not(feature = "rpc"), allow(dead_code))]
    pub(crate) fn log(&mut self, plugin: &str, line: &[u8]) {
        if self.admit(plugin) {
            self::line(plugin, line);
        }
    }

    /// Logs `message` as [`numbered`] does, if admitted.
    pub(crate) fn numbered(&mut self, plugin: &str, level: i32, message: &[u8]) {
        if self.admit(plugin) {
            self::numbered(plugin, level, message);
        }
    }
}

/// Emits one line a plugin wrote as a `tracing` event, target `outlet::plugin`.
pub(crate) fn line(plugin: &str, line: &[u8]) {
    let line = String::from_utf8_lossy(cut(line));
    let line = line.trim_end();
    if line.is_empty() {
        return;
    }
    let (level, message) = parse(line);
    at(plugin, level, &message);
}

/// Emits a message at a level given as a number: 0 trace, 1 debug, 2 info,
/// 3 warn, 4 (or more) error, as `outlet.h` numbers them.
pub(crate) fn numbered(plugin: &str, level: i32, message: &[u8]) {
    let level = match level {
        ..=0 => Level::Trace,
        1 => Level::Debug,
        2 => Level::Info,
        3 => Level::Warn,
        _ => Level::Error,
    };
    at(
        plugin,
        level,
        String::from_utf8_lossy(cut(message)).trim_end(),
    );
}

/// At most [`MAX_LINE`] bytes of a line.
fn cut(line: &[u8]) -> &[u8] {
    &line[..line.len().min(MAX_LINE)]
}

fn at(plugin: &str, level: Level, message: &str) {
    match level {
        Level::Trace => tracing::trace!(target: "outlet::plugin", plugin, "{message}"),
        Level::Debug => tracing::debug!(target: "outlet::plugin", plugin, "{message}"),
        Level::Info => tracing::info!(target: "outlet::plugin", plugin, "{message}"),
        Level::Warn => tracing::warn!(target: "outlet::plugin", plugin, "{message}"),
        Level::Error => tracing::error!(target: "outlet::plugin", plugin, "{message}"),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

fn parse(line: &str) -> (Level, std::borrow::Cow<'_, str>) {
    let Some(serde_json::Value::Object(fields)) = line
        .starts_with('{')
        .then(|| serde_json::from_str(line).ok())
        .flatten()
    else {
        return (Level::Info, line.into());
    };
    let level = match fields.get("@level").and_then(|l| l.as_str()) {
        Some("trace") => Level::Trace,
        Some("debug") => Level::Debug,
        Some("warn") => Level::Warn,
        Some("error") => Level::Error,
        _ => Level::Info,
    };
    let mut message = fields
        .get("@message")
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_owned();
    for (key, value) in fields.iter().filter(|(k, _)| !k.starts_with('@')) {
        message.push_str(&format!(" {key}={value}"));
    }
    (level, message.into())
}

/// The end of a plugin's stderr as a clause for error messages: empty if it
/// wrote nothing.
pub(crate) fn stderr_clause(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; its stderr ended with: {tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_logs_so_many_lines_a_second_and_each_line_so_long() {
        let mut limit = Limiter::new("log");
        let admitted = (0..3000).filter(|_| limit.admit("plugin")).count();
        assert_eq!(admitted, LINES_PER_SECOND as usize);
        assert_eq!(limit.dropped, 3000 - u64::from(LINES_PER_SECOND));
        assert_eq!(cut(&[b'x'; MAX_LINE + 10]).len(), MAX_LINE);
        assert_eq!(cut(b"short"), b"short");
    }

    #[test]
    fn hclog_json_lines_keep_their_level_and_fields() {
        let (level, message) =
            parse(r#"{"@level":"warn","@message":"disk low","@timestamp":"x","free":12}"#);
        assert_eq!(level, Level::Warn);
        assert_eq!(message, "disk low free=12");
        assert_eq!(parse("plain text").0, Level::Info);
        assert_eq!(parse("{not json").1, "{not json");
    }
}
