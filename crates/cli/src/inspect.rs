//! `outlet inspect`: a plugin's Hello and what was negotiated.

use std::path::Path;
use std::process::ExitCode;

use outlet_host::Host;

/// Inspects the plugin of `manifest`, or of every manifest in it if it is
/// a folder (one failing does not stop the others).
pub fn run(host: Host, manifest: &Path, json: bool) -> anyhow::Result<ExitCode> {
    if !manifest.is_dir() {
        let plugin = host.load(manifest)?;
        match json {
            true => println!("{:#}", to_json(&plugin)),
            false => show(&plugin),
        }
        let _ = plugin.shutdown();
        return Ok(ExitCode::SUCCESS);
    }
    let loaded = host.load_dir(manifest)?;
    let total = loaded.plugins.len() + loaded.failed.len();
    anyhow::ensure!(
        total > 0,
        "{}: holds no manifests (`*.toml`); give a folder of plugin manifests, or one manifest",
        manifest.display()
    );
    // JSON: one array of the plugins that loaded.
    if json {
        let all: Vec<serde_json::Value> = loaded.plugins.iter().map(to_json).collect();
        println!("{:#}", serde_json::Value::Array(all));
    }
    for (index, plugin) in loaded.plugins.iter().enumerate() {
        if !json {
            if index > 0 {
                println!();
            }
            show(plugin);
        }
        let _ = plugin.shutdown();
    }
    for (file, error) in &loaded.failed {
        eprintln!("refused {}: {error}", file.display());
    }
    if loaded.failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("{} of {total} manifests refused", loaded.failed.len());
    Ok(ExitCode::FAILURE)
}

/// A loaded plugin's Hello, negotiation and sandbox, as JSON.
fn to_json(plugin: &outlet_host::Plugin) -> serde_json::Value {
    let hello = plugin.hello();
    let agreed = plugin.negotiated();
    let manifest = plugin.manifest();
    serde_json::json!({
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
            "sandbox": sandbox_json(plugin),
    })
}

/// Prints a loaded plugin's Hello, negotiation and sandbox.
fn show(plugin: &outlet_host::Plugin) {
    let hello = plugin.hello();
    let agreed = plugin.negotiated();
    let manifest = plugin.manifest();
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
    match plugin.sandbox() {
        Some(report) => {
            let state = if report.enforced {
                "enforced"
            } else {
                "NOT enforced"
            };
            println!("sandbox       {state}");
            for layer in &report.layers {
                let holds = if layer.holds { "holds  " } else { "MISSING" };
                println!("  {:<13} {holds} {}", layer.name, layer.level);
            }
        }
        None => println!("sandbox       {}", unsandboxed(manifest)),
    }
}

/// The `"sandbox"` object: what holds for the plugin's process, layer by
/// layer, as the host applied it (not as the manifest asked).
fn sandbox_json(plugin: &outlet_host::Plugin) -> serde_json::Value {
    match plugin.sandbox() {
        Some(report) => serde_json::json!({
            "enforced": report.enforced,
            "layers": report.layers.iter().map(|layer| (
                layer.name.to_owned(),
                serde_json::json!({ "holds": layer.holds, "level": layer.level }),
            )).collect::<serde_json::Map<_, _>>(),
        }),
        None => serde_json::json!({
            "enforced": plugin.manifest().mechanism == outlet_manifest::Mechanism::Wasm,
            "layers": {},
            "note": unsandboxed(plugin.manifest()),
        }),
    }
}

/// Why a plugin has no OS sandbox report.
fn unsandboxed(manifest: &outlet_manifest::Manifest) -> &'static str {
    use outlet_manifest::Mechanism;
    match manifest.mechanism {
        Mechanism::Wasm => "wasmtime's: the module reaches only what the host hands it",
        Mechanism::Native | Mechanism::Cabi => "none: it runs in the host's process",
        Mechanism::Exec | Mechanism::Rpc => {
            "none: its manifest runs it without the OS sandbox, with the host user's rights"
        }
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
