# Shared by the README's commands. Idempotent, and quick when already done.

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

setup() {
    if ! command -v cargo >/dev/null; then
        echo "cargo is missing: install Rust with rustup first" >&2
        exit 1
    fi
}

# link_examples DIR: points examples/greeter/bin/<artifact> at the artifacts
# cargo built in DIR; the example manifests name them there. Links follow
# rebuilds, which suits tests.
link_examples() {
    mkdir -p examples/greeter/bin
    ln -sfn "../../../$1/greeter-exec" examples/greeter/bin/greeter-exec
}

# install_examples DIR: copies the artifacts instead, as a deployment would.
# A binary fresh from the linker sits in the page cache in small pages and
# starts measurably slower than a copy of it (see docs/exec.md), which
# matters to the exec mechanism's benchmark.
install_examples() {
    mkdir -p examples/greeter/bin
    rm -f examples/greeter/bin/greeter-exec
    install -m 755 "$1/greeter-exec" examples/greeter/bin/greeter-exec
}

# The host's target triple, for builds that must not touch build scripts.
host_triple() {
    rustc -vV | sed -n 's/^host: //p'
}
