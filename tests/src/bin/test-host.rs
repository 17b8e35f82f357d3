//! A host that loads plugins, says so on stdout (`loaded NAME PID` each),
//! and waits to be killed: what a test kills with SIGKILL to see that its
//! plugins go too.
//!
//! With `OUTLET_TEST_PROBES` (lines of `probe:` names, see `probe.rs`), it
//! instead has each plugin try each, prints what its sandbox holds and what
//! each probe gave, and exits: a test runs it as another user.

fn main() {
    let manifests: Vec<String> = std::env::args().skip(1).collect();
    assert!(!manifests.is_empty(), "usage: outlet-test-host MANIFEST...");
    let host = outlet_host::Host::new();
    let mut plugins = Vec::new();
    for manifest in &manifests {
        let plugin = host.load(manifest).expect("load the plugin");
        println!(
            "loaded {} {}",
            plugin.name(),
            plugin.process_id().unwrap_or_default()
        );
        plugins.push(plugin);
    }
    if let Ok(probes) = std::env::var("OUTLET_TEST_PROBES") {
        for plugin in &plugins {
            report(plugin, &probes);
        }
        return;
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// The plugin's sandbox, layer by layer, then each probe's outcome.
fn report(plugin: &outlet_host::Plugin, probes: &str) {
    match plugin.sandbox() {
        Some(report) => {
            println!(
                "sandbox {}",
                if report.enforced {
                    "enforced"
                } else {
                    "not enforced"
                }
            );
            for layer in &report.layers {
                let holds = if layer.holds { "holds" } else { "missing" };
                println!("layer {} {holds} {}", layer.name, layer.level);
            }
        }
        None => println!("sandbox none"),
    }
    let greeter = plugin
        .client::<greeter::GreeterClient<_>>()
        .expect("a greeter");
    for probe in probes.lines() {
        let outcome = greeter
            .greet(greeter::GreetRequest {
                name: format!("probe:{probe}"),
            })
            .map_or_else(|status| format!("call failed: {status}"), |r| r.message);
        println!("probe {probe}: {outcome}");
    }
}
