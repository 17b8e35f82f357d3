//! The first exchange with a started plugin: Hello, the negotiation of
//! versions and capabilities, and the check that it serves the manifest's
//! interface.

use outlet_manifest::Manifest;
use outlet_protocol::core::{self, HelloRequest, HelloResponse};
use outlet_protocol::{CORE_VERSIONS, Negotiated, capability, negotiate, unary};

use crate::error::LoadError;
use crate::mechanism::Backend;

/// What the host offers in Hello: its core versions, the manifest's
/// interface versions, the capabilities it has.
pub(crate) fn offer(versions: &[u32]) -> HelloRequest {
    HelloRequest {
        core_versions: CORE_VERSIONS.to_vec(),
        app_versions: versions.to_vec(),
        capabilities: vec![capability::CONFIGURE.into(), capability::RPC_FRAMES.into()],
    }
}

/// Says Hello to a started plugin, negotiates, and checks that it serves
/// the manifest's interface.
pub(crate) fn handshake(
    manifest: &Manifest,
    backend: &dyn Backend,
) -> Result<(HelloResponse, Negotiated), LoadError> {
    let plugin = &manifest.name;
    let offer = offer(&manifest.versions);
    let hello: HelloResponse =
        unary(backend, core::HELLO, &offer).map_err(|status| LoadError::Hello {
            plugin: plugin.clone(),
            status,
        })?;
    let negotiated = negotiate(&offer, &hello).map_err(|error| LoadError::Negotiation {
        plugin: plugin.clone(),
        error,
    })?;
    if !hello.services.contains(&manifest.interface) {
        // What the plugin says, but not all of it: the first few names,
        // each cut.
        let found = hello
            .services
            .iter()
            .take(8)
            .map(|service| service.chars().take(256).collect())
            .collect();
        return Err(LoadError::Interface {
            plugin: plugin.clone(),
            expected: manifest.interface.clone(),
            found,
        });
    }
    Ok((hello, negotiated))
}
