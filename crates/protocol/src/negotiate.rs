//! Hello negotiation: the highest common version, the common capabilities.

use crate::core::{HelloRequest, HelloResponse};

/// The versions of the core protocol this build speaks, oldest first.
pub const CORE_VERSIONS: &[u32] = &[1];

/// What host and plugin agreed on in Hello.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Negotiated {
    /// The core protocol version both speak (the highest common one).
    pub core_version: u32,
    /// The interface version both speak (the highest common one).
    pub app_version: u32,
    /// The capabilities both support, sorted.
    pub capabilities: Vec<String>,
}

impl Negotiated {
    /// Whether both sides support `capability`.
    pub fn supports(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }
}

/// Host and plugin share no version of something they must agree on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    /// No common version of Outlet's core protocol.
    #[error(
        "no common core protocol version: the host speaks {host:?}, the plugin speaks {plugin:?}; \
         rebuild the plugin against an Outlet release that speaks one of the host's versions"
    )]
    CoreVersion {
        /// The host's versions.
        host: Vec<u32>,
        /// The plugin's versions.
        plugin: Vec<u32>,
    },
    /// No common version of the plugin's interface.
    #[error(
        "no common interface version: the host accepts {host:?}, the plugin speaks {plugin:?}; \
         update the plugin, or list one of its versions in the manifest's `versions`"
    )]
    AppVersion {
        /// The versions the host accepts.
        host: Vec<u32>,
        /// The versions the plugin speaks.
        plugin: Vec<u32>,
    },
}

/// Picks the highest version both sides speak and the capabilities both have.
///
/// # Errors
/// [`NegotiationError`] names both sides' versions when they share none.
///
/// # Examples
/// ```
/// use outlet_protocol::core::{HelloRequest, HelloResponse};
/// use outlet_protocol::negotiate;
///
/// let host = HelloRequest {
///     core_versions: vec![1],
///     app_versions: vec![1, 2, 3],
///     capabilities: vec!["configure".into(), "host-calls".into()],
/// };
/// let plugin = HelloResponse {
///     core_versions: vec![1],
///     app_versions: vec![2, 3, 4],
///     capabilities: vec!["configure".into()],
///     ..Default::default()
/// };
/// let agreed = negotiate(&host, &plugin)?;
/// assert_eq!(agreed.app_version, 3);
/// assert!(agreed.supports("configure") && !agreed.supports("host-calls"));
/// # Ok::<(), outlet_protocol::NegotiationError>(())
/// ```
pub fn negotiate(
    host: &HelloRequest,
    plugin: &HelloResponse,
) -> Result<Negotiated, NegotiationError> {
    let core_version =
        highest_common(&host.core_versions, &plugin.core_versions).ok_or_else(|| {
            NegotiationError::CoreVersion {
                host: host.core_versions.clone(),
                plugin: plugin.core_versions.clone(),
            }
        })?;
    let app_version =
        highest_common(&host.app_versions, &plugin.app_versions).ok_or_else(|| {
            NegotiationError::AppVersion {
                host: host.app_versions.clone(),
                plugin: plugin.app_versions.clone(),
            }
        })?;
    let mut capabilities: Vec<String> = host
        .capabilities
        .iter()
        .filter(|c| plugin.capabilities.contains(c))
        .cloned()
        .collect();
    capabilities.sort();
    capabilities.dedup();
    Ok(Negotiated {
        core_version,
        app_version,
        capabilities,
    })
}

fn highest_common(a: &[u32], b: &[u32]) -> Option<u32> {
    a.iter().filter(|v| b.contains(v)).max().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(core: &[u32], app: &[u32]) -> (HelloRequest, HelloResponse) {
        let request = HelloRequest {
            core_versions: vec![1],
            app_versions: vec![1, 2],
            capabilities: vec![],
        };
        let response = HelloResponse {
            core_versions: core.to_vec(),
            app_versions: app.to_vec(),
            ..Default::default()
        };
        (request, response)
    }

    #[test]
    fn picks_the_highest_common_version_not_the_highest_offered() {
        let (request, response) = hello(&[1, 2], &[2, 1, 7]);
        let agreed = negotiate(&request, &response).unwrap();
        assert_eq!((agreed.core_version, agreed.app_version), (1, 2));
    }

    #[test]
    fn no_common_version_names_both_sides() {
        let (request, response) = hello(&[1], &[3, 4]);
        let error = negotiate(&request, &response).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("[1, 2]") && text.contains("[3, 4]"), "{text}");
        let (request, response) = hello(&[9], &[1]);
        assert!(matches!(
            negotiate(&request, &response),
            Err(NegotiationError::CoreVersion { .. })
        ));
    }
}
