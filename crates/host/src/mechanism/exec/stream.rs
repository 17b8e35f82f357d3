//! Streams to an exec plugin: one process per stream, as one per call. The
//! `Call` opening it goes to stdin first; then each request, as the caller's
//! code makes it, and each response, as the plugin's code makes it, is a
//! `Piece` frame, the last one each way marked `end`.
//!
//! Driven by the thread that reads the stream, with `poll`, as a call's
//! conversation is (`child.rs`). The plugin asks for each request with a
//! `Piece` marked `want`: the caller's code makes it then, one at a time,
//! once the last is in the pipe. stderr becomes log events throughout.
//! Each wait is held to the caller's deadline and cancel and to
//! `limits.timeout_ms` (which starts again when a request is made), each
//! response to `limits.max_message_bytes`. After its end the process has a
//! moment to exit; then, or when its reader drops the stream, the process
//! group is killed and the child reaped.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outlet_manifest::Limits;
use outlet_protocol::context::Cancel;
use outlet_protocol::core::Piece;
use outlet_protocol::frame::{self, FrameError};
use outlet_protocol::{Messages, Status};
use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::process::{Pid, PidfdFlags, Signal};

use super::Exec;
use super::child::{StderrLog, preloaded};
use super::stdout::{self, PieceError, Pieces};

/// How long a child may take to exit once it has ended its stream.
const EXIT_GRACE: Duration = Duration::from_millis(250);

impl Exec {
    pub(super) fn open_stream(
        &self,
        method: &str,
        requests: Messages<Vec<u8>>,
    ) -> Result<Messages<Vec<u8>>, Status> {
        let deadline = crate::services::deadline_here();
        let cancel = crate::services::caller_cancel();
        let executable = self.executable()?;
        // The plugin sees no deadline but its caller's: limits.timeout_ms
        // holds each wait, not the stream.
        let call = self.call_frame(method, &[], deadline, true);
        let failed = |error: io::Error| {
            Status::unavailable(format!(
                "plugin `{}`: cannot open a stream of {method}: {error}",
                self.plugin
            ))
        };
        let (stdin, writer, written) = preloaded(&call).map_err(failed)?;
        let child = self.spawn(&executable, stdin)?;
        let pid = child.pid;
        let mut stream = Stream {
            plugin: self.plugin.clone(),
            method: method.to_owned(),
            limits: self.limits.clone(),
            confined: self.confined.is_some(),
            pid,
            pidfd: None,
            wake: None,
            stdin: Some(writer),
            out: call,
            sent: written,
            wanted: 0,
            requests: Some(requests),
            stdout: Some(File::from(child.stdout)),
            read: Pieces::default(),
            stderr: Some(File::from(child.stderr)),
            log: StderrLog::new(&self.plugin),
            deadline,
            cancel,
            ended: false,
        };
        stream.prepare().map_err(failed)?;
        Ok(Messages::new(stream))
    }
}

/// One open stream, and its process.
struct Stream {
    plugin: String,
    method: String,
    limits: Limits,
    confined: bool,
    pid: Pid,
    pidfd: Option<OwnedFd>,
    /// Woken by a cancel.
    wake: Option<Arc<OwnedFd>>,
    /// `None` once the last `Piece` is written.
    stdin: Option<File>,
    /// The frame being written, and how much of it has been.
    out: Vec<u8>,
    sent: usize,
    /// Requests the plugin asked for and has not been sent yet.
    wanted: usize,
    /// The caller's; `None` once it ended.
    requests: Option<Messages<Vec<u8>>>,
    stdout: Option<File>,
    /// What was read of stdout and not yet taken.
    read: Pieces,
    stderr: Option<File>,
    log: StderrLog,
    deadline: Option<Instant>,
    cancel: Option<Cancel>,
    ended: bool,
}

impl Stream {
    /// Makes the pipes non-blocking, and the process and a cancel
    /// something to wait on.
    fn prepare(&mut self) -> io::Result<()> {
        for fd in [self.stdout.as_ref(), self.stderr.as_ref()]
            .into_iter()
            .flatten()
        {
            rustix::io::ioctl_fionbio(fd, true)?;
        }
        self.pidfd = Some(rustix::process::pidfd_open(self.pid, PidfdFlags::empty())?);
        if self.cancel.is_some() {
            let flags = EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK;
            self.wake = Some(Arc::new(rustix::event::eventfd(0, flags)?));
        }
        Ok(())
    }

    /// The next response, or how the stream ended.
    fn step(&mut self) -> Result<Option<Vec<u8>>, Status> {
        let limit = self.limits.max_message_bytes + 64;
        // Each wait for the plugin is held to limits.timeout_ms, restarted
        // when the caller's code has made a request.
        let until = |deadline: Option<Instant>, limits: &Limits| {
            let timeout = Instant::now() + limits.timeout();
            deadline.map_or(timeout, |d| d.min(timeout))
        };
        let mut wait_until = until(self.deadline, &self.limits);
        let (wake, cancel) = (self.wake.clone(), self.cancel.clone());
        let _watch = cancel.as_ref().zip(wake).map(|(cancel, wake)| {
            cancel.watch(move || {
                let _ = rustix::io::write(&*wake, &1u64.to_ne_bytes());
            })
        });
        loop {
            while let Some(piece) = self.piece(limit)? {
                if !piece.want {
                    return stdout::response(piece);
                }
                // The plugin asks for a request: asked for after the end,
                // it gets none (its stdin is at an end).
                self.wanted += usize::from(self.requests.is_some());
            }
            // The caller's code makes one now, as it would if the plugin's
            // called it, once the last is in the pipe; the plugin's time
            // starts again.
            if self.pull_wanted() {
                wait_until = until(self.deadline, &self.limits);
                continue;
            }
            if cancel.as_ref().is_some_and(Cancel::is_cancelled) {
                return Err(crate::deadline::cancelled(&self.plugin, &self.method));
            }
            if self.stdout.is_none() {
                return Err(self.died("closed its stdout"));
            }
            let now = Instant::now();
            if now >= wait_until {
                return Err(self.late());
            }
            let exited = self.wait(wait_until - now)?;
            self.write()?;
            self.read_stdout()?;
            self.read_stderr();
            if exited {
                self.read_stdout()?;
                self.read_stderr();
                while let Some(piece) = self.piece(limit)? {
                    if !piece.want {
                        return stdout::response(piece);
                    }
                }
                return Err(self.died("ended"));
            }
        }
    }

    /// A whole `Piece` read, if one is.
    fn piece(&mut self, limit: usize) -> Result<Option<Piece>, Status> {
        self.read.next(limit).map_err(|error| match error {
            PieceError::Frame(error) => self.not_frame(error),
            PieceError::Decode(error) => Status::internal(format!(
                "plugin `{}`: a response of the stream of {} does not decode: {error}",
                self.plugin, self.method
            )),
        })
    }

    /// Pulls the caller's next request if the plugin asked for one and the
    /// last is in the pipe; whether it did.
    fn pull_wanted(&mut self) -> bool {
        if self.wanted == 0 || self.sent < self.out.len() {
            return false;
        }
        self.wanted -= 1;
        self.next_request();
        true
    }

    /// Pulls the caller's next request, for the plugin that asked for it.
    fn next_request(&mut self) {
        let Some(requests) = self.requests.as_mut().filter(|_| self.stdin.is_some()) else {
            return;
        };
        let piece = match requests.next() {
            Some(Ok(body)) => Piece {
                body,
                ..Piece::default()
            },
            // The plugin's requests fail with it: the host's stream wrapper
            // fails the stream with it too.
            Some(Err(status)) => Piece {
                end: true,
                status: Some((&status).into()),
                ..Piece::default()
            },
            None => Piece {
                end: true,
                ..Piece::default()
            },
        };
        if piece.end {
            self.requests = None;
        }
        self.out = frame::encode(&piece);
        self.sent = 0;
    }

    /// Waits until the pipes or the process have something, or `left`
    /// passes; whether the process exited.
    fn wait(&self, left: Duration) -> Result<bool, Status> {
        let timeout = Timespec::try_from(left).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        });
        let mut fds = Vec::with_capacity(5);
        if let Some(pidfd) = &self.pidfd {
            fds.push(PollFd::new(pidfd, PollFlags::IN));
        }
        if let Some(wake) = &self.wake {
            fds.push(PollFd::new(&**wake, PollFlags::IN));
        }
        for pipe in [&self.stdout, &self.stderr].into_iter().flatten() {
            fds.push(PollFd::new(pipe, PollFlags::IN));
        }
        if let Some(stdin) = self.stdin.as_ref().filter(|_| self.sent < self.out.len()) {
            fds.push(PollFd::new(stdin, PollFlags::OUT));
        }
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(self.broken(e.into())),
        }
        Ok(!fds[0].revents().is_empty())
    }

    fn write(&mut self) -> Result<(), Status> {
        let Some(stdin) = &mut self.stdin else {
            return Ok(());
        };
        while self.sent < self.out.len() {
            match stdin.write(&self.out[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                // The plugin reads no more requests: its responses say why.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    self.stdin = None;
                    self.requests = None;
                    return Ok(());
                }
                Err(e) => return Err(self.broken(e)),
            }
        }
        if self.requests.is_none() {
            self.stdin = None; // the end is written
        }
        Ok(())
    }

    fn read_stdout(&mut self) -> Result<(), Status> {
        let mut chunk = [0; 16 << 10];
        while let Some(stdout) = &mut self.stdout {
            match stdout.read(&mut chunk) {
                Ok(0) => self.stdout = None,
                Ok(n) => self.read.extend(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(self.broken(e)),
            }
            // Read no more than a message's limit ahead: a flood waits in
            // the pipe.
            if self.read.unread() > self.limits.max_message_bytes + 128 {
                return Ok(());
            }
        }
        Ok(())
    }

    fn read_stderr(&mut self) {
        super::child::read_stderr(&mut self.stderr, &mut self.log);
    }

    /// Kills what is left of the process group and reaps the child; how
    /// the child ended. After the stream's end (`grace`), the child has
    /// [`EXIT_GRACE`] to exit first, its stderr read meanwhile.
    fn end(&mut self, grace: bool) -> Option<std::process::ExitStatus> {
        if std::mem::replace(&mut self.ended, true) {
            return None;
        }
        // Its stdin at an end, its stdout of no more use, a cancel told:
        // only its exit and its stderr are waited on, unless it was
        // cancelled.
        (self.stdin, self.stdout, self.wake) = (None, None, None);
        let grace = grace && !self.cancel.as_ref().is_some_and(Cancel::is_cancelled);
        let until = Instant::now() + EXIT_GRACE;
        while grace && let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.wait(left) {
                Ok(false) => self.read_stderr(),
                _ => break,
            }
        }
        self.read_stderr();
        let _ = rustix::process::kill_process_group(self.pid, Signal::KILL);
        let _ = rustix::process::kill_process(self.pid, Signal::KILL);
        (self.stdin, self.stdout, self.stderr) = (None, None, None);
        self.requests = None;
        let status = crate::process::reap(self.pid).ok();
        self.log.flush();
        status
    }

    fn said(&self) -> String {
        crate::log::stderr_clause(&self.log.tail())
    }

    fn late(&self) -> Status {
        let (plugin, method) = (&self.plugin, &self.method);
        let over = match self.deadline {
            Some(deadline) if Instant::now() >= deadline => "passed its caller's deadline".into(),
            _ => format!(
                "had no message for {} ms (limits.timeout_ms)",
                self.limits.timeout_ms
            ),
        };
        Status::deadline_exceeded(format!(
            "plugin `{plugin}`: the stream of {method} {over}; its process was killed{}",
            self.said()
        ))
    }

    fn not_frame(&self, error: FrameError) -> Status {
        let (plugin, method) = (&self.plugin, &self.method);
        match error {
            FrameError::TooLarge { len, limit } => Status::resource_exhausted(format!(
                "plugin `{plugin}`: a response of the stream of {method} is {len} bytes, over \
                 the limit of {limit} (limits.max_message_bytes); its process was killed"
            )),
            error => Status::internal(format!(
                "plugin `{plugin}`: its stdout does not hold the stream of {method} ({error}); \
                 an exec plugin writes only its responses there and logs to stderr{}",
                self.said()
            )),
        }
    }

    fn broken(&self, error: io::Error) -> Status {
        Status::unavailable(format!(
            "plugin `{}`: talking to its process failed during the stream of {}: {error}",
            self.plugin, self.method
        ))
    }

    /// The process `did` something (exited, closed its stdout) without
    /// ending the stream.
    fn died(&mut self, did: &str) -> Status {
        let ended = self.end(false).map_or(did.into(), |status| {
            super::describe(status, self.confined, &self.limits)
        });
        Status::unavailable(format!(
            "plugin `{}`: {ended} without ending the stream of {}{}",
            self.plugin,
            self.method,
            self.said()
        ))
    }
}

impl Iterator for Stream {
    type Item = Result<Vec<u8>, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        let next = self.step().transpose();
        match next {
            Some(Ok(_)) => {}
            None => {
                self.end(true);
            }
            Some(Err(_)) => {
                self.end(false);
            }
        }
        next
    }
}

impl Drop for Stream {
    /// A stream dropped before its end: its process goes.
    fn drop(&mut self) {
        self.end(false);
    }
}
