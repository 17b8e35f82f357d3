//! The one place that starts plugin processes (exec for each call, rpc for
//! each process it keeps).
//!
//! Everything the child needs is prepared in the host before the child
//! exists ([`ChildLimits`], the program's descriptor, checked by the caller
//! against the manifest, its environment and stdio); the child then only
//! makes system calls: it resets signal handlers, takes a process group of
//! its own, points its stdio at the host's pipes, puts the program's
//! descriptor at 3 and closes every other descriptor (a host's descriptor
//! without close-on-exec never reaches a plugin), applies the manifest's
//! resource limits and a parent-death signal, and runs that descriptor
//! (`execveat(3, "", .., AT_EMPTY_PATH)`), not a path: what runs is what
//! was checked. A binary's descriptor closes at `exec`; a `#!` script's
//! stays open, as its interpreter reads it from `/dev/fd/3`. How the child is made, without
//! copying the host, is in `spawn.rs` ([`ChildLimits::spawn`]), which holds
//! all the `unsafe` of this crate's process handling.

mod artifact;
pub(crate) mod sandbox;
mod spawn;

use std::ffi::OsString;
use std::io;

use outlet_manifest::{Limits, Manifest};
use rustix::process::{Pid, Resource, Rlimit, Signal};

pub(crate) use artifact::Program;
pub(crate) use spawn::Spawned;

/// The limits to apply in the child, computed before it is started so that
/// the child only makes system calls.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChildLimits {
    address_space: Option<u64>,
    cpu_seconds: Option<u64>,
    open_files: Option<u64>,
}

impl ChildLimits {
    /// Each limit is capped at the host's own hard limit, which a child
    /// could not raise anyway (and asking for more would fail the spawn).
    pub(crate) fn new(limits: &Limits) -> ChildLimits {
        let capped = |resource, wanted: Option<u64>| {
            let hard = rustix::process::getrlimit(resource).maximum;
            wanted.map(|w| hard.map_or(w, |h| w.min(h)))
        };
        ChildLimits {
            address_space: capped(
                Resource::As,
                limits.memory_mb.map(|mb| mb.saturating_mul(1 << 20)),
            ),
            // One second above the soft limit for the SIGKILL that follows SIGXCPU.
            cpu_seconds: capped(Resource::Cpu, limits.cpu_seconds.map(|s| s + 1))
                .map(|s| s.saturating_sub(1).max(1)),
            open_files: capped(Resource::Nofile, limits.open_files),
        }
    }

    /// Applies the limits, and `processes` as `RLIMIT_NPROC`, to the calling
    /// process: the child, before `execve`. Only system calls; errors carry
    /// a raw errno and do not allocate.
    fn apply(self, processes: Option<u64>) -> io::Result<()> {
        let errno = |e: rustix::io::Errno| io::Error::from_raw_os_error(e.raw_os_error());
        let set = |resource, soft: u64, hard: u64| {
            rustix::process::setrlimit(
                resource,
                Rlimit {
                    current: Some(soft),
                    maximum: Some(hard),
                },
            )
            .map_err(errno)
        };
        if let Some(bytes) = self.address_space {
            set(Resource::As, bytes, bytes)?;
        }
        if let Some(seconds) = self.cpu_seconds {
            // SIGXCPU at the soft limit, SIGKILL a second later if ignored.
            set(Resource::Cpu, seconds, seconds + 1)?;
        }
        if let Some(files) = self.open_files {
            set(Resource::Nofile, files, files)?;
        }
        if let Some(processes) = processes {
            set(Resource::Nproc, processes, processes)?;
        }
        Ok(())
    }
}

/// Sets SIGKILL as the calling process's parent-death signal (after any
/// change of uid, which clears it), and fails if `parent` is already gone.
fn watch_parent(parent: Pid) -> io::Result<()> {
    let errno = |e: rustix::io::Errno| io::Error::from_raw_os_error(e.raw_os_error());
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL)).map_err(errno)?;
    // The host may have died before the line above took effect.
    if rustix::process::getppid() != Some(parent) {
        return Err(io::Error::from_raw_os_error(
            rustix::io::Errno::SRCH.raw_os_error(),
        ));
    }
    Ok(())
}

/// Waits for a child of this process to end (through interruptions), and
/// reaps it: how it ended.
///
/// # Errors
/// The OS's, for a pid that is not a child of this process, or was reaped.
pub(crate) fn reap(pid: Pid) -> io::Result<std::process::ExitStatus> {
    use std::os::unix::process::ExitStatusExt;
    loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                return Ok(std::process::ExitStatus::from_raw(status.as_raw()));
            }
            Ok(None) => return Err(io::Error::other("it was not there to be waited for")),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// A child process's whole environment: what the manifest's `inherit_env`
/// passes through from the host's, then its `env`.
pub(crate) fn child_env(manifest: &Manifest) -> Vec<(OsString, OsString)> {
    let permissions = &manifest.permissions;
    let mut env: Vec<_> = permissions
        .inherit_env
        .iter()
        .filter_map(|name| Some((name.into(), std::env::var_os(name)?)))
        .collect();
    env.extend(permissions.env.iter().map(|(k, v)| (k.into(), v.into())));
    env
}
