//! The host side of Outlet: load plugins from manifests under the trust
//! policy, and call them through one typed API whatever their mechanism.
//!
//! - [`Host`] (long-lived, cheap to clone; [`Host::builder`] for settings
//!   such as where compiled wasm modules are cached) reads a manifest, checks the trust
//!   policy and the artifact's hash, starts the plugin's mechanism, says
//!   Hello, negotiates versions and capabilities, and applies the config.
//! - [`Plugin`] (cheap to clone) is the loaded plugin: a
//!   [`Transport`](outlet_protocol::Transport) that generated clients run
//!   over, plus Configure, Health and Shutdown.
//! - Calls fail with a [`Status`](outlet_protocol::Status) carrying a gRPC
//!   code, the same on every mechanism; loading fails with a [`LoadError`].
//!
//! | mechanism | a call costs |
//! |---|---|
//! | `native` | a direct call of the plugin's trait implementation, plus a lock read and a few atomic operations |
//! | `cabi` | a protobuf encode and decode on each side of a C function call (a few hundred ns) |
//! | `wasm` | two calls into a pooled wasmtime instance, the request and answer copied through linear memory |
//! | `exec` | one process: spawn, one frame each way, exit (about a millisecond) |
//!
//! [`Plugin::reload`] loads a fresh instance beside the running one and
//! switches to it once it has said Hello; calls in flight finish on the old.
//!
//! ```
//! use outlet_host::Host;
//! use outlet_protocol::{Code, Transport};
//!
//! let host = Host::new();
//! let plugin = host.load("../../examples/greeter/manifests/exec.toml")?;
//! assert_eq!(plugin.hello().services, ["outlet.examples.greeter.v1.Greeter"]);
//!
//! // Any method, by its gRPC path, with encoded messages (generated clients do this).
//! let error = plugin.call("/outlet.examples.greeter.v1.Greeter/Wave", &[]).unwrap_err();
//! assert_eq!(error.code(), Code::Unimplemented);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//!
//! - `wasm` (default): the wasm mechanism, on wasmtime. Without it, the
//!   crate builds in a fraction of the time, and a wasm manifest is refused
//!   as a mechanism this build does not have.
//! - `rpc` (default): the rpc mechanism, go-plugin's gRPC over tonic and
//!   hyper. Without it, an rpc manifest is refused the same way.
//!
//! A plugin's log lines (its stderr) become `tracing` events with target
//! `outlet::plugin` and a `plugin` field holding its name. What happens to
//! the plugins themselves (loads, deaths, restarts, reloads, panics,
//! unloads) comes to subscribers of [`Host::events`] as [`Event`]s.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod audit;
mod deadline;
mod error;
pub mod events;
/// The readers of what plugins send the host, apart from the pipes and
/// memories it comes through, for the fuzz targets in `fuzz/`
/// (docs/fuzzing.md); not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::mechanism::exec::stdout::{
        PieceError, Pieces, ReadError, ReplyReader, answer as exec_answer,
        response as exec_response,
    };
    pub use crate::mechanism::slot::{
        SlotError, answer as wasm_answer, outcome as wasm_outcome, status as wasm_status,
    };
}
mod handshake;
mod health;
mod host;
mod log;
mod mechanism;
mod plugin;
mod private;
mod process;
mod services;
pub mod stats;

pub use error::{LoadError, OfferError, ReloadError};
pub use events::{Event, EventKind, Events};
pub use host::{Host, HostBuilder, Loaded};
pub use mechanism::AVAILABLE as MECHANISMS;
#[cfg(feature = "rpc")]
pub use mechanism::rpc::{ProcessExit, RpcError};
#[cfg(feature = "wasm")]
pub use mechanism::wasm::WasmError;
pub use outlet_manifest::policy::{Ceiling, Policy};
pub use plugin::Plugin;
pub use process::sandbox::{
    Layer, PLUGIN_UIDS, SandboxError, SandboxReport, plugin_uid, reach as sandbox_reach,
};
pub use stats::{MethodStats, PluginStats};

#[cfg(test)]
mod tests {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn handles_are_send_sync_and_clone() {
        assert_send_sync::<super::Host>();
        assert_send_sync::<super::Plugin>();
    }
}
