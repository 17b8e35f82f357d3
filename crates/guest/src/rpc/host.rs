//! Calls from an rpc plugin back into its host, over go-plugin's broker: the
//! host sends, on the broker stream it opens, where it serves its services
//! ([`HOST_SERVICES_ID`]); the plugin dials that on its first call and keeps
//! the connection.

use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::client::conn::http2::SendRequest;
use outlet_protocol::Status;
use outlet_rpc::wire::{ConnInfo, HOST_SERVICES_ID};
use outlet_rpc::{Network, Raw};
use tonic::body::Body;

/// How long a call waits for the host's connection info, as go-plugin's
/// `Dial` does.
const WAIT: Duration = Duration::from_secs(5);

/// The runtime the plugin serves on, and the plugin's name.
static SERVING: OnceLock<(tokio::runtime::Handle, String)> = OnceLock::new();
/// Connection info the host sent on the broker stream, newest last.
static OFFERED: Mutex<Vec<ConnInfo>> = Mutex::new(Vec::new());
static ARRIVED: Condvar = Condvar::new();
/// The connection to the host's services, once dialed.
static CONNECTION: Mutex<Option<SendRequest<Body>>> = Mutex::new(None);

/// Called once [`serve`](super::serve) runs: calls to the host go through
/// its runtime.
pub(super) fn serving(runtime: tokio::runtime::Handle, plugin: &str) {
    let _ = SERVING.set((runtime, plugin.to_owned()));
}

/// The host sent connection info on the broker stream.
pub(super) fn offered(info: ConnInfo) {
    let mut offered = OFFERED.lock().unwrap_or_else(|e| e.into_inner());
    offered.retain(|known| known.service_id != info.service_id);
    offered.push(info);
    ARRIVED.notify_all();
}

/// The host, as a transport: an rpc plugin calls the services its host
/// offers ([`Host::offer`](../../outlet_host/struct.Host.html#method.offer))
/// through a generated client over it, during a call of its own.
///
/// ```no_run
/// use outlet_protocol::{Status, Transport};
///
/// // In a call the plugin serves; a generated client over `Host` does this.
/// let reply = outlet_guest::rpc::Host.call("/demo.Clock/Now", &[])?;
/// # Ok::<(), Status>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Host;

impl outlet_protocol::Transport for Host {
    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        let Some((runtime, plugin)) = SERVING.get() else {
            return Err(Status::failed_precondition(
                "outlet_guest::rpc::Host reaches the host only while the plugin is served by \
                 outlet_guest::rpc::serve",
            ));
        };
        let path = http::uri::PathAndQuery::try_from(method)
            .map_err(|e| Status::invalid_argument(format!("`{method}` is not a gRPC path: {e}")))?;
        let send = connection(runtime, plugin)?;
        let request = tonic::Request::new(Bytes::copy_from_slice(request));
        let reply = runtime.block_on(async move {
            let mut grpc = outlet_rpc::client::client(send);
            grpc.ready().await.map_err(|e| {
                tonic::Status::unavailable(format!("the connection to the host broke: {e}"))
            })?;
            grpc.unary(request, path, Raw).await
        });
        reply
            .map(|reply| reply.into_inner().to_vec())
            .map_err(|status| outlet_rpc::from_grpc(&status))
    }
}

/// The connection to the host's services: the one dialed before, or a new
/// one once the host has said where it listens.
fn connection(runtime: &tokio::runtime::Handle, plugin: &str) -> Result<SendRequest<Body>, Status> {
    {
        let connection = CONNECTION.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(send) = connection.as_ref().filter(|send| !send.is_closed()) {
            return Ok(send.clone());
        }
    }
    let info = wait_for(HOST_SERVICES_ID).ok_or_else(|| {
        Status::unavailable(format!(
            "plugin `{plugin}`: its host offered no services on go-plugin's broker within {} s; \
             an Outlet host does (Host::offer), a go-plugin host passes the broker ids it \
             offers in its requests",
            WAIT.as_secs()
        ))
    })?;
    let network = Network::from_name(&info.network).ok_or_else(|| {
        Status::unavailable(format!(
            "plugin `{plugin}`: its host serves on network `{}`, which is neither unix nor tcp",
            info.network
        ))
    })?;
    let send = runtime
        .block_on(outlet_rpc::client::dial(network, &info.address, None))
        .map_err(|e| {
            Status::unavailable(format!(
                "plugin `{plugin}`: cannot connect to its host's services at {}: {e}",
                info.address
            ))
        })?;
    *CONNECTION.lock().unwrap_or_else(|e| e.into_inner()) = Some(send.clone());
    Ok(send)
}

fn wait_for(id: u32) -> Option<ConnInfo> {
    let until = Instant::now() + WAIT;
    let mut offered = OFFERED.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if let Some(info) = offered.iter().find(|info| info.service_id == id) {
            return Some(info.clone());
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        offered = ARRIVED
            .wait_timeout(offered, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}
