//! The rules a manifest follows beyond the types of its fields: one check per
//! section, run in a fixed order, the first broken rule reported with its fix.
//! The trust policy is checked after these, on the resolved [`crate::Manifest`].

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::QUOTED;
use crate::raw::Raw;
use crate::{Handshake, Limits, ManifestError, Mechanism, Reattach, Trust};

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
        problem: crate::error::cut(broken.problem, QUOTED),
        fix: crate::error::cut(broken.fix, QUOTED),
    })
}

fn sections(raw: &Raw) -> Result<(), Broken> {
    name(&raw.name)?;
    paths(raw)?;
    artifact(raw)?;
    interface(&raw.interface, &raw.versions)?;
    sha256(raw.sha256.as_deref())?;
    handshake(raw.mechanism, raw.handshake.as_ref())?;
    limits(&raw.limits)?;
    permissions(raw)?;
    config(&raw.config)
}

/// The longest plugin name: names are in every message about the plugin.
const NAME: usize = 64;

/// `name`: letters, digits, `-` and `_`, at most [`NAME`] of them.
fn name(name: &str) -> Result<(), Broken> {
    let valid = !name.is_empty()
        && name.len() <= NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(Broken::new(
            "name",
            format!("{name:?} is not a plugin name"),
            format!("use letters, digits, `-` and `_` only, at most {NAME} of them"),
        ));
    }
    Ok(())
}

/// The longest path a manifest may name: the kernel's own limit.
const PATH: usize = 4096;

/// Every path the manifest names: at most [`PATH`] bytes, since errors
/// quote them.
fn paths(raw: &Raw) -> Result<(), Broken> {
    let permissions = &raw.permissions;
    let reattach = raw.reattach.as_ref();
    let named = [
        ("path", Some(&raw.path)),
        ("proto", raw.proto.as_ref()),
        ("signature", raw.signature.as_ref()),
    ]
    .into_iter()
    .chain(
        permissions
            .dirs
            .iter()
            .map(|d| ("permissions.dirs", Some(&d.host))),
    )
    .chain(
        permissions
            .programs
            .iter()
            .map(|p| ("permissions.programs", Some(p))),
    )
    .chain(reattach.map(|r| ("reattach.client_cert", r.client_cert.as_ref())))
    .chain(reattach.map(|r| ("reattach.client_key", r.client_key.as_ref())));
    for (field, path) in named {
        if let Some(path) = path.filter(|p| p.as_os_str().len() > PATH) {
            return Err(Broken::new(
                field,
                format!("names a path of {} bytes", path.as_os_str().len()),
                format!("name a path of at most {PATH} bytes"),
            ));
        }
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
    let given = [
        ("path", !raw.path.as_os_str().is_empty()),
        ("sha256", raw.sha256.is_some()),
        ("signature", raw.signature.is_some()),
    ];
    if let Some((field, _)) = given.into_iter().find(|(_, given)| *given) {
        return Err(Broken::new(
            field,
            "is given, and so is `[reattach]`: the host does not start an attached \
             plugin",
            "remove `path`, `sha256` and `signature`, or `[reattach]` to have the host start it",
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
    pinned(reattach)?;
    if reattach.network == "tcp" {
        reattached_tcp(reattach)?;
    }
    Ok(())
}

/// `reattach.cert_sha256`, `client_cert` and `client_key`: all three or
/// none, the first 64 hex digits.
fn pinned(reattach: &Reattach) -> Result<(), Broken> {
    let Some(pin) = &reattach.cert_sha256 else {
        if reattach.client_cert.is_some() || reattach.client_key.is_some() {
            return Err(Broken::new(
                "reattach.client_cert",
                "is given without `reattach.cert_sha256`: the host presents a certificate \
                 only over TLS, and talks TLS only to a plugin whose certificate it pins",
                "add `cert_sha256`, the SHA-256 of the plugin's certificate, or remove \
                 `client_cert` and `client_key`",
            ));
        }
        return Ok(());
    };
    if pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Broken::new(
            "reattach.cert_sha256",
            format!("{pin:?} is not a SHA-256 in hex"),
            "write the 64 hex digits of the SHA-256 of the plugin's certificate (DER), e.g. \
             `openssl x509 -outform der -in plugin.pem | sha256sum`",
        ));
    }
    if reattach.client_cert.is_none() || reattach.client_key.is_none() {
        return Err(Broken::new(
            "reattach.client_cert",
            "is missing: with `cert_sha256` the host talks mutual TLS, and presents the \
             certificate the plugin trusts (its `PLUGIN_CLIENT_CERT`)",
            "add `client_cert` and `client_key`, PEM files of that certificate and its key",
        ));
    }
    Ok(())
}

/// `reattach.address` over TCP: `host:port`, and a loopback address unless
/// the plugin's certificate is pinned.
fn reattached_tcp(reattach: &Reattach) -> Result<(), Broken> {
    let address = &reattach.address;
    let loopback = match address.parse::<std::net::SocketAddr>() {
        Ok(socket) => socket.ip().is_loopback(),
        Err(_) => {
            let port = address
                .rsplit_once(':')
                .map(|(_, port)| port.parse::<u16>());
            if !matches!(port, Some(Ok(_))) {
                return Err(Broken::new(
                    "reattach.address",
                    format!("{address:?} is not a TCP address"),
                    "write `host:port`, as in the plugin's handshake line, e.g. \
                     `127.0.0.1:10000`",
                ));
            }
            false
        }
    };
    if !loopback && reattach.cert_sha256.is_none() {
        return Err(Broken::new(
            "reattach.address",
            format!(
                "is {address:?}, not a loopback address, and no `reattach.cert_sha256` pins \
                 the plugin's certificate: whoever answers there would get the plugin's \
                 config and every call"
            ),
            "attach over 127.0.0.1 or [::1], or pin the plugin's certificate with \
             `cert_sha256`, `client_cert` and `client_key`",
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
    let valid = interface.len() <= 256
        && interface.split('.').count() >= 2
        && interface.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if !valid {
        return Err(Broken::new(
            "interface",
            format!("{interface:?} is not a protobuf service name"),
            "write the service's full name, `package.Service`, in at most 256 characters",
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
    if handshake.network == "tcp" && !handshake.auto_mtls {
        return Err(Broken::new(
            "handshake.network",
            "is \"tcp\" without `auto_mtls = true`: any local user can connect to a TCP \
             port, and would be answered as the host is",
            "add `auto_mtls = true` under [handshake], or remove `network` to have the plugin \
             listen on a Unix socket in its private folder",
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
    if limits.health_interval_ms.is_some_and(|ms| ms < 10) {
        return Err(Broken::new(
            "limits.health_interval_ms",
            "is under 10 ms, which would keep the plugin busy answering",
            "check every second or so, e.g. `health_interval_ms = 1000`",
        ));
    }
    if limits.health_failures == 0 {
        return Err(Broken::new(
            "limits.health_failures",
            "is 0",
            "give the failed checks in a row that restart the plugin, e.g. \
             `health_failures = 3`, or remove it",
        ));
    }
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
                format!(
                    "remove `{field}` (no limit in-process, the host's default below), or raise it"
                ),
            ));
        }
    }
    Ok(())
}

/// `[permissions]` and `sandbox`: each grant only where the mechanism
/// enforces it, and `sandbox` only where the host starts a process.
fn permissions(raw: &Raw) -> Result<(), Broken> {
    let (mechanism, permissions) = (raw.mechanism, &raw.permissions);
    sandbox(raw)?;
    if mechanism != Mechanism::Wasm && (permissions.clock || permissions.random) {
        return Err(Broken::new(
            "permissions",
            format!(
                "`clock` and `random` are granted inside a wasm sandbox; a {mechanism} plugin \
                 reads the clocks and random numbers of the kernel"
            ),
            "remove them, or run the plugin as `mechanism = \"wasm\"`",
        ));
    }
    let confined = match mechanism {
        Mechanism::Wasm => true,
        Mechanism::Exec | Mechanism::Rpc => raw.reattach.is_none() && raw.sandboxed(),
        Mechanism::Native | Mechanism::Cabi => false,
    };
    if !confined && !permissions.dirs.is_empty() {
        return Err(Broken::new(
            "permissions.dirs",
            format!(
                "folders are granted to a plugin that is confined, and this {mechanism} plugin \
                 is not: it reaches every folder the host's user can"
            ),
            unconfined_fix(mechanism),
        ));
    }
    for grant in &permissions.dirs {
        match (&grant.guest, mechanism) {
            (Some(guest), Mechanism::Wasm)
                if guest.starts_with('/') && !guest.split('/').any(|p| p == "..") => {}
            (guest, Mechanism::Wasm) => {
                return Err(Broken::new(
                    "permissions.dirs",
                    format!(
                        "guest path {:?} is not an absolute path",
                        guest.as_deref().unwrap_or("")
                    ),
                    "give where the plugin sees the folder, e.g. `guest = \"/data\"`",
                ));
            }
            (Some(guest), _) => {
                return Err(Broken::new(
                    "permissions.dirs",
                    format!(
                        "`guest = {guest:?}` says where a wasm plugin sees a folder; a \
                         {mechanism} process sees it at its path on the host"
                    ),
                    "remove `guest`",
                ));
            }
            (None, _) => {}
        }
    }
    if permissions.grants_process_access() && !(mechanism.is_process() && confined) {
        return Err(Broken::new(
            "permissions",
            format!(
                "`network`, `programs` and `processes` are enforced by the OS sandbox of an \
                 exec or rpc process, and this {mechanism} plugin {}",
                if mechanism.is_process() {
                    "runs without it"
                } else {
                    "is not one"
                }
            ),
            if mechanism.is_process() {
                unconfined_fix(mechanism)
            } else {
                "remove them".into()
            },
        ));
    }
    if !permissions.call.is_empty() && mechanism == Mechanism::Exec {
        return Err(Broken::new(
            "permissions.call",
            "an exec plugin has no way to call through the host: its one request waits on \
             its stdin, which the host closes once it is written",
            "remove `call`, or run the plugin as rpc, which can call back",
        ));
    }
    for grant in &permissions.call {
        if !call_grant(grant) {
            return Err(Broken::new(
                "permissions.call",
                format!("{grant:?} is not `package.Service/Method` or `package.Service/*`"),
                "name each method the plugin may call through the host, e.g. \
                 \"proto.KV/Get\", or a whole service, \"proto.KV/*\"",
            ));
        }
    }
    for endpoint in &permissions.network.connect {
        if let Err(problem) = crate::permissions::port_of(endpoint) {
            return Err(Broken::new(
                "permissions.network.connect",
                format!("{endpoint:?} {problem}"),
                "write each as `host:port`, e.g. \"127.0.0.1:5432\" or \"[::1]:5432\"",
            ));
        }
    }
    if permissions.processes == Some(0) {
        return Err(Broken::new(
            "permissions.processes",
            "0 processes leaves none for the plugin itself",
            "give at least 1, counting each thread",
        ));
    }
    Ok(())
}

/// Whether `grant` is `package.Service/Method` or `package.Service/*`.
fn call_grant(grant: &str) -> bool {
    grant
        .split_once('/')
        .is_some_and(|(service, method)| crate::call_grant_parts(service, method))
}

/// How to grant access to a plugin that is not confined.
fn unconfined_fix(mechanism: Mechanism) -> String {
    match mechanism {
        Mechanism::Exec | Mechanism::Rpc => {
            "set `sandbox = true` (a plugin the host attaches to cannot be), or remove them".into()
        }
        _ => format!(
            "remove them: a {mechanism} plugin runs in the host's process; or run it as \
             `mechanism = \"wasm\"`, `\"exec\"` or `\"rpc\"`"
        ),
    }
}

/// `sandbox`: only for a process the host starts, and never `false` for
/// `sandboxed` trust.
fn sandbox(raw: &Raw) -> Result<(), Broken> {
    if raw.trust == Trust::Sandboxed && raw.reattach.is_some() {
        return Err(Broken::new(
            "reattach",
            "the host attaches to this plugin's process and did not start it, so no sandbox \
             holds it, and trust = \"sandboxed\" runs only in the sandbox",
            "let the host start the plugin (remove `[reattach]`), or raise `trust` if the host \
             allows it",
        ));
    }
    let Some(asked) = raw.sandbox else {
        return Ok(());
    };
    let mechanism = raw.mechanism;
    if !mechanism.is_process() {
        return Err(Broken::new(
            "sandbox",
            if mechanism == Mechanism::Wasm {
                "a wasm plugin always runs in wasmtime's sandbox".to_owned()
            } else {
                format!(
                    "a {mechanism} plugin runs in the host's process, which no sandbox confines"
                )
            },
            "remove `sandbox`",
        ));
    }
    if raw.reattach.is_some() && asked {
        return Err(Broken::new(
            "sandbox",
            "the host attaches to this plugin's process (`reattach`) and did not start it, so it \
             cannot confine it",
            "remove `sandbox`, or let the host start the plugin (remove `[reattach]`)",
        ));
    }
    if raw.trust == Trust::Sandboxed && !asked {
        return Err(Broken::new(
            "sandbox",
            "trust = \"sandboxed\" always runs in the sandbox",
            "remove `sandbox = false`, or raise `trust` if the host allows it",
        ));
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
    fn tcp_is_refused_without_mutual_tls() {
        let rpc = r#"
            name = "tcp"
            mechanism = "rpc"
            path = "bin/tcp"
            interface = "outlet.examples.greeter.v1.Greeter"
            trust = "out-of-process"
            sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
            [handshake]
            network = "tcp"
        "#;
        let message = error(rpc);
        assert!(
            message.contains("field `handshake.network`")
                && message.contains("without `auto_mtls = true`")
                && message.contains("add `auto_mtls = true`"),
            "{message}"
        );
        let m = parse(&rpc.replace("network = \"tcp\"", "network = \"tcp\"\nauto_mtls = true"))
            .unwrap();
        assert_eq!(
            (m.handshake.network.as_str(), m.handshake.auto_mtls),
            ("tcp", true)
        );
    }

    #[test]
    fn reattach_over_tcp_is_to_loopback_or_to_a_pinned_certificate() {
        let attached = |reattach: &str| {
            format!(
                "name = \"remote\"\nmechanism = \"rpc\"\n\
                 interface = \"outlet.examples.greeter.v1.Greeter\"\n\
                 trust = \"out-of-process\"\n[reattach]\nnetwork = \"tcp\"\n{reattach}\n"
            )
        };
        for address in ["127.0.0.1:10000", "[::1]:10000", "127.0.0.2:1"] {
            parse(&attached(&format!("address = {address:?}"))).unwrap();
        }
        let pin =
            "cert_sha256 = \"ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\"";
        let files = "client_cert = \"host.pem\"\nclient_key = \"host.key\"";
        let m = parse(&attached(&format!(
            "address = \"plugins.example:4000\"\n{pin}\n{files}"
        )))
        .unwrap();
        let reattach = m.reattach.unwrap();
        assert_eq!(
            reattach.client_cert.as_deref(),
            Some(std::path::Path::new("plugins/host.pem"))
        );
        assert_eq!(
            reattach.client_key.as_deref(),
            Some(std::path::Path::new("plugins/host.key"))
        );

        let cases = [
            (
                "address = \"10.1.2.3:4000\"".to_owned(),
                "field `reattach.address`",
                "not a loopback address",
            ),
            (
                "address = \"plugins.example:4000\"".to_owned(),
                "field `reattach.address`",
                "cert_sha256",
            ),
            (
                "address = \"127.0.0.1\"".to_owned(),
                "field `reattach.address`",
                "not a TCP address",
            ),
            (
                format!("address = \"10.1.2.3:4000\"\n{pin}"),
                "field `reattach.client_cert`",
                "is missing",
            ),
            (
                format!("address = \"127.0.0.1:4000\"\n{files}"),
                "field `reattach.client_cert`",
                "without `reattach.cert_sha256`",
            ),
            (
                format!("address = \"10.1.2.3:4000\"\ncert_sha256 = \"abc\"\n{files}"),
                "field `reattach.cert_sha256`",
                "not a SHA-256",
            ),
        ];
        for (reattach, field, problem) in cases {
            let message = error(&attached(&reattach));
            assert!(
                message.contains(field) && message.contains(problem),
                "{reattach}: {message}"
            );
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
            .map(|d| {
                (
                    d.host.to_str().unwrap(),
                    d.guest.as_deref().unwrap(),
                    d.write,
                )
            })
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
        // Calls through the host, by method (a package is optional) or service.
        let calling = parse(&wasm.replace(
            "clock = true",
            "clock = true\ncall = [\"Greeter/Greet\", \"proto.KV/*\"]",
        ))
        .unwrap();
        assert_eq!(calling.permissions.call, ["Greeter/Greet", "proto.KV/*"]);
        let unplaced = error(&wasm.replace(", guest = \"/data\"", ""));
        assert!(unplaced.contains("guest path \"\""), "{unplaced}");
    }

    /// An exec manifest at `trust`, with `extra` added to `[permissions]`
    /// and `top` before it.
    fn process(trust: &str, top: &str, extra: &str) -> String {
        GOOD.replace(
            "\"in-process\"",
            &format!("{trust:?}\nsha256 = \"{}\"\n{top}", "ab".repeat(32)),
        )
        .replace(
            "env = { LANG = \"C\" }",
            &format!("env = {{ LANG = \"C\" }}\n{extra}"),
        )
    }

    #[test]
    fn the_sandbox_is_on_by_trust_and_off_only_where_allowed() {
        for (trust, top, on) in [
            ("sandboxed", "", true),
            ("out-of-process", "", true),
            ("out-of-process", "sandbox = false", false),
            ("in-process", "", false),
            ("in-process", "sandbox = true", true),
        ] {
            let m = parse(&process(trust, top, "")).unwrap();
            assert_eq!(m.sandbox, on, "{trust} {top}");
        }
        let refused = error(&process("sandboxed", "sandbox = false", ""));
        assert!(
            refused.contains("field `sandbox`") && refused.contains("always runs in the sandbox"),
            "{refused}"
        );
        let wasm =
            error(&process("sandboxed", "sandbox = true", "").replace("\"exec\"", "\"wasm\""));
        assert!(wasm.contains("wasmtime's sandbox"), "{wasm}");
        let native = parse(&GOOD.replace("\"exec\"", "\"native\"")).unwrap();
        assert!(!native.sandbox);
    }

    #[test]
    fn process_grants_parse_and_need_the_sandbox() {
        let grants = "dirs = [{ host = \"data\", write = true }]\n\
                      network = { connect = [\"127.0.0.1:5432\", \"[::1]:80\", \"db.local:6379\"] }\n\
                      programs = [\"/usr/bin/id\", \"tools/convert\"]\nprocesses = 8";
        let m = parse(&process("sandboxed", "", grants)).unwrap();
        let p = &m.permissions;
        assert_eq!(p.dirs[0].host, std::path::Path::new("plugins/data"));
        assert_eq!(
            p.network.connect_ports().into_iter().collect::<Vec<_>>(),
            [80, 5432, 6379]
        );
        assert!(!p.network.listen);
        assert_eq!(p.programs[1], std::path::Path::new("plugins/tools/convert"));
        assert_eq!(p.processes, Some(8));

        let cases = [
            (
                process("in-process", "", grants),
                "field `permissions.dirs`",
                "sandbox = true",
            ),
            (
                process("out-of-process", "sandbox = false", "processes = 4"),
                "field `permissions`",
                "sandbox = true",
            ),
            (
                process("sandboxed", "", "dirs = [{ host = \"d\", guest = \"/d\" }]"),
                "field `permissions.dirs`",
                "remove `guest`",
            ),
            (
                process("sandboxed", "", "network = { connect = [\"127.0.0.1\"] }"),
                "permissions.network.connect",
                "host:port",
            ),
            (
                process("sandboxed", "", "network = { connect = [\"127.0.0.1:0\"] }"),
                "permissions.network.connect",
                "1 to 65535",
            ),
            (
                process("sandboxed", "", "network = { connect = [\":80\"] }"),
                "permissions.network.connect",
                "no host",
            ),
            (
                process("sandboxed", "", "processes = 0"),
                "permissions.processes",
                "at least 1",
            ),
            (
                process("sandboxed", "", "call = [\"proto.KV/Get\"]"),
                "permissions.call",
                "run the plugin as rpc, which can call back",
            ),
            (
                process("sandboxed", "", "call = [\"proto.KV/Get\"]")
                    .replace("\"exec\"", "\"wasm\"")
                    .replace("call = [\"proto.KV/Get\"]", "call = [\"proto.KV.Get\"]"),
                "permissions.call",
                "e.g. \"proto.KV/Get\"",
            ),
            (
                process("sandboxed", "", "")
                    .replace("\"exec\"", "\"rpc\"")
                    .replace("path = \"bin/greeter\"", "")
                    .replace(&format!("sha256 = \"{}\"", "ab".repeat(32)), "")
                    .replace(
                        "[limits]",
                        "[reattach]\naddress = \"/tmp/p.sock\"\n[limits]",
                    ),
                "field `reattach`",
                "remove `[reattach]`",
            ),
            (
                process("sandboxed", "", "network = { listen = true }")
                    .replace("\"exec\"", "\"wasm\""),
                "field `permissions`",
                "remove them",
            ),
        ];
        for (text, field, fix) in cases {
            let message = error(&text);
            assert!(
                message.contains(field) && message.contains(fix),
                "{field}: {message}"
            );
        }
    }
}
