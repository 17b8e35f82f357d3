//! An rpc plugin's process: started in a process group of its own with a
//! parent-death signal, its handshake read from stdout, its stdout and
//! stderr turned into log events, and ended with its whole group.
//!
//! Or one the host attaches to (`[reattach]`, in `attach.rs`): checked to
//! be the process that listens on the plugin's socket, watched and
//! signalled only through a pidfd, never by a process id that may have
//! been reused.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use outlet_rpc::HandshakeLine;
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

use super::error::{ProcessExit, RpcError};
use super::output::{self, Tail};
use crate::log::Limiter;
use crate::private::{PrivateFolder, Purpose};
use crate::process::sandbox::{Sandbox, SandboxReport};
use crate::process::{ChildLimits, Program, Spawned};

/// What starting the plugin takes, worked out once at load.
pub(super) struct Spawn {
    pub plugin: String,
    /// The program as checked, held open; checked again before a start
    /// when its path no longer holds that file. `None` for a plugin the
    /// host attaches to.
    pub program: Option<Program>,
    pub env: Vec<(OsString, OsString)>,
    pub limits: ChildLimits,
    pub start_timeout: Duration,
    /// The OS sandbox each start runs in, if the manifest asks for one.
    pub sandbox: Option<Sandbox>,
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
    tail: Arc<Tail>,
    /// Closed when the stderr reader has read everything, or gone.
    stderr_read: Mutex<Option<mpsc::Receiver<()>>>,
    /// The folder holding the plugin's Unix socket (`PLUGIN_UNIX_SOCKET_DIR`
    /// and `TMPDIR`) and the host's broker socket, removed last.
    dir: PrivateFolder,
    /// What its sandbox holds it to, if it runs in one.
    sandbox: Option<SandboxReport>,
    /// Its uid, when the sandbox gave it one of its own.
    uid: Option<u32>,
}

pub(super) enum Origin {
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
pub(super) struct Exit {
    status: Mutex<Option<ProcessExit>>,
    ended: Condvar,
}

impl Exit {
    /// Records how the process ended, and wakes those waiting for it.
    pub(super) fn record(&self, exit: ProcessExit) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = Some(exit);
        self.ended.notify_all();
    }
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
        on_exit: impl FnOnce(ProcessExit) + Send + 'static,
    ) -> Result<(Process, HandshakeLine), RpcError> {
        let plugin = &spawn.plugin;
        let uid = spawn.sandbox.as_ref().and_then(Sandbox::uid);
        let dir = PrivateFolder::new(Purpose::Rpc)
            .and_then(|dir| dir.give_to(uid).map(|()| dir))
            .map_err(|error| RpcError::SocketFolder { error })?;
        let mut env = spawn.env.clone();
        env.extend([
            (outlet_rpc::env::UNIX_SOCKET_DIR.into(), dir.path().into()),
            ("TMPDIR".into(), dir.path().into()),
        ]);
        env.extend(cert.map(|pem| (outlet_rpc::env::CLIENT_CERT.into(), pem.into())));
        // Every start runs a file checked for it: the one held, if the path
        // still holds it, else the path opened and checked again.
        let Some(program) = &spawn.program else {
            return Err(RpcError::Spawn {
                program: std::path::PathBuf::new(),
                error: io::Error::other("the manifest names no program (`path`)"),
            });
        };
        let executable = program.current().map_err(|error| RpcError::Artifact {
            error: Box::new(error),
        })?;
        let confinement = match &spawn.sandbox {
            Some(sandbox) => {
                Some(Arc::new(sandbox.prepare(&executable, dir.path()).map_err(
                    |problem| RpcError::Sandbox(sandbox.refused(problem)),
                )?))
            }
            None => None,
        };
        let (limits, path) = (spawn.limits, program.path().to_owned());
        let confined = confinement.clone();
        let spawned = spawn_from_lasting_thread(move || {
            limits.spawn(
                &path,
                std::os::fd::AsFd::as_fd(&*executable),
                &env,
                None,
                confined.as_deref(),
            )
        })
        .map_err(|error| RpcError::Spawn {
            program: program.path().to_owned(),
            error,
        })?;
        let sandbox = match (&spawn.sandbox, &confinement) {
            (Some(sandbox), Some(confinement)) => {
                Some(sandbox.report(confinement, spawned.namespaces))
            }
            _ => None,
        };
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
            sandbox,
            uid,
        };
        process
            .watch(pid, on_exit)
            .map_err(|error| RpcError::Thread {
                purpose: "watch its process",
                error,
            })?;

        // The plugin's log lines go where the loading thread's events go.
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        let (line_tx, line_rx) = mpsc::sync_channel(1);
        {
            let (plugin, dispatch) = (plugin.clone(), dispatch.clone());
            let mut first = Some(line_tx);
            thread("stdout", move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let mut limit = Limiter::new("stdout");
                    output::lines(stdout, |line| match first.take() {
                        Some(first) => drop(first.send(line.to_vec())),
                        None => limit.log(&plugin, line),
                    });
                });
            })
            .map_err(|error| RpcError::Thread {
                purpose: "start a thread for its stdout",
                error,
            })?;
        }
        {
            let (plugin, tail) = (plugin.clone(), process.tail.clone());
            thread("stderr", move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    output::log_stderr(&plugin, stderr, &tail);
                });
                drop(stderr_done);
            })
            .map_err(|error| RpcError::Thread {
                purpose: "start a thread for its stderr",
                error,
            })?;
        }
        let line = process.handshake(&line_rx, spawn.start_timeout)?;
        Ok((process, line))
    }

    /// The handshake line, the first line of stdout: within `timeout`, and
    /// one Outlet can use. On an error, the process is dropped (killed).
    fn handshake(
        &self,
        first_line: &mpsc::Receiver<Vec<u8>>,
        timeout: Duration,
    ) -> Result<HandshakeLine, RpcError> {
        let line = match first_line.recv_timeout(timeout) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                return Err(RpcError::NoHandshake {
                    timeout,
                    stderr: self.stderr(),
                });
            }
            Err(RecvTimeoutError::Disconnected) => {
                let exit = self.wait(Duration::from_secs(1));
                let stderr = self.last_stderr();
                return Err(if stderr.contains("not meant to be executed directly") {
                    RpcError::Cookie { exit, stderr }
                } else {
                    RpcError::EndedBeforeHandshake { exit, stderr }
                });
            }
        };
        String::from_utf8_lossy(&line)
            .parse()
            .map_err(|error| RpcError::Handshake {
                error,
                stderr: self.stderr(),
            })
    }

    /// Reaps the process on a thread of its own. The group is killed once
    /// the leader has exited but before it is reaped, so that its id cannot
    /// have been reused.
    fn watch(
        &self,
        pid: Pid,
        on_exit: impl FnOnce(ProcessExit) + Send + 'static,
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
            exit.record(status.clone());
            on_exit(status);
        });
        if let Err(error) = started {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
            self.exit.record(reap(pid));
            return Err(error);
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to end; how it ended, if it did.
    pub(super) fn wait(&self, timeout: Duration) -> Option<ProcessExit> {
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
        status.clone()
    }

    /// Kills the process group at once; an attached plugin's process only
    /// if it was checked at attach, through its pidfd.
    pub(super) fn kill(&self) {
        self.signal(Signal::KILL);
    }

    /// Sends `signal` to its process group (to the process, for one the
    /// host attached to and checked); nothing to one it may not signal.
    pub(super) fn signal(&self, signal: Signal) {
        match (&self.origin, self.pid) {
            (Origin::Child, Some(pid)) => {
                let _ = rustix::process::kill_process_group(pid, signal);
            }
            (
                Origin::Attached {
                    pidfd: Some(pidfd), ..
                },
                _,
            ) => {
                let _ = rustix::process::pidfd_send_signal(&**pidfd, signal);
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

    /// The end of its stderr, trimmed; empty if it wrote nothing.
    pub(super) fn stderr(&self) -> String {
        self.tail.text()
    }

    /// As [`Process::stderr`], for a process that has exited: waits a
    /// little (once) for its stderr to be read to the end first.
    pub(super) fn last_stderr(&self) -> String {
        let reader = self
            .stderr_read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(reader) = reader {
            // A child of the plugin may hold stderr open: not for long.
            let _ = reader.recv_timeout(Duration::from_millis(500));
        }
        self.stderr()
    }

    /// The plugin's private folder, which holds its socket.
    pub(super) fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// What its sandbox holds it to, if it runs in one.
    pub(super) fn sandbox(&self) -> Option<SandboxReport> {
        self.sandbox.clone()
    }

    /// Its uid, when the sandbox gave it one of its own.
    pub(super) fn uid(&self) -> Option<u32> {
        self.uid
    }

    /// The uid the sandbox gave it, with its folder (as made, whatever its
    /// path may lead to since): what the broker's socket is given to.
    pub(super) fn owner(&self) -> io::Result<Option<(u32, OwnedFd)>> {
        self.uid
            .map(|uid| Ok((uid, self.dir.descriptor().try_clone_to_owned()?)))
            .transpose()
    }

    /// The process id (its group's too, for a child), if known.
    pub(super) fn pid(&self) -> Option<u32> {
        self.pid
            .map(|pid| pid.as_raw_nonzero().get().unsigned_abs())
    }

    /// A process the host attached to: no stderr of its own to read, a
    /// private folder for the host's socket only, and its end recorded in
    /// `exit` by whoever watches it.
    pub(super) fn attached(
        plugin: &str,
        pid: Option<Pid>,
        origin: Origin,
        dir: PrivateFolder,
        exit: Arc<Exit>,
    ) -> Process {
        Process {
            plugin: plugin.to_owned(),
            pid,
            origin,
            exit,
            tail: Arc::default(),
            stderr_read: Mutex::new(None),
            dir,
            sandbox: None,
            uid: None,
        }
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

/// Reaps `pid`, which has exited: how it ended.
fn reap(pid: Pid) -> ProcessExit {
    match crate::process::reap(pid) {
        Ok(status) => ProcessExit::Status(status),
        Err(error) => ProcessExit::Unknown(error.to_string()),
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

/// Starts a thread named for its role in watching the plugin.
pub(super) fn thread(role: &str, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .name(format!("outlet-rpc-{role}"))
        .spawn(f)
        .map(drop)
}
