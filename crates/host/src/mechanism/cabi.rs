//! The cabi mechanism: a C-ABI shared library in the host's process, called
//! through the function table of `include/outlet.h` with protobuf bytes in
//! and out. The loading and its checks live in `outlet-dylib`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use outlet_dylib::{CabiLibrary, Hooks};
use outlet_manifest::Manifest;
use outlet_protocol::core::{
    self, HealthResponse, ShutdownResponse, health_response::ServingStatus,
};
use outlet_protocol::prost::Message;
use outlet_protocol::{Status, Transport};

use super::{Backend, Claim, LibraryPath, Session};
use crate::error::LoadError;
use crate::services::HostServices;

pub(crate) struct Cabi {
    plugin: String,
    library: CabiLibrary,
    limit: usize,
    /// Whether `shutdown` was called: it is the plugin's last call, made
    /// once, at Shutdown or when the instance is dropped.
    shut: AtomicBool,
    _claim: Option<Claim>,
}

impl Cabi {
    pub(crate) fn new(
        manifest: &Manifest,
        fresh: bool,
        services: Arc<HostServices>,
    ) -> Result<Cabi, LoadError> {
        let plugin = manifest.name.clone();
        let mut path = LibraryPath::new(manifest, fresh)?;
        let (logged, caller) = (plugin.clone(), crate::services::Caller::of(manifest));
        let hooks = Hooks {
            log: {
                // Held to the log's rate, as every plugin's lines are.
                let limit = std::sync::Mutex::new(crate::log::Limiter::new("log"));
                Box::new(move |level, line| {
                    let mut limit = limit.lock().unwrap_or_else(|e| e.into_inner());
                    limit.numbered(&logged, level, line);
                })
            },
            call: Box::new(move |method, request| services.call(&caller, method, request)),
            context: crate::deadline::HERE,
        };
        #[allow(unsafe_code)]
        // SAFETY: `CabiLibrary::open` runs the library's code in this process.
        // The trust policy admits the cabi mechanism only for manifests with
        // trust = "in-process", whose authors vouch for their plugins as for the
        // host's own code; `open` checks everything `outlet.h` lets it check
        // (ELF type, entry symbol, ABI version, table size, null entries).
        let library =
            unsafe { CabiLibrary::open(&path.path, &plugin, hooks) }.map_err(|error| {
                LoadError::Library {
                    plugin: plugin.clone(),
                    error,
                }
            })?;
        Ok(Cabi {
            plugin,
            library,
            limit: manifest.limits.max_message_bytes,
            shut: AtomicBool::new(false),
            _claim: path.claim(),
        })
    }
}

impl Drop for Cabi {
    /// An instance replaced by a reload, or never shut down, gets its last
    /// call here, when no call is in it any more.
    fn drop(&mut self) {
        if !self.shut.swap(true, Ordering::AcqRel) {
            self.library.shutdown();
        }
    }
}

impl Transport for Cabi {
    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        match method {
            core::HELLO => self.library.hello(request, self.limit),
            core::CONFIGURE => self.library.configure(request, self.limit),
            core::HEALTH => Ok(HealthResponse {
                status: ServingStatus::Serving.into(),
                message: String::new(),
            }
            .encode_to_vec()),
            core::SHUTDOWN => {
                if !self.shut.swap(true, Ordering::AcqRel) {
                    self.library.shutdown();
                }
                Ok(ShutdownResponse {}.encode_to_vec())
            }
            _ => self.library.call(method, request, self.limit),
        }
    }

    fn call_with(
        &self,
        method: &str,
        request: &[u8],
        response: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Status> {
        if method.starts_with("/outlet.core.v1.") {
            response(&self.call(method, request)?);
            return Ok(());
        }
        self.library
            .call_with(method, request, self.limit, response)
    }

    fn open(
        &self,
        method: &str,
        requests: outlet_protocol::Messages<Vec<u8>>,
    ) -> Result<outlet_protocol::Messages<Vec<u8>>, Status> {
        self.open_stream(method, requests)
    }
}

impl Cabi {
    fn open_stream(
        &self,
        method: &str,
        requests: outlet_protocol::Messages<Vec<u8>>,
    ) -> Result<outlet_protocol::Messages<Vec<u8>>, Status> {
        self.library
            .open_stream(method, requests, self.limit)
            .unwrap_or_else(|| {
                Err(Status::unimplemented(format!(
                    "plugin `{}`: {method} streams, and its table has no streams (open, next \
                     and close are null, or its struct_size ends before them); see \
                     include/outlet.h",
                    self.plugin
                )))
            })
    }
}

impl Backend for Cabi {
    fn set_session(&self, _session: Session) {}

    fn stop(&self) {}
}
