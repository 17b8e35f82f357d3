//! Generates the core protocol's messages from `proto/outlet/core/v1/core.proto`,
//! and records the compiler that builds this crate, for the native
//! mechanism's build fingerprint.

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = root.join("outlet/core/v1/core.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let descriptors = protox::compile([&file], [&root]).unwrap_or_else(|error| {
        panic!("{}: {error}", file.display());
    });
    prost_build::Config::new()
        .compile_fds(descriptors)
        .expect("generate the core protocol's messages");

    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(&rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("cannot ask {rustc} for its version"));
    println!("cargo:rustc-env=OUTLET_RUSTC={version}");
    let debug = std::env::var_os("CARGO_CFG_DEBUG_ASSERTIONS").is_some();
    println!(
        "cargo:rustc-env=OUTLET_DEBUG_ASSERTIONS={}",
        if debug { "on" } else { "off" }
    );
    println!(
        "cargo:rustc-env=OUTLET_TARGET={}",
        std::env::var("TARGET").expect("cargo sets TARGET")
    );
}
