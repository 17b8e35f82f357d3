//! The `outlet` command's policy: how much of what a manifest asks for it
//! gets. From a policy file (`--policy`, or the user's
//! `~/.config/outlet/policy.toml` if there is one) and flags, on top of
//! safe defaults: when this `outlet` runs from the `target` folder of the
//! Outlet checkout it was built from, manifests in that checkout may claim
//! any trust (they are the project's own); manifests anywhere else at most
//! `sandboxed`: wasm, or exec and rpc in the OS sandbox (refused on a kernel
//! without Landlock and seccomp).
//!
//! ```toml
//! elsewhere = "sandboxed"             # the most trust outside the folders below
//! sandboxed_mechanisms = ["wasm"]     # only wasm; the default is wasm, exec and rpc
//! inherit_env = ["LANG", "TZ"]        # host variables plugins below in-process may inherit
//! approve_roots = ["/srv/shared"]     # folders besides their own they may be granted
//! trusted_keys = ["keys.txt"]         # minisign public keys plugins may be signed by
//! require_signature = ["sandboxed"]   # levels whose plugins must be signed by one
//!
//! [[folder]]                          # relative paths are from this file's folder
//! path = "/opt/app/plugins"
//! trust = "out-of-process"
//!
//! [ceiling.sandboxed]                 # any field of a level's ceiling; the rest stay
//! memory_mb = 2048
//! default_memory_mb = 256
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use outlet_host::{Ceiling, Policy};
use outlet_manifest::signing::TrustedKey;
use outlet_manifest::{Mechanism, Trust};
use serde::Deserialize;

/// The flags every subcommand that loads manifests takes.
#[derive(clap::Args, Debug)]
pub struct Flags {
    /// A policy file (TOML; see docs/security.md). Without it, the user's
    /// `$XDG_CONFIG_HOME/outlet/policy.toml` (or `~/.config/…`) if there is one.
    #[arg(long, global = true, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Let manifests in FOLDER claim trust up to LEVEL (in-process,
    /// out-of-process or sandboxed). Repeatable.
    #[arg(long = "trust-folder", global = true, value_name = "FOLDER=LEVEL")]
    trust_folder: Vec<String>,
    /// Let plugins below in-process inherit the host's variable NAME
    /// (`permissions.inherit_env`). Repeatable.
    #[arg(long = "inherit-env", global = true, value_name = "NAME")]
    inherit_env: Vec<String>,
    /// Let plugins below in-process be granted folders inside FOLDER, besides
    /// their manifest's own (`permissions.dirs`). Repeatable.
    #[arg(long = "approve-root", global = true, value_name = "FOLDER")]
    approve_root: Vec<PathBuf>,
    /// Accept plugins signed by the minisign public keys in FILE, one per
    /// line, each optionally followed by `expires=YYYY-MM-DD`
    /// (docs/signing.md). Repeatable; also from $OUTLET_TRUSTED_KEYS.
    #[arg(long = "trusted-keys", global = true, value_name = "FILE")]
    trusted_keys: Vec<PathBuf>,
    /// Refuse plugins of trust LEVEL whose artifact is not signed by a
    /// trusted key. Repeatable.
    #[arg(long = "require-signature", global = true, value_name = "LEVEL")]
    require_signature: Vec<Trust>,
}

/// A policy file, as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    elsewhere: Option<Trust>,
    sandboxed_mechanisms: Option<Vec<Mechanism>>,
    #[serde(default)]
    inherit_env: Vec<String>,
    #[serde(default)]
    approve_roots: Vec<PathBuf>,
    #[serde(default)]
    folder: Vec<Folder>,
    #[serde(default)]
    ceiling: BTreeMap<String, CeilingPatch>,
    #[serde(default)]
    trusted_keys: Vec<PathBuf>,
    #[serde(default)]
    require_signature: Vec<Trust>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Folder {
    path: PathBuf,
    trust: Trust,
}

/// The fields of a [`Ceiling`] the file changes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CeilingPatch {
    memory_mb: Option<u64>,
    default_memory_mb: Option<u64>,
    timeout_ms: Option<u64>,
    start_timeout_ms: Option<u64>,
    cpu_seconds: Option<u64>,
    default_cpu_seconds: Option<u64>,
    max_message_bytes: Option<usize>,
    processes: Option<u32>,
    default_processes: Option<u32>,
}

impl CeilingPatch {
    fn apply(&self, to: Ceiling) -> Ceiling {
        Ceiling {
            memory_mb: self.memory_mb.unwrap_or(to.memory_mb),
            default_memory_mb: self.default_memory_mb.unwrap_or(to.default_memory_mb),
            timeout_ms: self.timeout_ms.unwrap_or(to.timeout_ms),
            start_timeout_ms: self.start_timeout_ms.unwrap_or(to.start_timeout_ms),
            cpu_seconds: self.cpu_seconds.unwrap_or(to.cpu_seconds),
            default_cpu_seconds: self.default_cpu_seconds.unwrap_or(to.default_cpu_seconds),
            max_message_bytes: self.max_message_bytes.unwrap_or(to.max_message_bytes),
            processes: self.processes.unwrap_or(to.processes),
            default_processes: self.default_processes.unwrap_or(to.default_processes),
        }
    }
}

/// The checkout this `outlet` was built from, whose manifests are the
/// project's own: only while this `outlet` is one that checkout built (runs
/// from its `target` folder), not a copy installed elsewhere, for which the
/// path names some other folder.
fn checkout() -> Option<PathBuf> {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .ok()?;
    let exe = std::env::current_exe().ok()?.canonicalize().ok()?;
    exe.starts_with(checkout.join("target")).then_some(checkout)
}

/// The user's policy file, if the environment names a place for it.
fn user_file() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    let config = absolute("XDG_CONFIG_HOME").or_else(|| Some(absolute("HOME")?.join(".config")))?;
    Some(config.join("outlet/policy.toml"))
}

impl Flags {
    /// The policy: defaults, then the file, then the flags.
    pub fn policy(&self) -> anyhow::Result<Policy> {
        let mut policy = Policy::default().elsewhere(Trust::Sandboxed);
        if let Some(checkout) = checkout() {
            policy = policy.trust_folder(checkout, Trust::InProcess);
        }
        let file = match &self.policy {
            Some(file) => Some(file.clone()),
            None => user_file().filter(|file| file.exists()),
        };
        if let Some(file) = file {
            policy = from_file(policy, &file)?;
        }
        for rule in &self.trust_folder {
            let (folder, level) = rule.rsplit_once('=').with_context(|| {
                format!("--trust-folder {rule}: write FOLDER=LEVEL, e.g. plugins=out-of-process")
            })?;
            let level: Trust = level
                .parse()
                .with_context(|| format!("--trust-folder {rule}"))?;
            anyhow::ensure!(
                Path::new(folder).is_dir(),
                "--trust-folder {rule}: {folder} is not a folder"
            );
            policy = policy.trust_folder(folder, level);
        }
        for name in &self.inherit_env {
            policy = policy.inherit_env(name);
        }
        for root in &self.approve_root {
            anyhow::ensure!(
                root.is_dir(),
                "--approve-root {}: not a folder",
                root.display()
            );
            policy = policy.approve_root(root);
        }
        for file in &self.trusted_keys {
            policy = trust_keys(policy, file, "--trusted-keys")?;
        }
        let from_env = std::env::var_os("OUTLET_TRUSTED_KEYS").filter(|v| !v.is_empty());
        if let Some(file) = from_env {
            policy = trust_keys(policy, Path::new(&file), "OUTLET_TRUSTED_KEYS")?;
        }
        for level in &self.require_signature {
            policy = policy.require_signature(*level);
        }
        Ok(policy)
    }
}

/// `policy` trusting the keys in `file` (see [`TrustedKey::read_file`]),
/// named by `source`.
fn trust_keys(mut policy: Policy, file: &Path, source: &str) -> anyhow::Result<Policy> {
    let text = std::fs::read_to_string(file).with_context(|| {
        format!(
            "{}: cannot read the trusted keys; check the path given by {source}",
            file.display()
        )
    })?;
    let keys = TrustedKey::read_file(&text)
        .with_context(|| format!("{}: not a file of minisign public keys", file.display()))?;
    for key in keys {
        policy = policy.trust_key(key);
    }
    Ok(policy)
}

/// `policy` with the rules of the policy file `file`.
fn from_file(mut policy: Policy, file: &Path) -> anyhow::Result<Policy> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("{}: cannot read the policy file", file.display()))?;
    let parsed: File =
        toml::from_str(&text).with_context(|| format!("{}: not a policy file", file.display()))?;
    let here = file.parent().unwrap_or(Path::new(""));
    let folder = |path: PathBuf, entry: &str| -> anyhow::Result<PathBuf> {
        let path = here.join(path);
        anyhow::ensure!(
            path.is_dir(),
            "{}: {entry} {} is not a folder",
            file.display(),
            path.display()
        );
        Ok(path)
    };
    if let Some(most) = parsed.elsewhere {
        policy = policy.elsewhere(most);
    }
    if let Some(mechanisms) = parsed.sandboxed_mechanisms {
        policy = policy.sandboxed_mechanisms(&mechanisms);
    }
    for rule in parsed.folder {
        policy = policy.trust_folder(folder(rule.path, "[[folder]]")?, rule.trust);
    }
    for name in parsed.inherit_env {
        policy = policy.inherit_env(name);
    }
    let source = format!("`trusted_keys` in {}", file.display());
    for keys in parsed.trusted_keys {
        policy = trust_keys(policy, &here.join(keys), &source)?;
    }
    for level in parsed.require_signature {
        policy = policy.require_signature(level);
    }
    for root in parsed.approve_roots {
        policy = policy.approve_root(folder(root, "approve_roots")?);
    }
    for (level, patch) in parsed.ceiling {
        let (trust, default) = match level.parse::<Trust>() {
            Ok(Trust::Sandboxed) => (Trust::Sandboxed, Ceiling::SANDBOXED),
            Ok(Trust::OutOfProcess) => (Trust::OutOfProcess, Ceiling::OUT_OF_PROCESS),
            _ => anyhow::bail!(
                "{}: [ceiling.{level}]: ceilings are for sandboxed and out-of-process",
                file.display()
            ),
        };
        policy = policy.ceiling(trust, patch.apply(default));
    }
    Ok(policy)
}
