//! What a plugin will be able to reach, as `outlet check` prints it.

use outlet_manifest::{Manifest, Trust};

use super::kernel::{kernel, plugin_uid};
use super::landlock;

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
