//! [`Mechanism`] and [`Trust`]: the two words the policy is made of.

use std::fmt;

use serde::Deserialize;

/// How a plugin is loaded and called. One name everywhere: the manifest's
/// `mechanism`, the host's module, this enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    /// A Rust dylib from the same build, called directly.
    Native,
    /// A C-ABI shared library with a versioned function table.
    Cabi,
    /// A child process serving gRPC, compatible with HashiCorp go-plugin.
    Rpc,
    /// A WebAssembly module in a wasmtime sandbox.
    Wasm,
    /// A child process per call.
    Exec,
}

impl Mechanism {
    /// All mechanisms, fastest first.
    pub const ALL: [Mechanism; 5] = [
        Mechanism::Native,
        Mechanism::Cabi,
        Mechanism::Wasm,
        Mechanism::Rpc,
        Mechanism::Exec,
    ];

    /// The name used in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Native => "native",
            Mechanism::Cabi => "cabi",
            Mechanism::Rpc => "rpc",
            Mechanism::Wasm => "wasm",
            Mechanism::Exec => "exec",
        }
    }

    /// Whether the plugin's code runs inside the host's process.
    pub fn in_process(self) -> bool {
        matches!(self, Mechanism::Native | Mechanism::Cabi)
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How far the host trusts a plugin's author. Trust gates mechanisms:
///
/// | trust | mechanisms allowed |
/// |---|---|
/// | `untrusted` | `wasm`, `exec` |
/// | `open` | `rpc`, `wasm`, `exec` |
/// | `tight` | all five |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trust {
    /// Code the host's own team builds and ships: may run in-process.
    Tight,
    /// A known author on an independent release cadence: its own process.
    Open,
    /// Anybody's code: only a sandbox or a locked-down child process.
    Untrusted,
}

impl Trust {
    /// The name used in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Trust::Tight => "tight",
            Trust::Open => "open",
            Trust::Untrusted => "untrusted",
        }
    }

    /// Whether a plugin of this trust may run under `mechanism`.
    pub fn allows(self, mechanism: Mechanism) -> bool {
        match self {
            Trust::Tight => true,
            Trust::Open => !mechanism.in_process(),
            Trust::Untrusted => matches!(mechanism, Mechanism::Wasm | Mechanism::Exec),
        }
    }

    /// The mechanisms this trust allows, fastest first.
    pub fn allowed(self) -> impl Iterator<Item = Mechanism> {
        Mechanism::ALL.into_iter().filter(move |m| self.allows(*m))
    }
}

impl fmt::Display for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_code_never_runs_in_process() {
        for trust in [Trust::Open, Trust::Untrusted] {
            assert!(!trust.allows(Mechanism::Native));
            assert!(!trust.allows(Mechanism::Cabi));
        }
        assert!(!Trust::Untrusted.allows(Mechanism::Rpc));
        assert!(Trust::Open.allows(Mechanism::Rpc));
        assert_eq!(Trust::Tight.allowed().count(), 5);
        let untrusted: Vec<_> = Trust::Untrusted.allowed().collect();
        assert_eq!(untrusted, [Mechanism::Wasm, Mechanism::Exec]);
    }
}
