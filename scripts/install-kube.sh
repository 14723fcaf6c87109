#!/usr/bin/env bash
# install-kube.sh prepares a bare Debian machine (CI runs `bash .ci/run` as
# root) for the Kubernetes end-to-end tests in e2e/kube:
#
#   * etcd-server (Debian's etcd 3.4) and iproute2 (`ip netns`, veth) from apt;
#   * kube-apiserver v1.36.3, built from the pinned module in tools/kube;
#   * kube-scheduler and kube-controller-manager v1.36.3 from the same
#     module (e2e/deploy schedules deploy/'s pods onto Nodes it registers,
#     rolls the Deployment and drains a Node; a minute or two each once
#     the API server's packages are in the build cache).
#
# It is idempotent: packages already present are not reinstalled, and the API
# server is built only when the cached binary is missing. The cold build takes
# about 6.5 minutes on 2 cores, so CI should start this script early, e.g.
#
#   bash scripts/install-kube.sh > /tmp/kube-build.log 2>&1 &
#
# The last line printed on success is the absolute path of the binary; the
# harness finds it through $KUBE_APISERVER or the same cache directory.
#
# Environment:
#   KUBE_CACHE_DIR  where the binary is kept (default /var/cache/haproxy-sidecar)
set -euo pipefail

readonly KUBE_VERSION=v1.36.3
readonly CACHE_DIR="${KUBE_CACHE_DIR:-/var/cache/haproxy-sidecar}"
readonly BINARY="${CACHE_DIR}/kube-apiserver-${KUBE_VERSION}"
readonly SCHEDULER="${CACHE_DIR}/kube-scheduler-${KUBE_VERSION}"
readonly CONTROLLER_MANAGER="${CACHE_DIR}/kube-controller-manager-${KUBE_VERSION}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly TOOLS_DIR="${repo_root}/tools/kube"

log() { printf 'install-kube: %s\n' "$*" >&2; }
# shellcheck source=gobuild.sh
source "${repo_root}/scripts/gobuild.sh"

# install_packages installs the Debian packages the harness executes. It only
# touches apt when something is missing, so repeated runs stay offline.
install_packages() {
	local missing=()
	command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
	command -v ip >/dev/null 2>&1 || missing+=(iproute2)
	# GNU time: e2e/bench's offline-render peak RSS (render_bench_test.go).
	[[ -x /usr/bin/time ]] || missing+=(time)
	if ((${#missing[@]} == 0)); then
		log "etcd, ip and time already installed"
		return
	fi
	if [[ $(id -u) -ne 0 ]]; then
		log "need root to apt-get install ${missing[*]}"
		exit 1
	fi
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# A bare image has empty package lists; refresh them once, then retry.
	if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
		apt-get update
		apt-get install -y --no-install-recommends "${missing[@]}"
	fi
}

# build_component builds a command of the pinned module (NAME, into PATH)
# unless it is cached. The -X flags make /version report the release
# instead of v0.0.0-master, like a real cluster would.
build_component() {
	local name=$1 out=$2
	local pkg=k8s.io/component-base/version
	go_build_cached "${name} ${KUBE_VERSION}" "${out}" "${TOOLS_DIR}" \
		-ldflags "-s -w -X ${pkg}.gitVersion=${KUBE_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=36 -X ${pkg}.gitTreeState=clean" \
		"k8s.io/kubernetes/cmd/${name}"
}

main() {
	mkdir -p "${CACHE_DIR}"
	install_packages
	# Serialise concurrent runs (a background build plus a test that calls
	# the script again) so the API server is built at most once. The lock
	# file is our own; other installers use their own locks in this dir.
	exec 9>"${CACHE_DIR}/.install-kube.lock"
	if command -v flock >/dev/null 2>&1; then
		flock 9
	fi
	build_component kube-apiserver "${BINARY}"  # about 6.5 minutes cold
	build_component kube-scheduler "${SCHEDULER}"
	build_component kube-controller-manager "${CONTROLLER_MANAGER}"
	echo "${BINARY}"
}

main "$@"
