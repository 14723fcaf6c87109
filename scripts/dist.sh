#!/bin/sh
# dist.sh VERSION OUTDIR: what a release publishes, for `make dist`:
#
#   haproxy-sidecar-VERSION-linux-amd64   static binaries (scripts/build.sh)
#   haproxy-sidecar-VERSION-linux-arm64
#   haproxy-sidecar-VERSION.yaml          deploy/ rendered, its image
#                                         IMAGE:VERSION (hack/renderdeploy)
#   haproxy-sidecar-VERSION.tgz           the Helm chart, its version and
#                                         appVersion (the image's tag) VERSION
#   SHA256SUMS                            sha256sum's format, of the above
#
# Environment: IMAGE (default: deploy/kustomization.yaml's repository),
# COMMIT and BUILD_DATE as scripts/build.sh reads them, GO.
set -eu

version=${1:?usage: scripts/dist.sh VERSION OUTDIR}
out=${2:?usage: scripts/dist.sh VERSION OUTDIR}
version=${version#v}
# A semantic version (semver.org): the image's tag and what `version` says.
if ! printf '%s\n' "$version" | grep -Eq '^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$'; then
	echo "dist: VERSION=$version is not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE])" >&2
	exit 2
fi
case $out in
/*) ;;
*) out=$(pwd)/$out ;;
esac
cd "$(dirname "$0")/.."
GO=${GO:-go}
BUILD_DATE=${BUILD_DATE:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}
export GO BUILD_DATE

mkdir -p "$out"
files=""
for arch in amd64 arm64; do
	bin=haproxy-sidecar-$version-linux-$arch
	GOOS=linux GOARCH=$arch VERSION=$version sh scripts/build.sh "$out/$bin"
	files="$files $bin"
done

manifests=haproxy-sidecar-$version.yaml
"$GO" run ./hack/renderdeploy --version "$version" ${IMAGE:+--image "$IMAGE"} >"$out/$manifests.tmp"
mv "$out/$manifests.tmp" "$out/$manifests"
files="$files $manifests"

# The chart, with the Helm CLI scripts/install-helm.sh builds (once).
helm=$(bash scripts/install-helm.sh | tail -n 1)
chart=haproxy-sidecar-$version.tgz
"$helm" package charts/haproxy-sidecar --version "$version" --app-version "$version" --destination "$out" >/dev/null
[ -s "$out/$chart" ] || { echo "dist: helm package made no $chart" >&2; exit 1; }
files="$files $chart"

cd "$out"
# shellcheck disable=SC2086 # the file names have no spaces
sha256sum $files >SHA256SUMS.tmp
mv SHA256SUMS.tmp SHA256SUMS
echo "dist: $out:$files SHA256SUMS"
