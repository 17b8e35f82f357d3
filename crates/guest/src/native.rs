//! The native mechanism's guest side: a Rust plugin built in the same
//! build as its host, called directly through the generated trait.
//!
//! [`export_native!`](crate::export_native) defines the static the host
//! looks for: a [`Declaration`] whose first fields (ABI version, size, build
//! fingerprint) are plain C data that the host checks before it touches
//! anything else; only a host of the very same build goes on to call
//! `make`, a Rust function. The declaration itself is part of the protocol
//! (`outlet_protocol::native_abi`), which the host reads too.

use std::panic::catch_unwind;
use std::sync::RwLock;

use outlet_protocol::panic_message;

pub use outlet_protocol::native_abi::{
    ABI_VERSION, Connection, Declaration, HostCall, MakeError, SYMBOL,
};

use crate::{Plugin, Status};

/// How this library calls its host, from `connect`.
static HOST: RwLock<Option<HostCall>> = RwLock::new(None);

/// `connect`: the host hands over its way in, or takes it back.
#[doc(hidden)]
pub fn connect(host: Option<Connection>) {
    if let Some(host) = &host {
        outlet_protocol::context::set_source(host.context);
    }
    *HOST.write().unwrap_or_else(|e| e.into_inner()) = host.map(|host| host.call);
}

/// The host, as a transport: a native plugin calls what its host offers
/// (services, and other plugins, as its manifest's `permissions.call`
/// grants) through a generated client over it, e.g.
/// `GreeterClient::new(outlet_guest::native::Host)`. Calls fail with
/// `Unavailable` in a library no host loaded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Host;

impl outlet_protocol::Transport for Host {
    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        let mut answer = Vec::new();
        self.call_with(method, request, &mut |bytes| {
            answer.extend_from_slice(bytes)
        })?;
        Ok(answer)
    }

    fn call_with(
        &self,
        method: &str,
        request: &[u8],
        response: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Status> {
        // Not held during the call, which may come back into this library.
        let host = HOST.read().unwrap_or_else(|e| e.into_inner()).clone();
        match host {
            Some(host) => host(method, request, response),
            None => Err(Status::unavailable(
                "the host is not reachable: this library was not loaded by an Outlet host \
                 as a native plugin",
            )),
        }
    }
}

/// Runs `make` in the plugin's own code, catching a panic.
#[doc(hidden)]
pub fn make_guarded(make: fn() -> Plugin) -> Result<Plugin, MakeError> {
    catch_unwind(make).map_err(|panic| MakeError::Panicked {
        message: panic_message(panic.as_ref()),
    })
}

/// Exports a Rust plugin for the native mechanism: defines the static
/// `OUTLET_NATIVE_PLUGIN`. Build the crate as a `cdylib` in the same cargo
/// build as the host.
///
/// ```text
/// outlet_guest::export_native!(greeter::plugin);
/// ```
#[macro_export]
macro_rules! export_native {
    ($make:path) => {
        fn __outlet_native_make()
        -> ::core::result::Result<$crate::Plugin, $crate::native::MakeError> {
            $crate::native::make_guarded($make)
        }

        /// The declaration the native mechanism's host looks for.
        #[unsafe(no_mangle)]
        pub static OUTLET_NATIVE_PLUGIN: $crate::native::Declaration =
            $crate::native::Declaration::new(__outlet_native_make, $crate::native::connect);
    };
}
