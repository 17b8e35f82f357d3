//! One process of an rpc plugin, connected: started (or attached to), its
//! handshake checked against the manifest, TLS set up as both sides ask,
//! its health checked, and the host's services offered to it; stopped with
//! the controller's Shutdown, then SIGKILL to its group.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use outlet_protocol::core;
use outlet_protocol::prost::Message;
use outlet_rpc::frames;
use outlet_rpc::tls::Identity;
use outlet_rpc::wire::{self, HealthCheckRequest, HealthCheckResponse};
use outlet_rpc::{HandshakeLine, Network};
use tokio_rustls::rustls::ClientConfig;

use super::Shared;
use super::address;
use super::broker::{Broker, Offer};
use super::error::RpcError;
use super::grpc::Grpc;
use super::peer::Peer;
use super::process::Process;

/// How long a plugin has to exit after the controller's Shutdown.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long a plugin whose controller could not be asked to shut down (a
/// minimal one, without go-plugin's controller) has to exit after SIGTERM.
const TERM_GRACE: Duration = Duration::from_millis(250);

/// A plugin's answer to a gRPC call.
pub(super) type Answer = Result<Bytes, tonic::Status>;

/// One process of the plugin, connected.
pub(super) struct Instance {
    /// The host's services offered to it; goes before its folder does.
    _broker: Broker,
    pub(super) process: Process,
    pub(super) grpc: Grpc,
    pub(super) line: HandshakeLine,
    /// Who must be listening on the plugin's Unix socket, checked on every
    /// connection; `None` on TCP, where TLS tells who listens.
    pub(super) peer: Option<Peer>,
    pub(super) started: Instant,
    /// Restarts in a row, this one included, that led to it.
    pub(super) restarts: u32,
    /// Idle connections carrying Outlet's frames, one taken per call.
    pub(super) idle_frames: Mutex<Vec<frames::Connection>>,
    /// Whether its go-plugin stdio stream is being read.
    pub(super) stdio: AtomicBool,
    /// Whether it answered a call: then its death starts the count of
    /// restarts in a row afresh.
    pub(super) served: AtomicBool,
    /// A first start's Hello, asked beside its health check: the request
    /// and the answer, for the host's Hello to take.
    pub(super) early_hello: Mutex<Option<(Vec<u8>, Answer)>>,
}

impl Instance {
    /// An idle connection carrying Outlet's frames, if there is one.
    pub(super) fn take_idle_frames(&self) -> Option<frames::Connection> {
        let mut idle = self.idle_frames.lock().unwrap_or_else(|e| e.into_inner());
        idle.pop()
    }

    /// Starts a process and connects to it, within the start timeout.
    pub(super) fn start(shared: &Arc<Shared>, restarts: u32) -> Result<Arc<Instance>, RpcError> {
        let started = Instant::now();
        let deadline = started + shared.spawn.start_timeout;
        // The reaper reports to the backend, if it still exists, and only
        // about the instance it belongs to.
        let slot: Arc<OnceLock<Weak<Instance>>> = Arc::default();
        let (weak_shared, reported) = (Arc::downgrade(shared), slot.clone());
        let on_exit = move |exit| {
            if let (Some(shared), Some(dead)) = (
                weak_shared.upgrade(),
                reported.get().and_then(Weak::upgrade),
            ) {
                shared.died(&dead, exit);
            }
        };
        let identity = match shared.auto_mtls {
            true => Some(Identity::generate().map_err(|error| RpcError::Tls { error })?),
            false => None,
        };
        let (process, line) = match &shared.reattach {
            Some(reattach) => {
                let version = shared.versions.iter().copied().max().unwrap_or(1);
                Process::attach(&shared.plugin, reattach, version, on_exit)?
            }
            None => {
                let (process, line) = Process::start(
                    &shared.spawn,
                    identity.as_ref().map(Identity::cert_pem),
                    on_exit,
                )?;
                // Before any connection: the plugin's own address only.
                let line = address::check(line, &process, identity.is_some())?;
                (process, line)
            }
        };
        if !shared.versions.contains(&line.app_version) {
            return Err(RpcError::Version {
                chosen: line.app_version,
                accepted: shared.versions.clone(),
            });
        }
        // Who listens, asked on every connection: the path was checked
        // once, but stays in a folder the plugin (or whoever owns an
        // attached plugin's socket) may change.
        let (tls, peer) = match &shared.reattach {
            Some(reattach) => (
                pinned_tls(reattach)?,
                (reattach.network == "unix").then(|| Peer::attached(reattach.pid)),
            ),
            None => (
                tls(identity.as_ref(), &line, &process)?,
                (line.network == Network::Unix)
                    .then(|| Peer::lineage(process.pid(), process.uid())),
            ),
        };
        let grpc = Grpc::new(&line, tls.clone(), peer);
        // A first start is followed by Hello: asked at once, beside the
        // health check, on the same connection.
        let hello =
            (restarts == 0).then(|| crate::handshake::offer(&shared.versions).encode_to_vec());
        let early_hello = check_health(
            &grpc,
            &process,
            (shared.spawn.start_timeout, deadline),
            hello.clone().map(|hello| (hello, shared.max_message)),
        )?;
        let broker = Broker::start(Offer {
            plugin: shared.plugin.clone(),
            callers: Peer::lineage(process.pid(), process.uid()),
            line: line.clone(),
            socket: process.dir().join("host.sock"),
            owner: process.owner().map_err(|error| RpcError::Thread {
                purpose: "hold its folder for the host's socket",
                error,
            })?,
            services: shared.services.clone(),
            caller: shared.caller.clone(),
            max_message: shared.max_message,
            dispatch: shared.dispatch.clone(),
            tls,
            peer,
        })
        .map_err(|error| RpcError::Thread {
            purpose: "start a thread to offer it the host's services",
            error,
        })?;
        let instance = Arc::new(Instance {
            _broker: broker,
            process,
            grpc,
            line,
            peer,
            started,
            restarts,
            idle_frames: Mutex::default(),
            stdio: AtomicBool::new(false),
            served: AtomicBool::new(false),
            early_hello: Mutex::new(hello.zip(early_hello)),
        });
        // A process that dies before this finds no instance to report;
        // `Shared::run` sees its exit instead.
        let _ = slot.set(Arc::downgrade(&instance));
        Ok(instance)
    }

    /// Notes that it answered a call of `method`: one of its interface's,
    /// not of the core protocol, which every start answers.
    pub(super) fn answered(&self, method: &str) {
        let core = method
            .strip_prefix('/')
            .and_then(|path| path.strip_prefix(core::SERVICE))
            .is_some_and(|rest| rest.starts_with('/'));
        if !core && !self.served.load(Ordering::Relaxed) {
            self.served.store(true, Ordering::Relaxed);
        }
    }

    /// The controller's Shutdown, a bounded wait, then SIGKILL to the group.
    pub(super) fn stop(&self, plugin: &str, grace: Duration) {
        // One deadline for asking and for the exit.
        let deadline = Instant::now() + grace;
        let asked = self.grpc.unary(
            wire::SHUTDOWN,
            wire::Empty {}.encode_to_vec(),
            super::grpc::CONTROL_REPLY,
            deadline,
            None,
        );
        if !self.process.signallable() {
            // Attached to without a pid: asking is all the host may do.
            if let Err(e) = asked {
                tracing::warn!(
                    target: "outlet::plugin",
                    plugin,
                    "its controller's Shutdown failed: {}; it was not signalled, since the \
                     manifest names no reattach.pid",
                    e.message()
                );
            }
            return;
        }
        // Asked, it has what is left of the grace to exit (go-plugin's
        // controller stops its server while it answers, so an answer that
        // fails in transport was still heard). A plugin with no controller
        // cannot be asked: it is sent SIGTERM, and has a short grace.
        let left = deadline.saturating_duration_since(Instant::now());
        let (grace, asked) = match asked {
            Err(e) if e.code() == tonic::Code::Unimplemented => {
                self.process.signal(rustix::process::Signal::TERM);
                (
                    left.min(TERM_GRACE),
                    "SIGTERM (it has no controller)".to_owned(),
                )
            }
            Ok(_) => (left, "its controller's Shutdown".to_owned()),
            Err(e) => (
                left,
                format!("its controller's Shutdown (which failed: {})", e.message()),
            ),
        };
        if self.process.wait(grace).is_none() {
            tracing::warn!(
                target: "outlet::plugin",
                plugin,
                "it did not exit within {} ms of {asked}; killed",
                grace.as_millis()
            );
        }
        self.process.kill();
    }
}

/// go-plugin's AutoMTLS: TLS to the plugin exactly when the manifest asks
/// for it (the host made `identity`) and the plugin serves it (its
/// handshake carries a certificate).
fn tls(
    identity: Option<&Identity>,
    line: &HandshakeLine,
    process: &Process,
) -> Result<Option<Arc<ClientConfig>>, RpcError> {
    match (identity, &line.cert) {
        (Some(identity), Some(cert)) => Identity::from_line(cert)
            .and_then(|cert| identity.client_config(&cert))
            .map(Some)
            .map_err(|error| RpcError::Certificate { error }),
        (Some(_), None) => Err(RpcError::NoTls {
            stderr: process.stderr(),
        }),
        (None, Some(_)) => Err(RpcError::UnaskedTls {
            stderr: process.stderr(),
        }),
        (None, None) => Ok(None),
    }
}

/// TLS to an attached plugin: none, or, with `reattach.cert_sha256`, to
/// exactly the certificate of that hash, presenting `client_cert`.
fn pinned_tls(reattach: &outlet_manifest::Reattach) -> Result<Option<Arc<ClientConfig>>, RpcError> {
    let (Some(pin), Some(cert), Some(key)) = (
        &reattach.cert_sha256,
        &reattach.client_cert,
        &reattach.client_key,
    ) else {
        return Ok(None);
    };
    // Without following a link: the host's policy resolved these paths at
    // admission, and a link put at one since is not followed.
    let read = |field, path: &std::path::PathBuf| {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let mut text = String::new();
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .and_then(|file| file.take(1 << 20).read_to_string(&mut text))
            .map(|_| text)
            .map_err(|error| RpcError::ClientCertFile {
                field,
                path: path.clone(),
                error,
            })
    };
    let identity = Identity::from_pem_pair(
        &read("reattach.client_cert", cert)?,
        &read("reattach.client_key", key)?,
    )
    .map_err(|error| RpcError::ClientCert { error })?;
    // The manifest checked it: 64 hex digits.
    let mut sha256 = [0u8; 32];
    for (byte, pair) in sha256.iter_mut().zip(pin.as_bytes().chunks(2)) {
        *byte = std::str::from_utf8(pair)
            .ok()
            .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            .unwrap_or_default();
    }
    identity
        .client_config_sha256(sha256)
        .map(Some)
        .map_err(|error| RpcError::ClientCert { error })
}

/// Asks `grpc.health.v1` whether the plugin serves, by `deadline`.
fn check_health(
    grpc: &Grpc,
    process: &Process,
    (start_timeout, deadline): (Duration, Instant),
    hello: Option<(Vec<u8>, usize)>,
) -> Result<Option<Answer>, RpcError> {
    let request = HealthCheckRequest {
        service: wire::HEALTH_SERVICE.into(),
    }
    .encode_to_vec();
    let (reply, hello) = match hello {
        Some((hello, max_message)) => {
            let [health, hello] = grpc.unary_both(
                [(wire::HEALTH_CHECK, request), (core::HELLO, hello)],
                max_message,
                deadline,
            );
            (health, Some(hello))
        }
        None => (
            grpc.unary(
                wire::HEALTH_CHECK,
                request,
                super::grpc::CONTROL_REPLY,
                deadline,
                None,
            ),
            None,
        ),
    };
    let reply = reply.map_err(|e| match e.code() {
        tonic::Code::DeadlineExceeded => RpcError::HealthTimeout {
            timeout: start_timeout,
            stderr: process.stderr(),
        },
        _ => RpcError::HealthFailed {
            status: outlet_rpc::from_grpc(&e),
            stderr: process.stderr(),
        },
    })?;
    let status = HealthCheckResponse::decode(reply)
        .map(|h| h.status)
        .unwrap_or_default();
    match status {
        wire::SERVING => Ok(hello),
        _ => Err(RpcError::NotServing {
            status,
            stderr: process.stderr(),
        }),
    }
}
