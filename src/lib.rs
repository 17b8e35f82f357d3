#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub use outlet_host::{
    Host, HostBuilder, LoadError, Loaded, MECHANISMS, Plugin, ReloadError, WasmError,
};
pub use outlet_manifest as manifest;
pub use outlet_protocol as protocol;
pub use outlet_protocol::{Code, Status};

/// The examples of `docs/signing.md`, run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/signing.md")]
pub struct SigningDocs;
