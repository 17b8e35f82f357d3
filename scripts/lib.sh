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
    if ! command -v dpkg >/dev/null || ! command -v apt-get >/dev/null; then
        # Not Debian-based: go-plugin's packages cannot be installed here.
        # The interop tests say they are skipped; on Debian they always run.
        echo "note: the go-plugin interop tests are skipped: they need Debian's packages" \
            "${GO_PACKAGES[*]}, and this system has no dpkg/apt-get" >&2
        export OUTLET_GO_INTEROP=skip
        return 0
    fi
    # On Debian the interop tests always run, whatever the environment says.
    unset OUTLET_GO_INTEROP
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
    cargo build --target wasm32-unknown-unknown -p greeter-wasm -p numbers-wasm "$@"
}

# The example plugins' artifacts, as `example:artifact`: the manifests in
# examples/<example> find them in examples/<example>/bin.
ARTIFACTS=(greeter:greeter-exec greeter:greeter-rpc greeter:libgreeter_c.so
    greeter:libgreeter_cabi.so greeter:libgreeter_native.so greeter:greeter_wasm.wasm
    kv:kv-plugin numbers:libnumbers_native.so numbers:numbers-rpc
    numbers:numbers-exec numbers:numbers_wasm.wasm numbers:libnumbers_cabi.so)

# build_c DIR [CFLAGS...]: the C greeter, with the system C compiler.
build_c() {
    local dir=$1
    shift
    cc -shared -fPIC "$@" -I include examples/greeter/c/greeter.c -o "$dir/libgreeter_c.so"
}

# mirror_examples MIRROR DIR...: a copy of examples/ for the tests, under
# MIRROR: each manifest and source folder linked file by file, each .proto
# copied (`outlet call` reads a .proto only from inside the manifest's
# folder, links resolved), and each artifact in bin/ linked to the first DIR
# holding it. Manifests resolve paths against the folder they are found in,
# so the mirror's manifests load the builds in DIR, and examples/*/bin (what
# `scripts/demo.sh` installs) is left alone: a native plugin loads only into
# the build it was made with.
mirror_examples() {
    local mirror=$1 entry artifact bin dir file
    shift
    rm -rf "$mirror"
    for file in examples/greeter/manifests/*.toml examples/greeter/wat examples/kv/kv.toml \
        examples/numbers/manifests/*.toml; do
        mkdir -p "$mirror/$(dirname "$file")"
        ln -s "$PWD/$file" "$mirror/$file"
    done
    for file in examples/greeter/manifests/greeter.proto examples/kv/kv.proto \
        examples/numbers/manifests/numbers.proto; do
        cp "$file" "$mirror/$file"
    done
    for entry in "${ARTIFACTS[@]}"; do
        artifact=${entry#*:} bin=$mirror/examples/${entry%%:*}/bin
        mkdir -p "$bin"
        for dir in "$@"; do
            if [ -e "$dir/$artifact" ]; then
                ln -s "$PWD/$dir/$artifact" "$bin/$artifact"
                break
            fi
        done
    done
}

# link_missing DIR ARTIFACT...: links examples/greeter/bin/ARTIFACT to the
# build in DIR where no artifact is installed yet (for the doc tests, which
# load the example manifests); an installed one stays.
link_missing() {
    local dir=$1 artifact
    shift
    mkdir -p examples/greeter/bin
    for artifact in "$@"; do
        if [ ! -e "examples/greeter/bin/$artifact" ]; then
            ln -sfn "../../../$dir/$artifact" "examples/greeter/bin/$artifact"
        fi
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
