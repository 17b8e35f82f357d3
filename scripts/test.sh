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
link_examples target/debug target/wasm32-unknown-unknown/debug
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
