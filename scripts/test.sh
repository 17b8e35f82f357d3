#!/usr/bin/env bash
# Runs every test: formatting, lints, unit, integration and doc tests, with
# real plugin processes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
setup
setup_go

cargo fmt --all -- --check
cargo build --workspace
build_c target/debug -O2 -Wall -Wextra -Werror
build_wasm
# The WASI test guest.
cargo build --target wasm32-wasip1 -p outlet-test-wasi
# The tests load the example manifests from a mirror that points at these
# debug builds; examples/*/bin, where `scripts/demo.sh` installs optimized
# builds, only gets the exec greeter if it has none (the doc tests load it).
mirror_examples target/test-examples target/debug target/wasm32-unknown-unknown/debug
link_missing target/debug greeter-exec
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# Every fuzz target for a few seconds, replaying its seeds and regressions
# first (docs/fuzzing.md): a parser that regresses fails here.
./scripts/fuzz.sh 8
