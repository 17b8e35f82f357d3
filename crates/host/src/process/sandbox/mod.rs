//! The OS sandbox of an exec or rpc process: what its manifest grants and
//! nothing else, on Linux, without root.
//!
//! Everything is prepared here, in the host; the child of `spawn.rs` only
//! makes the system calls, in this order, before `execveat`:
//!
//! 1. namespaces: for a host that is not root, a user namespace of its own
//!    (given to `clone`), in which the plugin keeps the host's uid, and for
//!    an rpc process without a network grant a network namespace in it
//!    (where the kernel lets users make them; else none, and the report
//!    says so); for a root host, a plugin without a network grant enters
//!    a network namespace with no interface up, made once per host;
//! 2. for a host that runs as root, an identity of the plugin's own: the
//!    bounding set emptied, no supplementary groups, an unprivileged uid and
//!    gid chosen per plugin ([`plugin_uid`]), which drops every capability;
//! 3. `RLIMIT_NPROC` (`permissions.processes`): counted per uid, so only
//!    where the plugin has a uid of its own or a user namespace;
//! 4. `no_new_privs`: no setuid bit or file capability raises it again;
//! 5. Landlock (see `landlock.rs`);
//! 6. the seccomp filter (see `seccomp.rs`).
//!
//! A step that fails fails the start: what is reported holds. A layer the
//! kernel lacks is not tried, and is reported missing; for `sandboxed`
//! trust a missing Landlock or seccomp refuses the load.

mod landlock;
pub(crate) mod seccomp;

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ::landlock::ABI;
use outlet_manifest::{Manifest, Trust};

/// What holds for one sandboxed process: [`crate::Plugin::sandbox`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SandboxReport {
    /// Whether the layers the sandbox rests on hold: `no_new_privs`,
    /// Landlock and seccomp.
    pub enforced: bool,
    /// Each layer, whether it holds, and at what level.
    pub layers: Vec<Layer>,
}

impl SandboxReport {
    /// The layer called `name`.
    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.layers.iter().find(|layer| layer.name == name)
    }
}

/// One layer of a [`SandboxReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Layer {
    /// `no_new_privs`, `capabilities`, `user`, `processes`, `landlock`,
    /// `seccomp`, `namespaces`.
    pub name: &'static str,
    /// Whether it holds for the process.
    pub holds: bool,
    /// What it holds the process to, or why it does not hold.
    pub level: String,
}

/// What this kernel offers, looked at once per host process.
struct Kernel {
    landlock: Option<ABI>,
    seccomp: bool,
    /// Whether this process may make a user namespace (a host that is not
    /// root needs one for namespaces and a process count of its own).
    user_namespaces: bool,
    /// For a root host: a network namespace with no interface up, made
    /// once, which plugins without a network grant enter.
    empty_network: Option<OwnedFd>,
    root: bool,
    /// The highest capability number, to empty the bounding set.
    cap_last: libc::c_int,
}

fn kernel() -> &'static Kernel {
    static KERNEL: OnceLock<Kernel> = OnceLock::new();
    KERNEL.get_or_init(|| {
        let read = |file: &str| std::fs::read_to_string(file).map(|s| s.trim().to_owned());
        let root = rustix::process::geteuid().is_root();
        let user_namespaces = !root
            && read("/proc/sys/user/max_user_namespaces").is_ok_and(|n| n != "0")
            && read("/proc/sys/kernel/unprivileged_userns_clone").map_or(true, |v| v != "0")
            && read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
                .map_or(true, |v| v != "1");
        Kernel {
            landlock: landlock::kernel_abi(),
            seccomp: cfg!(all(
                any(target_arch = "x86_64", target_arch = "aarch64"),
                target_endian = "little"
            )) && read("/proc/sys/kernel/seccomp/actions_avail")
                .is_ok_and(|actions| actions.contains("errno")),
            user_namespaces,
            empty_network: root.then(super::spawn::empty_network).and_then(Result::ok),
            root,
            cap_last: read("/proc/sys/kernel/cap_last_cap")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(40),
        }
    })
}

/// The uid (and gid) a plugin runs as when the host runs as root: one of
/// its own, the same at every start (files it writes keep their owner),
/// from a hash of its manifest's file (resolved) and its name, so that a
/// manifest elsewhere cannot take another plugin's uid by taking its name.
/// The range, [`PLUGIN_UIDS`], is above those systems give users and
/// SSSD's default ranges, and below 2^31.
pub fn plugin_uid(manifest: &Manifest) -> u32 {
    let file = manifest
        .file
        .canonicalize()
        .unwrap_or_else(|_| manifest.file.clone());
    let key = [
        file.as_os_str().as_encoded_bytes(),
        b"\0",
        manifest.name.as_bytes(),
    ]
    .concat();
    // FNV-1a: small, stable across builds and platforms.
    let hash = key.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    });
    PLUGIN_UIDS.start + hash % (PLUGIN_UIDS.end - PLUGIN_UIDS.start)
}

/// Where [`plugin_uid`] picks from.
pub const PLUGIN_UIDS: std::ops::Range<u32> = 2_046_820_352..2_130_706_432;

/// A plugin's sandbox, worked out at load.
pub(crate) struct Sandbox {
    plugin: String,
    kernel: &'static Kernel,
    /// Granted programs besides the plugin's own file.
    programs: Vec<PathBuf>,
    /// Granted folders, and whether each is writable.
    folders: Vec<(PathBuf, bool)>,
    connect: Vec<u16>,
    listen: bool,
    network: bool,
    processes: Option<u64>,
    filter: Vec<libc::sock_filter>,
    filter_options: seccomp::Options,
    /// Its uid, should the host run as root.
    uid: u32,
    /// A process per call (exec), whose start must stay cheap.
    per_call: bool,
}

/// What one start needs, made by [`Sandbox::prepare`]: read by the child.
pub(crate) struct Confinement {
    /// The Landlock ruleset, or `None` without Landlock.
    pub ruleset: Option<OwnedFd>,
    /// The seccomp filter; empty without seccomp.
    pub filter: Vec<libc::sock_filter>,
    /// For a root host: the uid and gid to become.
    pub become_user: Option<(u32, u32)>,
    /// Namespaces to give `clone`.
    pub namespaces: libc::c_int,
    /// A network namespace to enter (a root host's empty one).
    pub join_network: Option<&'static OwnedFd>,
    /// For a user namespace made by a host that is not root: the host's
    /// uid and gid, which the child maps to themselves.
    pub map_ids: Option<(u32, u32)>,
    pub cap_last: libc::c_int,
    pub processes: Option<u64>,
}

/// Why a sandbox cannot be built for a plugin: the load is refused.
#[derive(Debug, thiserror::Error)]
#[error("plugin `{plugin}`: {problem}. {fix}")]
pub struct SandboxError {
    plugin: String,
    problem: String,
    fix: String,
}

impl Sandbox {
    /// The sandbox `manifest` asks for, if any: `None` when
    /// `manifest.sandbox` is false.
    ///
    /// # Errors
    /// For `sandboxed` trust on a kernel without Landlock or seccomp.
    pub(crate) fn new(manifest: &Manifest) -> Result<Option<Sandbox>, SandboxError> {
        Sandbox::on(kernel(), manifest)
    }

    /// [`Sandbox::new`] on a kernel that offers `kernel`.
    fn on(kernel: &'static Kernel, manifest: &Manifest) -> Result<Option<Sandbox>, SandboxError> {
        if !manifest.sandbox {
            return Ok(None);
        }
        let rpc = manifest.mechanism == outlet_manifest::Mechanism::Rpc;
        if manifest.trust == Trust::Sandboxed && !kernel.root && rpc {
            return Err(SandboxError {
                plugin: manifest.name.clone(),
                problem: "an rpc process of a host that is not root runs as the host's user, \
                          and could reach that user's Unix sockets (the session bus, agents), \
                          which no layer of this kernel confines, and trust = \"sandboxed\" \
                          runs only in the full sandbox"
                    .into(),
                fix: "Run the host as root (each plugin then gets a uid of its own), or the \
                      plugin as `mechanism = \"exec\"` or `\"wasm\"`"
                    .into(),
            });
        }
        if manifest.trust == Trust::Sandboxed {
            let unscoped = !kernel.root && kernel.landlock.is_some_and(|abi| abi < ABI::V6);
            let missing: Vec<&str> = [
                (
                    kernel.landlock.is_none(),
                    "Landlock (Linux 5.13, `lsm=landlock`)",
                ),
                (!kernel.seccomp, "seccomp filters (CONFIG_SECCOMP_FILTER)"),
                (
                    unscoped,
                    "Landlock ABI 6 (Linux 6.12), which keeps a plugin of a host that is not \
                     root from signalling that user's processes",
                ),
            ]
            .into_iter()
            .filter_map(|(missing, what)| missing.then_some(what))
            .collect();
            if !missing.is_empty() {
                return Err(SandboxError {
                    plugin: manifest.name.clone(),
                    problem: format!(
                        "this kernel has no {}, and trust = \"sandboxed\" runs only in the full \
                         sandbox",
                        missing.join(" and no ")
                    ),
                    fix: "Run it on a kernel that has them, or as `mechanism = \"wasm\"`, whose \
                          sandbox needs neither"
                        .into(),
                });
            }
        }
        let permissions = &manifest.permissions;
        Ok(Some(Sandbox {
            plugin: manifest.name.clone(),
            kernel,
            // Resolved once, here (the policy resolved them already below
            // in-process); each start then opens them following no link.
            programs: (permissions.programs.iter()).map(|p| resolved(p)).collect(),
            folders: (permissions.dirs.iter())
                .map(|dir| (resolved(&dir.host), dir.write))
                .collect(),
            connect: permissions.network.connect_ports().into_iter().collect(),
            listen: permissions.network.listen,
            network: permissions.network.any(),
            processes: permissions.processes.map(u64::from),
            per_call: !rpc,
            uid: plugin_uid(manifest),
            filter: match kernel.seccomp {
                true => seccomp::filter(Sandbox::filter_options(kernel, manifest)),
                false => Vec::new(),
            },
            filter_options: Sandbox::filter_options(kernel, manifest),
        }))
    }

    /// What the system call filter of `manifest`'s plugin lets through.
    fn filter_options(kernel: &Kernel, manifest: &Manifest) -> seccomp::Options {
        seccomp::Options {
            network: manifest.permissions.network.any(),
            unix_sockets: manifest.mechanism == outlet_manifest::Mechanism::Rpc,
            guard_metadata: !kernel.root,
        }
    }

    /// The uid the plugin runs as, if not the host's.
    pub(crate) fn uid(&self) -> Option<u32> {
        self.kernel.root.then_some(self.uid)
    }

    /// The error of a start refused because its sandbox could not be made.
    pub(crate) fn refused(&self, problem: String) -> SandboxError {
        SandboxError {
            plugin: self.plugin.clone(),
            problem: format!("cannot build its sandbox: {problem}"),
            fix: "Check that every folder in `permissions.dirs` and program in \
                  `permissions.programs` still exists"
                .into(),
        }
    }

    /// What the child needs to start `executable` confined, with `private`
    /// (its temporary folder, and an rpc plugin's socket folder) writable.
    ///
    /// # Errors
    /// When the ruleset cannot be made: a granted folder that is gone.
    pub(crate) fn prepare(&self, executable: &File, private: &Path) -> Result<Confinement, String> {
        let kernel = self.kernel;
        let ruleset = match kernel.landlock {
            None => None,
            Some(abi) => {
                let mut executables = vec![
                    executable
                        .as_fd()
                        .try_clone_to_owned()
                        .map_err(|e| e.to_string())?,
                ];
                // Granted programs as the policy resolved them, a link put
                // on the way since not followed.
                let mut interpreters_needed = interpreters(executable, 0);
                for program in &self.programs {
                    let file = open_file(program, false)?;
                    interpreters_needed.extend(interpreters(&file, 0));
                    executables.push(file.into());
                }
                // Interpreters only from the system's folders, or granted
                // themselves: a `#!` line or `PT_INTERP` names any path its
                // author likes. One refused, gone or not a file is not
                // granted: the start fails, as the kernel would not run it.
                for program in interpreters_needed {
                    let system = SYSTEM_FOLDERS_FOR_INTERPRETERS
                        .iter()
                        .any(|folder| program.starts_with(folder));
                    if (system || self.programs.contains(&program))
                        && let Ok(file) = open_file(&program, true)
                    {
                        executables.push(file.into());
                    }
                }
                let mut folders: Vec<(&Path, bool)> = self
                    .folders
                    .iter()
                    .map(|(p, w)| (p.as_path(), *w))
                    .collect();
                folders.push((private, true));
                let grants = landlock::Grants {
                    executables,
                    folders,
                    connect: self.connect.clone(),
                    listen: self.listen,
                };
                Some(landlock::ruleset(abi, &grants)?)
            }
        };
        // Namespaces: a root host puts a plugin without a network into its
        // empty one; a host that is not root makes a user namespace, and
        // for a process that lasts (rpc) a network namespace in it. Making
        // a network namespace takes half a millisecond here, too much for
        // every exec call.
        let (uid, gid) = (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        );
        let user_namespace = kernel.user_namespaces;
        let mut namespaces = 0;
        if user_namespace {
            namespaces |= libc::CLONE_NEWUSER;
            if !self.network && !self.per_call {
                namespaces |= libc::CLONE_NEWNET;
            }
        }
        Ok(Confinement {
            ruleset,
            filter: self.filter.clone(),
            become_user: self.uid().map(|uid| (uid, uid)),
            namespaces,
            join_network: kernel.empty_network.as_ref().filter(|_| !self.network),
            map_ids: user_namespace.then_some((uid, gid)),
            cap_last: kernel.cap_last,
            processes: self.processes.filter(|_| kernel.root || user_namespace),
        })
    }

    /// What holds for a process started with `confinement`, whose
    /// namespaces `clone` made (`namespaces`), or not.
    pub(crate) fn report(&self, confinement: &Confinement, namespaces: bool) -> SandboxReport {
        let kernel = self.kernel;
        let layer = |name, holds, level: String| Layer { name, holds, level };
        let own_namespace = namespaces && confinement.map_ids.is_some();
        let own_count = confinement.become_user.is_some() || own_namespace;
        let mut layers = vec![layer(
            "no_new_privs",
            true,
            "set: no setuid bit or file capability raises the process".into(),
        )];
        layers.push(match confinement.become_user {
            Some((uid, gid)) => layer(
                "user",
                true,
                format!("uid {uid}, gid {gid}, no supplementary groups (the host runs as root)"),
            ),
            None => layer(
                "user",
                true,
                format!(
                    "the host's uid {}{}",
                    rustix::process::getuid().as_raw(),
                    if own_namespace {
                        ", in a user namespace of its own"
                    } else {
                        ""
                    }
                ),
            ),
        });
        layers.push(layer(
            "capabilities",
            true,
            if own_count {
                "none: bounding and ambient sets emptied".into()
            } else {
                "none: an unprivileged uid, and no_new_privs stops file capabilities".into()
            },
        ));
        layers.push(
            match (self.processes, confinement.processes.filter(|_| own_count)) {
                (_, Some(n)) => layer("processes", true, format!("at most {n}, threads included")),
                (Some(_), None) => layer(
                    "processes",
                    false,
                    "not enforced: RLIMIT_NPROC counts every process of the host's uid, and this \
                 host can make no user namespace"
                        .into(),
                ),
                (None, None) => layer("processes", false, "no limit asked".into()),
            },
        );
        layers.push(match kernel.landlock {
            Some(abi) => layer(
                "landlock",
                true,
                format!(
                    "ABI {}: files{}{}",
                    abi as i32,
                    if abi >= ABI::V4 {
                        match self.listen {
                            true => ", TCP connect (TCP bind allowed)",
                            false => ", TCP connect and bind",
                        }
                    } else {
                        " (no TCP rules before ABI 4)"
                    },
                    if abi >= ABI::V6 {
                        ", signals and abstract Unix sockets scoped"
                    } else {
                        " (no signal scoping before ABI 6)"
                    }
                ),
            ),
            None => layer(
                "landlock",
                false,
                "missing: this kernel has no Landlock".into(),
            ),
        });
        layers.push(match kernel.seccomp {
            true => layer(
                "seccomp",
                true,
                format!(
                    "{} system calls refused; sockets: {}",
                    seccomp::refused_count(self.filter_options),
                    match (self.filter_options.unix_sockets, self.network) {
                        (true, _) if !kernel.root => {
                            "Unix (named ones the host's user may reach included: no layer of \
                             this kernel confines them)"
                        }
                        (true, true) => "Unix and TCP (no fast open)",
                        (true, false) => "Unix only",
                        (false, true) => "TCP only (no fast open)",
                        (false, false) => "none",
                    }
                ),
            ),
            false => layer(
                "seccomp",
                false,
                "missing: this kernel has no seccomp filters".into(),
            ),
        });
        let asked = if namespaces {
            confinement.namespaces
        } else {
            0
        };
        let mut names = Vec::new();
        if asked & libc::CLONE_NEWUSER != 0 {
            names.push("user");
        }
        if asked & libc::CLONE_NEWNET != 0 {
            names.push("network of its own, no interface up");
        }
        if confinement.join_network.is_some() {
            names.push("network shared by sandboxed plugins, no interface up");
        }
        layers.push(match names.is_empty() {
            false => layer("namespaces", true, names.join("; ")),
            true => layer(
                "namespaces",
                false,
                match (kernel.root, self.network) {
                    (true, true) => "none: the plugin is granted a network".into(),
                    (true, false) => "none: the kernel refused a network namespace".into(),
                    (false, _) => "none: this host cannot make user namespaces".into(),
                },
            ),
        });
        let holds = |name: &str| layers.iter().any(|l| l.name == name && l.holds);
        SandboxReport {
            enforced: holds("landlock") && holds("seccomp"),
            layers,
        }
    }
}

/// What a call or start says of a process killed by SIGSYS.
pub(crate) fn killed_by_filter() -> String {
    format!(
        "was killed by SIGSYS: a seccomp filter refused a system call (the sandbox's kills a \
         process that makes one of {}, or a system call of another architecture, which no \
         plugin needs; the others it refuses return an error)",
        seccomp::KILLED.join(", ")
    )
}

/// `path` resolved through its links, or as it is if it cannot be (a
/// start then fails naming it).
fn resolved(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_owned())
}

/// Where an interpreter may be, once resolved: the system's folders.
const SYSTEM_FOLDERS_FOR_INTERPRETERS: [&str; 6] =
    ["/usr", "/lib", "/lib64", "/bin", "/sbin", "/nix/store"];

/// `path` opened for a rule that grants executing it: a regular file,
/// checked before it is opened for reading (a FIFO would block the host,
/// a device run its driver), or why not. Without `follow`, no link on the
/// way is followed: the path is one the policy resolved at load.
fn open_file(path: &Path, follow: bool) -> Result<File, String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let failed = |e: rustix::io::Errno| format!("{}: {e}", path.display());
    let place = OFlags::PATH | OFlags::CLOEXEC;
    let resolve = match follow {
        true => ResolveFlags::empty(),
        false => ResolveFlags::NO_SYMLINKS,
    };
    let fd = rustix::fs::openat2(rustix::fs::CWD, path, place, Mode::empty(), resolve)
        .map_err(failed)?;
    let stat = rustix::fs::fstat(&fd).map_err(failed)?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(format!("{} is not a file", path.display()));
    }
    let again = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    let read = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
    Ok(rustix::fs::open(again, read, Mode::empty())
        .map_err(failed)?
        .into())
}

/// The interpreters `program` needs the kernel to run: the ELF's
/// `PT_INTERP` (the dynamic loader), or a script's `#!` line and its own,
/// as deep as the kernel follows them (`depth`, from 0, below 4).
fn interpreters(program: &File, depth: u32) -> Vec<PathBuf> {
    if depth >= 4 {
        return Vec::new();
    }
    let mut head = [0u8; 256];
    let Ok(n) = program.read_at(&mut head, 0) else {
        return Vec::new();
    };
    let head = &head[..n];
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|b| *b == b'\n').next().unwrap_or_default();
        let Some(path) = std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.split_whitespace().next())
        else {
            return Vec::new();
        };
        // Resolved, so that where it lies is judged, not where it seems.
        let Ok(path) = Path::new(path).canonicalize() else {
            return Vec::new();
        };
        let mut found = open_file(&path, true)
            .map(|f| interpreters(&f, depth + 1))
            .unwrap_or_default();
        found.push(path);
        return found;
    }
    (elf_interpreter(program).and_then(|path| path.canonicalize().ok()))
        .into_iter()
        .collect()
}

/// The path in a 64-bit little-endian ELF file's `PT_INTERP`.
fn elf_interpreter(file: &File) -> Option<PathBuf> {
    let mut header = [0u8; 64];
    file.read_exact_at(&mut header, 0).ok()?;
    if &header[..6] != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    let (phoff, phentsize, phnum) = (
        u64_at(&header, 32),
        u16_at(&header, 54),
        u16_at(&header, 56),
    );
    if phentsize < 56 {
        return None;
    }
    for index in 0..u64::from(phnum.min(256)) {
        let mut ph = [0u8; 56];
        file.read_exact_at(&mut ph, phoff.checked_add(index * u64::from(phentsize))?)
            .ok()?;
        const PT_INTERP: u32 = 3;
        if u32::from_le_bytes([ph[0], ph[1], ph[2], ph[3]]) == PT_INTERP {
            let (offset, size) = (u64_at(&ph, 8), u64_at(&ph, 32).min(4096));
            let mut path = vec![0u8; usize::try_from(size).ok()?];
            file.read_exact_at(&mut path, offset).ok()?;
            let path = path.split(|b| *b == 0).next()?;
            return Some(PathBuf::from(std::ffi::OsStr::from_bytes(path)));
        }
    }
    None
}

/// What a plugin of `manifest` will be able to reach, one line per kind of
/// access, as `outlet check` prints it: for a process in the OS sandbox,
/// what its grants and the sandbox's own rules add up to; else one line
/// saying what confines it, if anything.
pub fn reach(manifest: &Manifest) -> Vec<String> {
    use outlet_manifest::Mechanism;
    let permissions = &manifest.permissions;
    let dirs = |write: bool| -> Vec<String> {
        (permissions.dirs.iter())
            .filter(|dir| dir.write == write)
            .map(|dir| dir.host.display().to_string())
            .collect()
    };
    match manifest.mechanism {
        Mechanism::Native | Mechanism::Cabi => {
            return vec!["everything the host can: it runs in the host's process".into()];
        }
        Mechanism::Wasm => {
            let mut folders = dirs(false);
            folders.extend(dirs(true).into_iter().map(|d| format!("{d} (writable)")));
            return vec![format!(
                "wasmtime's sandbox: no network; folders: {}",
                if folders.is_empty() {
                    "none".into()
                } else {
                    folders.join(", ")
                }
            )];
        }
        Mechanism::Exec | Mechanism::Rpc if !manifest.sandbox => {
            let why = match manifest.reattach {
                Some(_) => "the host attaches to a process it did not start",
                None => match manifest.trust {
                    Trust::InProcess => "trust = \"in-process\" without `sandbox = true`",
                    _ => "`sandbox = false`",
                },
            };
            return vec![format!(
                "no OS sandbox ({why}): every file, program and network the host's user can \
                 reach"
            )];
        }
        Mechanism::Exec | Mechanism::Rpc => {}
    }
    let kernel = kernel();
    let mut reads = vec![format!(
        "the system ({})",
        landlock::SYSTEM_FOLDERS.join(" ")
    )];
    reads.extend(dirs(false));
    let mut writes = vec!["its private temporary folder (TMPDIR)".to_owned()];
    writes.extend(dirs(true));
    let mut runs = vec!["its own program".to_owned()];
    runs.extend(permissions.programs.iter().map(|p| p.display().to_string()));
    let network = &permissions.network;
    let mut tcp = Vec::new();
    if !network.connect.is_empty() {
        tcp.push(format!("TCP connections to {}", network.connect.join(", ")));
    }
    if network.listen {
        tcp.push("listening on any TCP port".to_owned());
    }
    let mut lines = vec![
        format!("reads     {}", reads.join(", ")),
        format!("writes    {}", writes.join(", ")),
        format!("executes  {}", runs.join(", ")),
        format!(
            "network   {}",
            if tcp.is_empty() {
                "none".to_owned()
            } else {
                tcp.join("; ")
            }
        ),
        format!(
            "processes {}",
            (permissions.processes).map_or("no limit".to_owned(), |n| format!(
                "at most {n}, threads included"
            ))
        ),
    ];
    if kernel.root {
        let uid = plugin_uid(manifest);
        lines.push(format!(
            "runs as   uid {uid}, gid {uid} (the host runs as root)"
        ));
    }
    let missing: Vec<&str> = [
        (kernel.landlock.is_none(), "Landlock"),
        (!kernel.seccomp, "seccomp"),
    ]
    .into_iter()
    .filter_map(|(missing, name)| missing.then_some(name))
    .collect();
    if !missing.is_empty() {
        lines.push(format!(
            "missing   {} on this kernel: what it would hold the plugin to does not hold",
            missing.join(" and ")
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel with neither Landlock nor seccomp filters.
    fn bare_kernel() -> &'static Kernel {
        Box::leak(Box::new(Kernel {
            landlock: None,
            seccomp: false,
            user_namespaces: false,
            empty_network: None,
            root: false,
            cap_last: 40,
        }))
    }

    fn manifest(trust: &str) -> Manifest {
        let text = format!(
            "name = \"bare\"\nmechanism = \"exec\"\npath = \"/bin/true\"\n\
             interface = \"outlet.examples.greeter.v1.Greeter\"\ntrust = \"{trust}\"\n\
             sha256 = \"{}\"\n[permissions]\nprocesses = 8\n",
            "ab".repeat(32)
        );
        Manifest::parse(&text, Path::new("plugins/bare.toml")).unwrap()
    }

    #[test]
    fn untrusted_code_is_refused_on_a_kernel_without_the_layers_it_rests_on() {
        let error = Sandbox::on(bare_kernel(), &manifest("sandboxed"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.starts_with("plugin `bare`: this kernel has no Landlock")
                && error.contains("and no seccomp filters")
                && error.contains("mechanism = \"wasm\""),
            "{error}"
        );
    }

    #[test]
    fn a_missing_layer_is_reported_missing_never_skipped_silently() {
        let sandbox = Sandbox::on(bare_kernel(), &manifest("out-of-process"))
            .unwrap()
            .unwrap();
        let program = File::open("/bin/true").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let confinement = sandbox.prepare(&program, dir.path()).unwrap();
        assert!(confinement.ruleset.is_none() && confinement.filter.is_empty());
        let report = sandbox.report(&confinement, false);
        assert!(!report.enforced, "{report:?}");
        for name in ["landlock", "seccomp", "namespaces"] {
            let layer = report.layer(name).unwrap();
            assert!(!layer.holds && !layer.level.is_empty(), "{layer:?}");
        }
        let processes = report.layer("processes").unwrap();
        assert!(
            !processes.holds && processes.level.contains("not enforced"),
            "{processes:?}"
        );
    }
}
