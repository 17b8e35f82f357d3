//! [`Manifest`]: one TOML file per plugin, parsed and validated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::{ManifestError, Mechanism, Trust};

/// One plugin's manifest. Paths in it are relative to the manifest's folder.
///
/// ```toml
/// name = "greeter"
/// mechanism = "exec"              # native | cabi | rpc | wasm | exec
/// path = "../bin/greeter-exec"    # the artifact
/// interface = "outlet.examples.greeter.v1.Greeter"
/// proto = "../greeter.proto"      # for `outlet call` and `outlet inspect`
/// versions = [1]                  # interface versions the host accepts
/// trust = "untrusted"             # tight | open | untrusted
/// sha256 = "…"                    # required unless trust = "tight"
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

/// go-plugin's `ReattachConfig`: where an rpc plugin that is already running
/// listens. The host does not start it, restart it or pin its artifact; it
/// checks that the process listening is the one named by `pid`, and only
/// then may it ever signal it. A plugin on another machine (TCP) has no
/// `pid`, and is never signalled.
///
/// ```toml
/// [reattach]
/// network = "unix"                  # or "tcp", with address = "host:port"
/// address = "/tmp/plugin1234567"
/// pid = 4242
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Reattach {
    /// `unix` (the default) or `tcp`.
    #[serde(default = "Reattach::default_network")]
    pub network: String,
    /// A socket path, or `host:port`.
    pub address: String,
    /// The process serving it, on this machine: checked against the
    /// socket's owner before anything is sent.
    pub pid: Option<u32>,
}

impl Reattach {
    fn default_network() -> String {
        "unix".into()
    }
}

/// go-plugin's `HandshakeConfig`, for an rpc plugin: the host sets the
/// environment variable `magic_cookie_key` to `magic_cookie_value`, and the
/// plugin refuses to start without it (so that a plugin run by hand says so
/// instead of waiting for a host). The app protocol versions are the
/// manifest's `versions`. With `auto_mtls`, host and plugin talk over
/// mutual TLS with a certificate each makes for the plugin's lifetime (go-plugin's
/// `AutoMTLS`); `network = "tcp"` asks an Outlet plugin to listen on TCP
/// (a go-plugin plugin picks its own network).
///
/// ```toml
/// [handshake]
/// magic_cookie_key = "BASIC_PLUGIN"
/// magic_cookie_value = "hello"
/// auto_mtls = true
/// network = "tcp"
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Handshake {
    /// The variable's name. Default `OUTLET_PLUGIN`, which
    /// `outlet_guest::rpc::serve` expects.
    #[serde(default = "Handshake::default_key")]
    pub magic_cookie_key: String,
    /// The variable's value. Default `outlet`.
    #[serde(default = "Handshake::default_value")]
    pub magic_cookie_value: String,
    /// Mutual TLS with per-process certificates. Default false.
    #[serde(default)]
    pub auto_mtls: bool,
    /// `unix` (the default) or `tcp`: where an Outlet plugin listens.
    #[serde(default = "Handshake::default_network")]
    pub network: String,
}

impl Handshake {
    /// The cookie's name when the manifest names none.
    pub const DEFAULT_KEY: &str = "OUTLET_PLUGIN";
    /// The cookie's value when the manifest gives none.
    pub const DEFAULT_VALUE: &str = "outlet";

    fn default_key() -> String {
        Handshake::DEFAULT_KEY.into()
    }
    fn default_value() -> String {
        Handshake::DEFAULT_VALUE.into()
    }
    fn default_network() -> String {
        "unix".into()
    }
}

impl Default for Handshake {
    fn default() -> Handshake {
        Handshake {
            magic_cookie_key: Handshake::default_key(),
            magic_cookie_value: Handshake::default_value(),
            auto_mtls: false,
            network: Handshake::default_network(),
        }
    }
}

/// Resource and time limits. What each one means per mechanism is documented
/// on the field; a limit a mechanism cannot enforce is refused at load.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Limits {
    /// Wall-clock time per call, in milliseconds. Default 10 000.
    #[serde(default = "Limits::default_timeout_ms")]
    pub timeout_ms: u64,
    /// Memory, in MiB: address space of an exec child (`RLIMIT_AS`), linear
    /// memory of a wasm instance.
    pub memory_mb: Option<u64>,
    /// CPU seconds of an exec child (`RLIMIT_CPU`).
    pub cpu_seconds: Option<u64>,
    /// Open file descriptors of an exec child (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
    /// Fuel per wasm call (roughly, instructions); none means unmetered.
    pub fuel: Option<u64>,
    /// Largest request or response, in bytes. Default 4 MiB.
    #[serde(default = "Limits::default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Restarts before a crashing plugin is given up on. Default 5.
    #[serde(default = "Limits::default_restarts")]
    pub restarts: u32,
    /// rpc: how long a plugin may take to print its handshake and answer
    /// its first health check, in milliseconds. Default 10 000.
    #[serde(default = "Limits::default_start_timeout_ms")]
    pub start_timeout_ms: u64,
    /// What happens after a call panicked inside an in-process plugin (its
    /// state may be corrupt): `"fail"` (the default) refuses further calls
    /// until the host reloads it; `"reload"` loads a fresh copy at once.
    #[serde(default)]
    pub on_panic: OnPanic,
}

/// What the host does with an in-process plugin after a panic in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnPanic {
    /// Fail every later call fast, until the plugin is reloaded.
    #[default]
    Fail,
    /// Load a fresh copy of the plugin, and serve later calls from it.
    Reload,
}

impl Limits {
    fn default_timeout_ms() -> u64 {
        10_000
    }
    fn default_max_message_bytes() -> usize {
        4 << 20
    }
    fn default_restarts() -> u32 {
        5
    }
    fn default_start_timeout_ms() -> u64 {
        10_000
    }

    /// The per-call time limit.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            timeout_ms: Limits::default_timeout_ms(),
            memory_mb: None,
            cpu_seconds: None,
            open_files: None,
            fuel: None,
            max_message_bytes: Limits::default_max_message_bytes(),
            restarts: Limits::default_restarts(),
            start_timeout_ms: Limits::default_start_timeout_ms(),
            on_panic: OnPanic::Fail,
        }
    }
}

/// What a plugin may reach. Everything not listed is denied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Permissions {
    /// Environment variables set for the plugin, by value.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Environment variables passed through from the host's environment.
    #[serde(default)]
    pub inherit_env: Vec<String>,
    /// Other plugins it may call through the host.
    #[serde(default)]
    pub call: Vec<String>,
    /// wasm only: host folders the plugin may open through WASI, each at a
    /// path of its own inside the sandbox. Nothing else of the file system
    /// is reachable.
    #[serde(default)]
    pub dirs: Vec<Dir>,
    /// wasm only: whether the plugin reads the real clocks through WASI.
    /// Without it, the clocks stand still at 0 (the Unix epoch).
    #[serde(default)]
    pub clock: bool,
    /// wasm only: whether the plugin gets random bytes through WASI.
    /// Without it, it gets the same fixed sequence every time.
    #[serde(default)]
    pub random: bool,
}

/// A host folder a wasm plugin may open: `{ host = "data", guest = "/data",
/// write = false }`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Dir {
    /// The folder on the host, relative to the manifest's folder.
    pub host: PathBuf,
    /// Where the plugin sees it, e.g. `/data`.
    pub guest: String,
    /// Whether the plugin may create, change and remove files in it;
    /// read-only unless set.
    #[serde(default)]
    pub write: bool,
}

/// The manifest as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: String,
    mechanism: Mechanism,
    #[serde(default)]
    path: PathBuf,
    interface: String,
    proto: Option<PathBuf>,
    #[serde(default = "default_versions")]
    versions: Vec<u32>,
    trust: Trust,
    sha256: Option<String>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    permissions: Permissions,
    #[serde(default)]
    config: BTreeMap<String, toml::Value>,
    handshake: Option<Handshake>,
    reattach: Option<Reattach>,
}

fn default_versions() -> Vec<u32> {
    vec![1]
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
    ///     trust = "tight"
    /// "#, "plugins/greeter.toml".as_ref())?;
    /// assert_eq!(manifest.mechanism, Mechanism::Exec);
    /// assert_eq!(manifest.path, std::path::Path::new("plugins/greeter-exec"));
    ///
    /// let refused = Manifest::parse(r#"
    ///     name = "greeter"
    ///     mechanism = "native"
    ///     path = "libgreeter.so"
    ///     interface = "outlet.examples.greeter.v1.Greeter"
    ///     trust = "untrusted"
    /// "#, "plugins/greeter.toml".as_ref());
    /// assert!(refused.unwrap_err().to_string().contains("untrusted"));
    /// # Ok::<(), outlet_manifest::ManifestError>(())
    /// ```
    pub fn parse(text: &str, file: &Path) -> Result<Manifest, ManifestError> {
        let raw: Raw = toml::from_str(text).map_err(|source| ManifestError::Toml {
            file: file.to_owned(),
            message: source.to_string(),
        })?;
        let dir = file.parent().unwrap_or(Path::new(""));
        let invalid = |field: &'static str, problem: String, fix: String| ManifestError::Invalid {
            file: file.to_owned(),
            field,
            problem,
            fix,
        };

        if raw.name.is_empty()
            || !raw
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "name",
                format!("{:?} is not a plugin name", raw.name),
                "use letters, digits, `-` and `_` only".into(),
            ));
        }
        if let Some(reattach) = &raw.reattach {
            let wrong = if raw.mechanism != Mechanism::Rpc {
                Some((
                    "reattach",
                    format!(
                        "is go-plugin's reattach, which only an rpc plugin has; this one is {}",
                        raw.mechanism
                    ),
                    "remove `[reattach]`, or run the plugin as `mechanism = \"rpc\"`",
                ))
            } else if !raw.path.as_os_str().is_empty() || raw.sha256.is_some() {
                Some((
                    "path",
                    "is given, and so is `[reattach]`: the host does not start an attached \
                     plugin"
                        .into(),
                    "remove `path` and `sha256`, or `[reattach]` to have the host start it",
                ))
            } else if !matches!(reattach.network.as_str(), "unix" | "tcp") {
                Some((
                    "reattach.network",
                    format!("is {:?}", reattach.network),
                    "write \"unix\" or \"tcp\"",
                ))
            } else if reattach.address.is_empty() {
                Some((
                    "reattach.address",
                    "is empty".into(),
                    "write the address from the plugin's handshake line",
                ))
            } else if raw
                .handshake
                .as_ref()
                .is_some_and(|h| h.auto_mtls || h.network != "unix")
            {
                Some((
                    "handshake",
                    "asks for TLS or TCP, and the plugin is attached to: it listens where it \
                     already does, as it already does"
                        .into(),
                    "remove `auto_mtls` and `network` from `[handshake]`",
                ))
            } else if reattach.network == "tcp" && reattach.pid.is_some() {
                Some((
                    "reattach.pid",
                    "is given for a TCP address, where the host cannot tell which process \
                     listens"
                        .into(),
                    "remove `pid`: a plugin reached over TCP is never signalled",
                ))
            } else {
                None
            };
            if let Some((field, problem, fix)) = wrong {
                return Err(invalid(field, problem, fix.into()));
            }
        } else if raw.path.as_os_str().is_empty() {
            return Err(invalid(
                "path",
                "is empty".into(),
                "name the plugin's artifact, relative to the manifest's folder".into(),
            ));
        }
        let valid_interface = raw.interface.split('.').count() >= 2
            && raw.interface.split('.').all(|part| {
                !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        if !valid_interface {
            return Err(invalid(
                "interface",
                format!("{:?} is not a protobuf service name", raw.interface),
                "write the service's full name, `package.Service`".into(),
            ));
        }
        if raw.versions.is_empty() || raw.versions.contains(&0) {
            return Err(invalid(
                "versions",
                format!("{:?} is not a list of interface versions", raw.versions),
                "list the versions the host accepts, each 1 or more, e.g. `versions = [1]`".into(),
            ));
        }
        if let Some(sha) = &raw.sha256
            && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(invalid(
                "sha256",
                format!("{sha:?} is not a SHA-256 in hex"),
                "write the 64 hex digits that `sha256sum <artifact>` prints".into(),
            ));
        }
        if let Some(handshake) = &raw.handshake
            && !matches!(handshake.network.as_str(), "unix" | "tcp")
        {
            return Err(invalid(
                "handshake.network",
                format!("is {:?}", handshake.network),
                "write \"unix\" or \"tcp\"".into(),
            ));
        }
        if raw.handshake.is_some() && raw.mechanism != Mechanism::Rpc {
            return Err(invalid(
                "handshake",
                format!(
                    "is go-plugin's handshake, which only an rpc plugin makes; this one is {}",
                    raw.mechanism
                ),
                "remove `[handshake]`, or run the plugin as `mechanism = \"rpc\"`".into(),
            ));
        }
        if let Some(handshake) = &raw.handshake
            && (handshake.magic_cookie_key.is_empty()
                || handshake.magic_cookie_key.contains(['=', '\0']))
        {
            return Err(invalid(
                "handshake.magic_cookie_key",
                format!(
                    "{:?} is not an environment variable name",
                    handshake.magic_cookie_key
                ),
                "use the key the plugin's HandshakeConfig names, e.g. `BASIC_PLUGIN`".into(),
            ));
        }
        for (field, value) in [
            ("limits.timeout_ms", raw.limits.timeout_ms),
            ("limits.start_timeout_ms", raw.limits.start_timeout_ms),
        ] {
            if value == 0 {
                return Err(invalid(
                    field,
                    "is 0".into(),
                    format!("give it at least 1 ms, e.g. `{field} = 2000`, or remove it"),
                ));
            }
        }
        for (field, value) in [
            ("limits.memory_mb", raw.limits.memory_mb),
            ("limits.cpu_seconds", raw.limits.cpu_seconds),
            ("limits.open_files", raw.limits.open_files),
            ("limits.fuel", raw.limits.fuel),
        ] {
            if value == Some(0) {
                return Err(invalid(
                    field,
                    "is 0".into(),
                    format!("remove `{field}` for no limit, or raise it"),
                ));
            }
        }
        let mut permissions = raw.permissions;
        let sandboxed = permissions.dirs.is_empty() && !permissions.clock && !permissions.random;
        if raw.mechanism != Mechanism::Wasm && !sandboxed {
            return Err(invalid(
                "permissions",
                format!(
                    "`dirs`, `clock` and `random` are granted inside a wasm sandbox, and a {} \
                     plugin has none: it reaches what the host's user can",
                    raw.mechanism
                ),
                "remove them, or run the plugin as `mechanism = \"wasm\"`".into(),
            ));
        }
        for grant in &mut permissions.dirs {
            if !grant.guest.starts_with('/') || grant.guest.split('/').any(|p| p == "..") {
                return Err(invalid(
                    "permissions.dirs",
                    format!("guest path {:?} is not an absolute path", grant.guest),
                    "give where the plugin sees the folder, e.g. `guest = \"/data\"`".into(),
                ));
            }
            grant.host = dir.join(&grant.host);
        }
        let mut config = BTreeMap::new();
        for (key, value) in raw.config {
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                    value.to_string()
                }
                other => {
                    return Err(invalid(
                        "config",
                        format!(
                            "`{key}` is a {}, and config values are flat",
                            other.type_str()
                        ),
                        "give each config key a string, number or boolean".into(),
                    ));
                }
            };
            config.insert(key, value);
        }

        let manifest = Manifest {
            file: file.to_owned(),
            name: raw.name,
            mechanism: raw.mechanism,
            path: match raw.reattach {
                Some(_) => PathBuf::new(),
                None => dir.join(raw.path),
            },
            interface: raw.interface,
            proto: raw.proto.map(|p| dir.join(p)),
            versions: raw.versions,
            trust: raw.trust,
            sha256: raw.sha256.map(|s| s.to_ascii_lowercase()),
            limits: raw.limits,
            permissions,
            config,
            handshake: raw.handshake.unwrap_or_default(),
            reattach: raw.reattach,
        };
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
    use super::*;

    const GOOD: &str = r#"
        name = "greeter"
        mechanism = "exec"
        path = "bin/greeter"
        interface = "outlet.examples.greeter.v1.Greeter"
        proto = "greeter.proto"
        trust = "tight"
        [limits]
        timeout_ms = 250
        memory_mb = 64
        [permissions]
        env = { LANG = "C" }
        [config]
        greeting = "Hi"
        retries = 3
    "#;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("plugins/greeter.toml"))
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

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
    fn an_rpc_plugin_can_be_attached_to_instead_of_started() {
        let attached = r#"
            name = "remote"
            mechanism = "rpc"
            interface = "outlet.examples.greeter.v1.Greeter"
            trust = "open"
            [reattach]
            address = "/tmp/plugin-remote"
            pid = 4242
        "#;
        let m = parse(attached).unwrap();
        let reattach = m.reattach.as_ref().unwrap();
        assert_eq!(
            (reattach.network.as_str(), reattach.pid),
            ("unix", Some(4242))
        );
        assert_eq!(m.path, PathBuf::new());
        assert!(m.verify_artifact().is_ok(), "nothing to pin or read");

        let cases = [
            (attached.replace("\"rpc\"", "\"exec\""), "field `reattach`"),
            (
                attached.replace("trust = \"open\"", "trust = \"open\"\npath = \"bin/x\""),
                "field `path`",
            ),
            (
                attached.replace("address =", "network = \"udp\"\naddress ="),
                "field `reattach.network`",
            ),
            (
                attached.replace("address =", "network = \"tcp\"\naddress ="),
                "field `reattach.pid`",
            ),
            (
                attached.replace("/tmp/plugin-remote", ""),
                "field `reattach.address`",
            ),
            (
                attached.replace("[reattach]", "[handshake]\nauto_mtls = true\n[reattach]"),
                "field `handshake`",
            ),
            (
                attached.split("[reattach]").next().unwrap().to_owned(),
                "field `path`",
            ),
        ];
        for (text, field) in cases {
            let message = error(&text);
            assert!(message.contains(field), "{field}: {message}");
        }
    }

    #[test]
    fn invalid_fields_name_the_field_and_the_fix() {
        let cases = [
            (
                GOOD.replace("\"greeter\"\n", "\"my plugin\"\n"),
                "field `name`",
            ),
            (
                GOOD.replace("outlet.examples.greeter.v1.Greeter", "Greeter"),
                "field `interface`",
            ),
            (
                GOOD.replace("timeout_ms = 250", "timeout_ms = 0"),
                "field `limits.timeout_ms`",
            ),
            (
                GOOD.replace("memory_mb = 64", "memory_mb = 0"),
                "field `limits.memory_mb`",
            ),
            (
                GOOD.replace("trust = \"tight\"", "trust = \"tight\"\nversions = []"),
                "field `versions`",
            ),
            (
                GOOD.replace("trust = \"tight\"", "trust = \"tight\"\nsha256 = \"abc\""),
                "field `sha256`",
            ),
            (
                GOOD.replace("retries = 3", "nested = { a = 1 }"),
                "field `config`",
            ),
        ];
        for (text, field) in cases {
            let message = error(&text);
            assert!(message.starts_with("plugins/greeter.toml: "), "{message}");
            assert!(message.contains(field), "{field}: {message}");
        }
    }

    #[test]
    fn sandbox_grants_resolve_for_wasm_and_are_refused_elsewhere() {
        let wasm = GOOD.replace("\"exec\"", "\"wasm\"").replace(
            "env = { LANG = \"C\" }",
            "env = { LANG = \"C\" }\nclock = true\n\
             dirs = [{ host = \"data\", guest = \"/data\", write = true }, \
             { host = \"/etc/ssl\", guest = \"/ssl\" }]",
        );
        let m = parse(&wasm).unwrap();
        assert!(m.permissions.clock && !m.permissions.random);
        let dirs: Vec<_> = m
            .permissions
            .dirs
            .iter()
            .map(|d| (d.host.to_str().unwrap(), d.guest.as_str(), d.write))
            .collect();
        assert_eq!(
            dirs,
            [("plugins/data", "/data", true), ("/etc/ssl", "/ssl", false)]
        );

        let exec = error(&GOOD.replace("env = { LANG = \"C\" }", "random = true"));
        assert!(
            exec.contains("field `permissions`") && exec.contains("mechanism = \"wasm\""),
            "{exec}"
        );
        let relative = error(&wasm.replace("guest = \"/data\"", "guest = \"data\""));
        assert!(relative.contains("field `permissions.dirs`"), "{relative}");
    }

    #[test]
    fn the_trust_policy_is_checked_at_parse() {
        let native = GOOD
            .replace("\"exec\"", "\"native\"")
            .replace("\"tight\"", "\"untrusted\"");
        let text = error(&native);
        assert!(
            text.contains("plugin `greeter` is refused by the trust policy"),
            "{text}"
        );
        assert!(
            text.contains("allows only wasm, exec, not `native`"),
            "{text}"
        );

        let rpc = GOOD
            .replace("\"exec\"", "\"rpc\"")
            .replace("\"tight\"", "\"untrusted\"");
        assert!(error(&rpc).contains("not `rpc`"));

        let open = GOOD
            .replace("\"exec\"", "\"rpc\"")
            .replace("\"tight\"", "\"open\"");
        let text = error(&open);
        assert!(
            text.contains("must pin its artifact with `sha256`"),
            "{text}"
        );
        assert!(text.contains("sha256sum plugins/bin/greeter"), "{text}");

        let pinned = open.replace(
            "[limits]",
            &format!("sha256 = \"{}\"\n[limits]", "ab".repeat(32)),
        );
        assert_eq!(parse(&pinned).unwrap().mechanism, Mechanism::Rpc);
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
