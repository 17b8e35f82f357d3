//! Outlet's core protocol, with no I/O: what every mechanism and both sides
//! of every plugin share.
//!
//! - [`core`]: the messages of `proto/outlet/core/v1/core.proto` (Hello,
//!   Configure, Health, Shutdown, and the exec mechanism's envelopes).
//! - [`Status`] and [`Code`]: how a call fails, with gRPC codes, on every mechanism.
//! - [`negotiate`]: the highest common version and the common capabilities.
//! - [`Transport`] and [`Service`]: the seam between typed code and mechanisms.
//! - [`Plugin`]: a plugin's services and its answers to the core protocol,
//!   as every mechanism serves them.
//! - [`frame`]: length-prefixed messages on a byte stream.
//! - [`cabi`]: the C ABI of `include/outlet.h`, as Rust types.
//! - [`native_abi`]: the declaration a native plugin exports, as its host reads it.
//!
//! ```
//! use outlet_protocol::{Service, Status, Transport, Local};
//!
//! struct Echo;
//! impl Service for Echo {
//!     fn name(&self) -> &'static str { "demo.Echo" }
//!     fn call(&self, method: &str, request: &[u8], out: &mut Vec<u8>) -> Result<(), Status> {
//!         match method {
//!             "/demo.Echo/Echo" => Ok(out.extend_from_slice(request)),
//!             _ => Err(Status::unimplemented(method)),
//!         }
//!     }
//! }
//! assert_eq!(Local(Echo).call("/demo.Echo/Echo", b"hi")?, b"hi");
//! # Ok::<(), Status>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cabi;
pub mod context;
pub mod frame;
mod generated;
pub mod native_abi;
mod negotiate;
mod plugin;
mod status;
pub mod stream;
mod trace;
mod transport;

/// The core protocol's messages, generated from `core.proto`.
#[allow(missing_docs)]
pub mod core {
    include!(concat!(env!("OUT_DIR"), "/outlet.core.v1.rs"));

    /// The core protocol's service name.
    pub const SERVICE: &str = "outlet.core.v1.Plugin";
    /// The gRPC path of Hello.
    pub const HELLO: &str = "/outlet.core.v1.Plugin/Hello";
    /// The gRPC path of Configure.
    pub const CONFIGURE: &str = "/outlet.core.v1.Plugin/Configure";
    /// The gRPC path of Health.
    pub const HEALTH: &str = "/outlet.core.v1.Plugin/Health";
    /// The gRPC path of Shutdown.
    pub const SHUTDOWN: &str = "/outlet.core.v1.Plugin/Shutdown";
}

/// What a native plugin and its host must share to call each other's Rust
/// code directly: the compiler, this crate's version, the target, and
/// whether debug assertions are on. The native mechanism refuses a plugin
/// whose fingerprint differs from the host's.
pub const BUILD_FINGERPRINT: &str = concat!(
    env!("OUTLET_RUSTC"),
    "; outlet ",
    env!("CARGO_PKG_VERSION"),
    "; ",
    env!("OUTLET_TARGET"),
    "; debug assertions ",
    env!("OUTLET_DEBUG_ASSERTIONS"),
);

/// Capabilities Outlet itself knows about, as they appear in Hello.
pub mod capability {
    /// The plugin accepts `Configure` and applies new config without a restart.
    pub const CONFIGURE: &str = "configure";
    /// rpc: the plugin also takes Outlet's frames on its socket, which cost
    /// less per call than gRPC (see `outlet_rpc::frames`).
    pub const RPC_FRAMES: &str = "rpc-frames";
}

pub use generated::{guard, native, panic_message};
pub use negotiate::{CORE_VERSIONS, Negotiated, NegotiationError, negotiate};
pub use plugin::Plugin;
pub use status::{Code, Status};
pub use stream::Messages;
pub use transport::{
    Answer, Client, Direct, Local, Service, Shared, Transport, handle, unary, unary_async,
};

/// Re-exported for generated code, so a crate with generated clients
/// needs no direct dependency on `prost` beyond the messages.
pub use prost;
