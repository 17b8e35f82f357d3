//! The mechanisms: each turns the host's calls into calls on a plugin.
//!
//! A mechanism is a [`Backend`]; `start` picks one from the manifest. The
//! same name is used everywhere: the manifest's `mechanism`, the module here,
//! the `Mechanism` variant.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use outlet_manifest::{Manifest, Mechanism};
use outlet_protocol::{Negotiated, Status};

use crate::LoadError;
use crate::services::HostServices;

pub(crate) mod cabi;
pub(crate) mod exec;
mod limits;
pub(crate) mod native;
#[cfg(feature = "rpc")]
pub(crate) mod rpc;
#[cfg(feature = "wasm")]
pub(crate) mod wasi;
#[cfg(feature = "wasm")]
pub(crate) mod wasm;

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

    /// Makes a fresh instance ready for calls and drops it, for a mechanism
    /// that has instances (see `Plugin::fresh_instance`).
    fn fresh_instance(&self) -> Option<Result<(), Status>> {
        None
    }

    /// The id of the process serving the plugin now, for a mechanism that
    /// keeps one (rpc).
    fn process_id(&self) -> Option<u32> {
        None
    }

    /// Whether a call panicked inside the plugin (in-process mechanisms).
    fn poisoned(&self) -> bool {
        false
    }
}

/// The path to load a shared library from: the artifact itself, or a
/// private copy, removed once it is mapped, when the artifact is open
/// already in this process (the dynamic loader would hand back the open
/// mapping, statics and all) or a fresh instance is wanted (a reload).
pub(crate) struct LibraryPath {
    pub path: PathBuf,
    /// The private folder holding the copy, if any.
    _copy: Option<tempfile::TempDir>,
    claim: Option<Claim>,
}

/// Counts this process's loads of an artifact by path; released on drop.
pub(crate) struct Claim(PathBuf);

static OPEN: Mutex<BTreeMap<PathBuf, usize>> = Mutex::new(BTreeMap::new());

impl Drop for Claim {
    fn drop(&mut self) {
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.0) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.0);
            }
        }
    }
}

impl LibraryPath {
    pub(crate) fn new(manifest: &Manifest, fresh: bool) -> Result<LibraryPath, LoadError> {
        let artifact_error = |error| outlet_manifest::ManifestError::Artifact {
            plugin: manifest.name.clone(),
            path: manifest.path.clone(),
            error,
        };
        let path = manifest.path.canonicalize().map_err(artifact_error)?;
        let in_use = {
            let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
            let count = open.entry(path.clone()).or_insert(0);
            *count += 1;
            *count > 1
        };
        let claim = Some(Claim(path.clone()));
        if !fresh && !in_use {
            return Ok(LibraryPath {
                path,
                _copy: None,
                claim,
            });
        }
        // A folder of our own (mode 0700, random name), so nobody can swap
        // the copy between the copying and the loading.
        let dir = tempfile::Builder::new()
            .prefix("outlet-")
            .tempdir()
            .map_err(artifact_error)?;
        let copy = dir.path().join(format!("{}.so", manifest.name));
        std::fs::copy(&path, &copy).map_err(artifact_error)?;
        if let Some(expected) = &manifest.sha256 {
            let bytes = std::fs::read(&copy).map_err(artifact_error)?;
            let found = outlet_manifest::sha256_hex(&bytes);
            if &found != expected {
                return Err(outlet_manifest::ManifestError::Checksum {
                    plugin: manifest.name.clone(),
                    path: manifest.path.clone(),
                    expected: expected.clone(),
                    found,
                }
                .into());
            }
        }
        Ok(LibraryPath {
            path: copy,
            _copy: Some(dir),
            claim,
        })
    }

    /// What the loaded library keeps for as long as it is loaded; the copy
    /// (if any) goes with `self`.
    pub(crate) fn claim(&mut self) -> Option<Claim> {
        self.claim.take()
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

/// A child process's whole environment: what the manifest's `inherit_env`
/// passes through from the host's, then its `env`.
pub(crate) fn child_env(manifest: &Manifest) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    let permissions = &manifest.permissions;
    let mut env: Vec<_> = permissions
        .inherit_env
        .iter()
        .filter_map(|name| Some((name.into(), std::env::var_os(name)?)))
        .collect();
    env.extend(permissions.env.iter().map(|(k, v)| (k.into(), v.into())));
    env
}

/// The mechanisms this build of Outlet can load.
pub const AVAILABLE: &[Mechanism] = &[
    Mechanism::Native,
    Mechanism::Cabi,
    #[cfg(feature = "rpc")]
    Mechanism::Rpc,
    #[cfg(feature = "wasm")]
    Mechanism::Wasm,
    Mechanism::Exec,
];

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
        #[cfg(feature = "rpc")]
        Mechanism::Rpc => Ok(Box::new(rpc::Rpc::new(manifest, services.clone())?)),
        #[cfg(feature = "wasm")]
        Mechanism::Wasm => Ok(Box::new(wasm::Wasm::new(manifest, services.clone())?)),
        // Reached in builds without some mechanism's feature.
        #[allow(unreachable_patterns)]
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
