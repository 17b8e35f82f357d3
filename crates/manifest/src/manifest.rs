//! [`Manifest`]: one TOML file per plugin, read, checked and resolved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::QUOTED;
use crate::raw::Raw;
use crate::{Handshake, Limits, ManifestError, Mechanism, Permissions, Reattach, Trust};

/// The largest manifest file read: 1 MiB.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// One plugin's manifest. Paths in it are relative to the manifest's folder.
///
/// ```toml
/// name = "greeter"
/// mechanism = "exec"              # native | cabi | rpc | wasm | exec
/// path = "../bin/greeter-exec"    # the artifact
/// interface = "outlet.examples.greeter.v1.Greeter"
/// proto = "greeter.proto"         # for `outlet call` and `outlet inspect`
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
    /// A minisign signature of the artifact (`.minisig`), resolved like
    /// `path`, checked against the keys the host trusts (see [`signing`](crate::signing)).
    pub signature: Option<PathBuf>,
    /// The signature, read and matched to a trusted key by
    /// [`Policy::admit`](crate::policy::Policy::admit): what the artifact's
    /// bytes are checked against whenever it is opened.
    pub(crate) signed: Option<std::sync::Arc<crate::signing::Signed>>,
    /// Resource and time limits.
    pub limits: Limits,
    /// What the plugin may reach.
    pub permissions: Permissions,
    /// exec and rpc: whether the process runs in the OS sandbox, held to
    /// `permissions`. Always for `sandboxed` trust; for `out-of-process`
    /// unless the manifest says `sandbox = false`; for `in-process` only if
    /// it says `sandbox = true`. Always false for the other mechanisms
    /// (wasm is sandboxed by wasmtime, in-process code cannot be).
    pub sandbox: bool,
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
        let unreadable = |error| ManifestError::Read {
            file: file.to_owned(),
            error,
        };
        // A regular file of a sane size: a FIFO or a device is not waited on
        // nor read without end.
        let text = crate::read_regular(file, MAX_MANIFEST_BYTES).map_err(unreadable)?;
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
            // Lines cut, and lines cut off: a value quoted may hold many.
            message: crate::error::cut(cut_lines(&source.to_string(), 160), 2 * QUOTED),
        })?;
        crate::validate::check(&raw, file)?;
        let manifest = raw.resolve(file);
        crate::policy::check(&manifest)?;
        Ok(manifest)
    }

    /// Whether the manifest pins its artifact's bytes, by `sha256` or by a
    /// `signature`: the host must then load the very bytes it checked.
    pub fn pins_bytes(&self) -> bool {
        self.sha256.is_some() || self.signature.is_some()
    }

    /// Checks the artifact as [`Manifest::open_artifact`] does, and closes
    /// it. Nothing to check for an rpc plugin the host attaches to.
    ///
    /// # Errors
    /// As [`Manifest::open_artifact`].
    pub fn verify_artifact(&self) -> Result<(), ManifestError> {
        if self.reattach.is_some() {
            return Ok(());
        }
        self.open_artifact().map(drop)
    }
}

/// `message` with each line cut to about `most` bytes, so that an error
/// quoting a long line of the input stays short.
fn cut_lines(message: &str, most: usize) -> String {
    let mut out = String::with_capacity(message.len().min(16 * most));
    for line in message.split_inclusive('\n') {
        if line.len() <= most {
            out.push_str(line);
            continue;
        }
        let mut cut = most;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&line[..cut]);
        out.push_str(" …");
        if line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
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

    /// A pinned manifest whose `path` is `artifact`.
    fn pinned_at(artifact: &Path) -> Manifest {
        let hash = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let text = GOOD
            .replace("bin/greeter", &artifact.display().to_string())
            .replace("[limits]", &format!("sha256 = \"{hash}\"\n[limits]"));
        Manifest::parse(&text, Path::new("/greeter.toml")).unwrap()
    }

    /// Checks `manifest`'s artifact on a thread of its own, so that a check
    /// that blocks fails the test instead of hanging it.
    fn verify_within_seconds(manifest: Manifest) -> Result<(), ManifestError> {
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || done.send(manifest.verify_artifact()));
        result
            .recv_timeout(Duration::from_secs(10))
            .expect("checking the artifact blocked")
    }

    #[test]
    fn only_a_regular_file_is_read_a_device_a_fifo_or_a_folder_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        for (path, kind) in [
            (Path::new("/dev/null"), "is a character device"),
            (fifo.as_path(), "is a FIFO"),
            (dir.path(), "is a folder"),
        ] {
            let error = verify_within_seconds(pinned_at(path)).unwrap_err();
            assert!(matches!(error, ManifestError::NotAFile { .. }), "{error:?}");
            let text = error.to_string();
            assert!(
                text.starts_with("plugin `greeter`: its artifact ")
                    && text.contains(&path.display().to_string())
                    && text.contains(kind)
                    && text.contains("point `path` in the manifest"),
                "{text}"
            );
        }
    }

    #[test]
    fn an_artifact_over_the_size_limit_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        // Sparse: nothing is written, and nothing must be read.
        std::fs::File::create(&big)
            .unwrap()
            .set_len(crate::MAX_ARTIFACT_BYTES + 1)
            .unwrap();
        let started = std::time::Instant::now();
        let error = verify_within_seconds(pinned_at(&big)).unwrap_err();
        assert!(matches!(error, ManifestError::TooLarge { .. }), "{error:?}");
        let text = error.to_string();
        assert!(
            text.starts_with("plugin `greeter`: its artifact ")
                && text.contains(&format!("{} bytes", crate::MAX_ARTIFACT_BYTES + 1))
                && text.contains("`path`"),
            "{text}"
        );
        // Generous: reading a GiB would take seconds.
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_bytes_read_are_the_bytes_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = dir.path().join("greeter");
        std::fs::write(&artifact, b"hello").unwrap();
        let manifest = pinned_at(&artifact);
        let mut got = Vec::new();
        let mut file = manifest
            .read_artifact(&mut |chunk| got.extend_from_slice(chunk))
            .unwrap();
        assert_eq!(got, b"hello");

        // The file returned is the one checked, whatever is at the path now.
        std::fs::remove_file(&artifact).unwrap();
        std::fs::write(&artifact, b"HELLO").unwrap();
        let mut again = String::new();
        std::io::Seek::rewind(&mut file).unwrap();
        std::io::Read::read_to_string(&mut file, &mut again).unwrap();
        assert_eq!(again, "hello");
        assert!(matches!(
            manifest.open_artifact(),
            Err(ManifestError::Checksum { .. })
        ));
    }

    #[test]
    fn a_file_hashed_before_is_hashed_again_once_changed_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = dir.path().join("greeter");
        std::fs::write(&artifact, b"hello").unwrap();
        // Settled: last changed further back than any clock tick.
        let old = std::time::SystemTime::now() - Duration::from_secs(60);
        let set_times = |file: &std::fs::File| {
            file.set_times(std::fs::FileTimes::new().set_modified(old))
                .unwrap()
        };
        set_times(&std::fs::File::open(&artifact).unwrap());
        let manifest = pinned_at(&artifact);
        manifest.open_artifact().unwrap();
        // The stamp's status change time is the kernel's; wait until it is settled.
        let stamp = crate::Stamp::from(&std::fs::metadata(&artifact).unwrap());
        while !stamp.settled() {
            std::thread::sleep(Duration::from_millis(200));
        }
        manifest.open_artifact().unwrap();
        manifest.open_artifact().unwrap();

        // Rewritten in place, its size and modification time restored: the
        // status change time differs, so it is hashed again, and refused.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&artifact)
            .unwrap();
        std::io::Write::write_all(&mut &file, b"HELLO").unwrap();
        set_times(&file);
        assert_eq!(std::fs::metadata(&artifact).unwrap().len(), 5);
        assert!(matches!(
            manifest.open_artifact(),
            Err(ManifestError::Checksum { .. })
        ));
    }

    #[test]
    fn a_manifest_that_is_not_a_regular_file_is_refused_unread() {
        for file in ["/dev/zero", "/tmp"] {
            let error = Manifest::load(file).unwrap_err().to_string();
            assert!(
                error.contains(file) && error.contains("not a regular file"),
                "{error}"
            );
        }
    }

    #[test]
    fn an_error_quotes_a_long_line_of_the_manifest_cut() {
        // A line of 200 KB, and one of 2 KB.
        for len in [200_000, 2_000] {
            let text = format!("name = \"{}\nmechanism = \"exec\"\n", "é".repeat(len));
            let error = Manifest::parse(&text, Path::new("/p/long.toml"))
                .unwrap_err()
                .to_string();
            assert!(error.len() < 1024, "{} bytes: {error:.300}", error.len());
            assert!(
                error.contains("/p/long.toml") && error.contains("line 1"),
                "{error}"
            );
        }
        // Values the checks quote: a name, an interface, a path the policy
        // refuses. Names are held to 64 characters.
        let long = "a".repeat(5000);
        let head = "mechanism = \"exec\"\npath = \"x\"\n";
        let lines = "x\n".repeat(5000);
        for text in [
            // A value of many short lines, quoted whole by the parser.
            format!("name = \"n\"\nmechanism = \"\"\"{lines}\"\"\"\n"),
            format!(
                "name = \"n\"\n{head}interface = \"a.B\"\ntrust = \"in-process\"\n\"{}\" = 1\n",
                "a\\n".repeat(5000)
            ),
            // A path too long for the kernel.
            format!(
                "name = \"n\"\nmechanism = \"exec\"\npath = \"{}\"\ninterface = \"a.B\"\ntrust = \"in-process\"\n",
                "p".repeat(100_000)
            ),
            format!("name = \"{long}\"\n{head}interface = \"a.B\"\ntrust = \"in-process\"\n"),
            format!("name = \"n\"\n{head}interface = \"{long}\"\ntrust = \"in-process\"\n"),
            format!(
                "name = \"n\"\n{head}interface = \"a.B\"\ntrust = \"sandboxed\"\n\
                 sha256 = \"{}\"\n[permissions]\nread = [\"/{long}\"]\n",
                "0".repeat(64)
            ),
        ] {
            let error = Manifest::parse(&text, Path::new("/p/long.toml"))
                .and_then(|m| crate::policy::Policy::default().admit(m))
                .unwrap_err()
                .to_string();
            assert!(error.len() < 4096, "{} bytes: {error:.300}", error.len());
            assert!(error.contains("/p/long.toml"), "{error:.300}");
        }
    }

    #[test]
    fn deeply_nested_or_huge_manifests_are_refused_in_bounded_time() {
        let started = std::time::Instant::now();
        let file = Path::new("/p/big.toml");
        // Arrays and tables nested 100 000 deep: the parser's depth limit.
        for text in [
            format!("name = {}{}", "[".repeat(100_000), "]".repeat(100_000)),
            format!("name = {}1{}", "{a = ".repeat(100_000), "}".repeat(100_000)),
        ] {
            let error = Manifest::parse(&text, file).unwrap_err().to_string();
            assert!(error.contains("/p/big.toml"), "{error:.300}");
            assert!(error.len() < 2048, "{} bytes: {error:.300}", error.len());
        }
        // A table of 50 000 keys parses, and is refused for what it is.
        let mut text = String::from(
            "name = \"big\"\nmechanism = \"exec\"\npath = \"big\"\ninterface = \"a.B\"\n\
             trust = \"in-process\"\n[config]\n",
        );
        for i in 0..50_000 {
            text.push_str(&format!("key{i} = \"{i}\"\n"));
        }
        match Manifest::parse(&text, file) {
            Ok(manifest) => assert_eq!(manifest.config.len(), 50_000),
            Err(error) => assert!(error.to_string().len() < 2048, "{error}"),
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        // Over 1 MiB on disk: refused unread.
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        std::fs::write(&big, format!("{text}{}", "# padding\n".repeat(200_000))).unwrap();
        let error = Manifest::load(&big).unwrap_err().to_string();
        assert!(error.contains("big.toml"), "{error}");
    }
}
