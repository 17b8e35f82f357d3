//! The system call filter: a classic BPF program, built in the host, that
//! the child installs last before `execveat`.
//!
//! It refuses what no plugin needs and the kernel would otherwise allow an
//! unprivileged process: debugging or reading other processes (`ptrace`,
//! `process_vm_*`, `kcmp`, `pidfd_getfd`), the kernel's own machinery
//! (`bpf`, `perf_event_open`, `userfaultfd`, keyrings), new namespaces
//! (`unshare`, `setns`, `clone` with a namespace flag; `clone3`, whose flags
//! a filter cannot read, answers `ENOSYS`, and C libraries fall back to
//! `clone`), which would hand it the capabilities that mounting and the
//! rest need, mounts themselves, and `io_uring`, whose operations no filter
//! sees. Sockets: Unix ones always; TCP over IPv4 and IPv6 only when the
//! manifest grants a network (Landlock then holds it to the granted ports);
//! no UDP, raw or netlink socket ever (Landlock does not cover them).
//! Another architecture's system calls (x32, i386) kill the process.
//!
//! Calls that need a capability the plugin does not have (setting the
//! clock or the host name, swap, quotas, raw I/O ports) are left to the
//! kernel's own check: the filter stays short, because the kernel compiles
//! it again for every process (about 2 µs an instruction here), and an exec
//! plugin is a process per call.
//!
//! Refusals return an error (`EPERM`, `EACCES`, `ENOSYS`), so that a plugin
//! can say what it was refused; the calls only an attack makes ([`KILLED`])
//! kill the process with SIGSYS instead.

/// The system calls that kill the process: nothing a plugin does by
/// mistake makes one, and a process that tries one is not to be trusted
/// to handle the error.
pub(crate) const KILLED: &[&str] = &[
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
];

/// What a plugin's filter lets through, besides what every filter does.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    /// TCP sockets (the manifest grants a network); never `MSG_FASTOPEN`,
    /// which connects without Landlock's check.
    pub network: bool,
    /// Unix sockets: an rpc plugin's own, and its calls to the host. An
    /// exec plugin talks through its pipes, and gets none: a named socket
    /// is reached by its file's modes, which Landlock does not check.
    pub unix_sockets: bool,
    /// Whether to refuse changing files' modes, owners and extended
    /// attributes by path, which Landlock does not check: for a plugin that
    /// runs as the host's user, whose files those are.
    pub guard_metadata: bool,
}

/// How many system calls the filter refuses outright.
pub(crate) fn refused_count(options: Options) -> usize {
    refused(options).len()
}

/// Each refused system call (by name, then number) and what it returns.
fn refused(options: Options) -> Vec<(&'static str, libc::c_long, u32)> {
    let eperm = ret_errno(libc::EPERM);
    let enosys = ret_errno(libc::ENOSYS);
    let kill = SECCOMP_RET_KILL_PROCESS;
    let mut calls = vec![
        ("ptrace", libc::SYS_ptrace, eperm),
        ("process_vm_readv", libc::SYS_process_vm_readv, eperm),
        ("process_vm_writev", libc::SYS_process_vm_writev, eperm),
        ("kcmp", libc::SYS_kcmp, eperm),
        ("pidfd_getfd", libc::SYS_pidfd_getfd, eperm),
        ("bpf", libc::SYS_bpf, eperm),
        ("perf_event_open", libc::SYS_perf_event_open, eperm),
        ("userfaultfd", libc::SYS_userfaultfd, eperm),
        ("add_key", libc::SYS_add_key, eperm),
        ("request_key", libc::SYS_request_key, eperm),
        ("keyctl", libc::SYS_keyctl, eperm),
        ("unshare", libc::SYS_unshare, eperm),
        ("setns", libc::SYS_setns, eperm),
        ("mount", libc::SYS_mount, eperm),
        ("umount2", libc::SYS_umount2, eperm),
        ("pivot_root", libc::SYS_pivot_root, eperm),
        ("open_tree", libc::SYS_open_tree, eperm),
        ("move_mount", libc::SYS_move_mount, eperm),
        ("fsopen", libc::SYS_fsopen, eperm),
        ("fsconfig", libc::SYS_fsconfig, eperm),
        ("fsmount", libc::SYS_fsmount, eperm),
        ("fspick", libc::SYS_fspick, eperm),
        ("mount_setattr", libc::SYS_mount_setattr, eperm),
        ("clone3", libc::SYS_clone3, enosys),
        ("io_uring_setup", libc::SYS_io_uring_setup, enosys),
        ("io_uring_enter", libc::SYS_io_uring_enter, enosys),
        ("io_uring_register", libc::SYS_io_uring_register, enosys),
        ("kexec_load", libc::SYS_kexec_load, kill),
        ("kexec_file_load", libc::SYS_kexec_file_load, kill),
        ("init_module", libc::SYS_init_module, kill),
        ("finit_module", libc::SYS_finit_module, kill),
        ("delete_module", libc::SYS_delete_module, kill),
        ("reboot", libc::SYS_reboot, kill),
    ];
    if options.guard_metadata {
        calls.extend([
            ("fchmodat", libc::SYS_fchmodat, eperm),
            ("fchmodat2", libc::SYS_fchmodat2, eperm),
            ("fchownat", libc::SYS_fchownat, eperm),
            ("setxattr", libc::SYS_setxattr, eperm),
            ("lsetxattr", libc::SYS_lsetxattr, eperm),
            ("removexattr", libc::SYS_removexattr, eperm),
            ("lremovexattr", libc::SYS_lremovexattr, eperm),
            ("fsetxattr", libc::SYS_fsetxattr, eperm),
            ("fremovexattr", libc::SYS_fremovexattr, eperm),
            ("fchown", libc::SYS_fchown, eperm),
            ("setxattrat", SYS_SETXATTRAT, eperm),
            ("removexattrat", SYS_REMOVEXATTRAT, eperm),
        ]);
        #[cfg(target_arch = "x86_64")]
        calls.extend([
            ("chmod", libc::SYS_chmod, eperm),
            ("chown", libc::SYS_chown, eperm),
            ("lchown", libc::SYS_lchown, eperm),
        ]);
    }
    calls
}

/// The refused calls as runs of consecutive numbers with one action, in
/// order: `(first, last, action)`.
fn runs(options: Options) -> Vec<(u32, u32, u32)> {
    let mut calls: Vec<(u32, u32)> = (refused(options).into_iter())
        .map(|(_, number, action)| (number as u32, action))
        .collect();
    calls.sort_unstable();
    let mut runs: Vec<(u32, u32, u32)> = Vec::new();
    for (number, action) in calls {
        match runs.last_mut() {
            Some((_, last, same)) if *last + 1 == number && *same == action => *last = number,
            _ => runs.push((number, number, action)),
        }
    }
    runs
}

#[cfg(target_arch = "x86_64")]
const ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64

const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;

fn ret_errno(errno: libc::c_int) -> u32 {
    SECCOMP_RET_ERRNO | (errno as u32 & 0xffff)
}

// Offsets into `struct seccomp_data` (the argument's low 32 bits on a
// little-endian machine).
const NR: u32 = 0;
const ARCH_OFFSET: u32 = 4;
const fn arg(n: u32) -> u32 {
    16 + 8 * n
}

/// `setxattrat` and `removexattrat` (Linux 6.13), the same number on
/// x86-64 and aarch64, which the `libc` crate does not name yet.
const SYS_SETXATTRAT: libc::c_long = 463;
const SYS_REMOVEXATTRAT: libc::c_long = 466;

/// The mode bits `fchmod` may not set for a plugin of a host that is not
/// root: set-user-id, set-group-id, sticky, and writing by group or others.
const LOOSE_MODES: u32 = 0o7022;

/// `sendto`'s, `sendmsg`'s and `sendmmsg`'s flag that connects a TCP socket
/// as it sends, past Landlock's check of `connect`.
const MSG_FASTOPEN: u32 = 0x2000_0000;

/// The namespace flags `clone` may not be given.
const NEW_NAMESPACES: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP) as u32;

/// The filter: refuses the calls above; sockets as [`Options`] says.
#[cfg(all(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    target_endian = "little"
))]
pub(crate) fn filter(options: Options) -> Vec<libc::sock_filter> {
    let mut p = Program::default();
    p.load(ARCH_OFFSET);
    p.push(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, ARCH);
    p.ret(SECCOMP_RET_KILL_PROCESS);
    p.load(NR);
    #[cfg(target_arch = "x86_64")]
    {
        // x32's numbers, with bit 30 set: no plugin here uses that ABI.
        p.push(BPF_JMP | BPF_JGE | BPF_K, 0, 1, 0x4000_0000);
        p.ret(SECCOMP_RET_KILL_PROCESS);
    }
    // clone: no new namespaces.
    p.flag_refused(libc::SYS_clone, 0, NEW_NAMESPACES);
    if options.network {
        for (call, flags) in [
            (libc::SYS_sendto, 3),
            (libc::SYS_sendmsg, 2),
            (libc::SYS_sendmmsg, 3),
        ] {
            p.flag_refused(call, flags, MSG_FASTOPEN);
        }
    }
    if options.guard_metadata {
        // By descriptor: a file it may open, which it may not make
        // set-user-id or writable to others (copying a file still sets
        // its mode).
        p.flag_refused(libc::SYS_fchmod, 1, LOOSE_MODES);
    }
    sockets(&mut p, options);
    // The refused calls, in ascending runs: a call below a run is allowed
    // at once, so the calls a plugin makes most (read, write, futex, …)
    // pass a few comparisons, not the whole list.
    let runs = runs(options);
    for (index, &(first, last, action)) in runs.iter().enumerate() {
        let to_allow = u8::try_from(1 + 3 * (runs.len() - index - 1))
            .expect("a filter short enough for one jump over its runs");
        p.push(BPF_JMP | BPF_JGT | BPF_K, 2, 0, last);
        p.push(BPF_JMP | BPF_JGE | BPF_K, 0, to_allow, first);
        p.ret(action);
    }
    p.ret(SECCOMP_RET_ALLOW);
    p.0
}

/// `socket(domain, type, protocol)`: Unix if allowed; TCP over IPv4 or
/// IPv6 with a network (`SOCK_STREAM` whatever its flags, protocol 0 or
/// TCP: not MPTCP, which Landlock may not cover); nothing else. The jumps
/// land on the block's last two instructions, EACCES then ALLOW; another
/// call goes on past the block.
fn sockets(p: &mut Program, options: Options) {
    let (domain, unix) = (arg(0), libc::AF_UNIX as u32);
    let refuse = ret_errno(libc::EACCES);
    match (options.network, options.unix_sockets) {
        (true, unix_too) => {
            let skip_unix = u8::from(unix_too);
            p.jump_unless(libc::SYS_socket as u32, 11 + skip_unix);
            p.load(domain);
            if unix_too {
                p.push(BPF_JMP | BPF_JEQ | BPF_K, 9, 0, unix);
            }
            p.push(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, libc::AF_INET as u32);
            p.push(BPF_JMP | BPF_JEQ | BPF_K, 0, 6, libc::AF_INET6 as u32);
            p.load(arg(1));
            p.push(BPF_ALU | BPF_AND | BPF_K, 0, 0, 0xf);
            p.push(BPF_JMP | BPF_JEQ | BPF_K, 0, 3, libc::SOCK_STREAM as u32);
            p.load(arg(2));
            p.push(BPF_JMP | BPF_JEQ | BPF_K, 2, 0, 0);
            p.push(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, libc::IPPROTO_TCP as u32);
            p.ret(refuse);
            p.ret(SECCOMP_RET_ALLOW);
        }
        (false, true) => {
            p.jump_unless(libc::SYS_socket as u32, 4);
            p.load(domain);
            p.push(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, unix);
            p.ret(refuse);
            p.ret(SECCOMP_RET_ALLOW);
        }
        (false, false) => {
            p.jump_unless(libc::SYS_socket as u32, 1);
            p.ret(refuse);
        }
    }
}

/// No filter on an architecture whose numbers this module does not know:
/// the layer is reported missing.
#[cfg(not(all(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    target_endian = "little"
)))]
pub(crate) fn filter(_options: Options) -> Vec<libc::sock_filter> {
    Vec::new()
}

const BPF_LD: u16 = 0x00;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_ALU: u16 = 0x04;
const BPF_AND: u16 = 0x50;
const BPF_JMP: u16 = 0x05;
const BPF_JEQ: u16 = 0x10;
const BPF_JGT: u16 = 0x20;
const BPF_JGE: u16 = 0x30;
const BPF_JSET: u16 = 0x40;
const BPF_K: u16 = 0x00;
const BPF_RET: u16 = 0x06;

#[derive(Default)]
struct Program(Vec<libc::sock_filter>);

impl Program {
    fn push(&mut self, code: u16, jt: u8, jf: u8, k: u32) {
        self.0.push(libc::sock_filter { code, jt, jf, k });
    }

    fn load(&mut self, offset: u32) {
        self.push(BPF_LD | BPF_W | BPF_ABS, 0, 0, offset);
    }

    /// Skips the next `skip` instructions unless the accumulator is `k`.
    fn jump_unless(&mut self, k: u32, skip: u8) {
        self.push(BPF_JMP | BPF_JEQ | BPF_K, 0, skip, k);
    }

    fn ret(&mut self, action: u32) {
        self.push(BPF_RET | BPF_K, 0, 0, action);
    }

    /// `call` with any of `flags` set in its argument `arg_index` fails
    /// with EPERM; without, it is allowed; another call goes on.
    fn flag_refused(&mut self, call: libc::c_long, arg_index: u32, flags: u32) {
        self.jump_unless(call as u32, 4);
        self.load(arg(arg_index));
        self.push(BPF_JMP | BPF_JSET | BPF_K, 0, 1, flags);
        self.ret(ret_errno(libc::EPERM));
        self.ret(SECCOMP_RET_ALLOW);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the filter on one call, as the kernel would: what it returns.
    fn run(filter: &[libc::sock_filter], arch: u32, nr: i64, args: [u64; 6]) -> u32 {
        let word = |offset: u32| -> u32 {
            match offset {
                NR => nr as u32,
                ARCH_OFFSET => arch,
                o => args[((o - 16) / 8) as usize] as u32,
            }
        };
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = filter[pc];
            pc += 1;
            match i.code {
                c if c == BPF_LD | BPF_W | BPF_ABS => acc = word(i.k),
                c if c == BPF_ALU | BPF_AND | BPF_K => acc &= i.k,
                c if c & 0x07 == BPF_JMP => {
                    let taken = match c & 0xf0 {
                        BPF_JEQ => acc == i.k,
                        BPF_JGT => acc > i.k,
                        BPF_JGE => acc >= i.k,
                        BPF_JSET => acc & i.k != 0,
                        other => panic!("unexpected jump {other:#x}"),
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                c if c == BPF_RET | BPF_K => return i.k,
                other => panic!("unexpected instruction {other:#x}"),
            }
        }
    }

    fn options(network: bool, unix_sockets: bool, guard_metadata: bool) -> Options {
        Options {
            network,
            unix_sockets,
            guard_metadata,
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn sockets_are_unix_if_allowed_and_tcp_if_granted() {
        let (allow, eacces) = (SECCOMP_RET_ALLOW, ret_errno(libc::EACCES));
        let stream = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
        for network in [false, true] {
            for unix in [false, true] {
                let filter = filter(options(network, unix, false));
                let sock = |domain: i32, kind: i32, proto: i32| {
                    let args = [domain as u64, kind as u64, proto as u64, 0, 0, 0];
                    run(&filter, ARCH, libc::SYS_socket, args)
                };
                let unix_answer = if unix { allow } else { eacces };
                assert_eq!(sock(libc::AF_UNIX, libc::SOCK_DGRAM, 0), unix_answer);
                assert_eq!(sock(libc::AF_UNIX, stream, 0), unix_answer);
                assert_eq!(sock(libc::AF_INET, libc::SOCK_DGRAM, 0), eacces);
                assert_eq!(sock(libc::AF_INET6, libc::SOCK_RAW, 6), eacces);
                assert_eq!(sock(libc::AF_NETLINK, libc::SOCK_RAW, 0), eacces);
                assert_eq!(sock(libc::AF_INET, stream, 17), eacces);
                let tcp = if network { allow } else { eacces };
                assert_eq!(sock(libc::AF_INET, stream, 0), tcp);
                assert_eq!(sock(libc::AF_INET6, stream, libc::IPPROTO_TCP), tcp);
                // Fast open connects past Landlock: refused with a network.
                let fast_open = u64::from(MSG_FASTOPEN);
                let expected = if network {
                    ret_errno(libc::EPERM)
                } else {
                    allow
                };
                for (call, index) in [
                    (libc::SYS_sendto, 3),
                    (libc::SYS_sendmsg, 2),
                    (libc::SYS_sendmmsg, 3),
                ] {
                    let mut args = [3, 0, 0, 0, 0, 0];
                    assert_eq!(run(&filter, ARCH, call, args), allow, "{call}");
                    args[index] = fast_open | u64::from(libc::MSG_NOSIGNAL as u32);
                    assert_eq!(run(&filter, ARCH, call, args), expected, "{call}");
                }
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn every_call_gets_its_listed_action_and_the_rest_pass() {
        let allow = SECCOMP_RET_ALLOW;
        let every = [false, true].into_iter().flat_map(|a| {
            [false, true]
                .into_iter()
                .flat_map(move |b| [false, true].map(move |c| options(a, b, c)))
        });
        for options in every {
            let guard_metadata = options.guard_metadata;
            let filter = filter(options);
            let call = |nr, arg0: u64| run(&filter, ARCH, nr, [arg0, 0, 0, 0, 0, 0]);
            assert_eq!(call(libc::SYS_ptrace, 0), ret_errno(libc::EPERM));
            assert_eq!(call(libc::SYS_io_uring_setup, 0), ret_errno(libc::ENOSYS));
            assert_eq!(call(libc::SYS_reboot, 0), SECCOMP_RET_KILL_PROCESS);
            let chmod = if guard_metadata {
                ret_errno(libc::EPERM)
            } else {
                allow
            };
            assert_eq!(call(libc::SYS_fchmodat, 0), chmod);
            // fchmod: modes, yes; set-user-id or writable to others, not
            // for a host that is not root.
            let fchmod = |mode: u64| run(&filter, ARCH, libc::SYS_fchmod, [3, mode, 0, 0, 0, 0]);
            assert_eq!(fchmod(0o644), allow);
            assert_eq!(fchmod(0o4755), chmod);
            assert_eq!(fchmod(0o666), chmod);
            for number in 0..512 {
                // Their arguments decide: tested above.
                if [libc::SYS_socket, libc::SYS_clone, libc::SYS_fchmod].contains(&number) {
                    continue;
                }
                let listed = refused(options).into_iter().find(|(_, n, _)| *n == number);
                let expected = listed.map_or(allow, |(_, _, action)| action);
                assert_eq!(call(number, 0), expected, "system call {number}");
            }
            let thread = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
            assert_eq!(call(libc::SYS_clone, thread), allow);
            let namespace = thread | libc::CLONE_NEWUSER as u64;
            assert_eq!(call(libc::SYS_clone, namespace), ret_errno(libc::EPERM));
            assert_eq!(call(0x4000_0000 | 1, 0), SECCOMP_RET_KILL_PROCESS);
            assert_eq!(
                run(&filter, 0x4000_0003, libc::SYS_read, [0; 6]),
                SECCOMP_RET_KILL_PROCESS
            );
            for name in KILLED {
                let kills =
                    |(n, _, a): &(&str, _, u32)| n == name && *a == SECCOMP_RET_KILL_PROCESS;
                assert!(refused(options).iter().any(kills), "{name}");
            }
        }
        // Short, as the kernel compiles it for every process.
        let longest = filter(options(true, true, true)).len();
        assert!(longest < 160, "{longest} instructions");
    }
}
