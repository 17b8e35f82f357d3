//! Where the host connects, checked before anything is sent: the address a
//! started plugin's handshake names ([`check`]). The process behind every
//! connection to a plugin's Unix socket is checked too, each time
//! ([`Peer`](super::peer::Peer)): the path checked here stays in a folder
//! the plugin owns.
//!
//! A handshake line is the plugin's word: without these checks, a plugin
//! could name another service's socket or port, and the host would send
//! that service the plugin's config, every call and a Shutdown.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use outlet_rpc::{HandshakeLine, Network};

use super::error::RpcError;
use super::process::Process;

/// The TCP ports a started plugin may listen on, go-plugin's defaults; the
/// host gives them in `PLUGIN_MIN_PORT` and `PLUGIN_MAX_PORT`.
pub(super) const PORTS: (u16, u16) = (10000, 25000);

/// Checks the address in a started plugin's handshake `line`: a Unix
/// socket inside the plugin's own folder, no symbolic link leading out of
/// it (the address becomes the socket's canonical path); or TCP on
/// 127.0.0.1 or `[::1]`, on a port of [`PORTS`], and only with mutual TLS
/// (`mtls`: the host made a certificate for the plugin, so that its
/// handshake must carry one, which every connection then checks).
pub(super) fn check(
    mut line: HandshakeLine,
    process: &Process,
    mtls: bool,
) -> Result<HandshakeLine, RpcError> {
    match line.network {
        Network::Unix => {
            line.address =
                inside(&line.address, process.dir()).map_err(|why| RpcError::SocketOutside {
                    address: line.address.clone(),
                    dir: process.dir().to_owned(),
                    why,
                    stderr: process.stderr(),
                })?;
        }
        Network::Tcp => {
            let local = line.address.parse::<SocketAddr>().is_ok_and(|address| {
                matches!(
                    address.ip(),
                    IpAddr::V4(Ipv4Addr::LOCALHOST) | IpAddr::V6(Ipv6Addr::LOCALHOST)
                ) && (PORTS.0..=PORTS.1).contains(&address.port())
            });
            if !local {
                return Err(RpcError::TcpOutside {
                    address: line.address,
                    min: PORTS.0,
                    max: PORTS.1,
                    stderr: process.stderr(),
                });
            }
            if !mtls {
                return Err(RpcError::TcpWithoutTls {
                    address: line.address,
                    stderr: process.stderr(),
                });
            }
        }
    }
    Ok(line)
}

/// The canonical path of the socket at `address`, if it is a socket inside
/// `dir` once every link is followed; else why it is not.
fn inside(address: &str, dir: &Path) -> Result<String, String> {
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("cannot be checked, since its folder cannot be resolved: {e}"))?;
    let socket = Path::new(address)
        .canonicalize()
        .map_err(|e| format!("cannot be resolved: {e}"))?;
    if socket == dir || !socket.starts_with(&dir) {
        return Err(format!(
            "is outside that folder (it resolves to {})",
            socket.display()
        ));
    }
    let is_socket = std::fs::metadata(&socket)
        .map_err(|e| format!("cannot be read: {e}"))?
        .file_type()
        .is_socket();
    if !is_socket {
        return Err("is not a socket".into());
    }
    socket
        .into_os_string()
        .into_string()
        .map_err(|_| "resolves to a path that is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;

    #[test]
    fn a_socket_counts_as_inside_only_once_its_links_are_followed() {
        let (dir, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let own = dir.path().join("plugin.sock");
        let _own = UnixListener::bind(&own).unwrap();
        let other = elsewhere.path().join("service.sock");
        let _other = UnixListener::bind(&other).unwrap();
        let link = dir.path().join("link.sock");
        std::os::unix::fs::symlink(&other, &link).unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();

        let resolved = inside(own.to_str().unwrap(), dir.path()).unwrap();
        assert_eq!(Path::new(&resolved), own.canonicalize().unwrap());
        for (address, why) in [
            (other.to_str().unwrap().to_owned(), "is outside that folder"),
            (link.to_str().unwrap().to_owned(), "is outside that folder"),
            (
                format!(
                    "{}/../{}/service.sock",
                    dir.path().display(),
                    elsewhere.path().file_name().unwrap().to_str().unwrap()
                ),
                "is outside that folder",
            ),
            (
                dir.path().to_str().unwrap().to_owned(),
                "is outside that folder",
            ),
            (file.to_str().unwrap().to_owned(), "is not a socket"),
            (
                dir.path().join("none").to_str().unwrap().to_owned(),
                "cannot be resolved",
            ),
        ] {
            let error = inside(&address, dir.path()).unwrap_err();
            assert!(error.contains(why), "{address}: {error}");
        }
    }
}
