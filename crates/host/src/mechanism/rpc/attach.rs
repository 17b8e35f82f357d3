//! Attaching to an rpc plugin that is already running (`[reattach]`): the
//! host never starts or restarts it, and signals it only if it checked, at
//! attach, that the manifest's `pid` owns the socket; it then watches it
//! through a pidfd, never by a process id that may have been reused.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use outlet_manifest::Reattach;
use outlet_rpc::{CORE_PROTOCOL_VERSION, HandshakeLine, Network};
use rustix::process::Pid;

use super::error::{ProcessExit, RpcError};
use super::process::{Exit, Origin, Process, thread};
use crate::private::{PrivateFolder, Purpose};

/// How often the watch of an attached plugin looks whether the host still
/// cares, when the plugin does not end.
const WATCH_TICK: rustix::event::Timespec = rustix::event::Timespec {
    tv_sec: 0,
    tv_nsec: 250_000_000,
};

impl Process {
    /// Attaches to a plugin that is already running, as `reattach` says.
    /// With a `pid`, the process must be the one listening on the socket; it
    /// is then watched through a pidfd, and `on_exit` runs when it ends.
    pub(super) fn attach(
        plugin: &str,
        reattach: &Reattach,
        app_version: u32,
        on_exit: impl FnOnce(ProcessExit) + Send + 'static,
    ) -> Result<(Process, HandshakeLine), RpcError> {
        // The manifest accepts only these two names.
        let network = Network::from_name(&reattach.network).unwrap_or(Network::Unix);
        let line = HandshakeLine {
            core_version: CORE_PROTOCOL_VERSION,
            app_version,
            network,
            address: reattach.address.clone(),
            cert: None,
        };
        let dir = PrivateFolder::new(Purpose::Rpc)
            .map_err(|error| RpcError::HostSocketFolder { error })?;
        let checked = match reattach.pid {
            Some(pid) => Some(check_owner(pid, &reattach.address)?),
            None => None,
        };
        let detached = Arc::new(AtomicBool::new(false));
        let (pid, pidfd) = match checked {
            Some((pid, pidfd)) => (Some(pid), Some(Arc::new(pidfd))),
            None => (None, None),
        };
        let exit = Arc::<Exit>::default();
        let origin = Origin::Attached {
            pidfd: pidfd.clone(),
            detached: detached.clone(),
        };
        let process = Process::attached(plugin, pid, origin, dir, exit.clone());
        if let Some(pidfd) = pidfd {
            thread("attached", move || watch(&pidfd, &detached, &exit, on_exit)).map_err(
                |error| RpcError::Thread {
                    purpose: "start a thread to watch it",
                    error,
                },
            )?;
        }
        Ok((process, line))
    }
}

/// Waits for the attached process to end, until the host no longer cares
/// (`detached`); then records its end and runs `on_exit`.
fn watch(pidfd: &OwnedFd, detached: &AtomicBool, exit: &Exit, on_exit: impl FnOnce(ProcessExit)) {
    while !detached.load(Ordering::Relaxed) {
        let mut fds = [rustix::event::PollFd::new(
            pidfd,
            rustix::event::PollFlags::IN,
        )];
        if let Ok(1..) = rustix::event::poll(&mut fds, Some(&WATCH_TICK)) {
            let unknown = ProcessExit::Unknown(
                "it was attached to, not started, so its exit status is unknown".into(),
            );
            exit.record(unknown.clone());
            on_exit(unknown);
            return;
        }
    }
}

/// Checks that process `pid` is the one listening on the Unix socket
/// `address`, and returns a pidfd for it: a handle that can never signal
/// another process, even if the id is reused later.
fn check_owner(pid: u32, address: &str) -> Result<(Pid, OwnedFd), RpcError> {
    let id = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or(RpcError::NotAPid { pid })?;
    // Opened first: if the socket's owner is `pid` after this, the pidfd
    // refers to that owner, not to a process that took its id since.
    let pidfd =
        rustix::process::pidfd_open(id, rustix::process::PidfdFlags::empty()).map_err(|error| {
            RpcError::NoProcess {
                pid,
                error: error.into(),
            }
        })?;
    // Without blocking: a plugin whose backlog is full does not hang the host.
    let cannot = |error: rustix::io::Errno| RpcError::Attach {
        address: address.to_owned(),
        error: error.into(),
    };
    let stream = rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC | rustix::net::SocketFlags::NONBLOCK,
        None,
    )
    .map_err(cannot)?;
    let path = rustix::net::SocketAddrUnix::new(address).map_err(cannot)?;
    rustix::net::connect(&stream, &path).map_err(cannot)?;
    let (_, owner) =
        super::peer::credentials(std::os::fd::AsFd::as_fd(&stream)).map_err(|error| {
            RpcError::Owner {
                address: address.to_owned(),
                error,
            }
        })?;
    if owner != Some(id.as_raw_nonzero().get()) {
        return Err(RpcError::NotOwner {
            address: address.to_owned(),
            owner: owner.unwrap_or(0).unsigned_abs(),
            pid,
        });
    }
    Ok((id, pidfd))
}
