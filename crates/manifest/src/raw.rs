//! [`Raw`]: the manifest as written, and how a checked one becomes a
//! [`Manifest`] (paths resolved against the manifest's folder, config flattened).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Handshake, Limits, Manifest, Mechanism, Permissions, Reattach, Trust};

/// The manifest as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    pub(crate) name: String,
    pub(crate) mechanism: Mechanism,
    #[serde(default)]
    pub(crate) path: PathBuf,
    pub(crate) interface: String,
    pub(crate) proto: Option<PathBuf>,
    #[serde(default = "default_versions")]
    pub(crate) versions: Vec<u32>,
    pub(crate) trust: Trust,
    pub(crate) sha256: Option<String>,
    pub(crate) signature: Option<PathBuf>,
    #[serde(default)]
    pub(crate) limits: Limits,
    #[serde(default)]
    pub(crate) permissions: Permissions,
    pub(crate) sandbox: Option<bool>,
    #[serde(default)]
    pub(crate) config: BTreeMap<String, toml::Value>,
    pub(crate) handshake: Option<Handshake>,
    pub(crate) reattach: Option<Reattach>,
}

fn default_versions() -> Vec<u32> {
    vec![1]
}

impl Raw {
    /// Whether `sandbox`, or its default for the trust level, asks for the
    /// OS sandbox: always for `sandboxed`, unless refused for
    /// `out-of-process`, if asked for `in-process`.
    pub(crate) fn sandboxed(&self) -> bool {
        match self.trust {
            Trust::Sandboxed => true,
            Trust::OutOfProcess => self.sandbox.unwrap_or(true),
            Trust::InProcess => self.sandbox.unwrap_or(false),
        }
    }

    /// The [`Manifest`] this text stands for, read from `file`: paths joined
    /// to `file`'s folder, `sha256` in lowercase, config values as strings.
    /// Expects a manifest that passed [`crate::validate::check`], whose
    /// config values are all strings, numbers or booleans.
    pub(crate) fn resolve(self, file: &Path) -> Manifest {
        let dir = file.parent().unwrap_or(Path::new(""));
        let sandbox = self.mechanism.is_process() && self.reattach.is_none() && self.sandboxed();
        let mut permissions = self.permissions;
        for grant in &mut permissions.dirs {
            grant.host = dir.join(&grant.host);
        }
        for program in &mut permissions.programs {
            *program = dir.join(&*program);
        }
        let config = self
            .config
            .into_iter()
            .map(|(key, value)| match value {
                toml::Value::String(s) => (key, s),
                other => (key, other.to_string()),
            })
            .collect();
        Manifest {
            file: file.to_owned(),
            name: self.name,
            mechanism: self.mechanism,
            path: match self.reattach {
                Some(_) => PathBuf::new(),
                None => dir.join(self.path),
            },
            interface: self.interface,
            proto: self.proto.map(|p| dir.join(p)),
            versions: self.versions,
            trust: self.trust,
            sha256: self.sha256.map(|s| s.to_ascii_lowercase()),
            signature: self.signature.map(|p| dir.join(p)),
            signed: None,
            limits: self.limits,
            permissions,
            sandbox,
            config,
            handshake: self.handshake.unwrap_or_default(),
            reattach: self.reattach.map(|mut reattach| {
                reattach.client_cert = reattach.client_cert.map(|p| dir.join(p));
                reattach.client_key = reattach.client_key.map(|p| dir.join(p));
                reattach
            }),
        }
    }
}
