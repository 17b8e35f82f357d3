//! The rules a manifest follows beyond the types of its fields: one check per
//! section, run in a fixed order, the first broken rule reported with its fix.
//! The trust policy is checked after these, on the resolved [`crate::Manifest`].

use std::collections::BTreeMap;
use std::path::Path;

use crate::raw::Raw;
use crate::{Handshake, Limits, ManifestError, Mechanism, Permissions, Reattach};

/// A broken rule, before the file it is in is attached.
struct Broken {
    field: &'static str,
    problem: String,
    fix: String,
}

impl Broken {
    fn new(field: &'static str, problem: impl Into<String>, fix: impl Into<String>) -> Broken {
        Broken {
            field,
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// Checks every section of `raw`, read from `file`.
///
/// # Errors
/// [`ManifestError::Invalid`] for the first field that breaks a rule.
pub(crate) fn check(raw: &Raw, file: &Path) -> Result<(), ManifestError> {
    sections(raw).map_err(|broken| ManifestError::Invalid {
        file: file.to_owned(),
        field: broken.field,
        problem: broken.problem,
        fix: broken.fix,
    })
}

fn sections(raw: &Raw) -> Result<(), Broken> {
    name(&raw.name)?;
    artifact(raw)?;
    interface(&raw.interface, &raw.versions)?;
    sha256(raw.sha256.as_deref())?;
    handshake(raw.mechanism, raw.handshake.as_ref())?;
    limits(&raw.limits)?;
    permissions(raw.mechanism, &raw.permissions)?;
    config(&raw.config)
}

/// `name`: letters, digits, `-` and `_`.
fn name(name: &str) -> Result<(), Broken> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(Broken::new(
            "name",
            format!("{name:?} is not a plugin name"),
            "use letters, digits, `-` and `_` only",
        ));
    }
    Ok(())
}

/// `path`, or `[reattach]` in its place: the host starts the one, attaches
/// to the other.
fn artifact(raw: &Raw) -> Result<(), Broken> {
    match &raw.reattach {
        Some(reattach) => attached(raw, reattach),
        None if raw.path.as_os_str().is_empty() => Err(Broken::new(
            "path",
            "is empty",
            "name the plugin's artifact, relative to the manifest's folder",
        )),
        None => Ok(()),
    }
}

/// `[reattach]`: an rpc plugin with no artifact here, reached where and as
/// it already listens.
fn attached(raw: &Raw, reattach: &Reattach) -> Result<(), Broken> {
    if raw.mechanism != Mechanism::Rpc {
        return Err(Broken::new(
            "reattach",
            format!(
                "is go-plugin's reattach, which only an rpc plugin has; this one is {}",
                raw.mechanism
            ),
            "remove `[reattach]`, or run the plugin as `mechanism = \"rpc\"`",
        ));
    }
    if !raw.path.as_os_str().is_empty() || raw.sha256.is_some() {
        return Err(Broken::new(
            "path",
            "is given, and so is `[reattach]`: the host does not start an attached \
             plugin",
            "remove `path` and `sha256`, or `[reattach]` to have the host start it",
        ));
    }
    network("reattach.network", &reattach.network)?;
    if reattach.address.is_empty() {
        return Err(Broken::new(
            "reattach.address",
            "is empty",
            "write the address from the plugin's handshake line",
        ));
    }
    if raw
        .handshake
        .as_ref()
        .is_some_and(|h| h.auto_mtls || h.network != "unix")
    {
        return Err(Broken::new(
            "handshake",
            "asks for TLS or TCP, and the plugin is attached to: it listens where it \
             already does, as it already does",
            "remove `auto_mtls` and `network` from `[handshake]`",
        ));
    }
    if reattach.network == "tcp" && reattach.pid.is_some() {
        return Err(Broken::new(
            "reattach.pid",
            "is given for a TCP address, where the host cannot tell which process \
             listens",
            "remove `pid`: a plugin reached over TCP is never signalled",
        ));
    }
    Ok(())
}

/// A `network` field: `unix` or `tcp`.
fn network(field: &'static str, network: &str) -> Result<(), Broken> {
    if !matches!(network, "unix" | "tcp") {
        return Err(Broken::new(
            field,
            format!("is {network:?}"),
            "write \"unix\" or \"tcp\"",
        ));
    }
    Ok(())
}

/// `interface`, a protobuf service's full name, and the `versions` of it
/// the host accepts.
fn interface(interface: &str, versions: &[u32]) -> Result<(), Broken> {
    let valid = interface.split('.').count() >= 2
        && interface.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if !valid {
        return Err(Broken::new(
            "interface",
            format!("{interface:?} is not a protobuf service name"),
            "write the service's full name, `package.Service`",
        ));
    }
    if versions.is_empty() || versions.contains(&0) {
        return Err(Broken::new(
            "versions",
            format!("{versions:?} is not a list of interface versions"),
            "list the versions the host accepts, each 1 or more, e.g. `versions = [1]`",
        ));
    }
    Ok(())
}

/// `sha256`: 64 hex digits, when given.
fn sha256(sha256: Option<&str>) -> Result<(), Broken> {
    if let Some(sha) = sha256
        && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(Broken::new(
            "sha256",
            format!("{sha:?} is not a SHA-256 in hex"),
            "write the 64 hex digits that `sha256sum <artifact>` prints",
        ));
    }
    Ok(())
}

/// `[handshake]`: rpc only, with a network and a cookie name that work.
fn handshake(mechanism: Mechanism, handshake: Option<&Handshake>) -> Result<(), Broken> {
    let Some(handshake) = handshake else {
        return Ok(());
    };
    network("handshake.network", &handshake.network)?;
    if mechanism != Mechanism::Rpc {
        return Err(Broken::new(
            "handshake",
            format!(
                "is go-plugin's handshake, which only an rpc plugin makes; this one is {mechanism}"
            ),
            "remove `[handshake]`, or run the plugin as `mechanism = \"rpc\"`",
        ));
    }
    let key = &handshake.magic_cookie_key;
    if key.is_empty() || key.contains(['=', '\0']) {
        return Err(Broken::new(
            "handshake.magic_cookie_key",
            format!("{key:?} is not an environment variable name"),
            "use the key the plugin's HandshakeConfig names, e.g. `BASIC_PLUGIN`",
        ));
    }
    Ok(())
}

/// `[limits]`: no time limit of 0, and no other limit of 0 either (leaving
/// it out means no limit).
fn limits(limits: &Limits) -> Result<(), Broken> {
    for (field, value) in [
        ("limits.timeout_ms", limits.timeout_ms),
        ("limits.start_timeout_ms", limits.start_timeout_ms),
    ] {
        if value == 0 {
            return Err(Broken::new(
                field,
                "is 0",
                format!("give it at least 1 ms, e.g. `{field} = 2000`, or remove it"),
            ));
        }
    }
    for (field, value) in [
        ("limits.memory_mb", limits.memory_mb),
        ("limits.cpu_seconds", limits.cpu_seconds),
        ("limits.open_files", limits.open_files),
        ("limits.fuel", limits.fuel),
    ] {
        if value == Some(0) {
            return Err(Broken::new(
                field,
                "is 0",
                format!("remove `{field}` for no limit, or raise it"),
            ));
        }
    }
    Ok(())
}

/// `[permissions]`: the sandbox's grants only for wasm, each folder at an
/// absolute path inside the sandbox.
fn permissions(mechanism: Mechanism, permissions: &Permissions) -> Result<(), Broken> {
    let grants = !permissions.dirs.is_empty() || permissions.clock || permissions.random;
    if mechanism != Mechanism::Wasm && grants {
        return Err(Broken::new(
            "permissions",
            format!(
                "`dirs`, `clock` and `random` are granted inside a wasm sandbox, and a \
                 {mechanism} plugin has none: it reaches what the host's user can"
            ),
            "remove them, or run the plugin as `mechanism = \"wasm\"`",
        ));
    }
    for grant in &permissions.dirs {
        if !grant.guest.starts_with('/') || grant.guest.split('/').any(|p| p == "..") {
            return Err(Broken::new(
                "permissions.dirs",
                format!("guest path {:?} is not an absolute path", grant.guest),
                "give where the plugin sees the folder, e.g. `guest = \"/data\"`",
            ));
        }
    }
    Ok(())
}

/// `[config]`: flat, each value a string, number or boolean.
fn config(config: &BTreeMap<String, toml::Value>) -> Result<(), Broken> {
    for (key, value) in config {
        match value {
            toml::Value::String(_)
            | toml::Value::Integer(_)
            | toml::Value::Float(_)
            | toml::Value::Boolean(_) => {}
            other => {
                return Err(Broken::new(
                    "config",
                    format!(
                        "`{key}` is a {}, and config values are flat",
                        other.type_str()
                    ),
                    "give each config key a string, number or boolean",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::testing::{GOOD, error, parse};

    #[test]
    fn an_rpc_plugin_can_be_attached_to_instead_of_started() {
        let attached = r#"
            name = "remote"
            mechanism = "rpc"
            interface = "outlet.examples.greeter.v1.Greeter"
            trust = "out-of-process"
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
                attached.replace(
                    "trust = \"out-of-process\"",
                    "trust = \"out-of-process\"\npath = \"bin/x\"",
                ),
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
                GOOD.replace(
                    "trust = \"in-process\"",
                    "trust = \"in-process\"\nversions = []",
                ),
                "field `versions`",
            ),
            (
                GOOD.replace(
                    "trust = \"in-process\"",
                    "trust = \"in-process\"\nsha256 = \"abc\"",
                ),
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
}
