//! A gRPC client over one HTTP/2 connection of hyper's, as both sides dial
//! each other: the host its plugin, a plugin its host's broker connection.
//! tonic's own channel would add a pool and a background task per
//! connection; a plugin's connections are few and local.

use std::future::Future;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::body::Body;

use crate::Network;

/// tonic's client over one connection.
pub type Client = tonic::client::Grpc<Sender>;

/// Connects to `address`, over TLS with `tls` (see [`crate::tls`]), and
/// makes the HTTP/2 handshake; the connection's task runs on the current
/// runtime.
///
/// # Errors
/// The connection, TLS or the HTTP/2 handshake failed.
pub async fn dial(
    network: Network,
    address: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> std::io::Result<SendRequest<Body>> {
    dial_checked(network, address, tls, |_| Ok(())).await
}

/// As [`dial`], with `check` run on the connected socket before anything
/// is sent on it (to ask the kernel who the peer is, say); its error is
/// the dial's.
///
/// # Errors
/// As [`dial`], and `check`'s.
pub async fn dial_checked(
    network: Network,
    address: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
    check: impl FnOnce(BorrowedFd<'_>) -> std::io::Result<()>,
) -> std::io::Result<SendRequest<Body>> {
    match network {
        Network::Unix => {
            let stream = tokio::net::UnixStream::connect(address).await?;
            check(stream.as_fd())?;
            over(stream, tls).await
        }
        Network::Tcp => {
            let stream = tokio::net::TcpStream::connect(address).await?;
            check(stream.as_fd())?;
            stream.set_nodelay(true)?;
            over(stream, tls).await
        }
    }
}

async fn over<S>(
    stream: S,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> std::io::Result<SendRequest<Body>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    match tls {
        None => handshake(stream).await,
        Some(config) => {
            let connector = tokio_rustls::TlsConnector::from(config.clone());
            handshake(connector.connect(crate::tls::server_name(), stream).await?).await
        }
    }
}

async fn handshake<S>(stream: S) -> std::io::Result<SendRequest<Body>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    Ok(send)
}

/// tonic's client over `send`'s connection. The authority is a placeholder:
/// the connection already says where the peer is.
pub fn client(send: SendRequest<Body>) -> Client {
    tonic::client::Grpc::with_origin(Sender(send), http::Uri::from_static("http://plugin"))
}

/// hyper's HTTP/2 sender as the service tonic's client calls through.
#[derive(Debug, Clone)]
pub struct Sender(SendRequest<Body>);

impl tower_service::Service<http::Request<Body>> for Sender {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, hyper::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(self.0.send_request(request))
    }
}
