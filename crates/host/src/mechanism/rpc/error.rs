//! [`RpcError`]: why an rpc plugin could not be started or reached, and
//! [`ProcessExit`]: how its process ended.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::log::stderr_clause as said;
use outlet_protocol::Status;
use outlet_rpc::HandshakeError;
use outlet_rpc::tls::TlsError;

/// Why an rpc plugin could not be started, attached to, or reached; inside
/// [`LoadError::Rpc`](crate::LoadError::Rpc), which names the plugin. The
/// message says what went wrong and what to do, and quotes the end of the
/// plugin's stderr where it has one (the `stderr` fields: the text itself,
/// empty when it wrote nothing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// Its OS sandbox cannot be built for this start.
    #[error(transparent)]
    Sandbox(crate::process::sandbox::SandboxError),
    /// The private folder for the plugin's socket cannot be made.
    #[error(
        "cannot make a private folder for its socket: {error}; set TMPDIR to a folder this \
         user can write"
    )]
    SocketFolder {
        /// Why.
        error: io::Error,
    },
    /// The private folder for the host's socket, offered to a plugin the
    /// host attaches to, cannot be made.
    #[error(
        "cannot make a private folder for the host's socket: {error}; set TMPDIR to a folder \
         this user can write"
    )]
    HostSocketFolder {
        /// Why.
        error: io::Error,
    },
    /// The plugin's program cannot be started.
    #[error("cannot start {}: {error}", program.display())]
    Spawn {
        /// The program, the manifest's `path`.
        program: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The plugin's program, checked again before a restart, is refused:
    /// it is gone, or no longer a regular file, or no longer matches
    /// `sha256`. The program found is not started.
    #[error("its program was checked again before starting it, and refused: {error}")]
    Artifact {
        /// Why, naming the plugin, the path and the fix.
        error: Box<outlet_manifest::ManifestError>,
    },
    /// A thread the host needs for the plugin cannot be started.
    #[error("cannot {purpose}: {error}")]
    Thread {
        /// What the thread is for.
        purpose: &'static str,
        /// Why.
        error: io::Error,
    },
    /// No handshake line on stdout within the start timeout; the plugin
    /// was killed.
    #[error(
        "it printed no handshake line within {} ms (limits.start_timeout_ms); it was \
         killed{}",
        timeout.as_millis(),
        said(stderr)
    )]
    NoHandshake {
        /// `limits.start_timeout_ms`.
        timeout: Duration,
        /// The end of its stderr.
        stderr: String,
    },
    /// The process ended (or closed its stdout) before its handshake line.
    #[error(
        "it {} before printing its handshake line{}",
        ended(exit.as_ref()),
        said(stderr)
    )]
    EndedBeforeHandshake {
        /// How it ended; `None` if it closed its stdout and was still
        /// running a second later.
        exit: Option<ProcessExit>,
        /// The end of its stderr.
        stderr: String,
    },
    /// The process ended before its handshake line, saying it was run by
    /// hand: the magic cookie it expects is not the manifest's.
    #[error(
        "it {} before printing its handshake line{}; the magic cookie it expects differs from \
         the manifest's [handshake]",
        ended(exit.as_ref()),
        said(stderr)
    )]
    Cookie {
        /// How it ended, as for [`RpcError::EndedBeforeHandshake`].
        exit: Option<ProcessExit>,
        /// The end of its stderr, which says it is a plugin.
        stderr: String,
    },
    /// The first line on stdout is not a handshake Outlet can use; the
    /// plugin was killed.
    #[error("{error}; it was killed{}", said(stderr))]
    Handshake {
        /// What is wrong with the line, which it quotes.
        error: HandshakeError,
        /// The end of its stderr.
        stderr: String,
    },
    /// The plugin's handshake names a Unix socket outside the folder the
    /// host gave it; nothing was sent there, and the plugin was killed.
    #[error(
        "its handshake names the socket {address}, which {why}; the host connects only to a \
         socket inside the plugin's own folder {} (PLUGIN_UNIX_SOCKET_DIR), so nothing was sent \
         there and the plugin was killed; have it listen in PLUGIN_UNIX_SOCKET_DIR{}",
        dir.display(),
        said(stderr)
    )]
    SocketOutside {
        /// The address in its handshake line.
        address: String,
        /// The plugin's folder.
        dir: PathBuf,
        /// What is wrong with the address.
        why: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// The plugin's handshake names a TCP address other than a port of the
    /// host's range on the loopback address; nothing was sent there.
    #[error(
        "its handshake names the TCP address {address}, and the host connects only to \
         127.0.0.1 or [::1] on a port between {min} and {max} (PLUGIN_MIN_PORT, \
         PLUGIN_MAX_PORT), so nothing was sent there and the plugin was killed; have it listen \
         there, or on a Unix socket in PLUGIN_UNIX_SOCKET_DIR{}",
        said(stderr)
    )]
    TcpOutside {
        /// The address in its handshake line.
        address: String,
        /// `PLUGIN_MIN_PORT`.
        min: u16,
        /// `PLUGIN_MAX_PORT`.
        max: u16,
        /// The end of its stderr.
        stderr: String,
    },
    /// The plugin listens on TCP, and the manifest does not ask for mutual
    /// TLS; nothing was sent there.
    #[error(
        "it listens on TCP ({address}), and the manifest does not ask for mutual TLS: any \
         local user can connect to a TCP port, so the host does not, and the plugin was \
         killed; set auto_mtls = true under [handshake], or have the plugin listen on a Unix \
         socket in PLUGIN_UNIX_SOCKET_DIR{}",
        said(stderr)
    )]
    TcpWithoutTls {
        /// The address in its handshake line.
        address: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// A file of the host's certificate for an attached plugin cannot be read.
    #[error(
        "cannot read {} ({field}): {error}; give the PEM file of the certificate the plugin \
         trusts, or its key",
        path.display()
    )]
    ClientCertFile {
        /// `reattach.client_cert` or `reattach.client_key`.
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The host's certificate for an attached plugin is unusable.
    #[error(
        "reattach.client_cert and client_key are unusable: {error}; give a PEM certificate and \
         its private key"
    )]
    ClientCert {
        /// Why.
        error: TlsError,
    },
    /// The plugin chose an interface version the manifest does not list.
    #[error(
        "it chose interface version {chosen}, and the manifest accepts {accepted:?}; build it \
         for one of those, or list its version in `versions`"
    )]
    Version {
        /// The version in its handshake line.
        chosen: u32,
        /// The manifest's `versions`.
        accepted: Vec<u32>,
    },
    /// The host's certificate for mutual TLS cannot be made.
    #[error("cannot set up mutual TLS: {error}")]
    Tls {
        /// Why.
        error: TlsError,
    },
    /// The certificate in the plugin's handshake line is unusable.
    #[error("its handshake's certificate is refused: {error}")]
    Certificate {
        /// Why.
        error: TlsError,
    },
    /// The manifest asks for mutual TLS, and the plugin does not serve it.
    #[error(
        "the manifest asks for mutual TLS (handshake.auto_mtls), and its handshake carries no \
         certificate: it does not serve TLS; set auto_mtls = false, or serve it with \
         AutoMTLS{}",
        said(stderr)
    )]
    NoTls {
        /// The end of its stderr.
        stderr: String,
    },
    /// The plugin serves TLS, and the manifest does not ask for it.
    #[error(
        "it serves TLS (its handshake carries a certificate), and the manifest does not ask for \
         it; set auto_mtls = true under [handshake]{}",
        said(stderr)
    )]
    UnaskedTls {
        /// The end of its stderr.
        stderr: String,
    },
    /// Its health check did not answer within the start timeout.
    #[error(
        "it did not answer its health check within {} ms (limits.start_timeout_ms){}",
        timeout.as_millis(),
        said(stderr)
    )]
    HealthTimeout {
        /// `limits.start_timeout_ms`.
        timeout: Duration,
        /// The end of its stderr.
        stderr: String,
    },
    /// Its health check failed.
    #[error("its health check failed: {}{}", status.message(), said(stderr))]
    HealthFailed {
        /// The call's status.
        status: Status,
        /// The end of its stderr.
        stderr: String,
    },
    /// Its health check says it is not serving.
    #[error("its health check says {status}, not SERVING (1){}", said(stderr))]
    NotServing {
        /// The status it reported (`grpc.health.v1`).
        status: i32,
        /// The end of its stderr.
        stderr: String,
    },
    /// The process ended as soon as it was up.
    #[error("it {exit}{}", said(stderr))]
    Died {
        /// How it ended.
        exit: ProcessExit,
        /// The end of its stderr.
        stderr: String,
    },
    /// A restarted plugin refused the config the host holds for it.
    #[error("it refused its config after the restart: {}", status.message())]
    Config {
        /// Its answer to Configure.
        status: Status,
    },
    /// `reattach.pid` is not a process id.
    #[error("reattach.pid = {pid} is no process id")]
    NotAPid {
        /// `reattach.pid`.
        pid: u32,
    },
    /// There is no process `reattach.pid`.
    #[error("there is no process {pid} (reattach.pid): {error}")]
    NoProcess {
        /// `reattach.pid`.
        pid: u32,
        /// Why it cannot be opened.
        error: io::Error,
    },
    /// The plugin's socket cannot be reached to check who owns it.
    #[error("cannot connect to {address} (reattach.address): {error}")]
    Attach {
        /// `reattach.address`.
        address: String,
        /// Why.
        error: io::Error,
    },
    /// The owner of the plugin's socket cannot be told.
    #[error("cannot tell which process listens on {address}: {error}")]
    Owner {
        /// `reattach.address`.
        address: String,
        /// Why.
        error: io::Error,
    },
    /// Another process than `reattach.pid` listens on the plugin's socket.
    #[error(
        "the process listening on {address} is {owner}, not {pid} (reattach.pid); it was not \
         attached to, and nothing was signalled; put the plugin's own pid in the manifest"
    )]
    NotOwner {
        /// `reattach.address`.
        address: String,
        /// The process that listens there.
        owner: u32,
        /// `reattach.pid`.
        pid: u32,
    },
}

const SIGSYS: i32 = 31;

/// How an rpc plugin's process ended, as far as its host can tell. Shown as
/// "exited with status 1", "was killed by signal 9", "ended (…)".
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessExit {
    /// It was reaped: its status holds the exit code, or the signal that
    /// killed it.
    Status(ExitStatus),
    /// It ended, and its status is unknown: why (a process the host
    /// attached to, or one something else reaped).
    Unknown(String),
}

impl std::fmt::Display for ProcessExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::os::unix::process::ExitStatusExt;
        match self {
            ProcessExit::Status(status) => match (status.code(), status.signal()) {
                (Some(code), _) => write!(f, "exited with status {code}"),
                (None, Some(SIGSYS)) => f.write_str(&crate::process::sandbox::killed_by_filter()),
                (None, Some(signal)) => write!(f, "was killed by signal {signal}"),
                _ => write!(f, "ended ({status})"),
            },
            ProcessExit::Unknown(why) => write!(f, "ended ({why})"),
        }
    }
}

/// How the process ended, or that its stdout closed.
fn ended(exit: Option<&ProcessExit>) -> String {
    exit.map_or_else(|| "closed its stdout".into(), ToString::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn messages_say_how_the_process_ended_and_quote_its_stderr() {
        let error = RpcError::EndedBeforeHandshake {
            exit: Some(ProcessExit::Status(ExitStatus::from_raw(1 << 8))),
            stderr: "boom".into(),
        };
        assert_eq!(
            error.to_string(),
            "it exited with status 1 before printing its handshake line; its stderr ended with: \
             boom"
        );
        let error = RpcError::Cookie {
            exit: None,
            stderr: String::new(),
        };
        assert_eq!(
            error.to_string(),
            "it closed its stdout before printing its handshake line; the magic cookie it \
             expects differs from the manifest's [handshake]"
        );
        let killed = ProcessExit::Status(ExitStatus::from_raw(9));
        assert_eq!(killed.to_string(), "was killed by signal 9");
        let unknown = ProcessExit::Unknown("it was attached to".into());
        assert_eq!(unknown.to_string(), "ended (it was attached to)");
    }
}
