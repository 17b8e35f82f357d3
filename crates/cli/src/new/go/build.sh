#!/bin/sh
# Builds bin/{{name}}, the plugin (the manifest's `path`), offline: in GOPATH
# mode, against the Go libraries Debian packages in /usr/share/gocode
# (apt-get install golang-go golang-github-hashicorp-go-plugin-dev
# golang-google-grpc-dev golang-github-golang-protobuf-1-3-dev). Go's build
# cache is kept in .gocache, so building again is quick.
set -eu
cd "$(dirname "$0")"

if ! command -v go >/dev/null 2>&1; then
    echo "build.sh: 'go' is not on PATH; install Go (Debian: apt-get install golang-go)" >&2
    exit 1
fi
if [ ! -d /usr/share/gocode/src/github.com/hashicorp/go-plugin ]; then
    echo "build.sh: go-plugin is not in /usr/share/gocode; install it" \
        "(Debian: apt-get install golang-github-hashicorp-go-plugin-dev)" >&2
    exit 1
fi

export GO111MODULE=off
export GOPROXY=off
export GOFLAGS=""
export GOPATH=/usr/share/gocode
export GOCACHE="$PWD/.gocache"
export CGO_ENABLED=0

mkdir -p bin
# The sources are named as files, not as a package, so no folder's path
# goes into the binary: with -trimpath and no build ID, the same sources
# make the same binary wherever they are built (the manifest pins its
# sha256).
go build -trimpath -ldflags=-buildid= -o bin/{{name}} *.go
