# Shared by the README's commands. Idempotent, and quick when already done.

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

setup() {
    if ! command -v cargo >/dev/null; then
        echo "cargo is missing: install Rust with rustup first" >&2
        exit 1
    fi
    # wasm guests are built for these targets.
    local installed target
    installed=$(rustup target list --installed)
    for target in wasm32-unknown-unknown wasm32-wasip1; do
        if ! grep -qx "$target" <<<"$installed"; then
            rustup target add "$target"
        fi
    done
}

# build_wasm PROFILE_FLAG...: the wasm example guests.
build_wasm() {
    cargo build --target wasm32-unknown-unknown -p greeter-wasm "$@"
}

# The example plugins' artifacts, as the manifests in examples/greeter name them.
ARTIFACTS=(greeter-exec libgreeter_c.so libgreeter_cabi.so libgreeter_native.so greeter_wasm.wasm)

# build_c DIR [CFLAGS...]: the C greeter, with the system C compiler.
build_c() {
    local dir=$1
    shift
    cc -shared -fPIC "$@" -I include examples/greeter/c/greeter.c -o "$dir/libgreeter_c.so"
}

# link_examples DIR...: points examples/greeter/bin/<artifact> at the first
# DIR holding it. Links follow rebuilds, which suits tests.
link_examples() {
    mkdir -p examples/greeter/bin
    local artifact dir
    for artifact in "${ARTIFACTS[@]}"; do
        for dir in "$@"; do
            if [ -e "$dir/$artifact" ]; then
                ln -sfn "../../../$dir/$artifact" "examples/greeter/bin/$artifact"
                break
            fi
        done
    done
}

# install_examples DIR...: copies the artifacts instead, as a deployment
# would. A binary fresh from the linker sits in the page cache in small
# pages and starts measurably slower than a copy (see docs/exec.md).
install_examples() {
    mkdir -p examples/greeter/bin
    local artifact dir
    for artifact in "${ARTIFACTS[@]}"; do
        for dir in "$@"; do
            if [ -e "$dir/$artifact" ]; then
                rm -f "examples/greeter/bin/$artifact"
                install -m 755 "$dir/$artifact" "examples/greeter/bin/$artifact"
                break
            fi
        done
    done
}

# The host's target triple, for builds that must not touch build scripts.
host_triple() {
    rustc -vV | sed -n 's/^host: //p'
}
