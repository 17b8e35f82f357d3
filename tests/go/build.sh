#!/usr/bin/env bash
# Builds the Go side of the go-plugin interop tests, offline, in GOPATH mode
# against the Debian-packaged libraries in /usr/share/gocode:
#   $TARGET/go/kv-go-plugin  a go-plugin gRPC KV plugin
#   $TARGET/go/kv-go-host    a go-plugin host driving a KV plugin
#   $TARGET/go/bare-go-plugin  a plugin with go-plugin's handshake and health
#                              only, no controller (as minimal ones in other
#                              languages are)
#   $TARGET/go/numbers-go-plugin  a go-plugin plugin of examples/numbers, whose
#                                 methods stream
#   $TARGET/go/numbers-go-host    a go-plugin host driving a numbers plugin
# TARGET defaults to <repo>/target. Re-running is cheap: Go's build cache
# (in $TARGET/go/cache) skips unchanged work.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if ! command -v go >/dev/null 2>&1; then
    echo "build.sh: 'go' was not found on PATH; install Go (Debian: apt-get install golang-go" \
         "golang-github-hashicorp-go-plugin-dev) to build the go-plugin interop test binaries" >&2
    exit 1
fi

out="${TARGET:-$repo/target}/go"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

export GOPATH="$repo/tests/go:/usr/share/gocode"
export GO111MODULE=off
export GOCACHE="$out/cache"
export GOFLAGS=""
export GOPROXY=off
export CGO_ENABLED=0

go build -o "$out/kv-go-plugin" kv/plugin
go build -o "$out/kv-go-host" kv/host
go build -o "$out/bare-go-plugin" kv/bare
go build -o "$out/numbers-go-plugin" numbers/plugin
go build -o "$out/numbers-go-host" numbers/host
