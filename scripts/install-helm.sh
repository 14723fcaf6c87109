#!/usr/bin/env bash
# install-helm.sh builds the Helm CLIs that the chart's tests
# (e2e/deploy/chart_test.go) and `make chart` run, from the pinned module in
# tools/helm: Helm v4.3.2, which packages the chart, and Helm v3.21.4, with
# which the tests lint and render it too (the chart is for both). Helm's Go
# packages need client-go v0.37, newer than the sidecar's, hence the
# separate module and binaries rather than an import; the real CLI is also
# what users run.
#
# Idempotent: a cached binary is not built again. The last line printed is
# Helm 4's path; the tests find them through $HELM and $HELM3 or the same
# cache.
#
# Environment:
#   HELM_CACHE_DIR  where it is kept (default /var/cache/haproxy-sidecar)
set -euo pipefail

readonly HELM_VERSION=v4.3.2
readonly HELM3_VERSION=v3.21.4
readonly CACHE_DIR="${HELM_CACHE_DIR:-/var/cache/haproxy-sidecar}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly TOOLS_DIR="${repo_root}/tools/helm"

log() { printf 'install-helm: %s\n' "$*" >&2; }
# shellcheck source=gobuild.sh
source "${repo_root}/scripts/gobuild.sh"

# build MAJOR VERSION builds helm.sh/helm/MAJOR/cmd/helm into the cache.
# The version `helm version` prints is stamped as Helm's Makefile does.
build() {
	local major=$1 version=$2
	CGO_ENABLED=0 go_build_cached "helm ${version}" "${CACHE_DIR}/helm-${version}" "${TOOLS_DIR}" \
		-ldflags "-s -w -X helm.sh/helm/${major}/internal/version.version=${version}" \
		"helm.sh/helm/${major}/cmd/helm"
}

main() {
	command -v go >/dev/null 2>&1 || { log "go is not on PATH"; exit 1; }
	mkdir -p "${CACHE_DIR}"
	exec 9>"${CACHE_DIR}/.install-helm.lock"
	if command -v flock >/dev/null 2>&1; then
		flock 9
	fi
	build v3 "${HELM3_VERSION}"
	build v4 "${HELM_VERSION}"
	echo "${CACHE_DIR}/helm-${HELM_VERSION}"
}

main "$@"
