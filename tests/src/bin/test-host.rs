//! A host that loads plugins, says so on stdout (`loaded NAME PID` each),
//! and waits to be killed: what a test kills with SIGKILL to see that its
//! plugins go too.

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
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
