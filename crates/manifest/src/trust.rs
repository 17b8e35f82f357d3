//! [`Trust`]: how far the host trusts a plugin's author, and the mechanisms
//! that allows.

use std::fmt;

use serde::de::{Deserialize, Deserializer, Error, Visitor};

use crate::Mechanism;

/// How far the host trusts a plugin's author, named for where its code may
/// run. Trust gates mechanisms:
///
/// | trust | mechanisms allowed |
/// |---|---|
/// | `sandboxed` | `wasm`, `exec`, `rpc` |
/// | `out-of-process` | `rpc`, `wasm`, `exec` |
/// | `in-process` | all five |
///
/// At `sandboxed`, a wasm module reaches only what wasmtime hands it, and
/// an exec or rpc process runs in the OS sandbox (Landlock, seccomp, no
/// privileges), reaching only what its manifest grants; a host that cannot
/// build that sandbox refuses to load it.
///
/// Manifests may also write `tight` for `in-process`, `open` for
/// `out-of-process` and `untrusted` for `sandboxed`; an unknown level is
/// answered with the three names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trust {
    /// Code the host's own team builds and ships: may run in the host's
    /// process, and under every other mechanism too.
    InProcess,
    /// A known author on an independent release cadence: its own process
    /// (`rpc`), or what `sandboxed` allows.
    OutOfProcess,
    /// Anybody's code: only in a wasm sandbox, or in a process of its own
    /// under the OS sandbox (`exec`, `rpc`).
    Sandboxed,
}

impl Trust {
    /// The names used in manifests, in the order of the variants.
    const NAMES: [&'static str; 3] = ["in-process", "out-of-process", "sandboxed"];

    /// The level a manifest means by `name`, in either spelling.
    pub(crate) fn from_name(name: &str) -> Option<Trust> {
        match name {
            "in-process" | "tight" => Some(Trust::InProcess),
            "out-of-process" | "open" => Some(Trust::OutOfProcess),
            "sandboxed" | "untrusted" => Some(Trust::Sandboxed),
            _ => None,
        }
    }

    /// The name used in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Trust::InProcess => "in-process",
            Trust::OutOfProcess => "out-of-process",
            Trust::Sandboxed => "sandboxed",
        }
    }

    /// Whether this level trusts more than `other` does.
    pub fn exceeds(self, other: Trust) -> bool {
        self.rank() > other.rank()
    }

    /// 0 for the least trust, 2 for the most.
    fn rank(self) -> u8 {
        match self {
            Trust::Sandboxed => 0,
            Trust::OutOfProcess => 1,
            Trust::InProcess => 2,
        }
    }

    /// Whether a plugin of this trust may run under `mechanism`.
    pub fn allows(self, mechanism: Mechanism) -> bool {
        match self {
            Trust::InProcess => true,
            Trust::OutOfProcess => !mechanism.in_process(),
            Trust::Sandboxed => !mechanism.in_process(),
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

impl<'de> Deserialize<'de> for Trust {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Trust, D::Error> {
        deserializer.deserialize_str(TrustName)
    }
}

/// Reads a [`Trust`] from its name, or from the other spelling of it.
struct TrustName;

impl Visitor<'_> for TrustName {
    type Value = Trust;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a trust level")
    }

    fn visit_str<E: Error>(self, name: &str) -> Result<Trust, E> {
        Trust::from_name(name).ok_or_else(|| E::unknown_variant(name, &Trust::NAMES))
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{GOOD, error, parse};
    use crate::{Mechanism, Trust};

    #[test]
    fn only_in_process_trust_runs_code_in_the_hosts_process() {
        for trust in [Trust::OutOfProcess, Trust::Sandboxed] {
            assert!(!trust.allows(Mechanism::Native));
            assert!(!trust.allows(Mechanism::Cabi));
        }
        assert!(Trust::OutOfProcess.allows(Mechanism::Rpc));
        assert_eq!(Trust::InProcess.allowed().count(), 5);
        let sandboxed: Vec<_> = Trust::Sandboxed.allowed().collect();
        assert_eq!(
            sandboxed,
            [Mechanism::Wasm, Mechanism::Rpc, Mechanism::Exec]
        );
    }

    #[test]
    fn both_spellings_of_each_level_parse_to_the_same_trust() {
        let levels = [
            ("in-process", "tight", Trust::InProcess),
            ("out-of-process", "open", Trust::OutOfProcess),
            ("sandboxed", "untrusted", Trust::Sandboxed),
        ];
        let pinned = GOOD.replace(
            "[limits]",
            &format!("sha256 = \"{}\"\n[limits]", "ab".repeat(32)),
        );
        for (name, alias, level) in levels {
            for spelling in [name, alias] {
                let text = pinned.replace("\"in-process\"", &format!("{spelling:?}"));
                assert_eq!(parse(&text).unwrap().trust, level, "{spelling}");
                assert_eq!(spelling.parse::<Trust>(), Ok(level), "{spelling}");
            }
            assert_eq!(level.name(), name);
            assert_eq!(level.to_string(), name);
        }
    }

    #[test]
    fn an_unknown_trust_lists_the_names_not_the_other_spellings() {
        let text = error(&GOOD.replace("\"in-process\"", "\"strict\""));
        assert!(
            text.contains("`strict`")
                && text.contains("`in-process`, `out-of-process`, `sandboxed`")
                && !text.contains("tight"),
            "{text}"
        );
        let error = "strict".parse::<Trust>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "`strict` is not one of in-process, out-of-process, sandboxed"
        );
    }
}
