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

# The Go interop tests need Go and HashiCorp go-plugin, from Debian's packages
# (go-plugin's own dependencies are listed because Debian's package does not
# pull them all in). They build offline, in GOPATH mode.
GO_PACKAGES=(golang-go golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev
    golang-goprotobuf-dev golang-golang-x-net-dev)

setup_go() {
    local missing=() package
    for package in "${GO_PACKAGES[@]}"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        local sudo=()
        [ "$(id -u)" -eq 0 ] || sudo=(sudo)
        "${sudo[@]}" apt-get update -qq
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
    # A Go host and a Go plugin of go-plugin's KV example, into target/go.
    tests/go/build.sh
}

# build_wasm PROFILE_FLAG...: the wasm example guests.
build_wasm() {
    cargo build --target wasm32-unknown-unknown -p greeter-wasm "$@"
}

# The example plugins' artifacts, as `example:artifact`: the manifests in
# examples/<example> find them in examples/<example>/bin.
ARTIFACTS=(greeter:greeter-exec greeter:greeter-rpc greeter:libgreeter_c.so
    greeter:libgreeter_cabi.so greeter:libgreeter_native.so greeter:greeter_wasm.wasm
    kv:kv-plugin)

# build_c DIR [CFLAGS...]: the C greeter, with the system C compiler.
build_c() {
    local dir=$1
    shift
    cc -shared -fPIC "$@" -I include examples/greeter/c/greeter.c -o "$dir/libgreeter_c.so"
}

# link_examples DIR...: points examples/greeter/bin/<artifact> at the first
# DIR holding it. Links follow rebuilds, which suits tests.
link_examples() {
    local entry artifact bin dir
    for entry in "${ARTIFACTS[@]}"; do
        artifact=${entry#*:} bin=examples/${entry%%:*}/bin
        mkdir -p "$bin"
        for dir in "$@"; do
            if [ -e "$dir/$artifact" ]; then
                ln -sfn "../../../$dir/$artifact" "$bin/$artifact"
                break
            fi
        done
    done
}

# install_examples DIR...: copies the artifacts instead, as a deployment
# would. A binary fresh from the linker sits in the page cache in small
# pages and starts measurably slower than a copy (see docs/exec.md).
install_examples() {
    local entry artifact bin dir
    for entry in "${ARTIFACTS[@]}"; do
        artifact=${entry#*:} bin=examples/${entry%%:*}/bin
        mkdir -p "$bin"
        for dir in "$@"; do
            if [ -e "$dir/$artifact" ]; then
                rm -f "$bin/$artifact"
                install -m 755 "$dir/$artifact" "$bin/$artifact"
                break
            fi
        done
    done
}

# The host's target triple, for builds that must not touch build scripts.
host_triple() {
    rustc -vV | sed -n 's/^host: //p'
}
