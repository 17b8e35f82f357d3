//! Resource limits and the parent-death signal, applied in the child between
//! `fork` and `exec`: the one `unsafe` block of this crate.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use outlet_manifest::Limits;
use rustix::process::{Pid, Resource, Rlimit, Signal};

/// The limits to apply in the child, computed before `fork` so the child
/// only makes system calls.
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

    /// Makes `command` apply the limits, and a SIGKILL when the host dies,
    /// in the child before it runs the plugin.
    pub(crate) fn install(self, command: &mut Command) {
        let parent = rustix::process::getpid();
        #[allow(unsafe_code)]
        // SAFETY: `pre_exec` runs the closure in the forked child, where only
        // async-signal-safe work is sound. The closure captures plain integers
        // (`self` is `Copy`, `parent` is a `Pid`) and makes raw system calls
        // through rustix (setrlimit, prctl, getppid), which neither allocate
        // nor take locks; errors become `io::Error` from a raw errno, which
        // does not allocate either.
        unsafe {
            command.pre_exec(move || self.apply(parent));
        }
    }

    fn apply(self, parent: Pid) -> io::Result<()> {
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
        rustix::process::set_parent_process_death_signal(Some(Signal::KILL)).map_err(errno)?;
        // The host may have died before the line above took effect.
        if rustix::process::getppid() != Some(parent) {
            return Err(io::Error::from_raw_os_error(
                rustix::io::Errno::SRCH.raw_os_error(),
            ));
        }
        Ok(())
    }
}
