//! The handshake line: how a plugin tells its host where it listens.

use std::fmt;
use std::str::FromStr;

/// go-plugin's core protocol version; the only one there is.
pub const CORE_PROTOCOL_VERSION: u32 = 1;

/// How the plugin is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// A Unix socket; the address is its path.
    Unix,
    /// TCP; the address is `host:port`.
    Tcp,
}

impl Network {
    /// The name in the handshake line.
    pub fn name(self) -> &'static str {
        match self {
            Network::Unix => "unix",
            Network::Tcp => "tcp",
        }
    }

    /// The network of that name (`unix` or `tcp`), if it is one.
    pub fn from_name(name: &str) -> Option<Network> {
        [Network::Unix, Network::Tcp]
            .into_iter()
            .find(|network| network.name() == name)
    }
}

/// The line a plugin prints on stdout once it listens:
/// `CORE|APP|NETWORK|ADDRESS|PROTOCOL|CERT`, e.g.
/// `1|1|unix|/tmp/plugin123|grpc|`. `CERT` is the plugin's certificate
/// (base64 DER, no padding) when the host asked for mutual TLS, else empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeLine {
    /// go-plugin's core protocol version, [`CORE_PROTOCOL_VERSION`].
    pub core_version: u32,
    /// The app (interface) protocol version the plugin chose.
    pub app_version: u32,
    /// Unix socket or TCP.
    pub network: Network,
    /// The socket's path, or `host:port`.
    pub address: String,
    /// The plugin's certificate, when it serves TLS.
    pub cert: Option<String>,
}

/// Why a line is not a handshake Outlet can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Not a handshake line at all.
    #[error(
        "`{line}` is not a go-plugin handshake line (`CORE|APP|NETWORK|ADDRESS|PROTOCOL|CERT`, \
         e.g. `1|1|unix|/tmp/plugin123|grpc|`); a plugin prints nothing else on stdout before it"
    )]
    Malformed {
        /// The line, cut to 200 bytes.
        line: String,
    },
    /// A core protocol version other than 1.
    #[error("it speaks go-plugin core protocol {found}, and Outlet speaks {CORE_PROTOCOL_VERSION}")]
    CoreVersion {
        /// The version in the line.
        found: u32,
    },
    /// net/rpc or another protocol instead of gRPC.
    #[error(
        "it speaks `{found}`, and Outlet speaks only go-plugin's `grpc`; serve the plugin with \
         a GRPCPlugin (go-plugin) or `outlet_guest::rpc::serve`"
    )]
    Protocol {
        /// The protocol in the line.
        found: String,
    },
    /// A network other than `unix` or `tcp`.
    #[error("it listens on network `{found}`; Outlet connects over `unix` or `tcp`")]
    Network {
        /// The network in the line.
        found: String,
    },
}

impl FromStr for HandshakeLine {
    type Err = HandshakeError;

    fn from_str(line: &str) -> Result<HandshakeLine, HandshakeError> {
        // go-plugin trims the line the same way.
        let line = line.trim();
        let malformed = || {
            let mut cut = line.len().min(200);
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            HandshakeError::Malformed {
                line: line[..cut].to_owned(),
            }
        };
        let parts: Vec<&str> = line.splitn(6, '|').collect();
        let [core, app, network, address, rest @ ..] = &parts[..] else {
            return Err(malformed());
        };
        let (Ok(core_version), Ok(app_version)) = (core.parse(), app.parse()) else {
            return Err(malformed());
        };
        if address.is_empty() {
            return Err(malformed());
        }
        if core_version != CORE_PROTOCOL_VERSION {
            return Err(HandshakeError::CoreVersion {
                found: core_version,
            });
        }
        // go-plugin reads a line without a protocol as net/rpc.
        let protocol = rest.first().copied().unwrap_or("netrpc");
        if protocol != "grpc" {
            return Err(HandshakeError::Protocol {
                found: protocol.to_owned(),
            });
        }
        let network = Network::from_name(network).ok_or_else(|| HandshakeError::Network {
            found: (*network).to_owned(),
        })?;
        Ok(HandshakeLine {
            core_version,
            app_version,
            network,
            address: (*address).to_owned(),
            cert: rest
                .get(1)
                .filter(|c| !c.is_empty())
                .map(|c| (*c).to_owned()),
        })
    }
}

impl fmt::Display for HandshakeLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}|{}|{}|{}|grpc|{}",
            self.core_version,
            self.app_version,
            self.network.name(),
            self.address,
            self.cert.as_deref().unwrap_or_default()
        )
    }
}

/// The app protocol version a plugin speaking `ours` picks from the host's
/// `PLUGIN_PROTOCOL_VERSIONS` (`theirs`, comma-separated): the highest
/// common one. With no variable (an old host), the plugin's highest.
/// `None` when they share none, or the variable is not a list of numbers.
///
/// ```
/// assert_eq!(outlet_rpc::negotiate(&[1, 2], Some("1,2,3")), Some(2));
/// assert_eq!(outlet_rpc::negotiate(&[1, 2], None), Some(2));
/// assert_eq!(outlet_rpc::negotiate(&[3], Some("1,2")), None);
/// ```
pub fn negotiate(ours: &[u32], theirs: Option<&str>) -> Option<u32> {
    let Some(theirs) = theirs else {
        return ours.iter().copied().max();
    };
    let theirs: Vec<u32> = theirs
        .split(',')
        .map(|v| v.trim().parse())
        .collect::<Result<_, _>>()
        .ok()?;
    ours.iter().copied().filter(|v| theirs.contains(v)).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_go_plugin_and_of_outlet_parse() {
        let line: HandshakeLine = "1|3|tcp|127.0.0.1:1234|grpc|MIIB\n".parse().unwrap();
        assert_eq!(line.network, Network::Tcp);
        assert_eq!(line.app_version, 3);
        assert_eq!(line.cert.as_deref(), Some("MIIB"));
        // A plugin of go-plugin before 1.0 may leave out the certificate.
        let old: HandshakeLine = "1|1|unix|/tmp/p|grpc".parse().unwrap();
        assert_eq!(old.cert, None);
        assert_eq!(old.to_string(), "1|1|unix|/tmp/p|grpc|");
    }

    #[test]
    fn foreign_lines_say_what_is_wrong() {
        let error = |line: &str| line.parse::<HandshakeLine>().unwrap_err();
        assert!(matches!(
            error("hello world"),
            HandshakeError::Malformed { .. }
        ));
        assert!(matches!(
            error("1|x|unix|/p|grpc|"),
            HandshakeError::Malformed { .. }
        ));
        assert!(matches!(
            error("1|1|unix||grpc|"),
            HandshakeError::Malformed { .. }
        ));
        assert_eq!(
            error("2|1|unix|/p|grpc|"),
            HandshakeError::CoreVersion { found: 2 }
        );
        assert!(error("1|1|unix|/p").to_string().contains("`netrpc`"));
        assert!(matches!(
            error("1|1|udp|/p|grpc|"),
            HandshakeError::Network { .. }
        ));
        let long = "é".repeat(300);
        let HandshakeError::Malformed { line } = error(&long) else {
            panic!("not malformed")
        };
        assert!(line.len() <= 200);
    }
}
