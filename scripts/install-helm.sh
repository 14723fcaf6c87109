#!/usr/bin/env bash
# install-helm.sh builds the Helm CLI that the chart's tests
# (e2e/deploy/chart_test.go) and `make chart` run, from the pinned module in
# tools/helm (Helm v4.3.2). Helm's Go packages need client-go v0.37, newer
# than the sidecar's, hence the separate module and a binary rather than an
# import; the real CLI is also what users run.
#
# Idempotent: a cached binary is not built again. The last line printed is
# its path; the tests find it through $HELM or the same cache.
#
# Environment:
#   HELM_CACHE_DIR  where it is kept (default /var/cache/haproxy-sidecar)
set -euo pipefail

readonly HELM_VERSION=v4.3.2
readonly CACHE_DIR="${HELM_CACHE_DIR:-/var/cache/haproxy-sidecar}"
readonly BINARY="${CACHE_DIR}/helm-${HELM_VERSION}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly TOOLS_DIR="${repo_root}/tools/helm"

log() { printf 'install-helm: %s\n' "$*" >&2; }

main() {
	command -v go >/dev/null 2>&1 || { log "go is not on PATH"; exit 1; }
	mkdir -p "${CACHE_DIR}"
	exec 9>"${CACHE_DIR}/.install-helm.lock"
	if command -v flock >/dev/null 2>&1; then
		flock 9
	fi
	if [[ -x "${BINARY}" ]]; then
		log "helm ${HELM_VERSION} already cached"
	else
		local tmp="${BINARY}.tmp.$$"
		trap 'rm -f "${tmp}"' EXIT
		log "building helm ${HELM_VERSION}"
		local start=${SECONDS}
		# The version helm prints (helm version) is stamped as its own
		# Makefile does.
		(cd "${TOOLS_DIR}" && CGO_ENABLED=0 go build -buildvcs=false -trimpath \
			-ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION}" \
			-o "${tmp}" helm.sh/helm/v4/cmd/helm)
		mv -f "${tmp}" "${BINARY}"
		trap - EXIT
		log "built helm in $((SECONDS - start))s"
	fi
	echo "${BINARY}"
}

main "$@"
