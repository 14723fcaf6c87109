# gobuild.sh is sourced by the install scripts that build a command from a
# pinned tools module (tools/kube, tools/prom, tools/helm) into the cache.
#
# go_build_cached LABEL OUT MODULE_DIR [go build arguments...] builds into
# OUT unless an executable is there already. It writes to a temporary name
# and renames, so an interrupted build never leaves a truncated binary that
# later runs would take for a good one. The caller defines log().
go_build_cached() {
	local label=$1 out=$2 dir=$3
	shift 3
	if [[ -x "${out}" ]]; then
		log "${label} already cached"
		return
	fi
	command -v go >/dev/null 2>&1 || {
		log "go is not on PATH; it is needed to build ${label}"
		exit 1
	}
	local tmp="${out}.tmp.$$"
	# Expanded now: the trap may run after this function's locals are gone.
	trap "rm -f '${tmp}'" EXIT
	log "building ${label}"
	local start=${SECONDS}
	# -buildvcs=false: the repository may be owned by another user or have
	# no .git in CI.
	(cd "${dir}" && go build -buildvcs=false -trimpath -o "${tmp}" "$@")
	mv -f "${tmp}" "${out}"
	trap - EXIT
	log "built ${label} in $((SECONDS - start))s"
}
