//! [`Ceiling`]: the limits of a trust level below `in-process`, the most a
//! manifest may ask for and what it gets when it asks for nothing.

use crate::{Manifest, ManifestError, Mechanism};

/// The limits of a trust level: the most a manifest may ask for, and what
/// it gets when it asks for nothing.
/// Build one from a default, `Ceiling { memory_mb: 8192, ..Ceiling::SANDBOXED }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ceiling {
    /// The most `limits.memory_mb` may be.
    pub memory_mb: u64,
    /// `limits.memory_mb` when a wasm or exec manifest has none (an rpc
    /// process gets no default: its runtime may reserve more address space
    /// than it uses).
    pub default_memory_mb: u64,
    /// The most `limits.timeout_ms` may be.
    pub timeout_ms: u64,
    /// The most `limits.start_timeout_ms` may be.
    pub start_timeout_ms: u64,
    /// The most `limits.cpu_seconds` may be.
    pub cpu_seconds: u64,
    /// `limits.cpu_seconds` when an exec manifest has none (the time one
    /// call may compute; an rpc process lives too long for a CPU limit, and
    /// a wasm call is stopped at its `timeout_ms`).
    pub default_cpu_seconds: u64,
    /// The most `limits.max_message_bytes` may be.
    pub max_message_bytes: usize,
    /// The most `permissions.processes` may be.
    pub processes: u32,
    /// `permissions.processes` when a sandboxed exec or rpc manifest has
    /// none: its processes and threads together.
    pub default_processes: u32,
}

impl Ceiling {
    /// The ceiling of `sandboxed` plugins in [`Policy::default`].
    pub const SANDBOXED: Ceiling = Ceiling {
        memory_mb: 4096,
        default_memory_mb: 512,
        timeout_ms: 60_000,
        start_timeout_ms: 60_000,
        cpu_seconds: 60,
        default_cpu_seconds: 10,
        max_message_bytes: 64 << 20,
        processes: 1024,
        default_processes: 64,
    };

    /// The ceiling of `out-of-process` plugins in [`Policy::default`].
    pub const OUT_OF_PROCESS: Ceiling = Ceiling {
        memory_mb: 65_536,
        default_memory_mb: 4096,
        timeout_ms: 3_600_000,
        start_timeout_ms: 600_000,
        cpu_seconds: 3600,
        default_cpu_seconds: 60,
        max_message_bytes: 1 << 30,
        processes: 16_384,
        default_processes: 1024,
    };
}

/// The limits a manifest names none of, from its level's ceiling.
pub(super) fn fill_limits(manifest: &mut Manifest, ceiling: &Ceiling) {
    if manifest.sandbox {
        manifest
            .permissions
            .processes
            .get_or_insert(ceiling.default_processes.min(ceiling.processes));
    }
    let limits = &mut manifest.limits;
    // wasm's linear memory, an exec child's address space. Not an rpc
    // process's: runtimes that live long (Go, the JVM, V8) reserve more
    // address space than they use, and would fail to start under a limit
    // nobody asked for; each of its calls has its `timeout_ms`.
    if matches!(manifest.mechanism, Mechanism::Wasm | Mechanism::Exec) {
        limits
            .memory_mb
            .get_or_insert(ceiling.default_memory_mb.min(ceiling.memory_mb));
    }
    if manifest.mechanism == Mechanism::Exec {
        limits
            .cpu_seconds
            .get_or_insert(ceiling.default_cpu_seconds.min(ceiling.cpu_seconds));
    }
}

/// No limit above the level's ceiling.
pub(super) fn check_ceiling(manifest: &Manifest, ceiling: &Ceiling) -> Result<(), ManifestError> {
    let limits = &manifest.limits;
    let asked = [
        (
            "limits.memory_mb",
            limits.memory_mb.unwrap_or(0),
            ceiling.memory_mb,
        ),
        ("limits.timeout_ms", limits.timeout_ms, ceiling.timeout_ms),
        (
            "limits.start_timeout_ms",
            limits.start_timeout_ms,
            ceiling.start_timeout_ms,
        ),
        (
            "limits.cpu_seconds",
            limits.cpu_seconds.unwrap_or(0),
            ceiling.cpu_seconds,
        ),
        (
            "limits.max_message_bytes",
            limits.max_message_bytes as u64,
            ceiling.max_message_bytes as u64,
        ),
        (
            "permissions.processes",
            manifest.permissions.processes.unwrap_or(0).into(),
            ceiling.processes.into(),
        ),
    ];
    for (field, value, most) in asked {
        if value > most {
            return Err(ManifestError::policy(
                manifest,
                format!(
                    "`{field}` = {value} is above the host's ceiling of {most} for \
                     trust = \"{}\"",
                    manifest.trust
                ),
                format!("lower `{field}` to {most} or less, or ask the host for more"),
            ));
        }
    }
    Ok(())
}
