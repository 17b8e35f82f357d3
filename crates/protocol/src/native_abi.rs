//! The native mechanism's ABI: the static a native plugin exports, and what
//! its host checks before it trusts it.
//!
//! A [`Declaration`]'s first fields (ABI version, size, build fingerprint)
//! are plain C data that a host of any build can read; only a host of the
//! very same build ([`BUILD_FINGERPRINT`]) goes on to call `make`, a Rust
//! function. The plugin side defines the static with
//! `outlet_guest::export_native!`; the host side reads it in `outlet-dylib`.

use std::sync::atomic::AtomicPtr;

use crate::{BUILD_FINGERPRINT, Plugin, Status};

/// The version of [`Declaration`]'s layout and of the types it holds:
/// raised whenever either changes. Version 2: `make` fails with a
/// [`MakeError`]. Version 3: `connect` hands the plugin its [`HostCall`].
/// Version 4: and where to ask about the call it serves ([`Connection`]).
/// Version 5: a [`crate::Service`] lends its implementation
/// ([`crate::Service::shared`]). Version 6: and serves streams
/// ([`crate::Service::open`]).
pub const ABI_VERSION: u32 = 7;

/// The name of the static a native plugin exports.
pub const SYMBOL: &str = "OUTLET_NATIVE_PLUGIN";

/// How a native plugin calls back into its host: by gRPC path
/// (`/package.Service/Method`) and protobuf bytes, answered as the host
/// answers any plugin's call (grants, routing, audit). The answer is lent
/// to the last argument, as [`crate::Transport::call_with`] lends it.
pub type HostCall =
    std::sync::Arc<dyn Fn(&str, &[u8], &mut dyn FnMut(&[u8])) -> Result<(), Status> + Send + Sync>;

/// What the host hands a native plugin in `connect`.
#[derive(Clone)]
pub struct Connection {
    /// How it calls its host.
    pub call: HostCall,
    /// Where it asks about the call it is serving (its deadline, whether it
    /// was cancelled): the host's own thread, which it runs on.
    pub context: crate::context::Source,
}

/// Why a native plugin's `make` gave no plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MakeError {
    /// The plugin's code panicked while making the plugin.
    #[error("making the plugin panicked: {message}")]
    Panicked {
        /// The panic's message.
        message: String,
    },
}

/// What a native plugin exports. The host reads the fields in order and
/// stops at the first that does not match its own build.
#[repr(C)]
pub struct Declaration {
    /// [`ABI_VERSION`].
    pub abi_version: u32,
    /// `size_of::<Declaration>()`.
    pub size: u32,
    /// Where the bytes of the plugin's [`BUILD_FINGERPRINT`] start. Never
    /// written: an `AtomicPtr` has a raw pointer's layout, and lets the
    /// declaration be a `static` shared between threads as it is.
    pub build: AtomicPtr<u8>,
    /// The fingerprint's length.
    pub build_len: usize,
    /// Makes the plugin; a panic in it comes back as [`MakeError::Panicked`].
    pub make: fn() -> Result<Plugin, MakeError>,
    /// Gives the plugin the way to call its host, before `make`; `None`
    /// takes it back, before the library is unloaded.
    pub connect: fn(Option<Connection>),
}

impl Declaration {
    /// The declaration of a plugin that `make` makes (through a function
    /// that catches its panics, as `outlet_guest::export_native!` does).
    pub const fn new(
        make: fn() -> Result<Plugin, MakeError>,
        connect: fn(Option<Connection>),
    ) -> Declaration {
        Declaration {
            abi_version: ABI_VERSION,
            size: std::mem::size_of::<Declaration>() as u32,
            build: AtomicPtr::new(BUILD_FINGERPRINT.as_ptr().cast_mut()),
            build_len: BUILD_FINGERPRINT.len(),
            make,
            connect,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declaration_is_shareable_and_points_at_the_fingerprint() {
        fn shareable<T: Sync>() {}
        shareable::<Declaration>();
        static DECLARED: Declaration = Declaration::new(|| Ok(Plugin::new("p", "1")), |_| {});
        let build = DECLARED.build.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(build.cast_const(), BUILD_FINGERPRINT.as_ptr());
        assert_eq!(DECLARED.build_len, BUILD_FINGERPRINT.len());
        assert_eq!(
            std::mem::size_of::<AtomicPtr<u8>>(),
            std::mem::size_of::<*const u8>()
        );
        assert_eq!((DECLARED.make)().unwrap().name(), "p");
    }
}
