//! [`ManifestError`]: every way a manifest can be refused, with the evidence.

use std::path::PathBuf;

use crate::{Mechanism, Trust};

/// A manifest that cannot be used. Each variant names the file or plugin, what
/// is wrong and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file could not be read.
    #[error(
        "{}: cannot read the manifest: {error}; check the path, and that the host's user may \
         read it",
        file.display()
    )]
    Read {
        /// The manifest file.
        file: PathBuf,
        /// Why reading failed.
        error: std::io::Error,
    },
    /// The file is not TOML, or has a field of the wrong type or an unknown field.
    #[error(
        "{}: {}\nfix the manifest's TOML where shown (a manifest still being written is read \
         whole only once it is moved into place: write it beside, then rename it)",
        file.display(),
        message.trim_end()
    )]
    Toml {
        /// The manifest file.
        file: PathBuf,
        /// The parser's message, with line, column and the expected values.
        message: String,
    },
    /// A field breaks a rule.
    #[error("{}: field `{field}` {problem}; {fix}", file.display())]
    Invalid {
        /// The manifest file.
        file: PathBuf,
        /// The field, dotted for nested tables (`limits.timeout_ms`).
        field: &'static str,
        /// What is wrong with it.
        problem: String,
        /// What to do.
        fix: String,
    },
    /// The trust policy refuses the manifest.
    #[error(
        "{}: plugin `{plugin}` is refused by the trust policy: {rule}; {fix}",
        file.display()
    )]
    Policy {
        /// The manifest file.
        file: PathBuf,
        /// The plugin's name.
        plugin: String,
        /// The rule it breaks.
        rule: String,
        /// What to do.
        fix: String,
    },
    /// The artifact is missing or unreadable.
    #[error("plugin `{plugin}`: cannot read its artifact {}: {error}; build it, or fix `path` in the manifest", path.display())]
    Artifact {
        /// The plugin's name.
        plugin: String,
        /// The artifact's path.
        path: PathBuf,
        /// Why reading failed.
        error: std::io::Error,
    },
    /// Below `in-process`: the artifact, or a folder on its path, can be
    /// written by a user other than root and the host's.
    #[error(
        "plugin `{plugin}`: {} (mode {mode:04o}, owner uid {owner}) can be written by users other \
         than root and the host's, who could change what runs; make it owned by root or the \
         host's user and writable only by its owner (`chmod go-w`)",
        path.display()
    )]
    Writable {
        /// The plugin's name.
        plugin: String,
        /// The artifact, or the folder on its path, that others can write.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
        /// Its owner.
        owner: u32,
    },
    /// The artifact is not a regular file (a folder, a device such as
    /// `/dev/zero`, a FIFO, a socket): nothing Outlet can hash, run or load.
    #[error(
        "plugin `{plugin}`: its artifact {} is {kind}, not a regular file; point `path` in the \
         manifest at the plugin's binary, library or module",
        path.display()
    )]
    NotAFile {
        /// The plugin's name.
        plugin: String,
        /// The artifact's path.
        path: PathBuf,
        /// What it is instead ("a folder", "a character device", "a FIFO", ...).
        kind: &'static str,
    },
    /// The artifact is larger than [`MAX_ARTIFACT_BYTES`](crate::MAX_ARTIFACT_BYTES).
    #[error(
        "plugin `{plugin}`: its artifact {} is {size} bytes, over the limit of {limit} bytes \
         (1 GiB) Outlet reads and hashes; point `path` in the manifest at the plugin's binary, \
         library or module (stripped of debug information if it is that large)",
        path.display()
    )]
    TooLarge {
        /// The plugin's name.
        plugin: String,
        /// The artifact's path.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The artifact changed, or grew, while it was being checked.
    #[error(
        "plugin `{plugin}`: its artifact {} changed while it was being checked; \
         load it again once whatever writes it is done",
        path.display()
    )]
    Changing {
        /// The plugin's name.
        plugin: String,
        /// The artifact's path.
        path: PathBuf,
    },
    /// The artifact's signature is unreadable, not minisign's, by a key the
    /// host does not trust (or trusted until a date now past), or over
    /// other bytes.
    #[error("plugin `{plugin}`: its signature {} {problem}; {fix}", file.display())]
    Signature {
        /// The plugin's name.
        plugin: String,
        /// The signature file.
        file: PathBuf,
        /// What is wrong, with the key id when there is one.
        problem: String,
        /// What to do.
        fix: String,
    },
    /// The artifact's SHA-256 is not the manifest's.
    #[error(
        "plugin `{plugin}`: {} has SHA-256 {found}, but the manifest says {expected}; \
         if the new artifact is the one you mean to run, put its hash in `sha256`",
        path.display()
    )]
    Checksum {
        /// The plugin's name.
        plugin: String,
        /// The artifact's path.
        path: PathBuf,
        /// The manifest's hash.
        expected: String,
        /// The artifact's hash.
        found: String,
    },
}

impl ManifestError {
    pub(crate) fn policy(manifest: &crate::Manifest, rule: String, fix: String) -> ManifestError {
        ManifestError::Policy {
            file: manifest.file.clone(),
            plugin: manifest.name.clone(),
            rule: cut(rule, QUOTED),
            fix: cut(fix, QUOTED),
        }
    }
}

/// The most of a message about a field that quotes it (its value may be
/// anything a manifest holds).
pub(crate) const QUOTED: usize = 1024;

/// `text` cut to about `most` bytes, at a character's boundary.
pub(crate) fn cut(mut text: String, most: usize) -> String {
    if text.len() > most {
        let mut at = most;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
        text.push_str(" …");
    }
    text
}

/// The rule's text for a trust level and mechanism it does not allow.
pub(crate) fn mechanism_rule(trust: Trust, mechanism: Mechanism) -> String {
    let allowed: Vec<&str> = trust.allowed().map(Mechanism::name).collect();
    format!(
        "trust = \"{trust}\" allows only {}, not `{mechanism}`",
        allowed.join(", ")
    )
}
