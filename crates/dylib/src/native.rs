//! Loading a native plugin: open → ELF check → the declaration static →
//! ABI version and size → build fingerprint → `make`. Until the fingerprint
//! matches, nothing but plain C data is read from the library.

use std::path::Path;

use outlet_protocol::native_abi::{ABI_VERSION, Connection, Declaration, SYMBOL};
use outlet_protocol::{BUILD_FINGERPRINT, Plugin};

use crate::DylibError;

/// A loaded native plugin: the plugin its `make` made, and the library its
/// code lives in.
pub struct NativeLibrary {
    /// Declared first: dropped (running the plugin's destructors, which live
    /// in the library) before the library is unmapped.
    plugin: Plugin,
    /// The declaration's `connect`, to take the host's way in back.
    connect: fn(Option<Connection>),
    _library: libloading::Library,
}

impl Drop for NativeLibrary {
    /// The library lets go of its way into the host before it is unmapped.
    fn drop(&mut self) {
        (self.connect)(None);
    }
}

impl std::fmt::Debug for NativeLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeLibrary")
            .field("plugin", &self.plugin.name())
            .finish_non_exhaustive()
    }
}

/// The first fields of [`Declaration`]: what can be read whatever build
/// made the library.
#[repr(C)]
struct Header {
    abi_version: u32,
    size: u32,
    /// The declaration's `AtomicPtr<u8>`, which has a raw pointer's layout.
    build: *const u8,
    build_len: usize,
}

// The header is the declaration's first fields, as a host of another build
// reads them.
const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(Header, abi_version) == offset_of!(Declaration, abi_version));
    assert!(offset_of!(Header, size) == offset_of!(Declaration, size));
    assert!(offset_of!(Header, build) == offset_of!(Declaration, build));
    assert!(offset_of!(Header, build_len) == offset_of!(Declaration, build_len));
    assert!(size_of::<*const u8>() == size_of::<std::sync::atomic::AtomicPtr<u8>>());
};

impl NativeLibrary {
    /// Opens a native plugin, checks that it comes from this very build,
    /// hands it `host` (its way to call back) and makes its plugin.
    ///
    /// # Safety
    /// Loading a library runs its code in this process with no isolation:
    /// the caller must trust it (Outlet's policy allows native only for
    /// `trust = "in-process"`). The library must be what its declaration says: a
    /// plugin built by `outlet_guest::export_native!` in a build whose
    /// fingerprint is this host's, sharing this host's global allocator
    /// (the system allocator, Rust's default).
    ///
    /// # Errors
    /// [`DylibError`], naming the path and what was found.
    pub unsafe fn open(path: &Path, host: Connection) -> Result<NativeLibrary, DylibError> {
        crate::elf::check(path)?;
        // SAFETY: the caller vouches for the library (this function's contract).
        let library = unsafe { crate::open(path)? };
        let declaration = {
            // SAFETY: `export_native!` defines the symbol as a static
            // `Declaration`; the library is trusted to have made it so, and
            // only its C-layout header is read before the build is checked.
            let symbol =
                unsafe { library.get::<*const Header>(SYMBOL.as_bytes()) }.map_err(|_| {
                    DylibError::MissingSymbol {
                        path: path.to_owned(),
                        symbol: SYMBOL,
                    }
                })?;
            *symbol
        };
        if declaration.is_null() {
            return Err(DylibError::MissingSymbol {
                path: path.to_owned(),
                symbol: SYMBOL,
            });
        }
        // SAFETY: `get` returned the static's address, checked non-null just
        // above, valid while `library` is loaded, and every version of the
        // declaration starts with this header.
        let header = unsafe { &*declaration };
        if header.abi_version != ABI_VERSION {
            return Err(DylibError::NativeVersion {
                path: path.to_owned(),
                expected: ABI_VERSION,
                found: header.abi_version,
            });
        }
        let expected = std::mem::size_of::<Declaration>();
        if header.size as usize != expected {
            return Err(DylibError::NativeSize {
                path: path.to_owned(),
                expected,
                found: header.size as usize,
            });
        }
        let build = if header.build.is_null() {
            String::new()
        } else {
            // SAFETY: `Declaration::new` points `build` at a static string of
            // `build_len` bytes in the library.
            let bytes = unsafe { std::slice::from_raw_parts(header.build, header.build_len) };
            String::from_utf8_lossy(bytes).into_owned()
        };
        if build != BUILD_FINGERPRINT {
            return Err(DylibError::Fingerprint {
                path: path.to_owned(),
                host: BUILD_FINGERPRINT,
                plugin: build,
            });
        }
        // SAFETY: the fingerprint matched: the library was built by this
        // compiler from this version of Outlet for this target, so the rest
        // of `Declaration` has the layout this host knows.
        let declaration = unsafe { &*declaration.cast::<Declaration>() };
        (declaration.connect)(Some(host));
        let plugin = (declaration.make)().map_err(|error| {
            (declaration.connect)(None);
            DylibError::Make {
                path: path.to_owned(),
                error,
            }
        })?;
        Ok(NativeLibrary {
            plugin,
            connect: declaration.connect,
            _library: library,
        })
    }

    /// The plugin the library made.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }
}
