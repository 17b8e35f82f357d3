//! cabi: Greet through the C ABI, protobuf bytes in and out, from a C
//! plugin and from a Rust one.

use std::path::Path;

use outlet_host::Host;

use super::greet::in_process;
use super::report::Row;

pub fn rows(host: &Host, manifests: &Path, calls: usize) -> anyhow::Result<Vec<Row>> {
    let usual = "c-shared: as plugin package, ~5 ns per direct call";
    [
        ("cabi.toml", "Greet, C plugin, protobuf via outlet.h"),
        (
            "cabi-rust.toml",
            "Greet, Rust plugin, protobuf via outlet.h",
        ),
    ]
    .into_iter()
    .map(|(file, case)| in_process(host, &manifests.join(file), calls, "cabi", case, usual))
    .collect()
}
