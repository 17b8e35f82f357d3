//! Private temporary folders: where an rpc plugin's socket and the host's
//! broker socket live (`outlet-rpc-…`), and where a shared library's private
//! copy is loaded from (`outlet-lib-…`).
//!
//! Each is made in the temporary folder (`TMPDIR`, else `/tmp`) with mode
//! 0700 whatever the umask: made 0700, then checked through a descriptor to
//! be a real folder (not a link) of this user's, and set to exactly 0700
//! (a umask may have taken bits of the owner's too). Its name carries the
//! host's process id, `outlet-rpc-<pid>-XXXXXX`, and the host holds a lock
//! (`flock`) on it for as long as it exists.
//!
//! A host killed with SIGKILL removes nothing. So the first time a process
//! makes one of these folders, it removes those left behind: a folder of
//! this user's (not a link) named for a process that no longer exists and
//! whose lock nobody holds. The process id keeps a folder that its host is
//! still setting up (between `mkdir` and `flock`); the lock keeps a live
//! host's folder when its process id means nothing here (a host in another
//! pid namespace sharing the temporary folder). A folder whose process id
//! was reused is kept until that process ends. Folders named the old way,
//! without a process id (`outlet-rpc-XXXXXX`, `outlet-XXXXXX`), are left
//! alone: they may belong to a running host of an earlier version, and
//! nothing tells whose they are; remove them by hand.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Once;

use rustix::fs::{FlockOperation, Mode, OFlags};

/// What a folder is for, which is how its name starts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Purpose {
    /// An rpc plugin's socket, and the host's socket for its broker.
    #[cfg_attr(not(feature = "rpc"), allow(dead_code))]
    Rpc,
    /// A private copy of a native or cabi plugin's shared library.
    Library,
    /// A sandboxed exec plugin's temporary folder (`TMPDIR`), the one
    /// folder it may write without a grant.
    Temp,
}

impl Purpose {
    const ALL: [Purpose; 3] = [Purpose::Rpc, Purpose::Library, Purpose::Temp];

    fn prefix(self) -> &'static str {
        match self {
            Purpose::Rpc => "outlet-rpc-",
            Purpose::Library => "outlet-lib-",
            Purpose::Temp => "outlet-tmp-",
        }
    }
}

/// A folder only this user can enter, locked by this process; on drop it is
/// removed with what it holds, then unlocked.
#[derive(Debug)]
pub(crate) struct PrivateFolder {
    dir: tempfile::TempDir,
    /// The folder, open (and locked) from the moment it was made.
    lock: OwnedFd,
}

impl PrivateFolder {
    /// Makes a private folder in the temporary folder; the first call in a
    /// process removes the folders that hosts gone since left there.
    ///
    /// # Errors
    /// The folder cannot be made or locked, or is not what was made (not a
    /// folder of this user's); the message names the path.
    pub(crate) fn new(purpose: Purpose) -> io::Result<PrivateFolder> {
        static SWEPT: Once = Once::new();
        let parent = std::env::temp_dir();
        SWEPT.call_once(|| drop(sweep(&parent)));
        PrivateFolder::new_in(&parent, purpose)
    }

    fn new_in(parent: &Path, purpose: Purpose) -> io::Result<PrivateFolder> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}{}-", purpose.prefix(), std::process::id()))
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(parent)?;
        let path = dir.path();
        let failed = |error: rustix::io::Errno| {
            let error = io::Error::from(error);
            io::Error::new(error.kind(), format!("{}: {error}", path.display()))
        };
        // A umask may have left it without even its owner's read bit, so it
        // is checked and set to 0700 through a descriptor that needs none
        // (`O_PATH`, its mode set through `/proc/self/fd`), then opened for
        // the lock.
        let handle = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(failed)?;
        let stat = rustix::fs::fstat(&handle).map_err(failed)?;
        let me = rustix::process::geteuid().as_raw();
        if stat.st_uid != me {
            return Err(io::Error::other(format!(
                "{} belongs to user {}, not to this user ({me}), right after this process made it",
                path.display(),
                stat.st_uid
            )));
        }
        rustix::fs::chmod(format!("/proc/self/fd/{}", handle.as_raw_fd()), Mode::RWXU)
            .map_err(failed)?;
        let fd = open_folder(path).map_err(failed)?;
        let same = rustix::fs::fstat(&fd).map_err(failed)?;
        if (same.st_dev, same.st_ino) != (stat.st_dev, stat.st_ino) {
            return Err(io::Error::other(format!(
                "{} was replaced right after this process made it",
                path.display()
            )));
        }
        rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).map_err(failed)?;
        Ok(PrivateFolder { dir, lock: fd })
    }

    /// Makes `uid` (and its group of the same number) the folder's owner:
    /// a sandboxed plugin's own uid, when the host runs as root. `None`
    /// leaves it the host's.
    pub(crate) fn give_to(&self, uid: Option<u32>) -> io::Result<()> {
        let Some(uid) = uid else {
            return Ok(());
        };
        let (uid, gid) = (
            rustix::process::Uid::from_raw(uid),
            rustix::process::Gid::from_raw(uid),
        );
        rustix::fs::chown(self.path(), Some(uid), Some(gid))?;
        Ok(())
    }

    /// The folder itself, as made: what a path to it might lead elsewhere.
    #[cfg_attr(not(feature = "rpc"), allow(dead_code))]
    pub(crate) fn descriptor(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.lock.as_fd()
    }

    /// Where it is.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Opens a folder without following a link, for its checks and its lock.
fn open_folder(path: &Path) -> rustix::io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Removes from `parent` the private folders whose host is gone, as the
/// module's documentation says; returns those it removed.
fn sweep(parent: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let Some(pid) = entry.file_name().to_str().and_then(host_pid) else {
            continue;
        };
        let path = entry.path();
        // Held while the folder is removed.
        let Some(_lock) = stale(&path, pid) else {
            continue;
        };
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {
                tracing::debug!(
                    target: "outlet::host",
                    "removed {}, left behind by process {pid}, which is gone",
                    path.display()
                );
                removed.push(path);
            }
            Err(error) => tracing::warn!(
                target: "outlet::host",
                "cannot remove {}, left behind by process {pid}, which is gone: {error}; \
                 remove it by hand",
                path.display()
            ),
        }
    }
    removed
}

/// The host's process id in a private folder's name, if it has one.
fn host_pid(name: &str) -> Option<u32> {
    let rest = Purpose::ALL
        .iter()
        .find_map(|purpose| name.strip_prefix(purpose.prefix()))?;
    let (pid, _) = rest.split_once('-')?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok().filter(|&pid| pid != std::process::id())
}

/// The folder's lock, taken, if the folder was left behind by a host that
/// is gone: a real folder of this user's (or, for a root host, one it gave
/// a sandboxed plugin's uid), its process gone, its lock free.
fn stale(path: &Path, pid: u32) -> Option<OwnedFd> {
    let fd = open_folder(path).ok()?;
    let stat = rustix::fs::fstat(&fd).ok()?;
    let me = rustix::process::geteuid();
    let given = me.is_root() && crate::process::sandbox::PLUGIN_UIDS.contains(&stat.st_uid);
    if stat.st_uid != me.as_raw() && !given {
        return None;
    }
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)?;
    if rustix::process::test_kill_process(pid) != Err(rustix::io::Errno::SRCH) {
        return None;
    }
    rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).ok()?;
    Some(fd)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A process id that no process has: a child's, once it is reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    /// Run by [`folders_are_0700_whatever_the_umask`] in a process of its
    /// own, since the umask is the whole process's.
    #[test]
    fn under_umasks() {
        if std::env::var_os("OUTLET_TEST_UMASK_CHILD").is_none() {
            return;
        }
        let parent = tempfile::tempdir().unwrap();
        for umask in [0o000, 0o022, 0o277, 0o777] {
            rustix::process::umask(Mode::from_raw_mode(umask));
            for purpose in Purpose::ALL {
                let folder = PrivateFolder::new_in(parent.path(), purpose).unwrap();
                assert_eq!(mode(folder.path()), 0o700, "umask {umask:o}");
                let name = folder.path().file_name().unwrap().to_str().unwrap();
                assert!(
                    name.starts_with(&format!("{}{}-", purpose.prefix(), std::process::id())),
                    "{name}"
                );
                // The owner can use it: a socket (as a plugin makes) and a file.
                std::os::unix::net::UnixListener::bind(folder.path().join("s")).unwrap();
                std::fs::write(folder.path().join("f"), "x").unwrap();
            }
        }
        rustix::process::umask(Mode::from_raw_mode(0o022));
        println!("checked under every umask");
    }

    #[test]
    fn folders_are_0700_whatever_the_umask() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "private::tests::under_umasks", "--nocapture"])
            .env("OUTLET_TEST_UMASK_CHILD", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("checked under every umask"),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn a_folder_goes_with_its_value() {
        let parent = tempfile::tempdir().unwrap();
        let folder = PrivateFolder::new_in(parent.path(), Purpose::Rpc).unwrap();
        let path = folder.path().to_owned();
        std::fs::write(path.join("f"), "x").unwrap();
        drop(folder);
        assert!(!path.exists());
    }

    #[test]
    fn only_folders_left_by_hosts_that_are_gone_are_swept() {
        let parent = tempfile::tempdir().unwrap();
        let make = |name: &str| {
            let path = parent.path().join(name);
            std::fs::create_dir(&path).unwrap();
            std::fs::write(path.join("socket"), "").unwrap();
            path
        };
        let dead = dead_pid();
        let gone = make(&format!("outlet-rpc-{dead}-abcdef"));
        let gone_lib = make(&format!("outlet-lib-{dead}-abcdef"));
        // A live process's (pid 1's: init is always there).
        let live = make("outlet-rpc-1-abcdef");
        // Locked by a live host whose pid means nothing here (another pid
        // namespace): kept.
        let locked = make(&format!("outlet-rpc-{dead}-locked"));
        let lock = open_folder(&locked).unwrap();
        rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive).unwrap();
        // This process's own.
        let mine = PrivateFolder::new_in(parent.path(), Purpose::Rpc).unwrap();
        // Old names, and other names.
        let old = make("outlet-rpc-abcdef");
        let other = make(&format!("outlet-bench-{dead}-abcdef"));
        // A link named like a stale folder: neither it nor its target goes.
        let target = make("target");
        let link = parent.path().join(format!("outlet-rpc-{dead}-link"));
        std::os::unix::fs::symlink(&target, &link).unwrap();
        // A file named like one.
        let file = parent.path().join(format!("outlet-lib-{dead}-file"));
        std::fs::write(&file, "").unwrap();

        let mut removed = sweep(parent.path());
        removed.sort();
        assert_eq!(removed, [gone_lib.clone(), gone.clone()]);
        assert!(!gone.exists() && !gone_lib.exists());
        for kept in [&live, &locked, mine.path(), &old, &other, &target, &file] {
            assert!(kept.exists(), "{} was removed", kept.display());
        }
        assert!(target.join("socket").exists());
        assert!(std::fs::symlink_metadata(&link).is_ok());
        drop(lock);
    }

    #[test]
    fn names_without_a_pid_are_not_a_hosts() {
        assert_eq!(host_pid("outlet-rpc-123-abcdef"), Some(123));
        assert_eq!(host_pid("outlet-lib-123-abcdef"), Some(123));
        assert_eq!(host_pid("outlet-rpc-123456"), None);
        assert_eq!(host_pid("outlet-rpc--abc"), None);
        assert_eq!(host_pid("outlet-rpc-+12-abc"), None);
        assert_eq!(host_pid("outlet-12-abc"), None);
        assert_eq!(
            host_pid(&format!("outlet-rpc-{}-abc", std::process::id())),
            None
        );
    }
}
