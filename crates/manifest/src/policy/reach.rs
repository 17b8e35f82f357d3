//! Where a manifest below `in-process` may point the host at files: the
//! folders it is granted, the programs it may run, the identity a TLS
//! reattach presents and its signature, each resolved through its links
//! and held inside the manifest's folder or a root the host approves.

use std::path::{Component, Path, PathBuf};

use super::Policy;
use crate::{Manifest, ManifestError};

/// The system's program folders, whose programs any sandboxed process may
/// be granted (it may read them anyway).
pub const SYSTEM_PROGRAMS: [&str; 5] = ["/usr", "/bin", "/sbin", "/lib", "/lib64"];

impl Policy {
    /// Each granted folder, resolved through its symbolic links, must be
    /// inside the manifest's folder or a root the host approves; written
    /// relative to the manifest, without `..`. Replaced by the resolved
    /// path, which the wasm mechanism opens once, at load.
    pub(super) fn resolve_dirs(&self, manifest: &mut Manifest) -> Result<(), ManifestError> {
        for index in 0..manifest.permissions.dirs.len() {
            let host = manifest.permissions.dirs[index].host.clone();
            let resolved = self
                .confine(manifest, &host)
                .map_err(|problem| self.outside(manifest, "permissions.dirs", &host, problem))?;
            manifest.permissions.dirs[index].host = resolved;
        }
        Ok(())
    }

    /// Each program a sandboxed process may execute (and read), resolved
    /// through its links, as the sandbox grants the file and not the link:
    /// a file inside the manifest's folder, an approved root or the system's
    /// program folders ([`SYSTEM_PROGRAMS`]), as a granted folder is.
    pub(super) fn resolve_programs(&self, manifest: &mut Manifest) -> Result<(), ManifestError> {
        for index in 0..manifest.permissions.programs.len() {
            let program = manifest.permissions.programs[index].clone();
            let field = "permissions.programs";
            let resolved = match self.confine(manifest, &program) {
                Ok(resolved) => resolved,
                Err(problem) => match program.canonicalize() {
                    Ok(system) if SYSTEM_PROGRAMS.iter().any(|f| system.starts_with(f)) => system,
                    _ => return Err(self.outside(manifest, field, &program, problem)),
                },
            };
            if !std::fs::metadata(&resolved).is_ok_and(|meta| meta.is_file()) {
                let problem = "is not a file".to_owned();
                return Err(self.outside(manifest, field, &program, problem));
            }
            manifest.permissions.programs[index] = resolved;
        }
        Ok(())
    }

    /// The files a TLS reattach presents, confined as granted folders are:
    /// a manifest below `in-process` does not choose which of the user's
    /// identities the host shows a server.
    /// Replaced by their resolved paths, which the host opens without
    /// following a link.
    pub(super) fn check_reattach_files(
        &self,
        manifest: &mut Manifest,
    ) -> Result<(), ManifestError> {
        let Some(reattach) = &manifest.reattach else {
            return Ok(());
        };
        let mut resolved = [None, None];
        for (slot, (field, file)) in resolved.iter_mut().zip([
            ("reattach.client_cert", &reattach.client_cert),
            ("reattach.client_key", &reattach.client_key),
        ]) {
            if let Some(file) = file {
                *slot = Some(
                    self.confine(manifest, file)
                        .map_err(|problem| self.outside(manifest, field, file, problem))?,
                );
            }
        }
        let [cert, key] = resolved;
        if let Some(reattach) = &mut manifest.reattach {
            reattach.client_cert = cert;
            reattach.client_key = key;
        }
        Ok(())
    }

    /// Whether `resolved`, a path with its links resolved, lies inside the
    /// folder of the manifest read from `file` or inside a root the host
    /// approves: where a manifest may point the host at files.
    pub fn within_reach(&self, file: &Path, resolved: &Path) -> bool {
        resolved.starts_with(manifest_folder(file))
            || self.roots.iter().any(|root| resolved.starts_with(root))
    }

    /// `path` (joined to the manifest's folder) resolved through its links,
    /// if it is written without `..` and lies inside the manifest's folder
    /// or an approved root; else what is wrong with it.
    pub(super) fn confine(&self, manifest: &Manifest, path: &Path) -> Result<PathBuf, String> {
        let own = manifest_folder(&manifest.file);
        // As written: what follows the folder the manifest was given by.
        let given = manifest.file.parent().unwrap_or(Path::new(""));
        let written = path.strip_prefix(given).unwrap_or(path);
        if written.components().any(|c| c == Component::ParentDir) {
            return Err("climbs out with `..`".to_owned());
        }
        let resolved = path
            .canonicalize()
            .map_err(|error| format!("cannot be resolved: {error}"))?;
        if self.within_reach(&manifest.file, &resolved) {
            return Ok(resolved);
        }
        Err(format!(
            "is {}, outside the manifest's folder {}{}",
            resolved.display(),
            own.display(),
            if self.roots.is_empty() {
                ""
            } else {
                " and the roots the host approves"
            }
        ))
    }

    /// The refusal of `path`, named in `field`, for `problem`.
    pub(super) fn outside(
        &self,
        manifest: &Manifest,
        field: &str,
        path: &Path,
        problem: String,
    ) -> ManifestError {
        ManifestError::policy(
            manifest,
            format!("`{field}` names {}, which {problem}", path.display()),
            format!(
                "name a path inside {} relative to the manifest, or have the host approve its \
                 root (`Policy::approve_root`; for the `outlet` command, `--approve-root FOLDER`)",
                manifest_folder(&manifest.file).display()
            ),
        )
    }
}

/// The folder a manifest was loaded from, resolved as far as it exists:
/// where its relative paths are resolved too, so that its trust and its
/// paths are judged in one folder. A manifest reached through a link is
/// judged where the link is (putting a link in a folder takes the same
/// right as putting a manifest there).
pub(super) fn manifest_folder(file: &Path) -> PathBuf {
    let folder = std::path::absolute(file)
        .unwrap_or_else(|_| file.to_owned())
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default();
    folder.canonicalize().unwrap_or(folder)
}
