//! The mechanism advisor: a decision matrix over every combination of
//! trust, call rate and deployment.

use std::fmt;
use std::str::FromStr;

use crate::{Mechanism, Trust};

/// How often and how hot a plugin is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perf {
    /// Many small calls on a hot path: nanoseconds matter.
    High,
    /// Calls per request or per event: microseconds matter.
    Medium,
    /// Rare or heavy calls: milliseconds do not matter.
    Low,
}

/// How host and plugin are built and shipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deploy {
    /// Built together: same rustc, same interface crate.
    SameBuild,
    /// Built apart, possibly in another language, shipped with the host.
    CrossPlatform,
    /// Released on its own cadence.
    Independent,
}

/// The advisor's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advice {
    /// The mechanism to pick.
    pub mechanism: Mechanism,
    /// Why, in a sentence or two.
    pub reason: String,
}

/// Picks the simplest mechanism that the trust level allows and that meets
/// the call rate and the deployment.
///
/// # Examples
/// ```
/// use outlet_manifest::{advise, Deploy, Mechanism, Perf, Trust};
///
/// let advice = advise(Trust::Sandboxed, Perf::High, Deploy::Independent);
/// assert_eq!(advice.mechanism, Mechanism::Wasm);
/// ```
pub fn advise(trust: Trust, perf: Perf, deploy: Deploy) -> Advice {
    use Mechanism::{Cabi, Exec, Native, Rpc, Wasm};
    let (mechanism, reason) = match (trust, perf, deploy) {
        (_, Perf::Low, _) => (
            Exec,
            "calls are rare, so a fresh child process per call costs nothing that matters, \
             and it gives OS isolation (the OS sandbox below in-process trust) with no state \
             to supervise",
        ),
        (Trust::InProcess, _, Deploy::SameBuild) => (
            Native,
            "trusted code built with the host can be called directly, at the cost of a \
             function call; a crash in it is a crash in the host",
        ),
        (Trust::InProcess, Perf::High, _)
        | (Trust::InProcess, Perf::Medium, Deploy::CrossPlatform) => (
            Cabi,
            "trusted code built apart needs a stable ABI: a versioned C function table \
             is nanoseconds per call and works from any language",
        ),
        (Trust::InProcess | Trust::OutOfProcess, Perf::Medium, Deploy::Independent)
        | (Trust::OutOfProcess, Perf::Medium, _) => (
            Rpc,
            "a plugin on its own release cadence belongs in its own process: a crash stays \
             there, and gRPC keeps the interface stable across versions (as go-plugin does)",
        ),
        (Trust::OutOfProcess, Perf::High, _) => (
            Wasm,
            "in-process code needs trust = \"in-process\"; the fastest isolated choice is a \
             wasm sandbox, about a microsecond per call",
        ),
        (Trust::Sandboxed, Perf::Medium, Deploy::Independent) => (
            Rpc,
            "untrusted code on its own release cadence, in any language (go-plugin's too), \
             can run in a process of its own under the OS sandbox, reaching only what its \
             manifest grants; the host needs Landlock and seccomp for it (wasm needs neither)",
        ),
        (Trust::Sandboxed, _, _) => (
            Wasm,
            "code at trust = \"sandboxed\" must not run in the host's process or with the \
             host's rights: a wasm sandbox reaches only what the host grants, at about a \
             microsecond per call",
        ),
    };
    Advice {
        mechanism,
        reason: reason.into(),
    }
}

/// A value for `--trust`, `--perf` or `--deploy` that is not one of the names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{found}` is not one of {expected}")]
pub struct UnknownName {
    found: String,
    expected: &'static str,
}

macro_rules! names {
    ($ty:ty, $expected:literal, $($name:literal => $value:expr),*) => {
        impl FromStr for $ty {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $($name => Ok($value),)*
                    _ => Err(UnknownName { found: s.into(), expected: $expected }),
                }
            }
        }
    };
}

impl FromStr for Trust {
    type Err = UnknownName;
    /// Reads a trust level as a manifest writes it, either spelling.
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        Trust::from_name(s).ok_or_else(|| UnknownName {
            found: s.into(),
            expected: "in-process, out-of-process, sandboxed",
        })
    }
}

names!(crate::Mechanism, "native, cabi, rpc, wasm, exec",
    "native" => crate::Mechanism::Native, "cabi" => crate::Mechanism::Cabi,
    "rpc" => crate::Mechanism::Rpc, "wasm" => crate::Mechanism::Wasm,
    "exec" => crate::Mechanism::Exec);
names!(Perf, "high, medium, low", "high" => Perf::High, "medium" => Perf::Medium, "low" => Perf::Low);
names!(Deploy, "same-build, cross-platform, independent",
    "same-build" => Deploy::SameBuild, "cross-platform" => Deploy::CrossPlatform,
    "independent" => Deploy::Independent);

impl fmt::Display for Perf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Perf::High => "high",
            Perf::Medium => "medium",
            Perf::Low => "low",
        })
    }
}

impl fmt::Display for Deploy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Deploy::SameBuild => "same-build",
            Deploy::CrossPlatform => "cross-platform",
            Deploy::Independent => "independent",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decision_matrix_rows_hold() {
        use Mechanism::*;
        let rows = [
            ("in-process", "high", "same-build", Native),
            ("in-process", "high", "cross-platform", Cabi),
            ("out-of-process", "medium", "independent", Rpc),
            ("sandboxed", "medium", "independent", Rpc),
            ("sandboxed", "high", "independent", Wasm),
            ("sandboxed", "medium", "same-build", Wasm),
            ("in-process", "low", "independent", Exec),
            ("sandboxed", "low", "independent", Exec),
        ];
        for (trust, perf, deploy, expected) in rows {
            let advice = advise(
                trust.parse().unwrap(),
                perf.parse().unwrap(),
                deploy.parse().unwrap(),
            );
            assert_eq!(advice.mechanism, expected, "{trust} {perf} {deploy}");
        }
    }

    #[test]
    fn advice_always_obeys_the_trust_policy() {
        for trust in [Trust::InProcess, Trust::OutOfProcess, Trust::Sandboxed] {
            for perf in [Perf::High, Perf::Medium, Perf::Low] {
                for deploy in [
                    Deploy::SameBuild,
                    Deploy::CrossPlatform,
                    Deploy::Independent,
                ] {
                    let advice = advise(trust, perf, deploy);
                    assert!(trust.allows(advice.mechanism), "{trust} {perf} {deploy}");
                    assert!(!advice.reason.is_empty());
                }
            }
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_list_the_choices() {
        assert_eq!(
            "cross-platform".parse::<Deploy>().unwrap().to_string(),
            "cross-platform"
        );
        let error = "fast".parse::<Perf>().unwrap_err();
        assert_eq!(error.to_string(), "`fast` is not one of high, medium, low");
    }
}
