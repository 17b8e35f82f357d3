//! The plugin author's side of Outlet.
//!
//! Implement the trait that `outlet-build` generated from the interface's
//! `.proto`, wrap it in its generated server, describe the plugin with
//! [`Plugin`], and hand it to the mechanism's `serve`:
//!
//! ```no_run
//! use outlet_guest::{Plugin, Service, Status};
//!
//! // Generated code provides this for a real interface (`GreeterServer<T>`).
//! struct Echo;
//! impl Service for Echo {
//!     fn name(&self) -> &'static str { "demo.Echo" }
//!     fn call(&self, method: &str, request: &[u8], out: &mut Vec<u8>) -> Result<(), Status> {
//!         Ok(out.extend_from_slice(request))
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     let plugin = Plugin::new("echo", env!("CARGO_PKG_VERSION")).service(Echo);
//!     outlet_guest::exec::serve(&plugin)
//! }
//! ```
//!
//! The example in the repository's README shows a whole plugin.
//!
//! | mechanism | entry point |
//! |---|---|
//! | `exec` | [`exec::serve`]: one call from stdin, the reply on stdout |
//! | `rpc` | `rpc::serve` (feature `rpc`): a child serving gRPC, go-plugin's protocol |
//! | `native` | [`export_native!`]: a static the host checks, then calls directly, in a `cdylib` |
//! | `wasm` | [`export_wasm!`]: the exports of `docs/wasm-abi.md`, built for `wasm32-unknown-unknown` |
//! | `cabi` | [`export_cabi!`]: the entry symbol of `include/outlet.h`, in a `cdylib` |
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[allow(unsafe_code)]
pub mod cabi;
#[cfg(unix)]
#[allow(unsafe_code)]
pub mod exec;
pub mod native;
#[cfg(all(unix, feature = "rpc"))]
pub mod rpc;
#[allow(unsafe_code)]
pub mod wasm;

pub use outlet_protocol::{Messages, Plugin, Service, Status, context};
