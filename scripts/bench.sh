#!/usr/bin/env bash
# Builds Outlet and the example plugins with optimizations, and Extism's
# greeter beside them (bench/extism: a wasmtime build of its own, about ten
# minutes the first time), then runs `target/release/outlet bench` with
# Extism's rows and go-plugin's own Go host and plugin beside the rpc rows.
# The same Greet as a WebAssembly component (bench/component, for
# wasm32-wasip2) is measured beside the wasm rows.
# The run is written as JSON to target/bench.json (or to `--json FILE`);
# `--readme` then writes its figures into README.md with
# scripts/readme-numbers.py, and draws them into bench/chart.svg, the chart
# the README shows. Other arguments go to `outlet bench`, e.g.
# `--calls 2000`.
set -euo pipefail

readme=false json=target/bench.json args=()
while [ $# -gt 0 ]; do
    case $1 in
        --readme) readme=true ;;
        --json)
            json=${2:?--json needs a file}
            shift
            ;;
        --json=*) json=${1#--json=} ;;
        *) args+=("$1") ;;
    esac
    shift
done
if $readme && [[ " ${args[*]} " == *" --only"* ]]; then
    echo "bench.sh: --readme quotes a whole run; drop --only" >&2
    exit 1
fi

source "$(dirname "$0")/lib.sh"
setup

./scripts/demo.sh >/dev/null
cargo build --release --locked --target wasm32-unknown-unknown \
    --manifest-path bench/extism/guest/Cargo.toml
installed=$(rustup target list --installed)
if ! grep -qx wasm32-wasip2 <<<"$installed"; then
    rustup target add wasm32-wasip2
fi
cargo build --release --locked --target wasm32-wasip2 \
    --manifest-path bench/component/guest/Cargo.toml
component=bench/component/guest/target/wasm32-wasip2/release/component_greet_guest.wasm
# Extism needs wasmtime 49, which declares Rust 1.96 but builds on 1.95.
cargo build --release --locked --ignore-rust-version --manifest-path bench/extism/Cargo.toml

setup_go
go=(--go target/go)
if [ "${OUTLET_GO_INTEROP:-}" = skip ]; then
    if $readme; then
        echo "bench.sh: --readme quotes go-plugin's rows, and Go and go-plugin are not installed" >&2
        exit 1
    fi
    go=()
fi

chart=()
if $readme; then
    chart=(--chart bench/chart.svg)
fi
target/release/outlet bench --extism bench/extism --component "$component" "${go[@]}" \
    --json "$json" "${chart[@]}" "${args[@]}"
if $readme; then
    python3 scripts/readme-numbers.py "$json"
    # The run the README quotes, kept beside it:
    # `python3 scripts/readme-numbers.py --check bench/readme.json` says
    # whether they still agree.
    cp "$json" bench/readme.json
fi
