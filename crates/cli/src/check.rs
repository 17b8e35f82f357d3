//! `outlet check`: manifests, artifacts, policy, and the interface's `.proto`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use outlet_host::Policy;
use outlet_manifest::Manifest;

use crate::dynamic;

/// Checks each manifest, and each manifest in each folder given; every one
/// is reported, and two naming the same plugin are both refused.
pub fn run(policy: &Policy, given: &[impl AsRef<Path>]) -> anyhow::Result<ExitCode> {
    let mut manifests = Vec::new();
    for path in given {
        let path = path.as_ref();
        if !path.is_dir() {
            manifests.push(path.to_owned());
            continue;
        }
        let found = outlet_manifest::manifests_in(path).with_context(|| {
            format!(
                "{}: cannot read the folder of manifests; check the path",
                path.display()
            )
        })?;
        anyhow::ensure!(
            !found.is_empty(),
            "{}: holds no manifests (`*.toml`); give a folder of plugin manifests, or manifests",
            path.display()
        );
        manifests.extend(found);
    }
    // A file given twice (by itself and in its folder) is checked once.
    let mut seen = std::collections::HashSet::new();
    // As listed (a link to another manifest is a manifest of its own).
    manifests
        .retain(|file| seen.insert(std::path::absolute(file).unwrap_or_else(|_| file.clone())));
    let loaded: Vec<_> = manifests.iter().map(Manifest::load).collect();
    // Names as `Host::load_dir` compares them: of every manifest that
    // reads, whatever else is wrong with it.
    let names: Vec<Option<String>> = (loaded.iter())
        .map(|m| m.as_ref().ok().map(|m| m.name.clone()))
        .collect();
    let checked: Vec<_> = (loaded.into_iter())
        .zip(&manifests)
        .map(|(manifest, file)| check(policy, manifest?, file))
        .collect();
    let mut failed = 0;
    for (index, (file, checked)) in manifests.iter().zip(&checked).enumerate() {
        let others: Vec<String> = (0..manifests.len())
            .filter(|&other| {
                other != index && names[other].is_some() && names[other] == names[index]
            })
            .map(|other| manifests[other].display().to_string())
            .collect();
        match checked {
            Ok((name, _)) if !others.is_empty() => {
                failed += 1;
                println!(
                    "refused {}: plugin `{name}` is also named by {}; give each plugin its own \
                     `name`",
                    file.display(),
                    others.join(", ")
                );
            }
            Ok((_, summary)) => println!("ok      {}: {summary}", file.display()),
            Err(error) => {
                failed += 1;
                println!("refused {error:#}");
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} manifests refused", manifests.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The plugin's name and a line on what was checked, of `manifest` read
/// from `file`.
fn check(policy: &Policy, manifest: Manifest, file: &Path) -> anyhow::Result<(String, String)> {
    let manifest = policy.admit(manifest)?;
    manifest.verify_artifact()?;
    if !outlet_host::MECHANISMS.contains(&manifest.mechanism) {
        anyhow::bail!(
            "{}: plugin `{}` uses the `{}` mechanism, which this build of Outlet does not have",
            file.display(),
            manifest.name,
            manifest.mechanism
        );
    }
    if manifest.proto.is_some() {
        dynamic::service(&manifest, policy)?;
    }
    let mut summary = format!(
        "plugin `{}` ({}, trust {}, {})",
        manifest.name,
        manifest.mechanism,
        manifest.trust,
        match (&manifest.sha256, &manifest.signature) {
            (Some(_), Some(_)) => "sha256 and signature match",
            (Some(_), None) => "sha256 matches",
            (None, Some(_)) => "signature matches",
            (None, None) => "no sha256",
        }
    );
    // What it will reach: a relaxed sandbox is flagged.
    if manifest.mechanism.is_process()
        && !manifest.sandbox
        && manifest.trust == outlet_manifest::Trust::OutOfProcess
        && manifest.reattach.is_none()
    {
        summary += "\n        warning: `sandbox = false` runs this out-of-process plugin with every \
                    right of the host's user; remove it, and grant what the plugin needs in \
                    [permissions]";
    }
    for line in outlet_host::sandbox_reach(&manifest) {
        summary += &format!("\n        {line}");
    }
    Ok((manifest.name, summary))
}
