#!/bin/sh
# build.sh OUT: build haproxy-sidecar into OUT. This is the one place that
# says how the binary is built: `make build` and the Dockerfile's build stage
# both run it, and e2e/deploy checks that they do.
#
#   CGO_ENABLED=0    a static binary, which runs in any image whatever its libc
#   -trimpath        no file system paths of the build machine in the binary
#   -X main.version  what `haproxy-sidecar version` prints
#
# Environment: VERSION (default: `git describe`, else "dev"), GO (default: go).
set -eu

out=${1:?usage: scripts/build.sh OUT}
case $out in
/*) ;;
*) out=$(pwd)/$out ;;
esac
cd "$(dirname "$0")/.."
GO=${GO:-go}
if [ -z "${VERSION:-}" ]; then
	VERSION=$(git describe --always --dirty 2>/dev/null || echo dev)
fi

export CGO_ENABLED=0
exec "$GO" build -trimpath -ldflags "-X main.version=$VERSION" -o "$out" .
