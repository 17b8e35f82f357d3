//! An rpc plugin's stdout and stderr as log events: split into lines, at
//! most `log::LINES_PER_SECOND` a second of each stream (`log::Limiter`),
//! with the end of stderr kept for error messages.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::Mutex;

use crate::log::{self, Limiter};

/// How much of the end of stderr an error message quotes.
const TAIL: usize = 512;

/// Calls `f` with each line `reader` yields, without its newline; a line
/// longer than `log::MAX_LINE` comes in pieces of that size.
pub(super) fn lines(mut reader: impl Read, mut f: impl FnMut(&[u8])) {
    let mut buffer = vec![0; 2 * log::MAX_LINE];
    let mut filled = 0;
    loop {
        let read = match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        filled += read;
        let mut start = 0;
        while let Some(end) = buffer[start..filled].iter().position(|&b| b == b'\n') {
            buffer[start..start + end]
                .chunks(log::MAX_LINE)
                .for_each(&mut f);
            start += end + 1;
        }
        while filled - start >= log::MAX_LINE {
            f(&buffer[start..start + log::MAX_LINE]);
            start += log::MAX_LINE;
        }
        buffer.copy_within(start..filled, 0);
        filled -= start;
    }
    if filled > 0 {
        f(&buffer[..filled]);
    }
}

/// The last bytes of a stream, for error messages.
#[derive(Default)]
pub(super) struct Tail(Mutex<VecDeque<u8>>);

impl Tail {
    fn keep(&self, line: &[u8]) {
        let mut tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        tail.extend(line.iter().chain(b"\n"));
        let excess = tail.len().saturating_sub(TAIL);
        tail.drain(..excess);
    }

    /// What was kept, as text, trimmed: empty if nothing was.
    pub(super) fn text(&self) -> String {
        let tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (a, b) = tail.as_slices();
        String::from_utf8_lossy(&[a, b].concat()).trim().to_owned()
    }
}

/// Logs stderr lines through a [`Limiter`], and keeps its last bytes.
pub(super) fn log_stderr(plugin: &str, stderr: impl Read, tail: &Tail) {
    let mut limit = Limiter::new("stderr");
    lines(stderr, |line| {
        tail.keep(line);
        limit.log(plugin, line);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_long_ones_cut() {
        let mut input = b"one\ntwo\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', log::MAX_LINE + 10));
        input.extend(b"\nlast");
        let mut seen = Vec::new();
        lines(&input[..], |line| seen.push(line.len()));
        assert_eq!(seen, [3, 3, log::MAX_LINE, 10, 4]);
    }

    #[test]
    fn the_tail_keeps_the_last_bytes_of_stderr() {
        let tail = Tail::default();
        let long = "y".repeat(TAIL);
        log_stderr("p", format!("first\n{long}\n  last  \n").as_bytes(), &tail);
        let text = tail.text();
        assert!(text.ends_with("last") && !text.contains("first"), "{text}");
        assert!(text.len() < TAIL);
        assert_eq!(Tail::default().text(), "");
    }
}
