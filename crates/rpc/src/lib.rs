//! HashiCorp go-plugin's gRPC protocol, as Outlet's `rpc` mechanism speaks
//! it on both sides: the wire's pieces, and the gRPC client and server that
//! the host and its plugins share.
//!
//! - [`HandshakeLine`]: the line a plugin prints on stdout once it listens,
//!   `CORE|APP|NETWORK|ADDRESS|PROTOCOL|CERT`.
//! - [`env`](mod@env): the variables a host sets for its plugin.
//! - [`wire`]: the services every go-plugin plugin serves besides its own
//!   (health, controller, broker), their paths and messages.
//! - [`client`]: a gRPC client over one HTTP/2 connection, as either side
//!   dials the other.
//! - [`server`]: gRPC served on HTTP/2 connections, as either side serves
//!   the other.
//! - [`Raw`]: a gRPC codec that moves encoded messages as they are, so one
//!   client and one server carry every interface.
//! - [`tls`]: go-plugin's AutoMTLS, each side trusting exactly the other's
//!   certificate.
//! - [`frames`]: Outlet's frames on the same socket, for an Outlet host and
//!   an Outlet plugin, negotiated in Hello.
//!
//! ```
//! use outlet_rpc::{HandshakeLine, Network};
//!
//! let line: HandshakeLine = "1|1|unix|/tmp/plugin123|grpc|".parse()?;
//! assert_eq!((line.app_version, line.network), (1, Network::Unix));
//! assert_eq!(line.to_string(), "1|1|unix|/tmp/plugin123|grpc|");
//! # Ok::<(), outlet_rpc::HandshakeError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
mod codec;
#[cfg(unix)]
pub mod frames;
mod handshake;
pub mod server;
pub mod tls;
pub mod wire;

pub use codec::Raw;
pub use handshake::{CORE_PROTOCOL_VERSION, HandshakeError, HandshakeLine, Network, negotiate};

/// The environment variables of go-plugin's protocol.
pub mod env {
    /// The app protocol versions the host speaks, comma-separated.
    pub const PROTOCOL_VERSIONS: &str = "PLUGIN_PROTOCOL_VERSIONS";
    /// The lowest TCP port a plugin may listen on (TCP only).
    pub const MIN_PORT: &str = "PLUGIN_MIN_PORT";
    /// The highest TCP port a plugin may listen on (TCP only).
    pub const MAX_PORT: &str = "PLUGIN_MAX_PORT";
    /// The folder a plugin puts its Unix socket in (go-plugin 1.5 and later;
    /// older plugins use the temporary folder, `TMPDIR`).
    pub const UNIX_SOCKET_DIR: &str = "PLUGIN_UNIX_SOCKET_DIR";
    /// The host's certificate, PEM, when it asks for mutual TLS.
    pub const CLIENT_CERT: &str = "PLUGIN_CLIENT_CERT";
    /// Outlet's own: `tcp` asks an Outlet plugin to listen on TCP (on
    /// 127.0.0.1, between the two ports above); else it takes a Unix socket.
    pub const NETWORK: &str = "OUTLET_PLUGIN_NETWORK";
}

/// An Outlet [`Status`](outlet_protocol::Status) as a gRPC status, code and message kept.
pub fn to_grpc(status: outlet_protocol::Status) -> tonic::Status {
    tonic::Status::new(
        tonic::Code::from_i32(status.code().as_i32()),
        status.message(),
    )
}

/// A gRPC status as an Outlet [`Status`](outlet_protocol::Status), code and message kept.
pub fn from_grpc(status: &tonic::Status) -> outlet_protocol::Status {
    outlet_protocol::Status::new(
        outlet_protocol::Code::from_i32(status.code() as i32),
        status.message(),
    )
}
