//! `outlet inspect`: a plugin's Hello and what was negotiated.

use std::path::Path;
use std::process::ExitCode;

use outlet_host::Host;

pub fn run(host: Host, manifest: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let plugin = host.load(manifest)?;
    let hello = plugin.hello();
    let agreed = plugin.negotiated();
    let manifest = plugin.manifest();
    if json {
        let out = serde_json::json!({
            "plugin": manifest.name,
            "mechanism": manifest.mechanism.name(),
            "trust": manifest.trust.name(),
            "hello": {
                "name": hello.name,
                "version": hello.version,
                "core_versions": hello.core_versions,
                "app_versions": hello.app_versions,
                "capabilities": hello.capabilities,
                "services": hello.services,
            },
            "negotiated": {
                "core_version": agreed.core_version,
                "app_version": agreed.app_version,
                "capabilities": agreed.capabilities,
            },
        });
        println!("{out:#}");
    } else {
        println!(
            "plugin        {} ({}, trust {})",
            manifest.name, manifest.mechanism, manifest.trust
        );
        println!("hello         {} {}", hello.name, hello.version);
        println!("services      {}", hello.services.join(", "));
        println!(
            "core versions {:?} (host {:?})",
            hello.core_versions,
            outlet_protocol::CORE_VERSIONS
        );
        println!(
            "app versions  {:?} (host {:?})",
            hello.app_versions, manifest.versions
        );
        println!("capabilities  {}", list(&hello.capabilities));
        println!(
            "negotiated    core v{}, app v{}, capabilities: {}",
            agreed.core_version,
            agreed.app_version,
            list(&agreed.capabilities)
        );
    }
    let _ = plugin.shutdown();
    Ok(ExitCode::SUCCESS)
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
