//! `outlet demo`: the greeter through every mechanism this build has.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use greeter::{GreetRequest, GreeterClient};
use kv::Kv;
use outlet_host::{Host, MECHANISMS, Plugin};
use outlet_manifest::{Manifest, Mechanism};

pub fn run(host: Host, manifests: &Path) -> anyhow::Result<ExitCode> {
    // A key-value store the host offers its plugins: the rpc greeter writes
    // into it during a call, through go-plugin's broker.
    let store = Arc::new(kv::Store::default());
    host.offer(kv::KvServer::new(store.clone()))?;
    let names: Vec<&str> = MECHANISMS.iter().map(|m| m.name()).collect();
    println!(
        "Outlet demo: the greeter through every mechanism in this build ({})",
        names.join(", ")
    );
    // One greeter per mechanism, and a second one in another language where
    // the mechanism is for any language.
    let files = [
        "native.toml",
        "cabi.toml",
        "cabi-rust.toml",
        "rpc.toml",
        "wasm.toml",
        "wasm-rust.toml",
        "exec.toml",
    ];
    for name in files {
        let file = manifests.join(name);
        let mechanism = Manifest::load(&file)?.mechanism;
        if !MECHANISMS.contains(&mechanism) {
            continue;
        }
        println!("\n[{mechanism}] {}", file.display());
        let started = Instant::now();
        let plugin = host.load(&file).with_context(|| {
            format!(
                "loading {}; run the README's demo command, which builds the example plugins",
                file.display()
            )
        })?;
        let hello = plugin.hello();
        let agreed = plugin.negotiated();
        println!(
            "  loaded    {} {} in {:.2?}: app v{}, capabilities: {}",
            hello.name,
            hello.version,
            started.elapsed(),
            agreed.app_version,
            agreed.capabilities.join(", ")
        );
        greet(&plugin, "world")?;
        if agreed.supports(outlet_protocol::capability::CONFIGURE) {
            let mut config = BTreeMap::from([("greeting".to_owned(), "Howdy".to_owned())]);
            if mechanism == Mechanism::Rpc {
                config.insert("guestbook".into(), "visitors".into());
            }
            plugin.configure(config.clone())?;
            println!("  configure {config:?}, no restart");
            greet(&plugin, "world")?;
            if mechanism == Mechanism::Rpc {
                let key = "visitors".to_owned();
                let seen = store.get(kv::GetRequest { key: key.clone() })?.value;
                println!(
                    "  host KV   {key} = {:?}, put there by the plugin during its call, through \
                     go-plugin's broker",
                    String::from_utf8_lossy(&seen)
                );
            }
        } else {
            println!("  configure not offered by this plugin");
        }
        let health = plugin.health()?;
        println!("  health    {:?}", health.status());
        plugin.shutdown()?;
        println!("  shutdown  ok");
    }

    println!("\n[policy] a sandboxed plugin asks to run in-process:");
    let refused = Manifest::parse(
        r#"
        name = "stranger"
        mechanism = "native"
        path = "libstranger.so"
        interface = "outlet.examples.greeter.v1.Greeter"
        trust = "sandboxed"
        sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
        "#,
        Path::new("stranger.toml"),
    );
    match refused {
        Err(error) => println!("  refused   {error}"),
        Ok(_) => anyhow::bail!("the trust policy let a sandboxed native plugin through"),
    }
    Ok(ExitCode::SUCCESS)
}

fn greet(plugin: &Plugin, name: &str) -> anyhow::Result<()> {
    let greeter = plugin.client::<GreeterClient<_>>()?;
    let started = Instant::now();
    let reply = greeter.greet(GreetRequest { name: name.into() })?;
    println!(
        "  greet     {name:?} -> {:?} in {:.2?}",
        reply.message,
        started.elapsed()
    );
    Ok(())
}
