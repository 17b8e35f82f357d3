#!/usr/bin/env bash
# Builds Outlet and the example plugins with optimizations, then loads the
# greeter through every mechanism: `target/release/outlet demo`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
setup

cargo build --release -p outlet-cli -p greeter-cabi -p greeter-native -p greeter-rpc -p kv-example \
    -p numbers-native -p numbers-rpc -p numbers-cabi
build_c target/release -O2
build_wasm --profile wasm
# The exec greeter is linked statically: a process per call then skips the
# dynamic loader, which is most of a small program's start-up time.
# So are the rpc plugins, which start faster for it too.
triple=$(host_triple)
cargo build --release -p greeter-example -p greeter-rpc -p kv-example -p numbers-rpc \
    -p numbers-example --bin greeter-exec --bin greeter-rpc --bin kv-plugin --bin numbers-rpc \
    --bin numbers-exec \
    --target "$triple" --config "target.$triple.rustflags = ['-C', 'target-feature=+crt-static']"
install_examples "target/$triple/release" target/release target/wasm32-unknown-unknown/wasm

target/release/outlet demo "$@"
