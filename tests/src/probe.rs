//! Attacks a test plugin makes on request, so that the integration tests
//! (`tests/tests/sandbox.rs`) can check what the OS sandbox of the exec and
//! rpc mechanisms stops. Both test plugins include this module and hand it
//! the name of every Greet.
//!
//! A name `probe:<attack>:<argument>` (`probe:identity` takes none) makes
//! the attack and answers one line: `ok: <detail>` if the operation
//! succeeded, `denied: <error>` if it failed.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

/// `reboot(2)` with no magic numbers: refused by the kernel (EPERM, or
/// EINVAL for root) if it returns at all; the sandbox kills the process.
fn reboot() -> io::Result<String> {
    #[allow(unsafe_code)]
    // SAFETY: a system call with integer arguments; without the magic
    // numbers the kernel reboots nothing.
    let done = unsafe { libc::syscall(libc::SYS_reboot, 0, 0, 0, 0) };
    match done {
        0 => Ok("rebooted?".into()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// The outcome of the attack `request` names, or `None` if it names none.
pub fn run(request: &str) -> Option<String> {
    let probe = request.strip_prefix("probe:")?;
    let (attack, argument) = probe.split_once(':').unwrap_or((probe, ""));
    let outcome = match attack {
        "read" => std::fs::read_to_string(argument).map(|text| first(&text)),
        "list" => std::fs::read_dir(argument)
            .and_then(|entries| entries.collect::<io::Result<Vec<_>>>())
            .map(|entries| format!("{} entries", entries.len())),
        "write" => {
            std::fs::write(argument, "written by a plugin").map(|()| format!("wrote {argument}"))
        }
        "connect" => address(argument)
            .and_then(|to| TcpStream::connect_timeout(&to, Duration::from_secs(2)))
            .map(|_| format!("connected to {argument}")),
        "udp" => udp(argument),
        "listen" => TcpListener::bind(argument)
            .and_then(|l| l.local_addr())
            .map(|a| format!("listening on {a}")),
        "kill" => kill(argument),
        "ptrace" => ptrace(argument),
        "exec" => Command::new(argument).output().map(|out| {
            format!(
                "{}, stdout {}",
                out.status,
                first(&String::from_utf8_lossy(&out.stdout))
            )
        }),
        "forkbomb" => return Some(forkbomb(argument)),
        "identity" => Ok(identity()),
        "setuid" => setuid(argument),
        "unix" => UnixStream::connect(argument).map(|_| format!("connected to {argument}")),
        "reboot" => reboot(),
        _ => Err(io::Error::other(format!("no attack named {attack:?}"))),
    };
    Some(match outcome {
        Ok(detail) => format!("ok: {detail}"),
        Err(error) => format!("denied: {error}"),
    })
}

/// The first 40 characters of `text`, control characters shown as `.`.
fn first(text: &str) -> String {
    text.chars()
        .take(40)
        .map(|c| if c.is_control() { '.' } else { c })
        .collect()
}

fn address(text: &str) -> io::Result<SocketAddr> {
    text.parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{text:?}: {e}")))
}

fn number<T: std::str::FromStr>(text: &str) -> io::Result<T> {
    text.parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{text:?} is not a number"),
        )
    })
}

/// Five bytes to `to`, from a socket bound on loopback.
fn udp(to: &str) -> io::Result<String> {
    let to = address(to)?;
    let local = if to.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let sent = UdpSocket::bind(local)?.send_to(b"probe", to)?;
    Ok(format!("sent {sent} bytes to {to}"))
}

/// `kill(pid, signal)`, from `<pid>:<signal>`.
#[allow(unsafe_code)]
fn kill(argument: &str) -> io::Result<String> {
    let (pid, signal) = argument.split_once(':').unwrap_or((argument, "0"));
    let (pid, signal): (libc::pid_t, libc::c_int) = (number(pid)?, number(signal)?);
    // SAFETY: kill takes two numbers and touches no memory of ours.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(format!("sent signal {signal} to {pid}"))
}

/// Attaches to `pid` as a debugger, and if that works, lets go at once.
#[allow(unsafe_code)]
fn ptrace(pid: &str) -> io::Result<String> {
    let pid: libc::pid_t = number(pid)?;
    let none = std::ptr::null_mut::<libc::c_void>();
    // SAFETY: PTRACE_ATTACH reads neither address nor data (both null).
    if unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, none, none) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // Attached: the tracee stops, and is let go once it has.
    let mut status = 0;
    // SAFETY: waitpid writes one int, `status`, which lives across the call.
    unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    // SAFETY: PTRACE_DETACH with a null data pointer resumes the tracee
    // with no signal; no memory of ours is read or written.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, none, none) };
    Ok(format!("attached to {pid}, and detached"))
}

/// Starts up to `wanted` threads that sleep 3 s each, stopping at the first
/// that cannot start; none is joined.
fn forkbomb(wanted: &str) -> String {
    let Ok(wanted) = number::<usize>(wanted) else {
        return format!("denied: {wanted:?} is not a number");
    };
    for started in 0..wanted {
        // A small stack: the address space limit is not what this tries.
        let spawned = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(|| std::thread::sleep(Duration::from_secs(3)));
        if let Err(error) = spawned {
            return format!("denied: started {started} of {wanted}: {error}");
        }
    }
    format!("ok: started {wanted} of {wanted}")
}

/// Runs `program -u` (a setuid copy of `id`): the effective uid it reports.
fn setuid(program: &str) -> io::Result<String> {
    let out = Command::new(program).arg("-u").output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{program} -u: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `uid=… euid=… nnp=… capeff=… capbnd=…`, from system calls (the sandbox
/// may deny /proc). A failed call shows as `err<errno>`.
#[allow(unsafe_code)]
fn identity() -> String {
    // SAFETY: getuid and geteuid take nothing and cannot fail.
    let (uid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
    let zero: libc::c_ulong = 0;
    // SAFETY: PR_GET_NO_NEW_PRIVS reads no pointer; the other arguments are
    // 0, as prctl(2) asks.
    let nnp = match unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, zero, zero, zero, zero) } {
        -1 => errno(),
        flag => flag.to_string(),
    };
    let capeff = effective_capabilities().map_or_else(|_| errno(), |caps| format!("{caps:x}"));
    format!(
        "uid={uid} euid={euid} nnp={nnp} capeff={capeff} capbnd={}",
        bounding_set()
    )
}

/// The last OS error as `err<errno>`.
fn errno() -> String {
    format!(
        "err{}",
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    )
}

/// `struct __user_cap_header_struct` of `<linux/capability.h>`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`: 32 capabilities' bits.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// This thread's effective capabilities, by `capget`.
#[allow(unsafe_code)]
fn effective_capabilities() -> io::Result<u64> {
    // _LINUX_CAPABILITY_VERSION_3: 64 capabilities, in two data structs.
    let mut header = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: for version 3, capget reads the header and writes two data
    // structs, which is what the pointers point at; both outlive the call.
    let result = unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((u64::from(data[1].effective) << 32) | u64::from(data[0].effective))
}

/// How many capabilities are still in the bounding set, asked one by one
/// until the kernel knows no more (`EINVAL`).
#[allow(unsafe_code)]
fn bounding_set() -> String {
    let mut held = 0;
    let zero: libc::c_ulong = 0;
    for capability in 0..64_u32 {
        let capability = libc::c_ulong::from(capability);
        // SAFETY: PR_CAPBSET_READ takes a number and reads no pointer.
        match unsafe { libc::prctl(libc::PR_CAPBSET_READ, capability, zero, zero, zero) } {
            1 => held += 1,
            0 => {}
            _ if io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) => break,
            _ => return errno(),
        }
    }
    held.to_string()
}
