#!/usr/bin/env bash
# install-prom.sh builds the Prometheus tools the monitoring tests use
# (e2e/deploy/monitoring_test.go) from the pinned module in tools/prom, and
# fetches the Prometheus Operator's CRDs from its Go module:
#
#   promtool   Prometheus' own, for the alerts' rule unit tests (built with
#              remove_all_sd: no service discovery, most of its size);
#   promexprs  ours (tools/prom/promexprs): parses expressions with
#              Prometheus' parser and lists the metrics each reads;
#   crds/      monitoring.coreos.com PodMonitor and PrometheusRule CRDs.
#
# Idempotent: what is cached is not built again. The last line printed is
# the directory; the tests find it through $PROM_TOOLS or the same cache.
#
# Environment:
#   PROM_CACHE_DIR  where it is kept (default /var/cache/haproxy-sidecar)
set -euo pipefail

readonly PROM_VERSION=v0.316.0
readonly OPERATOR_VERSION=v0.85.0
readonly CACHE_DIR="${PROM_CACHE_DIR:-/var/cache/haproxy-sidecar}"
readonly DIR="${CACHE_DIR}/prom-${PROM_VERSION}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly TOOLS_DIR="${repo_root}/tools/prom"

log() { printf 'install-prom: %s\n' "$*" >&2; }
# shellcheck source=gobuild.sh
source "${repo_root}/scripts/gobuild.sh"

# build NAME PKG [FLAGS...] builds PKG from the tools module into DIR/NAME.
build() {
	local name=$1 pkg=$2
	shift 2
	go_build_cached "${name}" "${DIR}/${name}" "${TOOLS_DIR}" -ldflags "-s -w" "$@" "${pkg}"
}

# crds copies the two CRDs out of the operator's module (the Go module
# proxy serves it; its example/ directory is part of the module).
crds() {
	if [[ -s "${DIR}/crds/monitoring.coreos.com_prometheusrules.yaml" ]]; then
		log "CRDs already cached"
		return
	fi
	local src
	src=$(cd "${TOOLS_DIR}" && GOFLAGS=-mod=mod go mod download -json "github.com/prometheus-operator/prometheus-operator@${OPERATOR_VERSION}" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[[ -n "${src}" ]] || { log "could not download the Prometheus Operator ${OPERATOR_VERSION}"; exit 1; }
	mkdir -p "${DIR}/crds.tmp"
	for kind in podmonitors prometheusrules servicemonitors; do
		cp "${src}/example/prometheus-operator-crd/monitoring.coreos.com_${kind}.yaml" "${DIR}/crds.tmp/"
	done
	rm -rf "${DIR}/crds"
	mv "${DIR}/crds.tmp" "${DIR}/crds"
}

main() {
	command -v go >/dev/null 2>&1 || { log "go is not on PATH"; exit 1; }
	mkdir -p "${DIR}"
	exec 9>"${CACHE_DIR}/.install-prom.lock"
	if command -v flock >/dev/null 2>&1; then
		flock 9
	fi
	build promexprs ./promexprs
	build promtool github.com/prometheus/prometheus/cmd/promtool -tags remove_all_sd
	crds
	echo "${DIR}"
}

main "$@"
