//! An rpc plugin's process: started in a process group of its own with a
//! parent-death signal, its handshake read from stdout, its stdout and
//! stderr turned into log events, and ended with its whole group.
//!
//! Or one the host attaches to (`[reattach]`): checked to be the process
//! that listens on the plugin's socket, watched and signalled only through a
//! pidfd, never by a process id that may have been reused.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use outlet_manifest::Reattach;
use outlet_rpc::{CORE_PROTOCOL_VERSION, HandshakeLine, Network};
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

use crate::log;
use crate::process::{ChildLimits, Spawned};

/// How much of the end of stderr an error message quotes.
const TAIL: usize = 512;
/// Log lines a plugin may write per second; the rest are counted and dropped.
const LINES_PER_SECOND: u32 = 1000;

/// What starting the plugin takes, worked out once at load.
pub(super) struct Spawn {
    pub plugin: String,
    pub program: PathBuf,
    pub env: Vec<(OsString, OsString)>,
    pub limits: ChildLimits,
    pub start_timeout: Duration,
}

/// A running plugin process. Dropping it kills its process group and waits
/// for the process to be reaped; its socket folder goes with it.
pub(super) struct Process {
    plugin: String,
    /// `None` for a plugin attached to without a `pid`.
    pid: Option<Pid>,
    /// Whether the host started it, or attached to it.
    origin: Origin,
    exit: Arc<Exit>,
    tail: Arc<Mutex<VecDeque<u8>>>,
    /// Closed when the stderr reader has read everything, or gone.
    stderr_read: Mutex<Option<mpsc::Receiver<()>>>,
    /// The folder holding the plugin's Unix socket (`PLUGIN_UNIX_SOCKET_DIR`
    /// and `TMPDIR`) and the host's broker socket, removed last.
    dir: tempfile::TempDir,
}

enum Origin {
    /// Started by this host, in a process group of its own.
    Child,
    /// Attached to: the pidfd of the process checked to own its socket, if
    /// the manifest named one. Dropping it ends the watch.
    Attached {
        pidfd: Option<Arc<OwnedFd>>,
        detached: Arc<std::sync::atomic::AtomicBool>,
    },
}

/// How the process ended, once it has.
#[derive(Default)]
struct Exit {
    status: Mutex<Option<io::Result<ExitStatus>>>,
    ended: Condvar,
}

impl Process {
    /// Starts the plugin and reads its handshake line, within the start
    /// timeout. `on_exit` runs (on a thread of its own) when the process
    /// ends, after its group was killed, it was reaped, and [`Process::wait`]
    /// says so.
    /// `cert` is the host's certificate for go-plugin's AutoMTLS, PEM.
    pub(super) fn start(
        spawn: &Spawn,
        cert: Option<&str>,
        on_exit: impl FnOnce(Result<ExitStatus, String>) + Send + 'static,
    ) -> Result<(Process, HandshakeLine), String> {
        let plugin = &spawn.plugin;
        let dir = tempfile::Builder::new()
            .prefix("outlet-rpc-")
            .tempdir()
            .map_err(|e| format!("cannot make a folder for its socket: {e}"))?;
        let mut env = spawn.env.clone();
        env.extend([
            (outlet_rpc::env::UNIX_SOCKET_DIR.into(), dir.path().into()),
            ("TMPDIR".into(), dir.path().into()),
        ]);
        env.extend(cert.map(|pem| (outlet_rpc::env::CLIENT_CERT.into(), pem.into())));
        let (limits, program) = (spawn.limits, spawn.program.clone());
        let spawned = spawn_from_lasting_thread(move || limits.spawn(&program, &env, None))
            .map_err(|e| format!("cannot start {}: {e}", spawn.program.display()))?;
        let pid = spawned.pid;
        let (stdout, stderr) = (
            std::fs::File::from(spawned.stdout),
            std::fs::File::from(spawned.stderr),
        );
        let (stderr_done, stderr_read) = mpsc::channel::<()>();
        let process = Process {
            plugin: plugin.clone(),
            pid: Some(pid),
            origin: Origin::Child,
            exit: Arc::default(),
            tail: Arc::default(),
            stderr_read: Mutex::new(Some(stderr_read)),
            dir,
        };
        process
            .watch(pid, on_exit)
            .map_err(|e| format!("cannot watch its process: {e}"))?;

        // The plugin's log lines go where the loading thread's events go.
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        let (line_tx, line_rx) = mpsc::sync_channel(1);
        {
            let (plugin, dispatch) = (plugin.clone(), dispatch.clone());
            let mut first = Some(line_tx);
            thread("stdout", move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let mut limit = Limiter::new("stdout");
                    lines(stdout, |line| match first.take() {
                        Some(first) => drop(first.send(line.to_vec())),
                        None => limit.log(&plugin, line),
                    });
                });
            })
            .map_err(|e| format!("cannot start a thread for its stdout: {e}"))?;
        }
        {
            let (plugin, tail) = (plugin.clone(), process.tail.clone());
            thread("stderr", move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    log_stderr(&plugin, stderr, &tail);
                });
                drop(stderr_done);
            })
            .map_err(|e| format!("cannot start a thread for its stderr: {e}"))?;
        }

        let line = match line_rx.recv_timeout(spawn.start_timeout) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "it printed no handshake line within {} ms (limits.start_timeout_ms); it was \
                     killed{}",
                    spawn.start_timeout.as_millis(),
                    process.said()
                ));
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = process.wait(Duration::from_secs(1));
                let said = process.last_words();
                let cookie_hint = if said.contains("not meant to be executed directly") {
                    "; the magic cookie it expects differs from the manifest's [handshake]"
                } else {
                    ""
                };
                return Err(format!(
                    "it {} before printing its handshake line{said}{cookie_hint}",
                    describe(status.as_ref()),
                ));
            }
        };
        let line = String::from_utf8_lossy(&line);
        let line: HandshakeLine = line
            .parse()
            .map_err(|e| format!("{e}; it was killed{}", process.said()))?;
        Ok((process, line))
    }

    /// Reaps the process on a thread of its own. The group is killed once
    /// the leader has exited but before it is reaped, so that its id cannot
    /// have been reused.
    fn watch(
        &self,
        pid: Pid,
        on_exit: impl FnOnce(Result<ExitStatus, String>) + Send + 'static,
    ) -> io::Result<()> {
        let exit = self.exit.clone();
        let started = thread("waiter", move || {
            // Interrupted by a signal: wait again. Another error means the
            // process is not ours to wait for (something else in the host
            // reaped it, and its id may be another's now): no signal then,
            // and `reap` says so.
            let exited = loop {
                match rustix::process::waitid(
                    WaitId::Pid(pid),
                    WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
                ) {
                    Err(rustix::io::Errno::INTR) => {}
                    waited => break waited.is_ok(),
                }
            };
            if exited {
                let _ = rustix::process::kill_process_group(pid, Signal::KILL);
            }
            let status = reap(pid);
            let reported = status.as_ref().map(|s| *s).map_err(|e| e.to_string());
            *exit.status.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
            exit.ended.notify_all();
            on_exit(reported);
        });
        if let Err(error) = started {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
            *self.exit.status.lock().unwrap_or_else(|e| e.into_inner()) = Some(reap(pid));
            return Err(error);
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to end; how it ended, if it did.
    pub(super) fn wait(&self, timeout: Duration) -> Option<Result<ExitStatus, String>> {
        let deadline = Instant::now() + timeout;
        let mut status = self.exit.status.lock().unwrap_or_else(|e| e.into_inner());
        while status.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            status = self
                .exit
                .ended
                .wait_timeout(status, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        status
            .as_ref()
            .map(|s| s.as_ref().map(|s| *s).map_err(|e| e.to_string()))
    }

    /// Kills the process group at once; an attached plugin's process only
    /// if it was checked at attach, through its pidfd.
    pub(super) fn kill(&self) {
        match (&self.origin, self.pid) {
            (Origin::Child, Some(pid)) => {
                let _ = rustix::process::kill_process_group(pid, Signal::KILL);
            }
            (
                Origin::Attached {
                    pidfd: Some(pidfd), ..
                },
                _,
            ) => {
                let _ = rustix::process::pidfd_send_signal(&**pidfd, Signal::KILL);
            }
            _ => {}
        }
    }

    /// Whether the host may signal it: it started it, or checked it.
    pub(super) fn signallable(&self) -> bool {
        match &self.origin {
            Origin::Child => true,
            Origin::Attached { pidfd, .. } => pidfd.is_some(),
        }
    }

    /// The end of its stderr, as a clause for error messages.
    pub(super) fn said(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        let (a, b) = tail.as_slices();
        let text = String::from_utf8_lossy(&[a, b].concat()).trim().to_owned();
        if text.is_empty() {
            String::new()
        } else {
            format!("; its stderr ended with: {text}")
        }
    }

    /// As [`Process::said`], for a process that has exited: waits a little
    /// (once) for its stderr to be read to the end first.
    pub(super) fn last_words(&self) -> String {
        let reader = self
            .stderr_read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(reader) = reader {
            // A child of the plugin may hold stderr open: not for long.
            let _ = reader.recv_timeout(Duration::from_millis(500));
        }
        self.said()
    }

    /// The plugin's private folder, which holds its socket.
    pub(super) fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The process id (its group's too, for a child), if known.
    pub(super) fn pid(&self) -> Option<u32> {
        self.pid
            .map(|pid| pid.as_raw_nonzero().get().unsigned_abs())
    }
}

impl Drop for Process {
    /// A child is killed; an attached plugin is left as it is (a stop has
    /// asked it to shut down already).
    fn drop(&mut self) {
        if let Origin::Attached { detached, .. } = &self.origin {
            detached.store(true, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        if self.wait(Duration::ZERO).is_none() {
            self.kill();
            if self.wait(Duration::from_secs(5)).is_none() {
                tracing::error!(
                    target: "outlet::plugin",
                    plugin = self.plugin,
                    "its process {} outlived SIGKILL by 5 s",
                    self.pid().unwrap_or_default()
                );
            }
        }
    }
}

impl Process {
    /// Attaches to a plugin that is already running, as `reattach` says.
    /// With a `pid`, the process must be the one listening on the socket; it
    /// is then watched through a pidfd, and `on_exit` runs when it ends.
    pub(super) fn attach(
        plugin: &str,
        reattach: &Reattach,
        app_version: u32,
        on_exit: impl FnOnce(Result<ExitStatus, String>) + Send + 'static,
    ) -> Result<(Process, HandshakeLine), String> {
        // The manifest accepts only these two names.
        let network = Network::from_name(&reattach.network).unwrap_or(Network::Unix);
        let line = HandshakeLine {
            core_version: CORE_PROTOCOL_VERSION,
            app_version,
            network,
            address: reattach.address.clone(),
            cert: None,
        };
        let dir = tempfile::Builder::new()
            .prefix("outlet-rpc-")
            .tempdir()
            .map_err(|e| format!("cannot make a folder for the host's socket: {e}"))?;
        let checked = match reattach.pid {
            Some(pid) => Some(check_owner(pid, &reattach.address)?),
            None => None,
        };
        let detached = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let process = Process {
            plugin: plugin.to_owned(),
            pid: checked.as_ref().map(|(pid, _)| *pid),
            origin: Origin::Attached {
                pidfd: checked.map(|(_, pidfd)| Arc::new(pidfd)),
                detached: detached.clone(),
            },
            exit: Arc::default(),
            tail: Arc::default(),
            stderr_read: Mutex::new(None),
            dir,
        };
        if let Origin::Attached {
            pidfd: Some(pidfd), ..
        } = &process.origin
        {
            let (pidfd, exit) = (pidfd.clone(), process.exit.clone());
            thread("attached", move || {
                // Woken now and then to see whether the host still cares.
                while !detached.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut fds = [rustix::event::PollFd::new(
                        &*pidfd,
                        rustix::event::PollFlags::IN,
                    )];
                    let timeout = rustix::event::Timespec {
                        tv_sec: 0,
                        tv_nsec: 250_000_000,
                    };
                    if let Ok(1..) = rustix::event::poll(&mut fds, Some(&timeout)) {
                        let unknown = "it was attached to, not started, so its exit status is \
                                       unknown";
                        *exit.status.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(Err(io::Error::other(unknown)));
                        exit.ended.notify_all();
                        on_exit(Err(unknown.into()));
                        return;
                    }
                }
            })
            .map_err(|e| format!("cannot start a thread to watch it: {e}"))?;
        }
        Ok((process, line))
    }
}

/// Checks that process `pid` is the one listening on the Unix socket
/// `address`, and returns a pidfd for it: a handle that can never signal
/// another process, even if the id is reused later.
fn check_owner(pid: u32, address: &str) -> Result<(Pid, OwnedFd), String> {
    let nothing_signalled = "it was not attached to, and nothing was signalled";
    let id = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| format!("reattach.pid = {pid} is no process id"))?;
    // Opened first: if the socket's owner is `pid` after this, the pidfd
    // refers to that owner, not to a process that took its id since.
    let pidfd = rustix::process::pidfd_open(id, rustix::process::PidfdFlags::empty())
        .map_err(|e| format!("there is no process {pid} (reattach.pid): {e}"))?;
    // Without blocking: a plugin whose backlog is full does not hang the host.
    let cannot =
        |e: rustix::io::Errno| format!("cannot connect to {address} (reattach.address): {e}");
    let stream = rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC | rustix::net::SocketFlags::NONBLOCK,
        None,
    )
    .map_err(cannot)?;
    let path = rustix::net::SocketAddrUnix::new(address).map_err(cannot)?;
    rustix::net::connect(&stream, &path).map_err(cannot)?;
    let owner = rustix::net::sockopt::socket_peercred(&stream)
        .map_err(|e| format!("cannot tell which process listens on {address}: {e}"))?
        .pid;
    if owner != id {
        return Err(format!(
            "the process listening on {address} is {}, not {pid} (reattach.pid); \
             {nothing_signalled}; put the plugin's own pid in the manifest",
            owner.as_raw_nonzero()
        ));
    }
    Ok((id, pidfd))
}

/// "exited with status 1", "was killed by signal 9", for messages.
pub(super) fn describe(status: Option<&Result<ExitStatus, String>>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(Ok(status)) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            _ => format!("ended ({status})"),
        },
        Some(Err(error)) => format!("ended ({error})"),
        None => "closed its stdout".into(),
    }
}

/// Reaps `pid`, which has exited: how it ended.
fn reap(pid: Pid) -> io::Result<ExitStatus> {
    use std::os::unix::process::ExitStatusExt;
    loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, status))) => return Ok(ExitStatus::from_raw(status.as_raw())),
            Ok(None) => return Err(io::Error::other("it was not there to be waited for")),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Starts a child from one thread that lives as long as the host: the
/// parent-death signal fires when the thread that started a child ends, not
/// the process, and the thread that loads a plugin may be short-lived.
fn spawn_from_lasting_thread(
    start: impl FnOnce() -> io::Result<Spawned> + Send + 'static,
) -> io::Result<Spawned> {
    type Job = (
        Box<dyn FnOnce() -> io::Result<Spawned> + Send>,
        mpsc::SyncSender<io::Result<Spawned>>,
    );
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<Job>();
        // Should the thread not start, the queue is dropped and each start
        // fails with "the spawner thread is gone".
        let _ = thread("spawner", move || {
            for (start, reply) in queue {
                let _ = reply.send(start());
            }
        });
        Mutex::new(jobs)
    });
    let (reply, answer) = mpsc::sync_channel(1);
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((Box::new(start), reply))
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the spawner thread is gone"))?
}

fn thread(role: &str, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .name(format!("outlet-rpc-{role}"))
        .spawn(f)
        .map(drop)
}

/// Calls `f` with each line `reader` yields, without its newline; a line
/// longer than `log::MAX_LINE` comes in pieces of that size.
fn lines(mut reader: impl Read, mut f: impl FnMut(&[u8])) {
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

/// Logs a stream's lines, at most `LINES_PER_SECOND`; counts the rest and
/// says how many were dropped.
pub(super) struct Limiter {
    stream: &'static str,
    window: Instant,
    logged: u32,
    dropped: u64,
}

impl Limiter {
    pub(super) fn new(stream: &'static str) -> Limiter {
        Limiter {
            stream,
            window: Instant::now(),
            logged: 0,
            dropped: 0,
        }
    }

    pub(super) fn log(&mut self, plugin: &str, line: &[u8]) {
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
            log::line(plugin, line);
        } else {
            self.dropped += 1;
        }
    }
}

/// Logs stderr lines through a [`Limiter`], and keeps its last bytes.
fn log_stderr(plugin: &str, stderr: impl Read, tail: &Mutex<VecDeque<u8>>) {
    let mut limit = Limiter::new("stderr");
    lines(stderr, |line| {
        {
            let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
            tail.extend(line.iter().chain(b"\n"));
            let excess = tail.len().saturating_sub(TAIL);
            tail.drain(..excess);
        }
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
}
