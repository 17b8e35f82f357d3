//! [`Trust`]: how far the host trusts a plugin's author, and the mechanisms
//! that allows.

use std::fmt;

use serde::Deserialize;

use crate::Mechanism;

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
    use crate::{Mechanism, Trust};

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
