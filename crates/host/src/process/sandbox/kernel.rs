//! What this kernel offers the sandbox, looked at once per host process,
//! and the uid a plugin of a root host runs as.

use std::os::fd::OwnedFd;
use std::sync::OnceLock;

use ::landlock::ABI;
use outlet_manifest::Manifest;

/// What this kernel offers, looked at once per host process.
pub(super) struct Kernel {
    pub(super) landlock: Option<ABI>,
    pub(super) seccomp: bool,
    /// Whether this process may make a user namespace (a host that is not
    /// root needs one for namespaces and a process count of its own).
    pub(super) user_namespaces: bool,
    /// For a root host: a network namespace with no interface up, made
    /// once, which plugins without a network grant enter.
    pub(super) empty_network: Option<OwnedFd>,
    pub(super) root: bool,
    /// The highest capability number, to empty the bounding set.
    pub(super) cap_last: libc::c_int,
}

pub(super) fn kernel() -> &'static Kernel {
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
            landlock: super::landlock::kernel_abi(),
            seccomp: cfg!(all(
                any(target_arch = "x86_64", target_arch = "aarch64"),
                target_endian = "little"
            )) && read("/proc/sys/kernel/seccomp/actions_avail")
                .is_ok_and(|actions| actions.contains("errno")),
            user_namespaces,
            empty_network: root
                .then(super::super::spawn::empty_network)
                .and_then(Result::ok),
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
