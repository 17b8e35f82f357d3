//! A host that loads one plugin, says so on stdout, and waits to be killed:
//! what a test kills with SIGKILL to see that the plugin goes too.

fn main() {
    let manifest = std::env::args()
        .nth(1)
        .expect("usage: outlet-test-host MANIFEST");
    let host = outlet_host::Host::new();
    let plugin = host.load(&manifest).expect("load the plugin");
    println!("loaded {}", plugin.name());
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
