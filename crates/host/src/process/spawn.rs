//! Starting a child without copying the host: `clone(CLONE_VM |
//! CLONE_VFORK)`, as `posix_spawn` does. The `unsafe` of the host's process
//! handling is here, and only here.

use std::ffi::{CString, OsString, c_char, c_int, c_uint, c_ulong, c_void};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use rustix::process::Pid;

use super::ChildLimits;
use super::sandbox::Confinement;

/// A child started by [`ChildLimits::spawn`]: its id (its group's too), and
/// the read ends of its stdout and stderr.
pub(crate) struct Spawned {
    pub pid: Pid,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// Whether the child got the namespaces its confinement asked for.
    pub namespaces: bool,
}

/// What the child of a sandboxed start does besides the rest (see
/// `sandbox/mod.rs` for why, and in which order).
struct ChildSandbox {
    /// The Landlock ruleset, at 5 or above (the child moves it to 4), or -1.
    ruleset: RawFd,
    /// A network namespace to enter, at 6 or above, or -1.
    network: RawFd,
    /// The seccomp filter; `len` 0 for none.
    filter: libc::sock_fprog,
    become_user: Option<(u32, u32)>,
    /// `/proc/self/{setgroups,uid_map,gid_map}` and what to write there,
    /// for a user namespace of the child's own.
    id_maps: Option<[(&'static std::ffi::CStr, CString); 3]>,
    /// Whether the child may empty its bounding set (root, or in a user
    /// namespace of its own), up to this capability.
    drop_bounding: Option<c_int>,
    processes: Option<u64>,
}

/// The step of the child that failed, when it matters to the host: the
/// user namespace's id maps (then started again without namespaces), or
/// its identity (then told why).
const STEP_NAMESPACE: i32 = 1;
const STEP_IDENTITY: i32 = 2;

/// What the child of [`ChildLimits::spawn`] reads: everything made before
/// `clone`, so that it only makes system calls.
struct ChildPlan {
    limits: ChildLimits,
    parent: Pid,
    /// The verified program, open, above stdio: the child runs it as
    /// descriptor 3 with `execveat(3, "", .., AT_EMPTY_PATH)`.
    executable: RawFd,
    /// Whether it starts with `#!`: the kernel then hands the interpreter
    /// `/dev/fd/3`, which must stay open across `exec`.
    script: bool,
    argv: *const *const c_char,
    envp: *const *const c_char,
    stdio: [RawFd; 3],
    /// Where closing descriptors one by one stops, on a kernel without
    /// `close_range`: this process's limit on open files.
    open_files: c_int,
    unblocked: libc::sigset_t,
    sandbox: Option<ChildSandbox>,
    /// The errno of the step that failed, if the child did not get to `exec`.
    failed: AtomicI32,
    /// Which step that was, when it matters to the host ([`STEP_NAMESPACE`]).
    failed_step: AtomicI32,
}

impl ChildLimits {
    /// Starts the program open at `executable` (checked by the caller; its
    /// path `program` is only its `argv[0]`), not whatever the path names
    /// by then, with exactly `env`, stdin from `stdin` (or
    /// `/dev/null`), stdout and stderr piped, in a process group of its own, with the limits and
    /// SIGKILL as its parent-death signal (which follows the calling thread:
    /// call it from one that lasts).
    ///
    /// It uses `clone(CLONE_VM | CLONE_VFORK)` as `posix_spawn` does, not
    /// `fork`: copying a large host's page tables, then undoing the copy at
    /// `exec`, costs about a millisecond here, several times the rest of the
    /// spawn. The host's calling thread waits until the child has run `exec`.
    ///
    /// With a `confinement`, the child is sandboxed before `exec` (see the
    /// `sandbox` module). If the kernel refuses the namespaces it asks for,
    /// the child is started again without them, and [`Spawned::namespaces`]
    /// says so.
    pub(crate) fn spawn(
        self,
        program: &Path,
        executable: BorrowedFd<'_>,
        env: &[(OsString, OsString)],
        stdin: Option<OwnedFd>,
        confinement: Option<&Confinement>,
    ) -> io::Result<Spawned> {
        let program = CString::new(program.as_os_str().as_bytes())?;
        let argv = [program.as_ptr(), std::ptr::null()];
        let env = environment(env)?;
        let mut envp: Vec<*const c_char> = env.iter().map(|pair| pair.as_ptr()).collect();
        envp.push(std::ptr::null());
        // Above 2, so that no `dup2` onto 0, 1 or 2 overwrites another.
        let above_stdio = |fd: OwnedFd| rustix::io::fcntl_dupfd_cloexec(fd, 3);
        let mut magic = [0; 2];
        let script =
            matches!(rustix::io::pread(executable, &mut magic, 0), Ok(2) if magic == *b"#!");
        let executable = rustix::io::fcntl_dupfd_cloexec(executable, 3)?;
        let stdin = match stdin {
            Some(stdin) => stdin,
            None => std::fs::File::open("/dev/null")?.into(),
        };
        let stdin = above_stdio(stdin)?;
        let cloexec = rustix::pipe::PipeFlags::CLOEXEC;
        let (stdout, stdout_writer) = rustix::pipe::pipe_with(cloexec)?;
        let (stderr, stderr_writer) = rustix::pipe::pipe_with(cloexec)?;
        let (stdout_writer, stderr_writer) =
            (above_stdio(stdout_writer)?, above_stdio(stderr_writer)?);
        // The ruleset at 5 or above, clear of what the child puts at 0 to 4.
        let ruleset = match confinement.and_then(|c| c.ruleset.as_ref()) {
            Some(ruleset) => Some(rustix::io::fcntl_dupfd_cloexec(ruleset, 5)?),
            None => None,
        };
        let network = match confinement.and_then(|c| c.join_network) {
            Some(network) => Some(rustix::io::fcntl_dupfd_cloexec(network, 6)?),
            None => None,
        };
        let sandbox = match confinement {
            Some(c) => Some(ChildSandbox {
                ruleset: ruleset.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
                network: network.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
                filter: libc::sock_fprog {
                    len: u16::try_from(c.filter.len()).map_err(io::Error::other)?,
                    filter: c.filter.as_ptr().cast_mut(),
                },
                become_user: c.become_user,
                id_maps: match c.map_ids {
                    Some((uid, gid)) => Some([
                        (c"/proc/self/setgroups", CString::new("deny")?),
                        (
                            c"/proc/self/uid_map",
                            CString::new(format!("{uid} {uid} 1"))?,
                        ),
                        (
                            c"/proc/self/gid_map",
                            CString::new(format!("{gid} {gid} 1"))?,
                        ),
                    ]),
                    None => None,
                },
                drop_bounding: (c.become_user.is_some() || c.map_ids.is_some())
                    .then_some(c.cap_last),
                processes: c.processes,
            }),
            None => None,
        };
        let namespaces = confinement.map_or(0, |c| c.namespaces);
        // The child's stack, 16-byte aligned: its own, since it shares the
        // host's memory.
        let mut stack = vec![0u128; 4096];
        let mut plan = ChildPlan {
            limits: self,
            parent: rustix::process::getpid(),
            executable: executable.as_raw_fd(),
            script,
            argv: argv.as_ptr(),
            envp: envp.as_ptr(),
            stdio: [
                stdin.as_raw_fd(),
                stdout_writer.as_raw_fd(),
                stderr_writer.as_raw_fd(),
            ],
            open_files: rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .current
                .map_or(c_int::MAX, |n| c_int::try_from(n).unwrap_or(c_int::MAX))
                .min(1 << 20),
            unblocked: empty_signal_set(),
            sandbox,
            failed: AtomicI32::new(0),
            failed_step: AtomicI32::new(0),
        };
        match clone_child(&mut plan, &mut stack, namespaces) {
            // The kernel refused the namespaces (a distribution may forbid
            // user namespaces): the other layers still hold.
            Err(e) if namespaces != 0 && refused_namespace(&e, &plan) => {
                plan.failed.store(0, Ordering::Release);
                plan.failed_step.store(0, Ordering::Release);
                if let Some(sandbox) = &mut plan.sandbox {
                    // Without a user namespace of its own, a child of a host
                    // that is not root has no capability to drop, and its
                    // process count would be the user's.
                    sandbox.id_maps = None;
                    let root = sandbox.become_user.is_some();
                    sandbox.drop_bounding = sandbox.drop_bounding.filter(|_| root);
                    sandbox.processes = sandbox.processes.filter(|_| root);
                }
                let pid = clone_child(&mut plan, &mut stack, 0)?;
                Ok(Spawned {
                    pid,
                    stdout,
                    stderr,
                    namespaces: false,
                })
            }
            Err(e) => Err(e),
            Ok(pid) => Ok(Spawned {
                pid,
                stdout,
                stderr,
                namespaces: namespaces != 0,
            }),
        }
    }
}

/// A network namespace with no interface up (its loopback is down), made
/// by a thread that enters it and ends: what a root host's sandboxed
/// plugins without a network grant enter (it takes `CAP_SYS_ADMIN`).
pub(crate) fn empty_network() -> io::Result<OwnedFd> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                #[allow(unsafe_code)]
                // SAFETY: `unshare(CLONE_NEWNET)` moves only the calling
                // thread, this one, into a new network namespace; it ends
                // right after, and nothing else runs on it.
                if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(std::fs::File::open("/proc/thread-self/ns/net")?.into())
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the thread making it panicked")))
    })
}

/// Whether `error` is the kernel refusing the namespaces: `clone` itself,
/// or the child's writing of its id maps.
fn refused_namespace(error: &io::Error, plan: &ChildPlan) -> bool {
    plan.failed_step.load(Ordering::Acquire) == STEP_NAMESPACE
        || matches!(
            error.raw_os_error(),
            Some(libc::EPERM | libc::EINVAL | libc::ENOSPC | libc::EUSERS | libc::EACCES)
        ) && plan.failed.load(Ordering::Acquire) == 0
}

/// Starts the child of `plan` on `stack`, with `namespaces` as extra
/// `clone` flags; waits until it has run `exec` (or failed to).
fn clone_child(plan: &mut ChildPlan, stack: &mut [u128], namespaces: c_int) -> io::Result<Pid> {
    #[allow(unsafe_code)]
    // SAFETY: the child runs `start_child` on `stack`, a buffer of ours
    // that outlives it, with a pointer to `plan`; with CLONE_VFORK this
    // thread is suspended until the child has called `exec` or `_exit`,
    // so `plan`, the strings it points into and `stack` stay alive and
    // untouched meanwhile. All signals are blocked across `clone`, so
    // no handler of the host runs on the child's stack before the child
    // has reset every caught signal to its default. The child makes system calls
    // only (see `start_child`).
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
        let top = stack.as_mut_ptr().add(stack.len()).cast::<c_void>();
        let pid = libc::clone(
            start_child,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD | namespaces,
            std::ptr::from_mut(plan).cast::<c_void>(),
        );
        let clone_error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        if pid < 0 {
            return Err(clone_error);
        }
        pid
    };
    let pid = Pid::from_raw(pid).ok_or_else(|| io::Error::other("clone gave pid 0"))?;
    let failed = plan.failed.load(Ordering::Acquire);
    if failed != 0 {
        let _ = super::reap(pid);
        let error = io::Error::from_raw_os_error(failed);
        if plan.failed_step.load(Ordering::Acquire) == STEP_IDENTITY
            && let Some((uid, _)) = plan.sandbox.as_ref().and_then(|s| s.become_user)
        {
            return Err(io::Error::new(
                error.kind(),
                format!(
                    "the sandbox cannot make it uid {uid} ({error}): this root host's user \
                     namespace (a container's?) maps no such uid; map a range that holds it, \
                     or run the plugin as wasm"
                ),
            ));
        }
        return Err(error);
    }
    Ok(pid)
}

/// The child's environment as `NAME=value` strings: one value per name,
/// the last one given, as `Command::env` keeps (the host's own variables
/// come after the manifest's).
fn environment(env: &[(OsString, OsString)]) -> io::Result<Vec<CString>> {
    let mut named = std::collections::HashSet::new();
    let mut env: Vec<_> = env
        .iter()
        .rev()
        .filter(|(key, _)| named.insert(key))
        .collect();
    env.reverse();
    env.into_iter()
        .map(|(key, value)| {
            let pair = [key.as_bytes(), b"=", value.as_bytes()].concat();
            Ok(CString::new(pair)?)
        })
        .collect()
}

fn empty_signal_set() -> libc::sigset_t {
    #[allow(unsafe_code)]
    // SAFETY: `sigemptyset` initializes the set it is given, a local.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        set
    }
}

/// Writes the id maps of the child's new user namespace (before anything
/// else, while its descriptors are still free): 0, or the errno.
///
/// # Safety
/// Called only by `start_child`, in the child, with the plan's sandbox.
#[allow(unsafe_code)]
unsafe fn write_id_maps(sandbox: &ChildSandbox) -> c_int {
    // SAFETY: system calls only, on strings the parent prepared.
    unsafe {
        let Some(maps) = &sandbox.id_maps else {
            return 0;
        };
        for (file, text) in maps {
            let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            let bytes = text.as_bytes();
            let written = match fd {
                fd if fd < 0 => -1,
                fd => libc::write(fd, bytes.as_ptr().cast(), bytes.len()),
            };
            let error = *libc::__errno_location();
            if fd >= 0 {
                libc::close(fd);
            }
            if written < 0 {
                return error;
            }
        }
        0
    }
}

/// The sandbox's steps in the child after its descriptors and limits, but
/// the system call filter: its identity, `no_new_privs`, Landlock. 0, or
/// the errno of the step that failed.
///
/// # Safety
/// Called only by `start_child`, in the child, with the plan's sandbox.
#[allow(unsafe_code)]
unsafe fn confine(sandbox: &ChildSandbox, failed_step: &AtomicI32) -> c_int {
    // SAFETY: system calls only, on what the parent prepared (strings that
    // outlive the child's `exec`, see `ChildLimits::spawn`).
    unsafe {
        let errno = || *libc::__errno_location();
        let zero: c_ulong = 0;
        if let Some(last) = sandbox.drop_bounding {
            for capability in 0..=last {
                let capability = capability as c_ulong;
                if libc::prctl(libc::PR_CAPBSET_DROP, capability, zero, zero, zero) != 0
                    && errno() != libc::EINVAL
                {
                    return errno();
                }
            }
        }
        // The system calls themselves, not the C library's wrappers, which
        // in a threaded process signal every thread of it (the host's) to
        // change its ids too, as `posix_spawn` avoids.
        if let Some((uid, gid)) = sandbox.become_user
            && (libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0
                || libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0
                || libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0)
        {
            failed_step.store(STEP_IDENTITY, Ordering::Release);
            return errno();
        }
        // The ambient set: kept across `exec` otherwise. EINVAL before 4.3,
        // which has none.
        let clear_all = libc::PR_CAP_AMBIENT_CLEAR_ALL as c_ulong;
        if libc::prctl(libc::PR_CAP_AMBIENT, clear_all, zero, zero, zero) != 0
            && errno() != libc::EINVAL
        {
            return errno();
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as c_ulong, zero, zero, zero) != 0 {
            return errno();
        }
        if sandbox.ruleset >= 0 {
            if libc::syscall(libc::SYS_landlock_restrict_self, 4, 0) != 0 {
                return errno();
            }
            libc::close(4);
        }
        0
    }
}

/// The child of [`ChildLimits::spawn`], on its own stack in the host's
/// memory: only system calls, nothing that allocates, locks or unwinds.
extern "C" fn start_child(plan: *mut c_void) -> c_int {
    #[allow(unsafe_code)]
    // SAFETY: `plan` points to the `ChildPlan` of the suspended parent
    // thread (see `ChildLimits::spawn`). The calls are thin wrappers of
    // system calls; `errno`, which they set, is the suspended thread's.
    unsafe {
        let plan = &*plan.cast::<ChildPlan>();
        let errno = || *libc::__errno_location();
        // The host's handlers are not the plugin's (and would run on this
        // stack, in the host's memory), nor is its signal mask. What `exec`
        // does to a process that was forked: caught signals back to their
        // default, ignored ones left ignored, but SIGPIPE, which the Rust
        // runtime ignores in the host, back to its default as
        // `std::process::Command` does.
        for signal in 1..=libc::SIGRTMAX() {
            let mut current: libc::sigaction = std::mem::zeroed();
            libc::sigaction(signal, std::ptr::null(), &mut current);
            if current.sa_sigaction != libc::SIG_IGN || signal == libc::SIGPIPE {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &plan.unblocked, std::ptr::null_mut());
        // Its own group; its stdio; then its limits, after the `dup2`s,
        // which a low limit on open files would refuse; then the program.
        let mut error = 0;
        if let Some(sandbox) = &plan.sandbox {
            error = write_id_maps(sandbox);
            if error != 0 {
                plan.failed_step.store(STEP_NAMESPACE, Ordering::Release);
            }
        }
        if error == 0 && libc::setpgid(0, 0) != 0 {
            error = errno();
        }
        for (target, &fd) in plan.stdio.iter().enumerate() {
            if error == 0 && libc::dup2(fd, target as c_int) < 0 {
                error = errno();
            }
        }
        // The program as descriptor 3: close-on-exec for a binary, which
        // then never sees it; open across `exec` for a script, whose
        // interpreter reads it as `/dev/fd/3`. (`dup2` onto itself would
        // leave the flag as it was, so it is set either way.)
        if error == 0 && libc::dup2(plan.executable, 3) < 0 {
            error = errno();
        }
        let flags = if plan.script { 0 } else { libc::FD_CLOEXEC };
        if error == 0 && libc::fcntl(3, libc::F_SETFD, flags) < 0 {
            error = errno();
        }
        // A sandbox's ruleset at 4, where closing the rest leaves it.
        let sandbox = plan.sandbox.as_ref();
        let ruleset = sandbox.map_or(-1, |s| s.ruleset);
        if error == 0 && ruleset >= 0 && libc::dup2(ruleset, 4) < 0 {
            error = errno();
        }
        let network = sandbox.map_or(-1, |s| s.network);
        if error == 0 && network >= 0 && libc::setns(network, libc::CLONE_NEWNET) != 0 {
            error = errno();
        }
        let first_closed: c_uint = if ruleset >= 0 { 5 } else { 4 };
        // Nothing of the host's but what it was given: every descriptor
        // above that closed, whether or not the host marked it close-on-exec.
        if error == 0 && libc::close_range(first_closed, c_uint::MAX, 0) != 0 {
            // A kernel before 5.9: one by one.
            for fd in first_closed as c_int..plan.open_files {
                libc::close(fd);
            }
        }
        if error == 0
            && let Err(e) = plan.limits.apply(sandbox.and_then(|s| s.processes))
        {
            error = e.raw_os_error().unwrap_or(libc::EINVAL);
        }
        if error == 0
            && let Some(sandbox) = sandbox
        {
            error = confine(sandbox, &plan.failed_step);
        }
        if error == 0
            && let Err(e) = super::watch_parent(plan.parent)
        {
            error = e.raw_os_error().unwrap_or(libc::EINVAL);
        }
        // Last, as it may refuse calls made above: the system call filter.
        if error == 0
            && let Some(sandbox) = sandbox
            && sandbox.filter.len > 0
            && libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &raw const sandbox.filter,
            ) != 0
        {
            error = errno();
        }
        if error == 0 {
            libc::syscall(
                libc::SYS_execveat,
                3,
                c"".as_ptr(),
                plan.argv,
                plan.envp,
                libc::AT_EMPTY_PATH,
            );
            error = errno();
        }
        plan.failed.store(error.max(1), Ordering::Release);
        libc::_exit(127)
    }
}
