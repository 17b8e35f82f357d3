//! The trust policy: the rules every manifest follows ([`check`], at parse
//! time), and the host's [`Policy`], which decides how much of what a
//! manifest asks for it gets ([`Policy::admit`], at load).
//!
//! A manifest's `trust` is a request. The host says the most trust a
//! manifest may claim, by the folder it was loaded from; and for the two
//! levels below `in-process`, the ceilings of its limits, the limits it
//! gets when it names none, the folders it may be granted and the host
//! variables it may inherit. An omitted limit never means unlimited there,
//! but for an rpc process's memory and CPU (see [`Ceiling`]).
//!
//! Here: the policy, its settings and admission; `ceiling.rs`: the
//! ceilings and the limits filled in from them; `reach.rs`: the files and
//! folders a manifest may point the host at.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::mechanism_rule;
use crate::signing::{Signed, TrustedKey};
use crate::{Manifest, ManifestError, Mechanism, Trust};

mod ceiling;
mod reach;

pub use ceiling::Ceiling;
use ceiling::{check_ceiling, fill_limits};
pub use reach::SYSTEM_PROGRAMS;
use reach::manifest_folder;

/// What the host lets a manifest claim. [`Policy::default`] lets a manifest
/// anywhere claim any trust (host code chooses the manifests it loads), and
/// holds `sandboxed` and `out-of-process` plugins to [`Ceiling::SANDBOXED`]
/// and [`Ceiling::OUT_OF_PROCESS`], their own folder, and no inherited
/// variables. A host that loads manifests others wrote says which folders
/// it trusts how far:
///
/// ```
/// use outlet_manifest::{Manifest, Trust, policy::Policy};
///
/// let policy = Policy::default()
///     .elsewhere(Trust::Sandboxed)
///     .trust_folder("/opt/app/plugins", Trust::OutOfProcess);
/// let manifest = Manifest::parse(r#"
///     name = "greeter"
///     mechanism = "exec"
///     path = "greeter"
///     interface = "outlet.examples.greeter.v1.Greeter"
///     trust = "in-process"
/// "#, "/home/someone/greeter.toml".as_ref())?;
/// let refused = policy.admit(manifest).unwrap_err().to_string();
/// assert!(refused.contains("at most \"sandboxed\""), "{refused}");
/// # Ok::<(), outlet_manifest::ManifestError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Policy {
    /// The most trust for manifests in each folder (canonical), the
    /// deepest folder holding the manifest deciding.
    folders: Vec<(PathBuf, Trust)>,
    /// The most trust for a manifest in no folder of `folders`.
    elsewhere: Trust,
    sandboxed: Ceiling,
    out_of_process: Ceiling,
    /// Host variables a plugin below `in-process` may inherit.
    inherit_env: BTreeSet<String>,
    /// Folders besides its own that a plugin below `in-process` may be
    /// granted (canonical).
    roots: Vec<PathBuf>,
    /// The mechanisms a `sandboxed` plugin may use, of those its trust
    /// allows.
    sandboxed_mechanisms: Vec<Mechanism>,
    /// The keys whose signatures the host accepts.
    keys: Vec<TrustedKey>,
    /// The trust levels whose plugins must be signed by one of `keys`.
    signed: Vec<Trust>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            folders: Vec::new(),
            elsewhere: Trust::InProcess,
            sandboxed: Ceiling::SANDBOXED,
            out_of_process: Ceiling::OUT_OF_PROCESS,
            inherit_env: BTreeSet::new(),
            roots: Vec::new(),
            sandboxed_mechanisms: vec![Mechanism::Wasm, Mechanism::Exec, Mechanism::Rpc],
            keys: Vec::new(),
            signed: Vec::new(),
        }
    }
}

impl Policy {
    /// The most trust a manifest in a folder that [`Policy::trust_folder`]
    /// does not name may claim.
    #[must_use]
    pub fn elsewhere(mut self, most: Trust) -> Policy {
        self.elsewhere = most;
        self
    }

    /// The most trust a manifest in `folder` (or below it) may claim. The
    /// deepest folder named decides; a folder that does not exist holds no
    /// manifest and is ignored.
    #[must_use]
    pub fn trust_folder(mut self, folder: impl AsRef<Path>, most: Trust) -> Policy {
        if let Ok(folder) = folder.as_ref().canonicalize() {
            self.folders.retain(|(known, _)| *known != folder);
            self.folders.push((folder, most));
        }
        self
    }

    /// The ceiling of a level below `in-process` (an `in-process` plugin
    /// runs in the host's process, where no ceiling holds it).
    #[must_use]
    pub fn ceiling(mut self, trust: Trust, ceiling: Ceiling) -> Policy {
        match trust {
            Trust::Sandboxed => self.sandboxed = ceiling,
            Trust::OutOfProcess => self.out_of_process = ceiling,
            Trust::InProcess => {}
        }
        self
    }

    /// Lets plugins below `in-process` inherit the host's variable `name`
    /// through `permissions.inherit_env`.
    #[must_use]
    pub fn inherit_env(mut self, name: impl Into<String>) -> Policy {
        self.inherit_env.insert(name.into());
        self
    }

    /// Lets plugins below `in-process` be granted folders inside `root`
    /// besides their manifest's own folder. A root that does not exist is
    /// ignored.
    #[must_use]
    pub fn approve_root(mut self, root: impl AsRef<Path>) -> Policy {
        if let Ok(root) = root.as_ref().canonicalize() {
            self.roots.push(root);
        }
        self
    }

    /// The mechanisms a `sandboxed` plugin may use: `wasm`, `exec` and
    /// `rpc` by default, the last two only where the OS sandbox can be
    /// built (else the load is refused). A host may keep them to `wasm`,
    /// whose sandbox does not depend on the kernel. Mechanisms `sandboxed`
    /// trust does not allow stay refused.
    #[must_use]
    pub fn sandboxed_mechanisms(mut self, mechanisms: &[Mechanism]) -> Policy {
        self.sandboxed_mechanisms = mechanisms.to_vec();
        self
    }

    /// Accepts signatures by `key` (see [`signing`](crate::signing)). A
    /// manifest that names a `signature` is refused unless its key is one
    /// of these, unexpired, and the signature matches the artifact. A key
    /// given twice keeps the earlier expiry date; of two keys with one key
    /// id (64 bits, as minisign's), the first is kept.
    #[must_use]
    pub fn trust_key(mut self, key: TrustedKey) -> Policy {
        match self.keys.iter_mut().find(|known| known.id() == key.id()) {
            Some(known) => known.merge(key),
            None => self.keys.push(key),
        }
        self
    }

    /// Refuses a plugin of trust `level` unless its manifest names a
    /// `signature` of its artifact by a key the host trusts.
    ///
    /// ```
    /// use outlet_manifest::{Manifest, Trust, policy::Policy};
    ///
    /// let policy = Policy::default().require_signature(Trust::Sandboxed);
    /// let manifest = Manifest::parse(r#"
    ///     name = "greeter"
    ///     mechanism = "wasm"
    ///     path = "greeter.wasm"
    ///     interface = "outlet.examples.greeter.v1.Greeter"
    ///     trust = "sandboxed"
    ///     sha256 = "d1f228e19fd93e9a2e114975f79cfb2fc26ef99ca5c8d119b24841a3cad99650"
    /// "#, "plugins/greeter.toml".as_ref())?;
    /// let refused = policy.admit(manifest).unwrap_err().to_string();
    /// assert!(refused.contains("requires a signature"), "{refused}");
    /// # Ok::<(), outlet_manifest::ManifestError>(())
    /// ```
    #[must_use]
    pub fn require_signature(mut self, level: Trust) -> Policy {
        if !self.signed.contains(&level) {
            self.signed.push(level);
        }
        self
    }

    /// The most trust a manifest read from `file` may claim, and the folder
    /// of the policy that says so (`None`: no folder named it).
    pub fn most_trust(&self, file: &Path) -> (Trust, Option<&Path>) {
        let folder = manifest_folder(file);
        self.folders
            .iter()
            .filter(|(known, _)| folder.starts_with(known))
            .max_by_key(|(known, _)| known.components().count())
            .map_or((self.elsewhere, None), |(known, most)| {
                (*most, Some(known.as_path()))
            })
    }

    /// The manifest as the host runs it: refused if it claims more trust
    /// than its folder allows, or more than its level's ceiling; otherwise
    /// with the level's limits filled in where it names none, and its
    /// granted folders resolved to where they really are.
    ///
    /// # Errors
    /// [`ManifestError::Policy`] naming the plugin, the rule and the fix.
    pub fn admit(&self, mut manifest: Manifest) -> Result<Manifest, ManifestError> {
        let (most, folder) = self.most_trust(&manifest.file);
        if manifest.trust.exceeds(most) {
            let place = folder.map_or_else(
                || "outside the folders the host trusts".to_owned(),
                |folder| format!("in {}", folder.display()),
            );
            return Err(ManifestError::policy(
                &manifest,
                format!(
                    "it claims trust = \"{}\", and the host allows at most \"{most}\" for \
                     manifests {place}",
                    manifest.trust
                ),
                format!(
                    "lower `trust` to \"{most}\" (with a mechanism it allows), or have the host \
                     trust the folder more (`Policy::trust_folder`; for the `outlet` command, \
                     `--trust-folder {}={}`)",
                    manifest_folder(&manifest.file).display(),
                    manifest.trust
                ),
            ));
        }
        if manifest.trust == Trust::Sandboxed
            && !self.sandboxed_mechanisms.contains(&manifest.mechanism)
        {
            let allowed: Vec<&str> = self.sandboxed_mechanisms.iter().map(|m| m.name()).collect();
            return Err(ManifestError::policy(
                &manifest,
                format!(
                    "the host runs `sandboxed` plugins only as {}, not `{}`",
                    if allowed.is_empty() {
                        "nothing".to_owned()
                    } else {
                        allowed.join(", ")
                    },
                    manifest.mechanism
                ),
                format!(
                    "build the plugin for a mechanism the host allows, or have the host trust \
                     the folder more (`Policy::trust_folder`; for the `outlet` command, \
                     `--trust-folder {}=out-of-process` with trust = \"out-of-process\")",
                    manifest_folder(&manifest.file).display()
                ),
            ));
        }
        self.check_signature(&mut manifest)?;
        let ceiling = match manifest.trust {
            Trust::InProcess => return Ok(manifest),
            Trust::OutOfProcess => self.out_of_process,
            Trust::Sandboxed => self.sandboxed,
        };
        fill_limits(&mut manifest, &ceiling);
        check_ceiling(&manifest, &ceiling)?;
        self.check_env(&manifest)?;
        self.resolve_dirs(&mut manifest)?;
        self.resolve_programs(&mut manifest)?;
        self.check_reattach_files(&mut manifest)?;
        Ok(manifest)
    }

    /// A manifest's `signature`, read and matched to a trusted key, which
    /// the artifact is then checked against whenever it is opened; or none,
    /// if its trust level does not require one.
    fn check_signature(&self, manifest: &mut Manifest) -> Result<(), ManifestError> {
        let Some(file) = manifest.signature.clone() else {
            if !self.signed.contains(&manifest.trust) {
                return Ok(());
            }
            if manifest.reattach.is_some() {
                return Err(ManifestError::policy(
                    manifest,
                    format!(
                        "it attaches to a running plugin (`[reattach]`), which has no artifact \
                         here to sign, and the host requires a signature for trust = \"{}\"",
                        manifest.trust
                    ),
                    "have the host start the plugin (`path` and `signature` in place of \
                     `[reattach]`), or load it at a trust level the host does not require \
                     signatures for"
                        .into(),
                ));
            }
            return Err(ManifestError::policy(
                manifest,
                format!(
                    "it names no `signature`, and the host requires a signature by a key it \
                     trusts for trust = \"{}\"",
                    manifest.trust
                ),
                "sign the artifact (`minisign -Sm <artifact>`) with a key the host trusts, \
                 and name the `.minisig` in `signature` (see docs/signing.md)"
                    .into(),
            ));
        };
        // Below in-process, read only inside the manifest's folder or an
        // approved root, as other files a manifest names.
        // A file that is not there is reported as unreadable, with how to
        // sign; nothing is read where there is nothing.
        let file =
            if manifest.trust == Trust::InProcess || std::fs::symlink_metadata(&file).is_err() {
                file
            } else {
                self.confine(manifest, &file)
                    .map_err(|problem| self.outside(manifest, "signature", &file, problem))?
            };
        let signed = Signed::read(manifest, &file, &self.keys)?;
        manifest.signed = Some(std::sync::Arc::new(signed));
        Ok(())
    }

    /// `inherit_env` names only variables the host allows.
    fn check_env(&self, manifest: &Manifest) -> Result<(), ManifestError> {
        let refused: Vec<&str> = (manifest.permissions.inherit_env.iter())
            .filter(|name| !self.inherit_env.contains(*name))
            .map(String::as_str)
            .collect();
        if refused.is_empty() {
            return Ok(());
        }
        Err(ManifestError::policy(
            manifest,
            format!(
                "`permissions.inherit_env` asks for the host's {}, which the host does not \
                 pass to a plugin with trust = \"{}\"",
                refused.join(", "),
                manifest.trust
            ),
            "set the values the plugin needs in `permissions.env`, or have the host allow \
             the variables (for the `outlet` command: `--inherit-env NAME`)"
                .into(),
        ))
    }
}

/// Refuses a manifest whose trust does not allow its mechanism, or that has no
/// `sha256` while its trust is not `in-process` (unless the host attaches to it).
///
/// # Errors
/// [`ManifestError::Policy`] naming the rule and the fix.
pub fn check(manifest: &Manifest) -> Result<(), ManifestError> {
    let (trust, mechanism) = (manifest.trust, manifest.mechanism);
    if !trust.allows(mechanism) {
        return Err(ManifestError::policy(
            manifest,
            mechanism_rule(trust, mechanism),
            "run it out of process (`wasm`, `exec` or `rpc`), or raise trust to \"in-process\" \
             if you build and ship this code yourself"
                .into(),
        ));
    }
    // An attached plugin has no artifact here: it is checked by its process.
    // A signature pins it too: by a key the host trusts, or it is refused.
    if !manifest.pins_bytes() && trust != Trust::InProcess && manifest.reattach.is_none() {
        return Err(ManifestError::policy(
            manifest,
            format!(
                "a plugin with trust = \"{trust}\" must pin its artifact with `sha256` (or a \
                 `signature`)"
            ),
            format!(
                "run `outlet pin {}` to write its `sha256`, or sign it (docs/signing.md)",
                manifest.file.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::Mechanism;
    use crate::testing::{GOOD, error, parse};

    #[test]
    fn the_trust_policy_is_checked_at_parse() {
        let native = GOOD
            .replace("\"exec\"", "\"native\"")
            .replace("\"in-process\"", "\"sandboxed\"");
        let text = error(&native);
        assert!(
            text.contains("plugin `greeter` is refused by the trust policy"),
            "{text}"
        );
        assert!(
            text.contains("allows only wasm, rpc, exec, not `native`"),
            "{text}"
        );

        let own_process = GOOD
            .replace("\"exec\"", "\"rpc\"")
            .replace("\"in-process\"", "\"out-of-process\"");
        let text = error(&own_process);
        assert!(
            text.contains("must pin its artifact with `sha256`"),
            "{text}"
        );
        assert!(text.contains("outlet pin plugins/greeter.toml"), "{text}");

        let pinned = own_process.replace(
            "[limits]",
            &format!("sha256 = \"{}\"\n[limits]", "ab".repeat(32)),
        );
        assert_eq!(parse(&pinned).unwrap().mechanism, Mechanism::Rpc);
    }

    mod host {
        use std::path::{Path, PathBuf};

        use crate::policy::{Ceiling, Policy};
        use crate::{Manifest, Trust};

        /// A manifest file in `dir`, written, and parsed from there.
        fn manifest(dir: &Path, mechanism: &str, trust: &str, extra: &str) -> Manifest {
            let sha = if trust == "in-process" {
                String::new()
            } else {
                format!("sha256 = \"{}\"", "ab".repeat(32))
            };
            let text = format!(
                "name = \"p\"\nmechanism = \"{mechanism}\"\npath = \"p.bin\"\n\
                 interface = \"a.B\"\ntrust = \"{trust}\"\n{sha}\n{extra}"
            );
            let file = dir.join("p.toml");
            std::fs::write(&file, &text).unwrap();
            Manifest::load(&file).unwrap()
        }

        fn refusal(policy: &Policy, manifest: Manifest) -> String {
            policy.admit(manifest).unwrap_err().to_string()
        }

        #[test]
        fn the_folder_a_manifest_is_in_decides_the_most_trust_it_may_claim() {
            let tmp = tempfile::tempdir().unwrap();
            let (trusted, other) = (tmp.path().join("ours"), tmp.path().join("theirs"));
            std::fs::create_dir_all(trusted.join("deeper")).unwrap();
            std::fs::create_dir(&other).unwrap();
            let policy = Policy::default()
                .elsewhere(Trust::Sandboxed)
                .trust_folder(&trusted, Trust::InProcess);

            for dir in [trusted.clone(), trusted.join("deeper")] {
                let native = manifest(&dir, "native", "in-process", "");
                assert!(policy.admit(native).is_ok(), "{}", dir.display());
            }
            let text = refusal(&policy, manifest(&other, "rpc", "out-of-process", ""));
            assert!(
                text.contains("plugin `p` is refused by the trust policy")
                    && text.contains("claims trust = \"out-of-process\"")
                    && text.contains("at most \"sandboxed\"")
                    && text.contains("outside the folders the host trusts"),
                "{text}"
            );
            assert!(
                policy
                    .admit(manifest(&other, "wasm", "sandboxed", ""))
                    .is_ok()
            );

            // The deepest folder named decides.
            let policy = policy.trust_folder(trusted.join("deeper"), Trust::Sandboxed);
            let text = refusal(
                &policy,
                manifest(&trusted.join("deeper"), "exec", "in-process", ""),
            );
            assert!(text.contains("deeper"), "{text}");
        }

        #[test]
        fn an_omitted_limit_below_in_process_gets_the_levels_default() {
            let tmp = tempfile::tempdir().unwrap();
            let policy = Policy::default();
            let wasm = policy
                .admit(manifest(tmp.path(), "wasm", "sandboxed", ""))
                .unwrap();
            assert_eq!(
                wasm.limits.memory_mb,
                Some(Ceiling::SANDBOXED.default_memory_mb)
            );
            assert_eq!(
                wasm.limits.cpu_seconds, None,
                "a wasm call stops at its timeout"
            );
            let exec = policy
                .admit(manifest(tmp.path(), "exec", "out-of-process", ""))
                .unwrap();
            assert_eq!(
                (exec.limits.memory_mb, exec.limits.cpu_seconds),
                (
                    Some(Ceiling::OUT_OF_PROCESS.default_memory_mb),
                    Some(Ceiling::OUT_OF_PROCESS.default_cpu_seconds)
                )
            );
            let rpc = policy
                .admit(manifest(tmp.path(), "rpc", "out-of-process", ""))
                .unwrap();
            assert_eq!(
                (rpc.limits.cpu_seconds, rpc.limits.memory_mb),
                (None, None),
                "an rpc process lives long, and its runtime may reserve much"
            );
            let asked = manifest(tmp.path(), "exec", "sandboxed", "[limits]\nmemory_mb = 32");
            assert_eq!(policy.admit(asked).unwrap().limits.memory_mb, Some(32));
            // In the host's process, nothing is filled in.
            let native = policy
                .admit(manifest(tmp.path(), "native", "in-process", ""))
                .unwrap();
            assert_eq!(native.limits.memory_mb, None);
        }

        #[test]
        fn a_limit_above_the_ceiling_of_its_level_is_refused() {
            let tmp = tempfile::tempdir().unwrap();
            let policy = Policy::default();
            let greedy = manifest(
                tmp.path(),
                "wasm",
                "sandboxed",
                "[limits]\nmemory_mb = 8192",
            );
            let text = refusal(&policy, greedy);
            assert!(
                text.contains("`limits.memory_mb` = 8192 is above the host's ceiling of 4096")
                    && text.contains("lower `limits.memory_mb` to 4096"),
                "{text}"
            );
            let slow = manifest(
                tmp.path(),
                "exec",
                "sandboxed",
                "[limits]\ntimeout_ms = 600000",
            );
            assert!(refusal(&policy, slow).contains("`limits.timeout_ms`"));
            let raised = policy.clone().ceiling(
                Trust::Sandboxed,
                Ceiling {
                    memory_mb: 8192,
                    ..Ceiling::SANDBOXED
                },
            );
            let greedy = manifest(
                tmp.path(),
                "wasm",
                "sandboxed",
                "[limits]\nmemory_mb = 8192",
            );
            assert!(raised.admit(greedy).is_ok());
        }

        #[test]
        fn a_default_is_never_above_its_ceiling() {
            let tmp = tempfile::tempdir().unwrap();
            let low = Ceiling {
                memory_mb: 64,
                cpu_seconds: 2,
                ..Ceiling::SANDBOXED
            };
            let policy = Policy::default().ceiling(Trust::Sandboxed, low);
            let exec = policy
                .admit(manifest(tmp.path(), "exec", "sandboxed", ""))
                .unwrap();
            assert_eq!(
                (exec.limits.memory_mb, exec.limits.cpu_seconds),
                (Some(64), Some(2))
            );
        }

        #[test]
        fn only_variables_the_host_allows_are_inherited_below_in_process() {
            let tmp = tempfile::tempdir().unwrap();
            let extra = "[permissions]\ninherit_env = [\"LANG\", \"SECRET_TOKEN\"]";
            let text = refusal(
                &Policy::default().inherit_env("LANG"),
                manifest(tmp.path(), "exec", "sandboxed", extra),
            );
            assert!(
                text.contains("the host's SECRET_TOKEN") && !text.contains("LANG,"),
                "{text}"
            );
            let allowed = Policy::default()
                .inherit_env("LANG")
                .inherit_env("SECRET_TOKEN");
            assert!(
                allowed
                    .admit(manifest(tmp.path(), "exec", "sandboxed", extra))
                    .is_ok()
            );
            let trusted = manifest(tmp.path(), "exec", "in-process", extra);
            assert!(Policy::default().admit(trusted).is_ok());
        }

        #[test]
        fn granted_folders_stay_inside_the_manifests_folder_or_an_approved_root() {
            let tmp = tempfile::tempdir().unwrap();
            let (plugin, outside) = (tmp.path().join("plugin"), tmp.path().join("outside"));
            std::fs::create_dir_all(plugin.join("data")).unwrap();
            std::fs::create_dir(&outside).unwrap();
            std::os::unix::fs::symlink(&outside, plugin.join("link")).unwrap();
            let grant = |host: &str| {
                let extra = format!(
                    "[permissions]\ndirs = [{{ host = {host:?}, guest = \"/d\", write = true }}]"
                );
                manifest(&plugin, "wasm", "sandboxed", &extra)
            };
            let policy = Policy::default();
            let admitted = policy.admit(grant("data")).unwrap();
            let resolved: PathBuf = plugin.join("data").canonicalize().unwrap();
            assert_eq!(admitted.permissions.dirs[0].host, resolved);

            let outside_text = outside.to_str().unwrap();
            for (host, says) in [
                ("../../", "climbs out with `..`"),
                ("data/../data", "climbs out with `..`"),
                (outside_text, "outside the manifest's folder"),
                ("link", "outside the manifest's folder"),
                ("missing", "cannot be resolved"),
            ] {
                let text = refusal(&policy, grant(host));
                assert!(
                    text.contains(says) && text.contains("permissions.dirs"),
                    "{host}: {text}"
                );
            }
            let approved = Policy::default().approve_root(&outside);
            assert!(approved.admit(grant(outside_text)).is_ok());
            assert!(approved.admit(grant("link")).is_ok());
            let trusted = manifest(
                &plugin,
                "wasm",
                "in-process",
                "[permissions]\ndirs = [{ host = \"../\", guest = \"/d\" }]",
            );
            assert!(
                policy.admit(trusted).is_ok(),
                "the host's own code is not held"
            );
        }

        #[test]
        fn a_host_may_keep_sandboxed_plugins_to_wasm() {
            let tmp = tempfile::tempdir().unwrap();
            let policy = Policy::default().sandboxed_mechanisms(&[crate::Mechanism::Wasm]);
            let text = refusal(&policy, manifest(tmp.path(), "exec", "sandboxed", ""));
            assert!(
                text.contains("runs `sandboxed` plugins only as wasm, not `exec`")
                    && text.contains("--trust-folder"),
                "{text}"
            );
            assert!(
                policy
                    .admit(manifest(tmp.path(), "wasm", "sandboxed", ""))
                    .is_ok()
            );
            assert!(
                policy
                    .admit(manifest(tmp.path(), "exec", "out-of-process", ""))
                    .is_ok()
            );
        }

        #[test]
        fn a_manifest_is_judged_where_it_was_loaded_from_and_by_what_it_wrote() {
            let tmp = tempfile::tempdir().unwrap();
            let (trusted, elsewhere) = (tmp.path().join("trusted"), tmp.path().join("elsewhere"));
            std::fs::create_dir_all(elsewhere.join("data")).unwrap();
            std::fs::create_dir(&trusted).unwrap();
            // A link in a trusted folder to a manifest elsewhere is judged
            // where the link is, and its paths resolved there too.
            manifest(&elsewhere, "exec", "in-process", "");
            std::os::unix::fs::symlink(elsewhere.join("p.toml"), trusted.join("p.toml")).unwrap();
            let policy = Policy::default()
                .elsewhere(Trust::Sandboxed)
                .trust_folder(&trusted, Trust::InProcess);
            let linked = Manifest::load(trusted.join("p.toml")).unwrap();
            assert_eq!(linked.path, trusted.join("p.bin"));
            assert!(policy.admit(linked).is_ok());
            let direct = Manifest::load(elsewhere.join("p.toml")).unwrap();
            assert!(refusal(&policy, direct).contains("at most \"sandboxed\""));

            // Loaded by a path that climbs, a grant written without `..` is fine.
            let extra = "[permissions]\ndirs = [{ host = \"data\", guest = \"/d\" }]";
            manifest(&elsewhere, "wasm", "sandboxed", extra);
            let climbing = elsewhere.join("data/../p.toml");
            let admitted = Policy::default().admit(Manifest::load(&climbing).unwrap());
            assert!(admitted.is_ok(), "{admitted:?}");

            // And the other way round: a link elsewhere to a trusted
            // manifest is judged elsewhere.
            std::fs::remove_file(trusted.join("p.toml")).unwrap();
            manifest(&trusted, "exec", "in-process", "");
            std::fs::remove_file(elsewhere.join("p.toml")).unwrap();
            std::os::unix::fs::symlink(trusted.join("p.toml"), elsewhere.join("p.toml")).unwrap();
            let reached = Manifest::load(elsewhere.join("p.toml")).unwrap();
            assert_eq!(reached.path, elsewhere.join("p.bin"));
            assert!(refusal(&policy, reached).contains("at most \"sandboxed\""));
        }

        #[test]
        fn the_identity_a_tls_reattach_presents_is_confined_like_a_folder() {
            let tmp = tempfile::tempdir().unwrap();
            let outside = tempfile::tempdir().unwrap();
            std::fs::write(outside.path().join("id.pem"), "x").unwrap();
            std::fs::write(tmp.path().join("id.pem"), "x").unwrap();
            let attached = |cert: &Path| {
                let text = format!(
                    "name = \"p\"\nmechanism = \"rpc\"\ninterface = \"a.B\"\n\
                 trust = \"out-of-process\"\n[reattach]\nnetwork = \"tcp\"\n\
                 address = \"127.0.0.1:4000\"\ncert_sha256 = \"{}\"\n\
                 client_cert = {:?}\nclient_key = \"id.pem\"\n",
                    "ab".repeat(32),
                    cert.display().to_string()
                );
                let file = tmp.path().join("p.toml");
                std::fs::write(&file, text).unwrap();
                Manifest::load(&file).unwrap()
            };
            let policy = Policy::default();
            assert!(policy.admit(attached(Path::new("id.pem"))).is_ok());
            let text = refusal(&policy, attached(&outside.path().join("id.pem")));
            assert!(
                text.contains("`reattach.client_cert` names") && text.contains("outside"),
                "{text}"
            );
        }
    }
}
