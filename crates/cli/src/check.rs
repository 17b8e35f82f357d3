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
        dynamic::service(&manifest, policy)?;
    }
    let mut summary = format!(
        "plugin `{}` ({}, trust {}, {})",
        manifest.name,
        manifest.mechanism,
        manifest.trust,
        match &manifest.sha256 {
            Some(_) => "sha256 matches",
            None => "no sha256",
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
    Ok(summary)
}
