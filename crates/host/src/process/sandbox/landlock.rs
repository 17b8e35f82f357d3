//! The Landlock ruleset of a sandboxed process, made in the host: the child
//! only calls `landlock_restrict_self` on its descriptor.
//!
//! Every access right the kernel's ABI knows is handled (so denied unless a
//! rule grants it): files, and from ABI 4 TCP `connect` and `bind`, and from
//! ABI 6 signals and abstract Unix sockets outside the plugin's own
//! processes. The rules: the system's read-only folders, a few devices, the
//! program itself and the programs it was granted (with their ELF
//! interpreters) executable, its private folder read-write, its granted
//! folders, and its granted TCP ports.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetError, Scope,
};

/// Folders every process reads to start and run: its libraries, the
/// loader's cache, time zones, certificates, name resolution.
pub(super) const SYSTEM_FOLDERS: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/bin",
    "/sbin",
    "/etc",
    "/nix/store",
];

/// Devices a process may use: `/dev/null` read and written, the others read.
const DEVICES: &[(&str, bool)] = &[
    ("/dev/null", true),
    ("/dev/zero", false),
    ("/dev/urandom", false),
    ("/dev/random", false),
];

/// The highest ABI whose rights (files, network, scopes) this kernel has
/// all of, up to the one Outlet uses (6); `None` without Landlock.
pub(super) fn kernel_abi() -> Option<ABI> {
    [ABI::V6, ABI::V5, ABI::V4, ABI::V3, ABI::V2, ABI::V1]
        .into_iter()
        .find(|abi| handled(*abi, false).is_ok())
}

/// What the ruleset grants, resolved by the caller.
pub(super) struct Grants<'a> {
    /// Read and execute: the program, its interpreters, granted programs.
    pub executables: Vec<OwnedFd>,
    /// Folders read-only (`false`) or read-write (`true`).
    pub folders: Vec<(&'a Path, bool)>,
    pub connect: Vec<u16>,
    pub listen: bool,
}

/// The handled rights at `abi`, in a ruleset that fails rather than
/// silently handling less than asked; binding TCP ports is left alone when
/// the plugin may `listen` (a rule would have to name every port).
fn handled(abi: ABI, listen: bool) -> Result<Ruleset, RulesetError> {
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(abi))?;
    if abi >= ABI::V4 {
        let net = match listen {
            true => AccessNet::ConnectTcp.into(),
            false => AccessNet::from_all(abi),
        };
        ruleset = ruleset.handle_access(net)?;
    }
    if abi >= ABI::V6 {
        ruleset = ruleset.scope(Scope::from_all(abi))?;
    }
    Ok(ruleset)
}

/// The ruleset's descriptor, for `landlock_restrict_self` in the child.
///
/// # Errors
/// The kernel's, when a rule cannot be added: a folder that is gone, say.
pub(super) fn ruleset(abi: ABI, grants: &Grants<'_>) -> Result<OwnedFd, String> {
    let file_read: BitFlags<AccessFs> = AccessFs::ReadFile.into();
    let dir_read = AccessFs::ReadFile | AccessFs::ReadDir;
    let mut ruleset = handled(abi, grants.listen)
        .and_then(Ruleset::create)
        .map_err(|e| e.to_string())?;
    for folder in SYSTEM_FOLDERS {
        // A system without /lib32 (most) or /lib64 simply has no rule for it.
        if let Ok(fd) = open_place(Path::new(folder), true) {
            ruleset = beneath(ruleset, &fd, dir_read, folder)?;
        }
    }
    for (device, write) in DEVICES {
        if let Ok(fd) = open_place(Path::new(device), true) {
            let access = match write {
                true => file_read | AccessFs::WriteFile,
                false => file_read,
            };
            ruleset = beneath(ruleset, &fd, access, device)?;
        }
    }
    for executable in &grants.executables {
        ruleset = beneath(
            ruleset,
            executable,
            file_read | AccessFs::Execute,
            "a program",
        )?;
    }
    for (folder, write) in &grants.folders {
        let fd = open_place(folder, false).map_err(|e| format!("{}: {e}", folder.display()))?;
        let access = match write {
            true => AccessFs::from_all(abi) & !AccessFs::Execute,
            false => dir_read,
        };
        ruleset = beneath(ruleset, &fd, access, &folder.display().to_string())?;
    }
    if abi >= ABI::V4 {
        for port in &grants.connect {
            ruleset = ruleset
                .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
                .map_err(|e| format!("TCP port {port}: {e}"))?;
        }
    }
    Option::<OwnedFd>::from(ruleset).ok_or_else(|| "the kernel made no ruleset".to_owned())
}

/// `ruleset` with `access` granted beneath `fd` (on a file, only the rights
/// a file has).
fn beneath(
    ruleset: RulesetCreated,
    fd: &impl AsFd,
    access: BitFlags<AccessFs>,
    what: &str,
) -> Result<RulesetCreated, String> {
    let is_dir = rustix::fs::fstat(fd).is_ok_and(|stat| {
        rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Directory
    });
    let access = match is_dir {
        true => access,
        false => access & AccessFs::from_file(ABI::V6),
    };
    ruleset
        .add_rule(PathBeneath::new(fd.as_fd(), access))
        .map_err(|e| format!("{what}: {e}"))
}

/// `path` opened as a place (`O_PATH`), as a rule names it: following its
/// links (a system folder or device, root's, and `/lib` may be a link), or,
/// for a grant by the path the policy resolved at load, none put on the
/// way since.
pub(super) fn open_place(path: &Path, follow: bool) -> rustix::io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let resolve = match follow {
        true => ResolveFlags::empty(),
        false => ResolveFlags::NO_SYMLINKS,
    };
    let flags = OFlags::PATH | OFlags::CLOEXEC;
    rustix::fs::openat2(rustix::fs::CWD, path, flags, Mode::empty(), resolve)
}
