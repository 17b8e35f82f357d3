//! The `[limits]` section: [`Limits`] and [`OnPanic`].

use std::time::Duration;

use serde::Deserialize;

/// Resource and time limits. What each one means per mechanism is documented
/// on the field; a limit a mechanism cannot enforce is refused at load.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Limits {
    /// Wall-clock time per call, in milliseconds. Default 10 000.
    #[serde(default = "Limits::default_timeout_ms")]
    pub timeout_ms: u64,
    /// Memory, in MiB: address space of an exec or rpc child (`RLIMIT_AS`),
    /// linear memory of a wasm instance. Below `in-process`, the host's
    /// policy gives wasm and exec plugins a default when it is left out.
    pub memory_mb: Option<u64>,
    /// CPU seconds of an exec child (`RLIMIT_CPU`); below `in-process`, the
    /// host's policy gives one when it is left out.
    pub cpu_seconds: Option<u64>,
    /// Open file descriptors of an exec child (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
    /// Fuel per wasm call (roughly, instructions); none means unmetered.
    pub fuel: Option<u64>,
    /// Largest request or response, in bytes. Default 4 MiB.
    #[serde(default = "Limits::default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Restarts before a crashing plugin is given up on. Default 5.
    #[serde(default = "Limits::default_restarts")]
    pub restarts: u32,
    /// rpc: how long a plugin may take to print its handshake and answer
    /// its first health check, in milliseconds. Default 10 000.
    #[serde(default = "Limits::default_start_timeout_ms")]
    pub start_timeout_ms: u64,
    /// What happens after a call panicked inside an in-process plugin (its
    /// state may be corrupt): `"fail"` (the default) refuses further calls
    /// until the host reloads it; `"reload"` loads a fresh copy at once.
    #[serde(default)]
    pub on_panic: OnPanic,
    /// Asks the plugin for its Health every this many milliseconds while it
    /// is loaded; none if left out. A check that fails (`NOT_SERVING`, no
    /// answer within the interval or the call's limit, an error) fails the
    /// plugin's calls fast with `Unavailable` until one passes.
    pub health_interval_ms: Option<u64>,
    /// Failed health checks in a row after which the plugin is restarted
    /// (reloaded: a fresh instance, a new process for rpc). Default 3.
    #[serde(default = "Limits::default_health_failures")]
    pub health_failures: u32,
}

/// What the host does with an in-process plugin after a panic in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnPanic {
    /// Fail every later call fast, until the plugin is reloaded.
    #[default]
    Fail,
    /// Load a fresh copy of the plugin, and serve later calls from it.
    Reload,
}

impl Limits {
    fn default_timeout_ms() -> u64 {
        10_000
    }
    fn default_max_message_bytes() -> usize {
        4 << 20
    }
    fn default_restarts() -> u32 {
        5
    }
    fn default_start_timeout_ms() -> u64 {
        10_000
    }
    fn default_health_failures() -> u32 {
        3
    }

    /// The per-call time limit.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// How often Health is checked, if it is.
    pub fn health_interval(&self) -> Option<Duration> {
        self.health_interval_ms.map(Duration::from_millis)
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            timeout_ms: Limits::default_timeout_ms(),
            memory_mb: None,
            cpu_seconds: None,
            open_files: None,
            fuel: None,
            max_message_bytes: Limits::default_max_message_bytes(),
            restarts: Limits::default_restarts(),
            start_timeout_ms: Limits::default_start_timeout_ms(),
            on_panic: OnPanic::Fail,
            health_interval_ms: None,
            health_failures: Limits::default_health_failures(),
        }
    }
}
