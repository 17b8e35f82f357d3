//! One conversation with an exec child: write the call to its stdin, read the
//! reply from its stdout, turn its stderr into log events, all in one thread
//! with `poll`, under the call's deadline; then make sure nothing of it is
//! left running.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outlet_protocol::context::Cancel;
use outlet_protocol::frame::FrameError;
use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::process::{Pid, PidfdFlags, Signal};

use super::stdout::{ReadError, ReplyReader};
use crate::log;
use crate::process::Spawned;

/// How much of a plugin's stderr one call logs; the rest is read and dropped.
const MAX_LOGGED: usize = 1 << 20;
/// How long a child may take to exit once it has replied.
const EXIT_GRACE: Duration = Duration::from_millis(250);
/// How long a cancelled call's child has between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_millis(100);
/// How much of the end of stderr an error message quotes.
const TAIL: usize = 512;

/// How a conversation ended.
pub(super) struct Outcome {
    /// The reply frame's payload, if a whole one arrived.
    pub reply: Option<Vec<u8>>,
    /// Why no reply arrived or why it cannot be used.
    pub failure: Option<Failure>,
    /// How the child ended (after a kill, if the host had to kill it).
    pub status: Option<ExitStatus>,
    /// The last bytes of its stderr, for error messages.
    pub stderr_tail: String,
}

/// Why the host stopped a conversation early.
pub(super) enum Failure {
    /// The deadline passed.
    Timeout,
    /// Stdout did not hold a valid frame.
    Frame(FrameError),
    /// Talking to the child failed at the OS level.
    Io(io::Error),
}

/// Puts as much of `input` as fits into a new pipe at once, so that a small
/// call is waiting in the child's stdin when it starts (and costs the host
/// no wake-up). Returns the pipe's read end for the child, and its write end
/// if some input is left to stream.
pub(super) fn preload(input: &[u8]) -> io::Result<(OwnedFd, Option<(File, usize)>)> {
    let (read, write, written) = preloaded(input)?;
    let rest = (written < input.len()).then_some((write, written));
    Ok((read, rest))
}

/// As [`preload`], keeping the pipe's write end (non-blocking) whatever
/// was left: the read end, the write end, and how much of `input` went in.
pub(super) fn preloaded(input: &[u8]) -> io::Result<(OwnedFd, File, usize)> {
    use rustix::pipe::{PipeFlags, pipe_with};
    let (read, write) = pipe_with(PipeFlags::CLOEXEC)?;
    rustix::io::ioctl_fionbio(&write, true)?;
    let mut write = File::from(write);
    let mut written = 0;
    while written < input.len() {
        match write.write(&input[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok((read, write, written))
}

/// Runs one conversation with `child`, spawned with stdout and stderr piped
/// and stdin from [`preload`]; `rest` is what `preload` returned beside it.
/// Kills the child's process group and reaps the child before returning,
/// whatever happened.
pub(super) fn converse(
    child: Spawned,
    input: &[u8],
    rest: Option<(File, usize)>,
    deadline: Instant,
    max_reply: usize,
    plugin: &str,
    cancel: Option<&Cancel>,
) -> Outcome {
    let pid = child.pid;
    let (stdin, written) = match rest {
        Some((stdin, written)) => (Some(stdin), written),
        None => (None, input.len()),
    };
    let mut talk = Talk {
        stdin,
        stdout: Some(File::from(child.stdout)),
        stderr: Some(File::from(child.stderr)),
        input,
        written,
        reply: ReplyReader::new(max_reply),
        log: StderrLog::new(plugin),
    };
    let failure = talk.run(pid, deadline, cancel).err();
    // The group, not just the child: a plugin's own children go too. The
    // child is not reaped yet, so its pid (the group's id) cannot be reused.
    let _ = rustix::process::kill_process_group(pid, Signal::KILL);
    // And the child itself, should it have left its group.
    let _ = rustix::process::kill_process(pid, Signal::KILL);
    drop(talk.stdout.take());
    drop(talk.stdin.take());
    let status = crate::process::reap(pid).ok();
    talk.log.flush();
    Outcome {
        reply: talk.reply.into_reply(),
        failure,
        status,
        stderr_tail: talk.log.tail(),
    }
}

struct Talk<'a> {
    stdin: Option<File>,
    stdout: Option<File>,
    stderr: Option<File>,
    input: &'a [u8],
    written: usize,
    reply: ReplyReader,
    log: StderrLog,
}

impl Talk<'_> {
    fn run(
        &mut self,
        pid: Pid,
        mut deadline: Instant,
        cancel: Option<&Cancel>,
    ) -> Result<(), Failure> {
        let pidfd: OwnedFd =
            rustix::process::pidfd_open(pid, PidfdFlags::empty()).map_err(io_failure)?;
        // A cancel wakes the loop through an eventfd: SIGTERM, then SIGKILL
        // after TERM_GRACE.
        let mut wake = match cancel {
            Some(_) => Some(Arc::new(
                rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
                    .map_err(io_failure)?,
            )),
            None => None,
        };
        let _watch = cancel.zip(wake.clone()).map(|(cancel, wake)| {
            cancel.watch(move || {
                let _ = rustix::io::write(&*wake, &1u64.to_ne_bytes());
            })
        });
        let mut termed = false;
        for fd in [
            self.stdout.as_ref().map(AsFd::as_fd),
            self.stderr.as_ref().map(AsFd::as_fd),
        ]
        .into_iter()
        .flatten()
        {
            rustix::io::ioctl_fionbio(fd, true).map_err(io_failure)?;
        }
        let mut replied = false;
        loop {
            let now = Instant::now();
            if !termed && cancel.is_some_and(Cancel::is_cancelled) {
                termed = true;
                // Told once: polled again, it would wake the loop at once.
                wake = None;
                let _ = rustix::process::kill_process_group(pid, Signal::TERM);
                deadline = deadline.min(now + TERM_GRACE);
            }
            if !replied && self.reply.is_whole() {
                // The reply is in: the child has nothing left to do but exit.
                replied = true;
                deadline = deadline.min(now + EXIT_GRACE);
            }
            if now >= deadline {
                if replied {
                    tracing::warn!(
                        target: "outlet::plugin",
                        plugin = %self.log.plugin,
                        "replied, then did not exit within {EXIT_GRACE:?}; killed"
                    );
                    return Ok(());
                }
                return Err(Failure::Timeout);
            }
            let timeout = Timespec::try_from(deadline - now).unwrap_or(Timespec {
                tv_sec: i64::MAX,
                tv_nsec: 0,
            });
            let (exited, writable, readable, errable) = {
                let mut fds = Vec::with_capacity(5);
                fds.push(PollFd::new(&pidfd, PollFlags::IN));
                if let Some(wake) = &wake {
                    fds.push(PollFd::new(&**wake, PollFlags::IN));
                }
                let stdout = self.stdout.as_ref().map(|s| {
                    fds.push(PollFd::new(s, PollFlags::IN));
                    fds.len() - 1
                });
                let stderr = self.stderr.as_ref().map(|s| {
                    fds.push(PollFd::new(s, PollFlags::IN));
                    fds.len() - 1
                });
                let stdin = self.stdin.as_ref().map(|s| {
                    fds.push(PollFd::new(s, PollFlags::OUT));
                    fds.len() - 1
                });
                match rustix::event::poll(&mut fds, Some(&timeout)) {
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(io_failure(e)),
                }
                let ready = |i: Option<usize>| i.is_some_and(|i| !fds[i].revents().is_empty());
                (ready(Some(0)), ready(stdin), ready(stdout), ready(stderr))
            };
            if writable {
                self.write_input()?;
            }
            if readable {
                self.read_stdout()?;
            }
            if errable {
                self.read_stderr();
            }
            if exited {
                // What the child wrote before it exited is in the pipes: take
                // it, but do not wait for end-of-file, which a grandchild
                // holding the pipe could put off forever.
                self.read_stdout()?;
                self.read_stderr();
                return Ok(());
            }
        }
    }

    fn write_input(&mut self) -> Result<(), Failure> {
        let Some(stdin) = &mut self.stdin else {
            return Ok(());
        };
        match stdin.write(&self.input[self.written..]) {
            Ok(n) => self.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            // The child closed stdin: it will not read the call. Its exit
            // status and stderr tell why.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => self.written = self.input.len(),
            Err(e) => return Err(Failure::Io(e)),
        }
        if self.written == self.input.len() {
            self.stdin = None; // end of input
        }
        Ok(())
    }

    /// Reads what stdout holds of the reply. Once the reply is whole,
    /// anything more is not ours to read: closing the pipe makes further
    /// writes fail in the child.
    fn read_stdout(&mut self) -> Result<(), Failure> {
        let Some(stdout) = &mut self.stdout else {
            return Ok(());
        };
        let over = self.reply.read_from(stdout).map_err(|error| match error {
            ReadError::Frame(error) => Failure::Frame(error),
            ReadError::Io(error) => Failure::Io(error),
        })?;
        if over {
            self.stdout = None;
        }
        Ok(())
    }

    fn read_stderr(&mut self) {
        read_stderr(&mut self.stderr, &mut self.log);
    }
}

/// Reads what a child's stderr holds into `log`, up to 1 MiB at a time, so
/// that a process that writes without pause cannot keep its host's loop
/// from a deadline; `None` once it is closed.
pub(super) fn read_stderr(stderr: &mut Option<File>, log: &mut StderrLog) {
    let mut chunk = [0; 8192];
    let mut budget = 1usize << 20;
    while let Some(pipe) = stderr {
        match pipe.read(&mut chunk) {
            Ok(0) => *stderr = None,
            Ok(n) => {
                log.write(&chunk[..n]);
                budget = budget.saturating_sub(n);
                if budget == 0 {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => *stderr = None,
        }
    }
}

fn io_failure(errno: rustix::io::Errno) -> Failure {
    Failure::Io(errno.into())
}

/// Splits stderr into lines and logs them, within [`MAX_LOGGED`] bytes a
/// call, and keeps the last [`TAIL`] bytes for error messages.
pub(super) struct StderrLog {
    plugin: String,
    line: Vec<u8>,
    logged: usize,
    dropped: usize,
    tail: VecDeque<u8>,
}

impl StderrLog {
    pub(super) fn new(plugin: &str) -> StderrLog {
        StderrLog {
            plugin: plugin.to_owned(),
            line: Vec::new(),
            logged: 0,
            dropped: 0,
            tail: VecDeque::with_capacity(TAIL),
        }
    }

    pub(super) fn write(&mut self, bytes: &[u8]) {
        let keep = bytes.len().min(TAIL);
        if self.tail.len() + keep > TAIL {
            self.tail.drain(..self.tail.len() + keep - TAIL);
        }
        self.tail.extend(&bytes[bytes.len() - keep..]);

        if self.logged >= MAX_LOGGED {
            self.dropped += bytes.len();
            return;
        }
        self.logged += bytes.len();
        for piece in bytes.split_inclusive(|b| *b == b'\n') {
            if self.line.len() < log::MAX_LINE {
                let room = log::MAX_LINE - self.line.len();
                self.line.extend_from_slice(&piece[..piece.len().min(room)]);
            }
            if piece.ends_with(b"\n") {
                self.emit();
            }
        }
    }

    fn emit(&mut self) {
        log::line(&self.plugin, &self.line);
        self.line.clear();
    }

    pub(super) fn flush(&mut self) {
        if !self.line.is_empty() {
            self.emit();
        }
        if self.dropped > 0 {
            tracing::warn!(
                target: "outlet::plugin",
                plugin = %self.plugin,
                "the plugin wrote more than {MAX_LOGGED} bytes to stderr in one call; \
                 {} bytes were not logged",
                self.dropped
            );
        }
    }

    /// The last lines of stderr, without Rust's backtrace hint.
    pub(super) fn tail(&self) -> String {
        let bytes: Vec<u8> = self.tail.iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
            .collect();
        lines[lines.len().saturating_sub(3)..].join(" | ")
    }
}
