//! The gRPC services the plugin serves, by path: `grpc.health.v1`,
//! go-plugin's controller, broker and stdio stream, and everything else
//! (the core protocol and the plugin's own services) through [`Plugin`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use outlet_protocol::context::{self, CallContext, TraceContext};
use outlet_rpc::server;
use outlet_rpc::wire::{self, Empty, HealthCheckRequest, HealthCheckResponse};
use prost::Message;
use tokio::sync::watch;

use super::connections::stopped;
use super::{host, stdio};
use crate::Plugin;

/// Answers one request, by its path.
pub(super) async fn route(
    plugin: Arc<Plugin>,
    stop: Arc<watch::Sender<bool>>,
    request: server::Request,
) -> server::Response {
    let path = request.uri().path().to_owned();
    match path.as_str() {
        wire::HEALTH_CHECK => {
            server::unary(request, usize::MAX, move |body| {
                let plugin = plugin.clone();
                async move {
                    let asked = HealthCheckRequest::decode(body)
                        .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
                    let known = asked.service.is_empty()
                        || asked.service == wire::HEALTH_SERVICE
                        || plugin.find_service(&asked.service).is_some();
                    let status = if known {
                        wire::SERVING
                    } else {
                        wire::SERVICE_UNKNOWN
                    };
                    Ok(HealthCheckResponse { status }.encode_to_vec())
                }
            })
            .await
        }
        wire::SHUTDOWN => {
            server::unary(request, usize::MAX, move |_| {
                // Stops accepting at once; the connections drain (this
                // reply included) and the process exits.
                stop.send_replace(true);
                async { Ok(Empty {}.encode_to_vec()) }
            })
            .await
        }
        wire::BROKER => {
            let handler =
                tower::service_fn(move |request: tonic::Request<tonic::Streaming<Bytes>>| {
                    let stopping = stop.subscribe();
                    broker(request.into_inner(), stopping)
                });
            server::grpc(usize::MAX).streaming(handler, request).await
        }
        wire::STDIO => {
            let handler = tower::service_fn(move |_: tonic::Request<Bytes>| {
                let stream =
                    stdio::stream(plugin.name(), stop.subscribe()).map(tonic::Response::new);
                std::future::ready(stream)
            });
            server::grpc(usize::MAX)
                .server_streaming(handler, request)
                .await
        }
        _ => {
            // The caller's deadline, as gRPC sends it, for
            // `outlet_guest::context::time_left`.
            let deadline = request
                .headers()
                .get("grpc-timeout")
                .and_then(|value| grpc_timeout(value.to_str().ok()?))
                .map(|timeout| Instant::now() + timeout);
            let header = |name| {
                let value = request.headers().get(name)?;
                value.to_str().ok().map(str::to_owned)
            };
            let trace = header("traceparent").and_then(|parent| {
                TraceContext::new(&parent, &header("tracestate").unwrap_or_default())
            });
            if plugin.streams(&path) {
                return super::streams::serve(plugin, path, (deadline, trace), request).await;
            }
            server::unary(request, usize::MAX, move |body| {
                let plugin = plugin.clone();
                let path = path.clone();
                let context = CallContext::new(deadline, None).with_trace(trace.clone());
                async move {
                    // The plugin's code is synchronous and may take its
                    // time: the runtime moves its other work elsewhere.
                    tokio::task::block_in_place(|| {
                        context::scope(context, || plugin.call(&path, &body))
                    })
                    .map_err(outlet_rpc::to_grpc)
                }
            })
            .await
        }
    }
}

/// A `grpc-timeout` header's value: up to 8 digits and a unit (`H`, `M`,
/// `S`, `m`, `u`, `n`), as the gRPC spec has it.
fn grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at_checked(value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// go-plugin's broker stream: connection info from the host is kept for
/// [`Host`](super::Host); the plugin offers none of its own, and ends the stream when it
/// stops, so that the connection drains at once.
async fn broker(
    mut incoming: tonic::Streaming<Bytes>,
    mut stopping: watch::Receiver<bool>,
) -> Result<
    tonic::Response<impl futures_util::Stream<Item = Result<Bytes, tonic::Status>> + use<>>,
    tonic::Status,
> {
    use futures_util::StreamExt;
    let mut reading = stopping.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                message = incoming.message() => match message {
                    Ok(Some(message)) => {
                        if let Ok(info) = wire::ConnInfo::decode(message) {
                            host::offered(info);
                        }
                    }
                    _ => return,
                },
                () = stopped(&mut reading) => return,
            }
        }
    });
    let ends_at_stop = futures_util::stream::once(async move { stopped(&mut stopping).await })
        .filter_map(|()| std::future::ready(None));
    Ok(tonic::Response::new(ends_at_stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_are_read_as_the_spec_writes_them() {
        assert_eq!(grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        assert_eq!(grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        for bad in ["", "m", "123456789S", "12x", "-1S", "1.5S", "S1"] {
            assert_eq!(grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
