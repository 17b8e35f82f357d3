//! gRPC served over HTTP/2 connections of hyper's, as both sides serve: a
//! plugin its calls, a host its services to the plugin over go-plugin's
//! broker. Every method moves encoded messages ([`Raw`]) and is routed by
//! its path: a route is an async function from a [`Request`] to a
//! [`Response`], and [`unary`] answers a unary call in one.
//!
//! Like [`client`](crate::client), this stands in for tonic's own server,
//! whose router and layers a plugin's few local connections do not need.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::Raw;

/// A request as it arrives on a connection.
pub type Request = http::Request<hyper::body::Incoming>;

/// A response, as tonic's server side makes it.
pub type Response = http::Response<tonic::body::Body>;

/// The pause after an `accept` that failed (out of descriptors, say), so
/// that a listener in trouble is not retried in a busy loop.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// Where a server takes its connections.
#[derive(Debug)]
pub enum Listener {
    /// A Unix socket.
    Unix(tokio::net::UnixListener),
    /// A TCP port.
    Tcp(tokio::net::TcpListener),
}

/// A connection a [`Listener`] accepted; it reads and writes as the
/// stream it holds.
#[derive(Debug)]
pub enum Stream {
    /// On a Unix socket.
    Unix(tokio::net::UnixStream),
    /// On TCP, with `TCP_NODELAY` set.
    Tcp(tokio::net::TcpStream),
}

impl Listener {
    /// The next connection. An `accept` that fails is tried again after a
    /// short pause. Cancel-safe: dropped before it returns, it loses no
    /// connection.
    pub async fn accept(&self) -> Stream {
        loop {
            let accepted = match self {
                Listener::Unix(listener) => listener
                    .accept()
                    .await
                    .map(|(stream, _)| Stream::Unix(stream)),
                Listener::Tcp(listener) => listener.accept().await.and_then(|(stream, _)| {
                    stream.set_nodelay(true)?;
                    Ok(Stream::Tcp(stream))
                }),
            };
            match accepted {
                Ok(stream) => return stream,
                Err(_) => tokio::time::sleep(ACCEPT_PAUSE).await,
            }
        }
    }
}

impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Stream::Tcp(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Unix(stream) => stream.is_write_vectored(),
            Stream::Tcp(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tcp(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

/// Serves HTTP/2 on `stream`, handing each request to `route`, until the
/// peer closes the connection. Once `stop` completes, the connection takes
/// no new requests and ends when those under way are answered.
pub async fn serve_connection<S, R, F>(stream: S, route: R, stop: impl Future<Output = ()>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    R: Fn(Request) -> F + Send + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let response = route(request);
        async move { Ok::<_, Infallible>(response.await) }
    });
    let connection =
        http2::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = stop => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// tonic's server side for encoded messages, refusing requests over
/// `max_message` bytes: for a route that [`unary`] does not cover (a stream).
pub fn grpc(max_message: usize) -> tonic::server::Grpc<Raw> {
    tonic::server::Grpc::new(Raw).max_decoding_message_size(max_message)
}

/// Answers a unary call: `answer` gets the request's encoded message and
/// returns the reply's, or the status the call fails with. A request over
/// `max_message` bytes fails (tonic's `OutOfRange`) before `answer` runs.
pub async fn unary<A, F>(request: Request, max_message: usize, mut answer: A) -> Response
where
    A: FnMut(Bytes) -> F + Send,
    F: Future<Output = Result<Vec<u8>, tonic::Status>> + Send,
{
    let handler = tower::service_fn(move |request: tonic::Request<Bytes>| {
        let reply = answer(request.into_inner());
        async move { Ok(tonic::Response::new(Bytes::from(reply.await?))) }
    });
    grpc(max_message).unary(handler, request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Network;

    #[test]
    fn unary_calls_are_answered_until_a_stop_drains_the_connection() {
        let path = std::env::temp_dir().join(format!("outlet-server-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = Listener::Unix(tokio::net::UnixListener::bind(&path).unwrap());
            let (stop, stopping) = tokio::sync::oneshot::channel::<()>();
            let served = tokio::spawn(async move {
                let stream = listener.accept().await;
                let route = |request| {
                    unary(request, 16, |body: Bytes| async move {
                        match &body[..] {
                            b"fail" => Err(tonic::Status::not_found("no such thing")),
                            _ => Ok([&b"echo "[..], &body].concat()),
                        }
                    })
                };
                let stop = async {
                    let _ = stopping.await;
                };
                serve_connection(stream, route, stop).await;
            });
            let address = path.to_str().unwrap();
            let send = crate::client::dial(Network::Unix, address, None)
                .await
                .unwrap();
            let mut grpc = crate::client::client(send);
            let mut call = async |body: &'static [u8]| {
                grpc.ready().await.unwrap();
                let path = http::uri::PathAndQuery::from_static("/demo.Echo/Echo");
                let request = tonic::Request::new(Bytes::from_static(body));
                grpc.unary(request, path, Raw).await.map(|r| r.into_inner())
            };
            assert_eq!(call(b"hi").await.unwrap(), &b"echo hi"[..]);
            let failed = call(b"fail").await.unwrap_err();
            assert_eq!(
                (failed.code(), failed.message()),
                (tonic::Code::NotFound, "no such thing")
            );
            let too_large = call(b"seventeen bytes!!").await.unwrap_err();
            assert_eq!(too_large.code(), tonic::Code::OutOfRange);
            stop.send(()).unwrap();
            tokio::time::timeout(Duration::from_secs(5), served)
                .await
                .expect("the connection ends once stopped")
                .unwrap();
        });
        std::fs::remove_file(&path).unwrap();
    }
}
