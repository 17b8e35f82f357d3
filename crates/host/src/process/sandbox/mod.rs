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

mod kernel;
mod landlock;
mod programs;
mod reach;
mod report;
pub(crate) mod seccomp;

pub use kernel::{PLUGIN_UIDS, plugin_uid};
pub use reach::reach;
pub use report::{Layer, SandboxReport};

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use ::landlock::ABI;
use outlet_manifest::{Manifest, Trust};

use kernel::{Kernel, kernel};
use programs::{SYSTEM_FOLDERS_FOR_INTERPRETERS, interpreters, open_file};

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
