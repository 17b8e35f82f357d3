//! A plugin's log lines become `tracing` events tagged with its name.
//!
//! A line is either plain text (logged at INFO) or an hclog JSON object, as
//! go-plugin plugins write them: `{"@level":"debug","@message":"…", …}`.

/// The longest log line kept; longer lines are cut and marked.
pub(crate) const MAX_LINE: usize = 4096;

/// Emits one line a plugin wrote as a `tracing` event, target `outlet::plugin`.
pub(crate) fn line(plugin: &str, line: &[u8]) {
    let line = String::from_utf8_lossy(line);
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
    at(plugin, level, String::from_utf8_lossy(message).trim_end());
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
    fn hclog_json_lines_keep_their_level_and_fields() {
        let (level, message) =
            parse(r#"{"@level":"warn","@message":"disk low","@timestamp":"x","free":12}"#);
        assert_eq!(level, Level::Warn);
        assert_eq!(message, "disk low free=12");
        assert_eq!(parse("plain text").0, Level::Info);
        assert_eq!(parse("{not json").1, "{not json");
    }
}
