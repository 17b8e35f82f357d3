//! The exec mechanism: one child process per call.
//!
//! A stream is a process too, which reads its requests and writes its
//! responses as `Piece` frames (`stream.rs`).
//!
//! Each call spawns the plugin's binary in a process group of its own, with
//! an empty environment (plus what the manifest passes), the manifest's
//! resource limits and a parent-death signal; writes one `Call` frame to its
//! stdin and reads one `Reply` frame from its stdout, while its stderr
//! becomes log events. At the deadline the group is killed. Whatever happens,
//! the group is killed and the child reaped before the call returns: no
//! process outlives its call.
//!
//! Nothing is kept between calls but the config and what Hello negotiated,
//! which travel in every `Call`, and the binary's descriptor as it was
//! checked. A new binary at the same path serves the next call; with
//! `sha256` in the manifest, it must still match. What runs is the
//! descriptor that was checked (`execveat`), not what the path names by
//! then.

mod child;
pub(crate) mod stdout;
mod stream;

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use outlet_manifest::{Limits, Manifest, ManifestError};
use outlet_protocol::core::Call;
use outlet_protocol::{Messages, Status, Transport, frame};

use super::{Backend, Session};
use crate::error::LoadError;
use crate::private::{PrivateFolder, Purpose};
use crate::process::sandbox::{Confinement, Sandbox, SandboxReport};
use crate::process::{ChildLimits, Program, Spawned};
use child::{Failure, Outcome};

pub(crate) struct Exec {
    plugin: String,
    env: Vec<(OsString, OsString)>,
    limits: Limits,
    child_limits: ChildLimits,
    artifact: Program,
    session: RwLock<Session>,
    confined: Option<Confined>,
}

/// A sandboxed exec plugin's sandbox, its temporary folder (`TMPDIR`), and
/// what its last start needed: rebuilt only when the program file changes.
struct Confined {
    sandbox: Sandbox,
    folder: PrivateFolder,
    prepared: Mutex<Option<(Arc<File>, Arc<Confinement>)>>,
    /// The last call's report, and whether its namespaces were made.
    report: Mutex<Option<(bool, SandboxReport)>>,
}

impl Exec {
    pub(crate) fn new(manifest: &Manifest) -> Result<Exec, LoadError> {
        let mut env = crate::process::child_env(manifest);
        let confined = match Sandbox::new(manifest)? {
            None => None,
            Some(sandbox) => {
                let folder = PrivateFolder::new(Purpose::Temp)
                    .and_then(|folder| folder.give_to(sandbox.uid()).map(|()| folder))
                    .map_err(|error| LoadError::CopyFolder {
                        plugin: manifest.name.clone(),
                        error,
                    })?;
                env.push(("TMPDIR".into(), folder.path().into()));
                Some(Confined {
                    sandbox,
                    folder,
                    prepared: Mutex::new(None),
                    report: Mutex::new(None),
                })
            }
        };
        Ok(Exec {
            plugin: manifest.name.clone(),
            artifact: Program::new(manifest)?,
            env,
            limits: manifest.limits.clone(),
            child_limits: ChildLimits::new(&manifest.limits),
            session: RwLock::new(Session::default()),
            confined,
        })
    }

    fn spawn(&self, executable: &Arc<File>, stdin: OwnedFd) -> Result<Spawned, Status> {
        let cannot_start = |error: &dyn std::fmt::Display| {
            Status::unavailable(format!(
                "plugin `{}`: cannot start {}: {error}",
                self.plugin,
                self.artifact.path().display()
            ))
        };
        let prepare = |confined: &Confined| {
            confined
                .prepare(executable)
                .map_err(|problem| cannot_start(&confined.sandbox.refused(problem)))
        };
        let mut confinement = match &self.confined {
            None => None,
            Some(confined) => Some(prepare(confined)?),
        };
        let start = |confinement: Option<&Confinement>, stdin| {
            self.child_limits.spawn(
                self.artifact.path(),
                executable.as_fd(),
                &self.env,
                Some(stdin),
                confinement,
            )
        };
        // A confined start may be made twice (below): it keeps its stdin.
        let stdin_again = match &self.confined {
            Some(_) => Some(
                rustix::io::fcntl_dupfd_cloexec(&stdin, 3).map_err(|error| cannot_start(&error))?,
            ),
            None => None,
        };
        let spawned = match start(confinement.as_deref(), stdin) {
            // The rules of a kept confinement name files by what they were
            // when it was made: after an upgrade replaced the dynamic
            // loader, say, made again once.
            Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
                let (Some(confined), Some(stdin)) = (&self.confined, stdin_again) else {
                    return Err(cannot_start(&error));
                };
                confined.forget();
                confinement = Some(prepare(confined)?);
                start(confinement.as_deref(), stdin)
            }
            started => started,
        }
        .map_err(|error| cannot_start(&error))?;
        if let (Some(confined), Some(confinement)) = (&self.confined, &confinement) {
            // Made again only when what holds changed: whether the kernel
            // gave the namespaces is all that differs from call to call.
            let mut last = confined.report.lock().unwrap_or_else(|e| e.into_inner());
            if last
                .as_ref()
                .is_none_or(|(made, _)| *made != spawned.namespaces)
            {
                let report = confined.sandbox.report(confinement, spawned.namespaces);
                *last = Some((spawned.namespaces, report));
            }
        }
        Ok(spawned)
    }

    /// Turns a finished conversation into the call's result.
    fn finish(&self, method: &str, outcome: Outcome) -> Result<Vec<u8>, Status> {
        let plugin = &self.plugin;
        let said = crate::log::stderr_clause(&outcome.stderr_tail);
        match outcome.failure {
            Some(Failure::Timeout) => {
                return Err(Status::deadline_exceeded(format!(
                    "plugin `{plugin}`: {method} did not finish within {}; its process was \
                     killed{said}",
                    crate::services::limit_hit(self.limits.timeout_ms)
                )));
            }
            Some(Failure::Frame(frame::FrameError::TooLarge { len, limit })) => {
                return Err(Status::resource_exhausted(format!(
                    "plugin `{plugin}`: its reply to {method} is {len} bytes, over the limit of \
                     {limit} (limits.max_message_bytes); its process was killed"
                )));
            }
            Some(Failure::Frame(error)) => {
                return Err(Status::internal(format!(
                    "plugin `{plugin}`: its stdout does not hold a reply to {method} ({error}); \
                     an exec plugin writes only its reply there (outlet_guest::exec::serve \
                     does) and logs to stderr{said}"
                )));
            }
            Some(Failure::Io(error)) => {
                return Err(Status::unavailable(format!(
                    "plugin `{plugin}`: talking to its process failed: {error}"
                )));
            }
            None => {}
        }
        let Some(reply) = outcome.reply else {
            let ended = outcome.status.map_or("ended".into(), |s| self.describe(s));
            return Err(Status::unavailable(format!(
                "plugin `{plugin}`: {ended} without replying to {method}{said}"
            )));
        };
        if let Some(status) = outcome.status.filter(|s| !s.success()) {
            tracing::warn!(
                target: "outlet::plugin",
                plugin,
                "replied to {method}, then {}",
                self.describe(status)
            );
        }
        stdout::answer(plugin, method, &reply)
    }

    fn describe(&self, status: ExitStatus) -> String {
        describe(status, self.confined.is_some(), &self.limits)
    }
}

/// How an exec plugin's process ended, for messages; `confined`: whether
/// it ran in the OS sandbox.
fn describe(status: ExitStatus, confined: bool, limits: &Limits) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(number)) if number == signal::SYS && confined => {
            crate::process::sandbox::killed_by_filter()
        }
        (None, Some(number)) if number == signal::XCPU => format!(
            "was stopped by SIGXCPU: it used up its CPU time (limits.cpu_seconds = {})",
            limits.cpu_seconds.unwrap_or_default()
        ),
        (None, Some(number)) => {
            format!("was killed by signal {number} ({})", signal::name(number))
        }
        (None, None) => "ended".into(),
    }
}

impl Exec {
    /// The program to start, as it was checked.
    fn executable(&self) -> Result<Arc<File>, Status> {
        self.artifact.current().map_err(|error| match error {
            ManifestError::Artifact { .. } => Status::unavailable(error.to_string()),
            _ => Status::failed_precondition(format!(
                "{error}, and load the plugin again: the artifact changed since it was loaded"
            )),
        })
    }

    /// The `Call` frame of `method`, a stream's if `stream`, carrying
    /// `deadline` (none: 0).
    fn call_frame(
        &self,
        method: &str,
        request: &[u8],
        deadline: Option<Instant>,
        stream: bool,
    ) -> Vec<u8> {
        let (timeout_us, traceparent, tracestate) = match deadline {
            Some(deadline) => crate::deadline::carried(deadline),
            // No deadline: 0 says so.
            None => {
                let (_, parent, state) = crate::deadline::carried(Instant::now());
                (0, parent, state)
            }
        };
        let session = self.session.read().unwrap_or_else(|e| e.into_inner());
        frame::encode(&Call {
            method: method.to_owned(),
            body: request.to_vec(),
            config: session.config.clone().into_iter().collect(),
            app_version: session.negotiated.app_version,
            capabilities: session.negotiated.capabilities.clone(),
            timeout_us,
            traceparent,
            tracestate,
            stream,
        })
    }
}

impl Confined {
    /// Drops what the last start needed, so that the next makes it anew.
    fn forget(&self) {
        *self.prepared.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// What a start of `executable` needs: the last one's, if the file is
    /// the same.
    fn prepare(&self, executable: &Arc<File>) -> Result<Arc<Confinement>, String> {
        let mut prepared = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((file, confinement)) = &*prepared
            && Arc::ptr_eq(file, executable)
        {
            return Ok(confinement.clone());
        }
        let confinement = Arc::new(self.sandbox.prepare(executable, self.folder.path())?);
        *prepared = Some((executable.clone(), confinement.clone()));
        Ok(confinement)
    }
}

impl Transport for Exec {
    fn open(&self, method: &str, requests: Messages<Vec<u8>>) -> Result<Messages<Vec<u8>>, Status> {
        self.open_stream(method, requests)
    }

    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        let started = Instant::now();
        // At most the time left to the call it is made in, if any.
        let deadline = started + crate::services::time_left(self.limits.timeout());
        if request.len() > self.limits.max_message_bytes {
            return Err(Status::resource_exhausted(format!(
                "plugin `{}`: the request to {method} is {} bytes, over the limit of {} \
                 (limits.max_message_bytes)",
                self.plugin,
                request.len(),
                self.limits.max_message_bytes
            )));
        }
        let executable = self.executable()?;
        let input = self.call_frame(method, request, Some(deadline), false);
        let (stdin, rest) = child::preload(&input).map_err(|error| {
            Status::unavailable(format!(
                "plugin `{}`: cannot make a pipe for its stdin: {error}",
                self.plugin
            ))
        })?;
        let child = self.spawn(&executable, stdin)?;
        let outcome = child::converse(
            child,
            &input,
            rest,
            deadline,
            self.limits.max_message_bytes,
            &self.plugin,
            crate::services::caller_cancel().as_ref(),
        );
        self.finish(method, outcome)
    }
}

impl Backend for Exec {
    fn set_session(&self, session: Session) {
        *self.session.write().unwrap_or_else(|e| e.into_inner()) = session;
    }

    fn stop(&self) {}

    fn sandbox(&self) -> Option<SandboxReport> {
        let confined = self.confined.as_ref()?;
        let report = confined
            .report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(_, report)| report.clone());
        // Before its first call: what a start would hold.
        report.or_else(|| {
            let executable = self.artifact.current().ok()?;
            let confinement = confined.prepare(&executable).ok()?;
            Some(confined.sandbox.report(&confinement, true))
        })
    }
}

/// Names of the signals a plugin is likely to die of (Linux numbering).
mod signal {
    pub(super) const XCPU: i32 = 24;
    pub(super) const SYS: i32 = 31;

    pub(super) fn name(signal: i32) -> &'static str {
        match signal {
            1 => "SIGHUP",
            2 => "SIGINT",
            3 => "SIGQUIT",
            4 => "SIGILL",
            6 => "SIGABRT",
            7 => "SIGBUS",
            8 => "SIGFPE",
            9 => "SIGKILL",
            11 => "SIGSEGV",
            13 => "SIGPIPE",
            14 => "SIGALRM",
            15 => "SIGTERM",
            24 => "SIGXCPU",
            25 => "SIGXFSZ",
            31 => "SIGSYS",
            _ => "unknown signal",
        }
    }
}
