//! Who may be at the other end of a Unix socket between the host and a
//! plugin, asked of the kernel (`SO_PEERCRED`) on every connection before
//! anything is sent or served on it. One rule, [`Peer`], for both
//! directions:
//!
//! - the host's connections to the plugin (gRPC, Outlet's frames, the
//!   broker stream): the listener must be the plugin's. A handshake's socket
//!   is checked once to be inside the plugin's folder (`address.rs`), but the
//!   plugin owns that folder and can later rename a link or another process's
//!   socket over the checked path; without this check, later connections
//!   would take the plugin's config, calls and Shutdown to that process.
//! - the plugin's connections to the host's broker: only the plugin's own
//!   processes may call the host under its name.
//!
//! The cost is one `getsockopt` per new connection; the parents in `/proc`
//! are read only for a peer that is not the plugin's process itself.

use std::io;
use std::os::fd::BorrowedFd;

use rustix::process::{Pid, Uid};

/// Who may be at the other end: a process of the host's own user, and, when
/// a process is named, that process (or, with `descendants`, it or one that
/// descends from it).
#[derive(Clone, Copy, Debug)]
pub(super) struct Peer {
    uid: Uid,
    pid: Option<Pid>,
    /// Whether a descendant of `pid` counts as it.
    descendants: bool,
}

impl Peer {
    /// An attached plugin's listener: of the host's user, and exactly the
    /// manifest's `reattach.pid` when it names one (the attach checked that
    /// that process owns the socket).
    pub(super) fn attached(pid: Option<u32>) -> Peer {
        Peer {
            uid: rustix::process::geteuid(),
            pid: pid.and_then(to_pid),
            descendants: false,
        }
    }

    /// The plugin's process `pid` or one that descends from it, of the
    /// host's user: who may listen on a started plugin's socket, and who may
    /// call the host through a plugin's broker. Without a `pid` (a plugin
    /// attached to without one), any process of the host's user.
    /// `uid`: the plugin's own, when the sandbox gave it one (the host runs
    /// as root); else the host's.
    pub(super) fn lineage(pid: Option<u32>, uid: Option<u32>) -> Peer {
        Peer {
            uid: uid.map_or_else(rustix::process::geteuid, Uid::from_raw),
            pid: pid.and_then(to_pid),
            descendants: true,
        }
    }

    /// Whether process `pid` of user `uid` may be at the other end (`pid`
    /// as the kernel gives it: 0 or `None` for a process it cannot name in
    /// the host's pid namespace). The parents in `/proc` are read only when
    /// `pid` is not the plugin's own.
    pub(super) fn admits(&self, uid: u32, pid: Option<i32>) -> bool {
        uid == self.uid.as_raw()
            && self.pid.is_none_or(|expected| {
                let expected = expected.as_raw_nonzero().get();
                pid.is_some_and(|pid| {
                    pid == expected || (self.descendants && descends(pid, expected))
                })
            })
    }

    /// Who may be there, for messages: `the plugin's process 42 and its
    /// descendants`, `process 42 (reattach.pid)`, or `a process`.
    pub(super) fn expected(&self) -> String {
        match (self.pid, self.descendants) {
            (Some(pid), true) => format!(
                "the plugin's process {} and its descendants",
                pid.as_raw_nonzero()
            ),
            (Some(pid), false) => format!("process {} (reattach.pid)", pid.as_raw_nonzero()),
            (None, _) => "a process".into(),
        }
    }

    /// The host's user, for messages.
    pub(super) fn uid(&self) -> u32 {
        self.uid.as_raw()
    }

    /// Checks the process listening at the other end of `socket`, a
    /// connection the host made to `address`, before anything is sent on it.
    ///
    /// # Errors
    /// `PermissionDenied` naming the process found, the ones expected and
    /// what to do; the socket's own error if the kernel cannot tell.
    pub(super) fn check(&self, socket: BorrowedFd<'_>, address: &str) -> io::Result<()> {
        let (uid, pid) = credentials(socket)?;
        if self.admits(uid, pid) {
            return Ok(());
        }
        let fix = if self.descendants {
            "The plugin's socket was replaced since the host checked it (the plugin owns its \
             folder, and can put a link or another process's socket there): the plugin \
             misbehaves; reload it (Plugin::reload) to start it afresh, and if this happens \
             again, remove it"
        } else {
            "The socket was taken over since the host attached, or the manifest names another \
             process: attach anew (Plugin::reload) once the plugin listens there again"
        };
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the process listening on {address} is {} of uid {}, and the host talks only \
                 to {} of its own uid {}; nothing was sent to it. {fix}",
                describe(pid),
                uid,
                self.expected(),
                self.uid.as_raw()
            ),
        ))
    }
}

/// The user and process at the other end of a Unix socket (`SO_PEERCRED`);
/// no process when the kernel reports none, as for a peer in a pid
/// namespace this process cannot see (pid 0).
pub(super) fn credentials(socket: BorrowedFd<'_>) -> io::Result<(u32, Option<i32>)> {
    let mut found = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len =
        libc::socklen_t::try_from(std::mem::size_of::<libc::ucred>()).map_err(io::Error::other)?;
    #[allow(unsafe_code)]
    // SAFETY: `getsockopt` writes at most `len` bytes into `found`, a
    // `ucred` of ours of that size, and any bytes make a valid `ucred`
    // (three integers; rustix's own `UCred` holds a non-zero pid, which a
    // pid of 0 from the kernel would break).
    let done = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut found).cast(),
            &mut len,
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((found.uid, (found.pid > 0).then_some(found.pid)))
}

fn to_pid(pid: u32) -> Option<Pid> {
    i32::try_from(pid).ok().and_then(Pid::from_raw)
}

/// `process 42 (`name`)`, with its name from `/proc` when it can be read.
pub(super) fn describe(pid: Option<i32>) -> String {
    match pid.filter(|pid| *pid > 0) {
        None => "a process outside the host's pid namespace".into(),
        Some(pid) => match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
            Ok(name) => format!("process {pid} (`{}`)", name.trim_end()),
            Err(_) => format!("process {pid}"),
        },
    }
}

/// Whether process `pid` is `ancestor` or descends from it, by the parents
/// in `/proc` (a process whose parent ended was taken in by another, and no
/// longer descends from it). The ids are read while the peer's connection is
/// open; a process that has ended is no one's.
fn descends(mut pid: i32, ancestor: i32) -> bool {
    // Deeper than any real tree of a plugin's, and a loop's end.
    for _ in 0..256 {
        if pid == ancestor {
            return true;
        }
        if pid <= 1 {
            return false;
        }
        match parent(pid) {
            Some(parent) => pid = parent,
            None => return false,
        }
    }
    false
}

/// Process `pid`'s parent: `/proc/<pid>/stat`'s fourth field, after the
/// name in parentheses (which may hold anything, parentheses too).
fn parent(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::os::unix::net::{UnixListener, UnixStream};

    use super::*;

    fn id(pid: u32) -> i32 {
        i32::try_from(pid).unwrap()
    }

    #[test]
    fn a_process_descends_from_itself_and_its_ancestors_only() {
        let me = id(std::process::id());
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let child_id = id(child.id());
        assert!(descends(me, me));
        assert!(descends(child_id, me));
        assert!(!descends(me, child_id));
        assert!(!descends(1, me));
        child.kill().unwrap();
        child.wait().unwrap();
        // Ended and reaped: no one's.
        assert!(!descends(child_id, me));
    }

    #[test]
    fn a_peer_of_another_process_or_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let _listener = UnixListener::bind(&path).unwrap();
        let stream = UnixStream::connect(&path).unwrap();
        let fd = stream.as_fd();
        let me = std::process::id();
        Peer::attached(None).check(fd, "s").unwrap();
        Peer::attached(Some(me)).check(fd, "s").unwrap();
        Peer::lineage(None, None).check(fd, "s").unwrap();
        Peer::lineage(Some(me), None).check(fd, "s").unwrap();

        let error = Peer::attached(Some(1)).check(fd, "s").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        let message = error.to_string();
        assert!(
            message.contains(&format!("is process {me} (`"))
                && message.contains("process 1 (reattach.pid)")
                && message.contains("nothing was sent")
                && message.contains("attach anew"),
            "{message}"
        );
        let stranger = Peer {
            uid: Uid::from_raw(rustix::process::geteuid().as_raw().wrapping_add(1)),
            pid: None,
            descendants: true,
        };
        let error = stranger.check(fd, "s").unwrap_err().to_string();
        assert!(error.contains("a process of its own uid"), "{error}");
    }

    /// A started plugin's rule: the listener must be the plugin's process or
    /// descend from it. Here the "plugin" is a child (`sleep`) of this
    /// process, and the socket's listener is this process, its parent.
    #[test]
    fn a_listener_not_descending_from_the_plugin_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let _listener = UnixListener::bind(&path).unwrap();
        let stream = UnixStream::connect(&path).unwrap();
        let mut plugin = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let error = Peer::lineage(Some(plugin.id()), None)
            .check(stream.as_fd(), "s")
            .unwrap_err();
        plugin.kill().unwrap();
        plugin.wait().unwrap();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        let message = error.to_string();
        assert!(
            message.contains(&format!("is process {} (`", std::process::id()))
                && message.contains(&format!(
                    "the plugin's process {} and its descendants",
                    plugin.id()
                ))
                && message.contains("The plugin's socket was replaced")
                && message.contains("Plugin::reload"),
            "{message}"
        );
        // This process is its own ancestor's descendant: the host's own
        // parent as the plugin admits it.
        let parent = rustix::process::getppid().map(|pid| pid.as_raw_nonzero().get());
        if let Some(parent) = parent.and_then(|pid| u32::try_from(pid).ok()) {
            Peer::lineage(Some(parent), None)
                .check(stream.as_fd(), "s")
                .unwrap();
        }
    }
}
