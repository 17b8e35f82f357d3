//! The mechanisms: each turns the host's calls into calls on a plugin.
//!
//! A mechanism is a [`Backend`]; `start` picks one from the manifest. The
//! same name is used everywhere: the manifest's `mechanism`, the module here,
//! the `Mechanism` variant.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use outlet_manifest::{Manifest, Mechanism};
use outlet_protocol::{Negotiated, Status};

use crate::LoadError;
use crate::services::HostServices;

pub(crate) mod cabi;
pub(crate) mod exec;
pub(crate) mod native;

/// What the host agreed with a plugin, and the config it holds for it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Session {
    pub negotiated: Negotiated,
    pub config: BTreeMap<String, String>,
}

/// One mechanism's way of reaching a loaded plugin.
pub(crate) trait Backend: Send + Sync {
    /// Sends one call (core protocol or interface method) and waits for the answer.
    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status>;

    /// As `call`, lending the answer to `response` instead of returning it
    /// (see `Transport::call_with`).
    fn call_with(
        &self,
        method: &str,
        request: &[u8],
        response: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Status> {
        response(&self.call(method, request)?);
        Ok(())
    }

    /// Runs `f` with the plugin's own implementation of `service`, for a
    /// mechanism whose plugin is native to this build (see
    /// `Transport::with_native`).
    fn with_native(&self, service: &str, f: &mut dyn FnMut(&(dyn std::any::Any + Send + Sync))) {
        let _ = (service, f);
    }

    /// Hello or Configure changed what the host and plugin agreed on. A
    /// mechanism that keeps no process between calls carries it in each call.
    fn set_session(&self, session: Session);

    /// Releases what the mechanism holds for the plugin, after Shutdown.
    fn stop(&self);

    /// Whether a call panicked inside the plugin (in-process mechanisms).
    fn poisoned(&self) -> bool {
        false
    }
}

/// The path to load a shared library from: the artifact itself, or for a
/// fresh instance, a private copy that is removed once it is mapped.
pub(crate) struct LibraryPath {
    pub path: PathBuf,
    copy: bool,
}

impl LibraryPath {
    pub(crate) fn new(manifest: &Manifest, fresh: bool) -> Result<LibraryPath, LoadError> {
        let artifact_error = |error| outlet_manifest::ManifestError::Artifact {
            plugin: manifest.name.clone(),
            path: manifest.path.clone(),
            error,
        };
        let path = manifest.path.canonicalize().map_err(artifact_error)?;
        if !fresh {
            return Ok(LibraryPath { path, copy: false });
        }
        static COPIES: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!("outlet-{}", std::process::id()));
        let copy = dir.join(format!(
            "{}-{}.so",
            manifest.name,
            COPIES.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::copy(&path, &copy))
            .map_err(artifact_error)?;
        Ok(LibraryPath {
            path: copy,
            copy: true,
        })
    }
}

impl Drop for LibraryPath {
    /// A mapped library needs no file: the copy goes once it is loaded.
    fn drop(&mut self) {
        if self.copy {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl outlet_protocol::Transport for dyn Backend + '_ {
    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        Backend::call(self, method, request)
    }

    fn call_with(
        &self,
        method: &str,
        request: &[u8],
        response: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Status> {
        Backend::call_with(self, method, request, response)
    }

    fn with_native(&self, service: &str, f: &mut dyn FnMut(&(dyn std::any::Any + Send + Sync))) {
        Backend::with_native(self, service, f)
    }
}

/// The mechanisms this build of Outlet can load.
pub const AVAILABLE: &[Mechanism] = &[Mechanism::Native, Mechanism::Cabi, Mechanism::Exec];

/// Starts the mechanism the manifest names. Checks nothing the manifest
/// crate already checked; the plugin has not been called yet.
///
/// `fresh` asks for a new instance beside one already running (a reload):
/// a shared library is then loaded from a private copy, since the dynamic
/// loader hands back the mapping it already has for a path it has opened.
pub(crate) fn start(
    manifest: &Manifest,
    fresh: bool,
    services: &Arc<HostServices>,
) -> Result<Box<dyn Backend>, LoadError> {
    match manifest.mechanism {
        Mechanism::Exec => Ok(Box::new(exec::Exec::new(manifest)?)),
        Mechanism::Cabi => Ok(Box::new(cabi::Cabi::new(
            manifest,
            fresh,
            services.clone(),
        )?)),
        Mechanism::Native => Ok(Box::new(native::Native::new(manifest, fresh)?)),
        mechanism => Err(LoadError::Unsupported {
            plugin: manifest.name.clone(),
            mechanism,
            available: AVAILABLE
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}
