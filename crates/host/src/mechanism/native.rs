//! The native mechanism: a Rust plugin from the host's own build, in the
//! host's process. Generated clients call the plugin's implementation of
//! the trait directly: what its services lend (`Backend::shared`), which
//! the running `Instance` keeps; calls by gRPC path (the core protocol,
//! `outlet call`) go through its generated server.
//! The loading and its checks live in `outlet-dylib`.

use std::sync::Arc;

use outlet_dylib::NativeLibrary;
use outlet_manifest::Manifest;
use outlet_protocol::native_abi::{Connection, HostCall};
use outlet_protocol::{Messages, Shared, Status, Transport};

use super::{Backend, Claim, LibraryPath, Session};
use crate::error::LoadError;
use crate::services::HostServices;

pub(crate) struct Native {
    library: NativeLibrary,
    _claim: Option<Claim>,
}

impl Native {
    pub(crate) fn new(
        manifest: &Manifest,
        fresh: bool,
        services: Arc<HostServices>,
    ) -> Result<Native, LoadError> {
        let plugin = manifest.name.clone();
        let mut path = LibraryPath::new(manifest, fresh)?;
        // The plugin's way into the host: calls as this plugin, nothing else.
        let caller = crate::services::Caller::of(manifest);
        let host: HostCall = Arc::new(
            move |method: &str, request: &[u8], response: &mut dyn FnMut(&[u8])| {
                services.call_with(&caller, method, request, response)
            },
        );
        let host = Connection {
            call: host,
            context: crate::deadline::HERE,
        };
        #[allow(unsafe_code)]
        // SAFETY: `NativeLibrary::open` runs the library's code in this
        // process. The trust policy admits the native mechanism only for
        // trust = "in-process", whose authors vouch for their plugins as for the
        // host's own code; `open` checks the ELF type, the declaration's ABI
        // version and size, and the build fingerprint before it calls any
        // Rust code of the library.
        let library = unsafe { NativeLibrary::open(&path.path, host) }.map_err(|error| {
            LoadError::Library {
                plugin: plugin.clone(),
                error,
            }
        })?;
        if let (Some(proto), Some(service)) = (
            &manifest.proto,
            library.plugin().find_service(&manifest.interface),
        ) {
            let expected = std::fs::read(proto)
                .map(|bytes| outlet_manifest::sha256_hex(&bytes))
                .map_err(|error| outlet_manifest::ManifestError::Artifact {
                    plugin: plugin.clone(),
                    path: proto.clone(),
                    error,
                })?;
            if service.proto_sha256() != expected {
                return Err(LoadError::ProtoMismatch {
                    plugin,
                    proto: proto.clone(),
                    manifest: expected,
                    // Copied: the library's statics go when it is unloaded.
                    found: service.proto_sha256().to_owned(),
                });
            }
        }
        Ok(Native {
            library,
            _claim: path.claim(),
        })
    }
}

impl Transport for Native {
    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        let mut response = Vec::new();
        self.library
            .plugin()
            .handle(method, request, &mut response)?;
        Ok(response)
    }

    fn open(&self, method: &str, requests: Messages<Vec<u8>>) -> Result<Messages<Vec<u8>>, Status> {
        self.library.plugin().open(method, requests)
    }
}

impl Backend for Native {
    fn set_session(&self, _session: Session) {}

    fn stop(&self) {}

    fn shared(&self) -> Vec<(String, Shared)> {
        self.library
            .plugin()
            .shared()
            .into_iter()
            .map(|(name, shared)| (name.to_owned(), shared))
            .collect()
    }

    fn poisoned(&self) -> bool {
        self.library.plugin().poisoned()
    }
}
