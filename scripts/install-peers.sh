#!/usr/bin/env bash
# install-peers.sh builds the two peer ingress controllers that
# `make bench-peers` (e2e/bench, peers_bench_test.go) measures beside
# haproxy-sidecar. It is for the benchmark only: `make deps` and `make test`
# never run it, and no test needs what it builds.
#
#   * haproxy-ingress v0.16.1 (github.com/jcmoraisjr/haproxy-ingress), with
#     what its image ships beside the binary: rootfs/ (the templates it
#     reads from ./rootfs/etc/templates when run on a local filesystem
#     prefix, and the Lua scripts of rootfs/etc/lua), and the Lua `json`
#     module those scripts load (its image: Alpine's lua-json4; here
#     Debian's lua-json: see lua_json below);
#   * haproxytech/kubernetes-ingress v3.2.11
#     (github.com/haproxytech/kubernetes-ingress); its haproxy.cfg is
#     embedded in the binary.
#
# The Go module proxy serves neither module, so each is built from its
# public source at the pinned tag; the tag must point at the pinned commit.
# Their dependencies come from the Go module proxy. A cold build takes about
# 5 minutes each on 2 cores.
#
# Idempotent: a peer already in the cache is not built again. Each peer is
# a directory /var/cache/haproxy-sidecar/peers-<name>-<version>/ holding the
# controller binary (`controller`) and the files its image provides. The
# last line printed on success is BENCH_PEERS' value: hi=PATH,ht=PATH.
#
# Environment:
#   PEERS_CACHE_DIR          cache directory (default /var/cache/haproxy-sidecar)
#   HAPROXY_INGRESS_SOURCE   a git directory (a clone or a bare mirror) or a
#   HAPROXYTECH_SOURCE       clone URL; default the GitHub repository
#   PEERS                    which to build, default "hi ht"
set -euo pipefail

readonly CACHE_DIR="${PEERS_CACHE_DIR:-/var/cache/haproxy-sidecar}"

readonly HI_VERSION=v0.16.1
readonly HI_COMMIT=5cda817e35489ea12ba2ad2bf31857a7c7eb3b96
readonly HI_URL=https://github.com/jcmoraisjr/haproxy-ingress.git
readonly HI_DIR="${CACHE_DIR}/peers-haproxy-ingress-${HI_VERSION}"

readonly HT_VERSION=v3.2.11
readonly HT_COMMIT=407b48ade0b6fbf3e3053b2487455fa7ab4cec81
readonly HT_URL=https://github.com/haproxytech/kubernetes-ingress.git
readonly HT_DIR="${CACHE_DIR}/peers-haproxytech-${HT_VERSION}"

log() { printf 'install-peers: %s\n' "$*" >&2; }

# export_source SOURCE TAG COMMIT DEST writes the tree of TAG into DEST,
# from a local git directory or by a shallow clone of a URL, after checking
# that TAG is COMMIT.
export_source() {
	local source=$1 tag=$2 commit=$3 dest=$4 gitdir
	mkdir -p "${dest}"
	if [[ -d "${source}" ]]; then
		gitdir=$(git -C "${source}" rev-parse --absolute-git-dir 2>/dev/null || echo "${source}")
	else
		log "cloning ${source} at ${tag}"
		git clone --quiet --bare --depth 1 --branch "${tag}" "${source}" "${dest}.git"
		gitdir="${dest}.git"
	fi
	local got
	got=$(git --git-dir="${gitdir}" rev-parse "${tag}^{commit}")
	if [[ "${got}" != "${commit}" ]]; then
		log "${source}: tag ${tag} is ${got}, want ${commit}"
		exit 1
	fi
	git --git-dir="${gitdir}" archive --format=tar "${tag}" | tar -x -C "${dest}"
}

# go_build SRC OUT PKG [ldflags] builds PKG of the module in SRC into OUT
# through a temporary name, as the peers' own Makefile and Dockerfile do
# (CGO_ENABLED=0, their version stamped with -X), with the module's own
# go.mod and go.sum (-mod=readonly: both are complete at these tags) and
# the Go on PATH (GOTOOLCHAIN=local; both need Go 1.25 or newer).
go_build() {
	local src=$1 out=$2 pkg=$3 ldflags=${4:-}
	local start=${SECONDS}
	(cd "${src}" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly \
		go build -buildvcs=false -trimpath -ldflags "-s -w ${ldflags}" -o "${out}.tmp.$$" "${pkg}")
	mv -f "${out}.tmp.$$" "${out}"
	log "built $(basename "${out}") in $((SECONDS - start))s"
}

# lua_json installs what haproxy-ingress's haproxy-lua-http.lua loads with
# `require "json"`: its image has Alpine's lua-json4; Debian's lua-json
# (luajson, pure Lua, the same json.encode and json.decode) installs it
# for Lua 5.1 to 5.3 only, and lua-lpeg, which it needs, for 5.4 too.
# HAProxy 3.0 (install-haproxy.sh) links Lua 5.4: the benchmark points
# LUA_PATH_5_4 at the 5.3 copy (checked to load and work in HAProxy 3.0).
lua_json() {
	if [[ -e /usr/share/lua/5.3/json.lua && -e /usr/lib/x86_64-linux-gnu/lua/5.4/lpeg.so ]]; then
		return
	fi
	if [[ $(id -u) -ne 0 ]]; then
		log "need root to apt-get install lua-json (haproxy-ingress's Lua scripts load it)"
		exit 1
	fi
	log "installing lua-json"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y --no-install-recommends lua-json lua-lpeg; then
		apt-get update
		apt-get install -y --no-install-recommends lua-json lua-lpeg
	fi
}

build_hi() {
	if [[ -x "${HI_DIR}/controller" && -d "${HI_DIR}/rootfs/etc/templates" ]]; then
		log "haproxy-ingress ${HI_VERSION} already cached"
		return
	fi
	local work
	work=$(mktemp -d "${CACHE_DIR}/.peers-hi.XXXXXX")
	trap "rm -rf '${work}'" RETURN
	export_source "${HAPROXY_INGRESS_SOURCE:-${HI_URL}}" "${HI_VERSION}" "${HI_COMMIT}" "${work}/src"
	mkdir -p "${HI_DIR}"
	log "building haproxy-ingress ${HI_VERSION} (about 5 minutes cold)"
	local v=github.com/jcmoraisjr/haproxy-ingress/pkg/version
	go_build "${work}/src" "${HI_DIR}/controller" ./pkg \
		"-X ${v}.RELEASE=${HI_VERSION} -X ${v}.COMMIT=git-${HI_COMMIT:0:7} -X ${v}.REPO=${HI_URL%.git}"
	rm -rf "${HI_DIR}/rootfs"
	cp -R "${work}/src/rootfs" "${HI_DIR}/rootfs"
}

build_ht() {
	if [[ -x "${HT_DIR}/controller" ]]; then
		log "haproxytech ${HT_VERSION} already cached"
		return
	fi
	local work
	work=$(mktemp -d "${CACHE_DIR}/.peers-ht.XXXXXX")
	trap "rm -rf '${work}'" RETURN
	export_source "${HAPROXYTECH_SOURCE:-${HT_URL}}" "${HT_VERSION}" "${HT_COMMIT}" "${work}/src"
	mkdir -p "${HT_DIR}"
	log "building haproxytech/kubernetes-ingress ${HT_VERSION} (about 5 minutes cold)"
	go_build "${work}/src" "${HT_DIR}/controller" . \
		"-X github.com/haproxytech/kubernetes-ingress/pkg/version.GitTag=${HT_VERSION}"
}

main() {
	mkdir -p "${CACHE_DIR}"
	command -v go >/dev/null 2>&1 || { log "go is not on PATH"; exit 1; }
	exec 9>"${CACHE_DIR}/.install-peers.lock"
	if command -v flock >/dev/null 2>&1; then
		flock 9
	fi
	local peers=" ${PEERS:-hi ht} " out=()
	if [[ "${peers}" == *" hi "* ]]; then
		lua_json
		build_hi
		out+=("hi=${HI_DIR}/controller")
	fi
	if [[ "${peers}" == *" ht "* ]]; then
		build_ht
		out+=("ht=${HT_DIR}/controller")
	fi
	local IFS=,
	echo "${out[*]}"
}

main "$@"
