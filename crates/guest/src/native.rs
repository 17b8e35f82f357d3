//! The native mechanism's guest side: a Rust plugin built in the same
//! build as its host, called directly through the generated trait.
//!
//! [`export_native!`](crate::export_native) defines the static the host
//! looks for: a [`Declaration`] whose first fields (ABI version, size, build
//! fingerprint) are plain C data that the host checks before it touches
//! anything else; only a host of the very same build goes on to call
//! `make`, a Rust function.

use std::panic::catch_unwind;

use outlet_protocol::{BUILD_FINGERPRINT, panic_message};

use crate::Plugin;

/// The version of [`Declaration`]'s layout.
pub const ABI_VERSION: u32 = 1;

/// The name of the static a native plugin exports.
pub const SYMBOL: &str = "OUTLET_NATIVE_PLUGIN";

/// What a native plugin exports. The host reads the fields in order and
/// stops at the first that does not match its own build.
#[repr(C)]
pub struct Declaration {
    /// [`ABI_VERSION`].
    pub abi_version: u32,
    /// `size_of::<Declaration>()`.
    pub size: u32,
    /// [`BUILD_FINGERPRINT`] of the plugin's build: pointer and length.
    pub build: *const u8,
    /// The fingerprint's length.
    pub build_len: usize,
    /// Makes the plugin; a panic in it comes back as `Err` with its message.
    pub make: fn() -> Result<Plugin, String>,
}

// SAFETY: the declaration is immutable static data: a pointer to a static
// string and a function pointer, both valid from any thread.
unsafe impl Sync for Declaration {}

impl Declaration {
    /// The declaration of a plugin that `make` makes (through a function
    /// that catches its panics, see [`export_native!`](crate::export_native)).
    pub const fn new(make: fn() -> Result<Plugin, String>) -> Declaration {
        Declaration {
            abi_version: ABI_VERSION,
            size: std::mem::size_of::<Declaration>() as u32,
            build: BUILD_FINGERPRINT.as_ptr(),
            build_len: BUILD_FINGERPRINT.len(),
            make,
        }
    }

    /// The fingerprint as text.
    pub fn build(&self) -> &str {
        BUILD_FINGERPRINT
    }
}

/// Runs `make` in the plugin's own code, catching a panic.
#[doc(hidden)]
pub fn make_guarded(make: fn() -> Plugin) -> Result<Plugin, String> {
    catch_unwind(make).map_err(|panic| panic_message(panic.as_ref()))
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
        fn __outlet_native_make() -> ::core::result::Result<$crate::Plugin, ::std::string::String> {
            $crate::native::make_guarded($make)
        }

        /// The declaration the native mechanism's host looks for.
        #[unsafe(no_mangle)]
        pub static OUTLET_NATIVE_PLUGIN: $crate::native::Declaration =
            $crate::native::Declaration::new(__outlet_native_make);
    };
}
