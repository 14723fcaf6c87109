#!/bin/sh
# build.sh OUT: build haproxy-sidecar into OUT. This is the one place that
# says how the binary is built: `make build`, `make dist` (scripts/dist.sh)
# and the Dockerfile's build stage all run it, and e2e/deploy checks that
# they do.
#
#   CGO_ENABLED=0      a static binary, which runs in any image whatever its
#                      libc, and cross-compiles without a C toolchain
#   -trimpath          no file system paths of the build machine in the binary
#   -X main.version    what `haproxy-sidecar version` and the
#   -X main.commit     haproxy_sidecar_build_info metric report
#   -X main.buildDate
#
# Environment:
#   VERSION     a semantic version (0.25.0, 0.25.0-rc.1). Unset, the binary
#               says <next release>-dev+<commit> (version_cmd.go).
#   COMMIT      default: git's HEAD, "-dirty" when the tree has changes
#               (no .git in a Docker build context, hence the Dockerfile's
#               build argument)
#   BUILD_DATE  default: now, in UTC (RFC 3339)
#   GOOS, GOARCH  the target (default: this machine's), as Go's toolchain reads them
#   GO          default: go
set -eu

out=${1:?usage: scripts/build.sh OUT}
case $out in
/*) ;;
*) out=$(pwd)/$out ;;
esac
cd "$(dirname "$0")/.."
GO=${GO:-go}
BUILD_DATE=${BUILD_DATE:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}
# Go records the commit itself unless -buildvcs=false (some CI sets it in
# GOFLAGS); git is asked here so that the binary says it either way.
if [ -z "${COMMIT:-}" ] && COMMIT=$(git rev-parse HEAD 2>/dev/null); then
	git diff --quiet HEAD 2>/dev/null || COMMIT=$COMMIT-dirty
fi

VERSION=${VERSION:-}
VERSION=${VERSION#v}
if [ -n "$VERSION" ] && ! printf '%s\n' "$VERSION" | grep -Eq '^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$'; then
	echo "build: VERSION=$VERSION is not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD])" >&2
	exit 2
fi

ldflags="-X main.buildDate=$BUILD_DATE"
if [ -n "$VERSION" ]; then
	ldflags="$ldflags -X main.version=$VERSION"
fi
if [ -n "${COMMIT:-}" ]; then
	ldflags="$ldflags -X main.commit=$COMMIT"
fi

export CGO_ENABLED=0
exec "$GO" build -trimpath -ldflags "$ldflags" -o "$out" .
