# Shared by the README's commands. Idempotent, and quick when already done.

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

setup() {
    if ! command -v cargo >/dev/null; then
        echo "cargo is missing: install Rust with rustup first" >&2
        exit 1
    fi
}

# link_examples DIR: points examples/*/bin/<artifact> at the artifacts in DIR,
# the folder cargo built them in; the example manifests name them there.
link_examples() {
    local dir=$1
    mkdir -p examples/greeter/bin
    ln -sfn "../../../$dir/greeter-exec" examples/greeter/bin/greeter-exec
}

# The host's target triple, for builds that must not touch build scripts.
host_triple() {
    rustc -vV | sed -n 's/^host: //p'
}
