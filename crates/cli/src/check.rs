//! `outlet check`: manifests, artifacts, policy, and the interface's `.proto`.

use std::path::Path;
use std::process::ExitCode;

use outlet_host::Policy;
use outlet_manifest::Manifest;

use crate::dynamic;

pub fn run(policy: &Policy, manifests: &[impl AsRef<Path>]) -> anyhow::Result<ExitCode> {
    let mut failed = 0;
    for file in manifests {
        let file = file.as_ref();
        match check(policy, file) {
            Ok(summary) => println!("ok      {}: {summary}", file.display()),
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

fn check(policy: &Policy, file: &Path) -> anyhow::Result<String> {
    let manifest = policy.admit(Manifest::load(file)?)?;
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
        dynamic::service(&manifest)?;
    }
    Ok(format!(
        "plugin `{}` ({}, trust {}, {})",
        manifest.name,
        manifest.mechanism,
        manifest.trust,
        match &manifest.sha256 {
            Some(_) => "sha256 matches",
            None => "no sha256",
        }
    ))
}
