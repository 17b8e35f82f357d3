//! Generates the core protocol's messages from `proto/outlet/core/v1/core.proto`.

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
}
