//! [`Manifest`]: one TOML file per plugin, read, checked and resolved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::raw::Raw;
use crate::{Handshake, Limits, ManifestError, Mechanism, Permissions, Reattach, Trust};

/// One plugin's manifest. Paths in it are relative to the manifest's folder.
///
/// ```toml
/// name = "greeter"
/// mechanism = "exec"              # native | cabi | rpc | wasm | exec
/// path = "../bin/greeter-exec"    # the artifact
/// interface = "outlet.examples.greeter.v1.Greeter"
/// proto = "../greeter.proto"      # for `outlet call` and `outlet inspect`
/// versions = [1]                  # interface versions the host accepts
/// trust = "sandboxed"             # in-process | out-of-process | sandboxed
/// sha256 = "…"                    # required unless trust = "in-process"
///
/// [limits]
/// timeout_ms = 2000
///
/// [permissions]
/// env = { LANG = "C.UTF-8" }
///
/// [config]
/// greeting = "Hello"
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Manifest {
    /// The file it was read from (or a label for text parsed in memory).
    pub file: PathBuf,
    /// The plugin's name: letters, digits, `-` and `_`.
    pub name: String,
    /// How it is loaded and called.
    pub mechanism: Mechanism,
    /// The artifact (binary, library or module), resolved against the manifest's folder.
    /// Empty for an rpc plugin the host attaches to (`reattach`).
    pub path: PathBuf,
    /// The protobuf service it implements, `package.Service`.
    pub interface: String,
    /// The `.proto` file declaring `interface`, resolved like `path`.
    pub proto: Option<PathBuf>,
    /// Interface versions the host accepts from this plugin.
    pub versions: Vec<u32>,
    /// How far its author is trusted.
    pub trust: Trust,
    /// The artifact's SHA-256, lowercase hex.
    pub sha256: Option<String>,
    /// Resource and time limits.
    pub limits: Limits,
    /// What the plugin may reach.
    pub permissions: Permissions,
    /// Handed to the plugin with Configure.
    pub config: BTreeMap<String, String>,
    /// rpc only: go-plugin's handshake settings.
    pub handshake: Handshake,
    /// rpc only: attach to a plugin that is already running instead of
    /// starting one.
    pub reattach: Option<Reattach>,
}

impl Manifest {
    /// Reads and validates a manifest file.
    ///
    /// # Errors
    /// [`ManifestError`] naming the file, the field and the fix, when the file
    /// cannot be read, is not TOML, or breaks a rule (including the trust policy).
    pub fn load(file: impl AsRef<Path>) -> Result<Manifest, ManifestError> {
        let file = file.as_ref();
        let text = std::fs::read_to_string(file).map_err(|error| ManifestError::Read {
            file: file.to_owned(),
            error,
        })?;
        Manifest::parse(&text, file)
    }

    /// Parses and validates manifest text; `file` names it in errors, and its
    /// folder is what relative paths are resolved against.
    ///
    /// # Errors
    /// As [`Manifest::load`], except for reading.
    ///
    /// # Examples
    /// ```
    /// use outlet_manifest::{Manifest, Mechanism};
    ///
    /// let manifest = Manifest::parse(r#"
    ///     name = "greeter"
    ///     mechanism = "exec"
    ///     path = "greeter-exec"
    ///     interface = "outlet.examples.greeter.v1.Greeter"
    ///     trust = "in-process"
    /// "#, "plugins/greeter.toml".as_ref())?;
    /// assert_eq!(manifest.mechanism, Mechanism::Exec);
    /// assert_eq!(manifest.path, std::path::Path::new("plugins/greeter-exec"));
    ///
    /// let refused = Manifest::parse(r#"
    ///     name = "greeter"
    ///     mechanism = "native"
    ///     path = "libgreeter.so"
    ///     interface = "outlet.examples.greeter.v1.Greeter"
    ///     trust = "sandboxed"
    /// "#, "plugins/greeter.toml".as_ref());
    /// assert!(refused.unwrap_err().to_string().contains("sandboxed"));
    /// # Ok::<(), outlet_manifest::ManifestError>(())
    /// ```
    pub fn parse(text: &str, file: &Path) -> Result<Manifest, ManifestError> {
        let raw: Raw = toml::from_str(text).map_err(|source| ManifestError::Toml {
            file: file.to_owned(),
            message: source.to_string(),
        })?;
        crate::validate::check(&raw, file)?;
        let manifest = raw.resolve(file);
        crate::policy::check(&manifest)?;
        Ok(manifest)
    }

    /// Checks that the artifact is a readable file and, when `sha256` is
    /// given, that it has that hash. Costs a `stat`, or reading and hashing
    /// the whole artifact when `sha256` is given.
    ///
    /// # Errors
    /// [`ManifestError::Artifact`] or [`ManifestError::Checksum`].
    pub fn verify_artifact(&self) -> Result<(), ManifestError> {
        if self.reattach.is_some() {
            return Ok(());
        }
        let unreadable = |error| ManifestError::Artifact {
            plugin: self.name.clone(),
            path: self.path.clone(),
            error,
        };
        if self.sha256.is_none() {
            let meta = std::fs::metadata(&self.path).map_err(unreadable)?;
            if !meta.is_file() {
                return Err(unreadable(std::io::Error::other("it is not a file")));
            }
            return Ok(());
        }
        self.verify_bytes(&std::fs::read(&self.path).map_err(unreadable)?)
    }

    /// Checks bytes read from the artifact against `sha256`, if given: the
    /// one check every mechanism makes of what it is about to run. Costs
    /// hashing the bytes.
    ///
    /// # Errors
    /// [`ManifestError::Checksum`].
    pub fn verify_bytes(&self, bytes: &[u8]) -> Result<(), ManifestError> {
        let Some(expected) = &self.sha256 else {
            return Ok(());
        };
        let found = crate::sha256_hex(bytes);
        if &found != expected {
            return Err(ManifestError::Checksum {
                plugin: self.name.clone(),
                path: self.path.clone(),
                expected: expected.clone(),
                found,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::testing::{GOOD, error, parse};
    use crate::{Manifest, ManifestError};

    #[test]
    fn a_good_manifest_resolves_paths_and_flattens_config() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.path, Path::new("plugins/bin/greeter"));
        assert_eq!(m.proto.as_deref(), Some(Path::new("plugins/greeter.proto")));
        assert_eq!(m.limits.timeout(), Duration::from_millis(250));
        assert_eq!(m.limits.memory_mb, Some(64));
        assert_eq!(m.limits.max_message_bytes, 4 << 20);
        assert_eq!(m.versions, [1]);
        assert_eq!(m.permissions.env["LANG"], "C");
        assert_eq!(m.config["retries"], "3");
    }

    #[test]
    fn malformed_toml_names_the_file_and_the_line() {
        let text = error("name = \"greeter\"\nmechanism = ");
        assert!(text.starts_with("plugins/greeter.toml: "), "{text}");
        assert!(text.contains("line 2"), "{text}");
    }

    #[test]
    fn an_unknown_mechanism_lists_the_known_ones() {
        let text = error(&GOOD.replace("\"exec\"", "\"dll\""));
        assert!(text.contains("plugins/greeter.toml"), "{text}");
        assert!(
            text.contains("`dll`") && text.contains("`native`, `cabi`, `rpc`, `wasm`, `exec`"),
            "{text}"
        );
    }

    #[test]
    fn unknown_fields_are_refused_not_ignored() {
        let text = error(&GOOD.replace("timeout_ms", "timeout_seconds"));
        assert!(text.contains("unknown field `timeout_seconds`"), "{text}");
    }

    #[test]
    fn artifacts_are_checked_against_their_hash() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("greeter.toml");
        let artifact = dir.path().join("bin/greeter");
        let manifest = Manifest::parse(GOOD, &file).unwrap();
        let missing = manifest.verify_artifact().unwrap_err().to_string();
        assert!(
            missing.contains("plugin `greeter`: cannot read its artifact"),
            "{missing}"
        );

        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(&artifact, b"hello").unwrap();
        let hash = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let pinned = GOOD.replace("[limits]", &format!("sha256 = \"{hash}\"\n[limits]"));
        Manifest::parse(&pinned, &file)
            .unwrap()
            .verify_artifact()
            .unwrap();

        std::fs::write(&artifact, b"hello!").unwrap();
        let changed = Manifest::parse(&pinned, &file)
            .unwrap()
            .verify_artifact()
            .unwrap_err();
        assert!(matches!(changed, ManifestError::Checksum { .. }));
        let text = changed.to_string();
        assert!(
            text.contains(hash) && text.contains("put its hash in `sha256`"),
            "{text}"
        );
    }
}
