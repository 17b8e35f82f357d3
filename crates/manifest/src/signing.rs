//! Signed plugins: a manifest's `signature` names a minisign signature of
//! its artifact, checked against the [`TrustedKey`]s of the host's
//! [`Policy`](crate::policy::Policy). The signature file is read and its key
//! looked up when the policy admits the manifest; the artifact's bytes are
//! checked against it as they are read, through the one descriptor the
//! mechanism then runs or loads (see [`Manifest::open_artifact`]).
//!
//! Keys are minisign public keys, as `minisign -G` writes them. minisign
//! keys do not expire by themselves; the host may give each key a date
//! after which signatures by it are refused ([`TrustedKey::expires`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Manifest, ManifestError};

/// A minisign public key the host trusts to sign plugins.
#[derive(Clone)]
pub struct TrustedKey {
    id: String,
    key: minisign_verify::PublicKey,
    expires: Option<SystemTime>,
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedKey")
            .field("id", &self.id)
            .field("expires", &self.expires.map(date))
            .finish()
    }
}

/// A public key or key file that is not minisign's.
#[derive(Debug, thiserror::Error)]
#[error("{problem}; {fix}")]
pub struct KeyError {
    problem: String,
    fix: &'static str,
}

impl KeyError {
    fn new(problem: impl Into<String>) -> KeyError {
        KeyError {
            problem: problem.into(),
            fix: "give the public key as `minisign -G` writes it (the line after \
                  \"untrusted comment:\", starting with \"RW\")",
        }
    }
}

impl TrustedKey {
    /// A key from its base64 line, or from the whole text of a `.pub` file.
    ///
    /// # Errors
    /// [`KeyError`] if the text holds no minisign Ed25519 public key.
    ///
    /// # Examples
    /// ```
    /// use outlet_manifest::signing::TrustedKey;
    ///
    /// let key = TrustedKey::parse(
    ///     "untrusted comment: minisign public key\n\
    ///      RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3",
    /// )?;
    /// assert_eq!(key.id(), "E7620F1842B4E81F");
    /// # Ok::<(), outlet_manifest::signing::KeyError>(())
    /// ```
    pub fn parse(text: &str) -> Result<TrustedKey, KeyError> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !line.starts_with("untrusted comment:"))
            .ok_or_else(|| KeyError::new("no key is given"))?;
        let key = minisign_verify::PublicKey::from_base64(line).map_err(|error| {
            KeyError::new(format!(
                "{:?} is not a minisign public key ({error})",
                crate::error::cut(line.to_owned(), 48)
            ))
        })?;
        Ok(TrustedKey {
            id: key_id(line).ok_or_else(|| KeyError::new("the key is cut short"))?,
            key,
            expires: None,
        })
    }

    /// The key, refusing signatures by it from `at` on.
    #[must_use]
    pub fn expires(mut self, at: SystemTime) -> TrustedKey {
        self.expires = Some(at);
        self
    }

    /// `other`, given again for this key's id: the same key keeps the
    /// earlier expiry; another key with the same id is not taken.
    pub(crate) fn merge(&mut self, other: TrustedKey) {
        if other.key != self.key {
            return;
        }
        self.expires = match (self.expires, other.expires) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// minisign's key id: 16 hex digits, as `minisign` prints it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The keys of a trusted-keys file, one per line: the base64 key, then
    /// optionally `expires=YYYY-MM-DD` (the key is refused from that day
    /// on, UTC). Blank lines, `#` comments and minisign's `untrusted
    /// comment:` lines are skipped, so `.pub` files may be concatenated.
    ///
    /// # Errors
    /// [`KeyError`] naming the line that holds no key or a bad date.
    pub fn read_file(text: &str) -> Result<Vec<TrustedKey>, KeyError> {
        let mut keys = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("untrusted comment:") {
                continue;
            }
            let at_line = |error: KeyError| KeyError {
                problem: format!("line {}: {}", number + 1, error.problem),
                fix: error.fix,
            };
            let mut words = line.split_whitespace();
            let mut key = TrustedKey::parse(words.next().unwrap_or_default()).map_err(at_line)?;
            for word in words {
                let day = word
                    .strip_prefix("expires=")
                    .and_then(parse_date)
                    .ok_or_else(|| KeyError {
                        problem: format!(
                            "line {}: {:?} is not `expires=YYYY-MM-DD`",
                            number + 1,
                            crate::error::cut(word.to_owned(), 48)
                        ),
                        fix: "after the key, write only `expires=` and a date such as 2027-01-31",
                    })?;
                key = key.expires(day);
            }
            keys.push(key);
        }
        Ok(keys)
    }
}

/// The key id in a key's or signature's first base64 line: the eight bytes
/// after the algorithm, little-endian, as minisign prints them.
fn key_id(line: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line.trim())
        .ok()?;
    let id: [u8; 8] = bytes.get(2..10)?.try_into().ok()?;
    Some(format!("{:016X}", u64::from_le_bytes(id)))
}

/// A manifest's signature, read and matched to a trusted key at admission:
/// what the artifact's bytes are checked against as they are read.
#[derive(Clone)]
pub(crate) struct Signed {
    signature: minisign_verify::Signature,
    key: TrustedKey,
    /// The signature file, for errors.
    file: PathBuf,
}

impl fmt::Debug for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signed")
            .field("key", &self.key.id)
            .field("file", &self.file)
            .finish()
    }
}

impl PartialEq for Signed {
    fn eq(&self, other: &Signed) -> bool {
        self.key.id == other.key.id && self.file == other.file
    }
}

/// The most a signature file may hold: minisign's are about 300 bytes.
const MOST: u64 = 4096;

impl Signed {
    /// Reads `file`, a minisign signature, and finds its key among `keys`.
    pub(crate) fn read(
        manifest: &Manifest,
        file: &Path,
        keys: &[TrustedKey],
    ) -> Result<Signed, ManifestError> {
        let refuse = |problem: String, fix: &str| ManifestError::Signature {
            plugin: manifest.name.clone(),
            file: file.to_owned(),
            problem: crate::error::cut(problem, crate::error::QUOTED),
            fix: fix.to_owned(),
        };
        let text = crate::read_regular(file, MOST).map_err(|error| {
            refuse(
                format!("cannot be read: {error}"),
                "sign the artifact with `minisign -Sm <artifact>`, and name the `.minisig` it \
                 writes in `signature`, relative to the manifest",
            )
        })?;
        let not_minisign = || {
            refuse(
                "is not a minisign signature".into(),
                "name the `.minisig` file that `minisign -Sm <artifact>` writes",
            )
        };
        let signature = minisign_verify::Signature::decode(&text).map_err(|_| not_minisign())?;
        let id = text
            .lines()
            .nth(1)
            .and_then(key_id)
            .ok_or_else(not_minisign)?;
        let Some(key) = keys.iter().find(|key| key.id == id) else {
            return Err(refuse(
                format!("is signed by key {id}, which the host does not trust"),
                "sign with a key the host trusts, or have the host trust this one \
                 (`Policy::trust_key`; for the `outlet` command, `--trusted-keys FILE`)",
            ));
        };
        if let Some(expires) = key.expires
            && SystemTime::now() >= expires
        {
            return Err(refuse(
                format!(
                    "is signed by key {id}, which the host stopped trusting on {}",
                    date(expires)
                ),
                "sign the artifact again with a key the host trusts now",
            ));
        }
        if key.key.verify_stream(&signature).is_err() {
            return Err(refuse(
                "is in minisign's legacy format, which signs the whole file rather than its hash"
                    .into(),
                "sign again with a current minisign (`minisign -Sm <artifact>`, prehashed)",
            ));
        }
        Ok(Signed {
            signature,
            key: key.clone(),
            file: file.to_owned(),
        })
    }

    /// A check of the artifact's bytes, fed as they are read.
    pub(crate) fn check(&self) -> Check<'_> {
        Check {
            signed: self,
            verifier: self.key.key.verify_stream(&self.signature).ok(),
        }
    }
}

/// The artifact's bytes checked against a [`Signed`] as they stream.
pub(crate) struct Check<'a> {
    signed: &'a Signed,
    verifier: Option<minisign_verify::StreamVerifier<'a>>,
}

impl Check<'_> {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        if let Some(verifier) = self.verifier.as_mut() {
            verifier.update(bytes);
        }
    }

    /// Whether the bytes fed are the ones signed.
    pub(crate) fn finish(self, manifest: &Manifest) -> Result<(), ManifestError> {
        let ok = self
            .verifier
            .is_some_and(|mut verifier| verifier.finalize().is_ok());
        if ok {
            return Ok(());
        }
        Err(ManifestError::Signature {
            plugin: manifest.name.clone(),
            file: self.signed.file.clone(),
            problem: format!(
                "does not match the bytes of {} (signed by key {})",
                manifest.path.display(),
                self.signed.key.id
            ),
            fix: "if the artifact is the one you mean to run, sign it again \
                  (`minisign -Sm <artifact>`), and load the plugin again (a loaded plugin \
                  keeps the signature it was admitted with)"
                .into(),
        })
    }
}

/// `YYYY-MM-DD` as the start of that day, UTC.
fn parse_date(text: &str) -> Option<SystemTime> {
    let mut parts = text.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(days).ok()? * 86_400);
    // A day the month has: 2026-02-31 would be March's.
    (date(at) == format!("{year:04}-{month:02}-{day:02}")).then_some(at)
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A time as its date, `YYYY-MM-DD` (UTC).
fn date(at: SystemTime) -> String {
    let days = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::Trust;
    use crate::policy::Policy;

    /// A key pair made by minisign's own Rust implementation.
    struct Signer {
        public: minisign::PublicKey,
        secret: minisign::SecretKey,
    }

    impl Signer {
        fn new() -> Signer {
            let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
            Signer {
                public: pair.pk,
                secret: pair.sk,
            }
        }

        fn trusted(&self) -> TrustedKey {
            TrustedKey::parse(&self.public.to_box().unwrap().into_string()).unwrap()
        }

        /// Signs `bytes` into `file`, as `minisign -Sm` does.
        fn sign(&self, bytes: &[u8], file: &Path) {
            let signature =
                minisign::sign(Some(&self.public), &self.secret, bytes, None, None).unwrap();
            std::fs::write(file, signature.into_string()).unwrap();
        }
    }

    /// A folder with an artifact, its signature by `signer` (of `signed`
    /// bytes), and a manifest at `trust` naming both.
    fn plugin(signer: &Signer, signed: &[u8], trust: &str) -> (tempfile::TempDir, Manifest) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plugin.wasm"), b"the artifact").unwrap();
        signer.sign(signed, &dir.path().join("plugin.wasm.minisig"));
        let text = format!(
            "name = \"signed\"\nmechanism = \"wasm\"\npath = \"plugin.wasm\"\n\
             interface = \"a.B\"\ntrust = \"{trust}\"\nsignature = \"plugin.wasm.minisig\"\n"
        );
        let file = dir.path().join("plugin.toml");
        let manifest = Manifest::parse(&text, &file).unwrap();
        (dir, manifest)
    }

    /// What loading `manifest` under `policy` ends with.
    fn open(policy: &Policy, manifest: Manifest) -> Result<(), String> {
        let manifest = policy.admit(manifest).map_err(|e| e.to_string())?;
        manifest
            .open_artifact()
            .map(drop)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_signature_by_a_trusted_key_over_the_artifact_loads() {
        let signer = Signer::new();
        let policy = Policy::default()
            .trust_key(signer.trusted())
            .require_signature(Trust::Sandboxed);
        let (_dir, manifest) = plugin(&signer, b"the artifact", "sandboxed");
        open(&policy, manifest.clone()).unwrap();
        // Also through the reader that copies the bytes out.
        let admitted = policy.admit(manifest).unwrap();
        let mut read = Vec::new();
        admitted
            .read_artifact(&mut |chunk| read.extend_from_slice(chunk))
            .unwrap();
        assert_eq!(read, b"the artifact");
    }

    #[test]
    fn a_signature_over_other_bytes_is_refused_naming_the_key() {
        let signer = Signer::new();
        let policy = Policy::default().trust_key(signer.trusted());
        let (_dir, manifest) = plugin(&signer, b"another artifact", "sandboxed");
        let refused = open(&policy, manifest).unwrap_err();
        assert!(refused.contains("plugin `signed`"), "{refused}");
        assert!(refused.contains("does not match the bytes of"), "{refused}");
        assert!(refused.contains(signer.trusted().id()), "{refused}");
        assert!(refused.contains("sign it again"), "{refused}");
    }

    #[test]
    fn a_key_the_host_does_not_trust_is_named() {
        let (signer, other) = (Signer::new(), Signer::new());
        for policy in [
            Policy::default(),
            Policy::default().trust_key(other.trusted()),
        ] {
            let (_dir, manifest) = plugin(&signer, b"the artifact", "in-process");
            let refused = open(&policy, manifest).unwrap_err();
            let id = signer.trusted().id().to_owned();
            assert!(
                refused.contains(&format!(
                    "is signed by key {id}, which the host does not trust"
                )),
                "{refused}"
            );
            assert!(refused.contains("--trusted-keys"), "{refused}");
        }
    }

    #[test]
    fn an_expired_key_is_refused_and_an_unexpired_one_is_not() {
        let signer = Signer::new();
        let day = 86_400;
        let past = SystemTime::now() - Duration::from_secs(day);
        let future = SystemTime::now() + Duration::from_secs(day);
        let policy = Policy::default().trust_key(signer.trusted().expires(past));
        let (_dir, manifest) = plugin(&signer, b"the artifact", "sandboxed");
        let refused = open(&policy, manifest.clone()).unwrap_err();
        assert!(
            refused.contains("which the host stopped trusting on"),
            "{refused}"
        );
        assert!(refused.contains(signer.trusted().id()), "{refused}");
        let policy = Policy::default().trust_key(signer.trusted().expires(future));
        open(&policy, manifest).unwrap();
    }

    #[test]
    fn a_required_signature_that_is_missing_or_not_minisign_is_refused() {
        let signer = Signer::new();
        let policy = Policy::default()
            .trust_key(signer.trusted())
            .require_signature(Trust::OutOfProcess);
        let (dir, manifest) = plugin(&signer, b"the artifact", "out-of-process");
        let mut unsigned = manifest.clone();
        unsigned.signature = None;
        let refused = open(&policy, unsigned.clone()).unwrap_err();
        assert!(refused.contains("names no `signature`"), "{refused}");
        assert!(refused.contains("out-of-process"), "{refused}");
        // Not required at another level.
        unsigned.trust = Trust::Sandboxed;
        open(&policy, unsigned).unwrap();

        for (text, problem) in [
            (
                "untrusted comment: x\nnot base64\n",
                "is not a minisign signature",
            ),
            ("", "is not a minisign signature"),
        ] {
            std::fs::write(dir.path().join("plugin.wasm.minisig"), text).unwrap();
            let refused = open(&policy, manifest.clone()).unwrap_err();
            assert!(refused.contains(problem), "{refused}");
            assert!(refused.contains("plugin.wasm.minisig"), "{refused}");
        }
        std::fs::remove_file(dir.path().join("plugin.wasm.minisig")).unwrap();
        let refused = open(&policy, manifest).unwrap_err();
        assert!(
            refused.contains("plugin.wasm.minisig cannot be read"),
            "{refused}"
        );
        assert!(refused.contains("minisign -Sm"), "{refused}");
    }

    #[test]
    fn a_signature_outside_the_manifests_folder_is_not_read_below_in_process() {
        let signer = Signer::new();
        let policy = Policy::default().trust_key(signer.trusted());
        let (_dir, mut manifest) = plugin(&signer, b"the artifact", "sandboxed");
        let elsewhere = tempfile::tempdir().unwrap();
        let file = elsewhere.path().join("x.minisig");
        signer.sign(b"the artifact", &file);
        manifest.signature = Some(file);
        let refused = open(&policy, manifest).unwrap_err();
        assert!(refused.contains("`signature` names"), "{refused}");
    }

    /// Made with the minisign command (0.11): `minisign -G`, `minisign -Sm
    /// artifact`, and `-l` for the legacy signature.
    #[test]
    fn signatures_made_by_the_minisign_command_verify() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/signed");
        let key = TrustedKey::read_file(&std::fs::read_to_string(folder.join("key.pub")).unwrap())
            .unwrap()
            .remove(0);
        assert_eq!(key.id(), "63326C2D909F1658");
        let policy = Policy::default().trust_key(key);
        let manifest = |signature: &str| {
            let text = format!(
                "name = \"signed\"\nmechanism = \"exec\"\npath = \"artifact\"\n\
                 interface = \"a.B\"\ntrust = \"in-process\"\nsignature = \"{signature}\"\n"
            );
            Manifest::parse(&text, &folder.join("plugin.toml")).unwrap()
        };
        open(&policy, manifest("artifact.minisig")).unwrap();
        let refused = open(&policy, manifest("legacy.minisig")).unwrap_err();
        assert!(refused.contains("legacy format"), "{refused}");
    }

    #[test]
    fn a_key_given_twice_keeps_its_earlier_expiry() {
        let signer = Signer::new();
        let day = Duration::from_secs(86_400);
        let soon = SystemTime::now() - day;
        let policy = Policy::default()
            .trust_key(signer.trusted().expires(soon))
            .trust_key(signer.trusted())
            .trust_key(signer.trusted().expires(SystemTime::now() + day));
        let (_dir, manifest) = plugin(&signer, b"the artifact", "sandboxed");
        let refused = open(&policy, manifest).unwrap_err();
        assert!(refused.contains("stopped trusting on"), "{refused}");
    }

    #[test]
    fn an_attached_plugin_where_signatures_are_required_is_told_why() {
        let dir = tempfile::tempdir().unwrap();
        let text = "name = \"p\"\nmechanism = \"rpc\"\ninterface = \"a.B\"\n\
                    trust = \"out-of-process\"\n[reattach]\naddress = \"/tmp/p.sock\"\npid = 1\n";
        let manifest = Manifest::parse(text, &dir.path().join("p.toml")).unwrap();
        let policy = Policy::default().require_signature(Trust::OutOfProcess);
        let refused = policy.admit(manifest).unwrap_err().to_string();
        assert!(
            refused.contains("attaches to a running plugin"),
            "{refused}"
        );
    }

    #[test]
    fn a_key_file_holds_keys_comments_and_expiry_dates() {
        let (a, b) = (Signer::new(), Signer::new());
        let text = format!(
            "# the keys of our plugin authors\n{}\n{} expires=2031-01-31\n",
            a.public.to_box().unwrap().into_string().trim(),
            b.public.to_base64()
        );
        let keys = TrustedKey::read_file(&text).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].id(), a.trusted().id());
        assert_eq!(keys[0].expires, None);
        assert_eq!(keys[1].expires.map(date).as_deref(), Some("2031-01-31"));
        let bad = TrustedKey::read_file(&format!("{} expires=soon", b.public.to_base64()));
        let bad = bad.unwrap_err().to_string();
        assert!(
            bad.contains("line 1") && bad.contains("expires=YYYY-MM-DD"),
            "{bad}"
        );
        let bad = TrustedKey::read_file("RWQnot-a-key")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("not a minisign public key"), "{bad}");
    }

    #[test]
    fn dates_round_trip() {
        for text in ["1970-01-01", "2000-02-29", "2026-11-27", "2100-12-31"] {
            assert_eq!(date(parse_date(text).unwrap()), text);
        }
        assert_eq!(
            parse_date("1970-01-02"),
            Some(UNIX_EPOCH + Duration::from_secs(86_400))
        );
        for bad in [
            "2026-13-01",
            "2026-1",
            "someday",
            "1969-12-31",
            "2026-01-32",
            "2026-02-29",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }
}
