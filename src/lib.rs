//! Outlet: one typed plugin API over five mechanisms.
pub use outlet_host::{Host, LoadError, Plugin};
pub use outlet_manifest as manifest;
pub use outlet_protocol as protocol;
pub use outlet_protocol::{Code, Status};
