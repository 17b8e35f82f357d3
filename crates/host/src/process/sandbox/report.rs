//! What a sandbox holds a process to, layer by layer, as it was applied:
//! [`SandboxReport`], for `Plugin::sandbox` and `outlet inspect`.

use ::landlock::ABI;

use super::{Confinement, Sandbox, seccomp};

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

impl Sandbox {
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
