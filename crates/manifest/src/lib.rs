//! Outlet's plugin manifests: one TOML file per plugin, parsed into a
//! [`Manifest`], checked against the trust [`policy`], and the [`advise`]r
//! that picks a mechanism from trust, call rate and deployment.
//!
//! Parsing is pure: it reads the file and nothing else. The artifact is
//! checked by [`Manifest::open_artifact`] (and [`Manifest::read_artifact`],
//! [`Manifest::verify_artifact`]), which the host runs at load and before
//! every start: one open, then that descriptor is checked and used.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod advise;
mod artifact;
mod error;
mod limits;
mod manifest;
mod mechanism;
mod permissions;
pub mod policy;
mod raw;
mod regular;
mod rpc;
pub mod signing;
#[cfg(test)]
mod testing;
mod trust;
mod validate;

pub use advise::{Advice, Deploy, Perf, UnknownName, advise};
pub use artifact::{MAX_ARTIFACT_BYTES, Stamp};
pub use error::ManifestError;
pub use limits::{Limits, OnPanic};
pub use manifest::{MAX_MANIFEST_BYTES, Manifest};
pub use mechanism::Mechanism;
pub use permissions::{Dir, Network, Permissions};
pub use regular::{open_regular, read_regular};
pub use rpc::{Handshake, Reattach};
pub use trust::Trust;

/// Whether `service` and `method` make a call grant's two parts (as in
/// `permissions.call`): protobuf names, `package.Service` and `Method`, or
/// `*` for every method.
pub fn call_grant_parts(service: &str, method: &str) -> bool {
    let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    service.split('.').all(word) && (method == "*" || word(method))
}

/// The manifests in `folder`, sorted by name: what it holds named
/// `*.toml` but folders and hidden files (`.name.toml`, as editors write
/// while saving). A link that leads nowhere, or to a FIFO, is listed, to
/// be refused when read. Not its subfolders.
///
/// # Errors
/// If the folder cannot be read.
pub fn manifests_in(folder: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        let path = entry?.path();
        let name = path.file_name().map_or(&b"."[..], |n| n.as_encoded_bytes());
        if name.ends_with(b".toml") && !name.starts_with(b".") && !path.is_dir() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// The SHA-256 of `bytes` in lowercase hex, as `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

/// The SHA-256 of what `reader` holds (a file, say) in lowercase hex, read
/// in chunks, as `sha256sum` prints it: what a manifest's `sha256` pins.
///
/// # Errors
/// If reading fails.
pub fn sha256_read(mut reader: impl std::io::Read) -> std::io::Result<String> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut reader, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}
