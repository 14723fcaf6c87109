#!/usr/bin/env bash
# install-haproxy.sh — provide the two HAProxy binaries the project is tested against.
#
#   * HAProxy 2.6 from Debian bookworm at /usr/sbin/haproxy (apt-get install haproxy)
#   * HAProxy 3.0 LTS built from Debian trixie's *source* package, cached at
#       ${HAPROXY_CACHE_DIR:-/var/cache/haproxy-sidecar}/haproxy-3.0/haproxy
#     and linked (statically) with OpenSSL 3.5 built from trixie's source package
#     too: the OpenSSL trixie's own haproxy package and the official haproxy:3.0
#     image (Debian trixie) run on. Bookworm's OpenSSL 3.0 takes about three times
#     as long to load certificates (about 1 s for 1,000, at every start and every
#     reload; BENCHMARKS.md, "What start-up and a reload spent on 1,000
#     certificates"), and 2.6 keeps it: that is Debian bookworm's package as is.
#
# Run as root on Debian bookworm. Idempotent: when both binaries are present it only
# verifies their versions and prints the paths (well under a second).
#
# Why trixie's source and not its binary: adding a trixie "deb" entry would let apt
# upgrade libc & co. to trixie. A deb-src-only entry lets us fetch the source without
# any binary package from trixie ever becoming installable.
#
# Output (last two lines, shell-evaluable):
#   HAPROXY26_BIN=/usr/sbin/haproxy
#   HAPROXY30_BIN=/var/cache/haproxy-sidecar/haproxy-3.0/haproxy
#
# --only-2.6: install HAProxy 2.6 only (what `make run` needs) and print only
# HAPROXY26_BIN; when it is already installed, this needs no root.
set -euo pipefail

ONLY_26=0
for arg in "$@"; do
	case $arg in
	--only-2.6) ONLY_26=1 ;;
	*) printf 'install-haproxy: unknown argument %s (usage: install-haproxy.sh [--only-2.6])\n' "$arg" >&2; exit 2 ;;
	esac
done

CACHE_DIR=${HAPROXY_CACHE_DIR:-/var/cache/haproxy-sidecar}
HAPROXY26_BIN=/usr/sbin/haproxy
HAPROXY30_BIN=$CACHE_DIR/haproxy-3.0/haproxy
# The OpenSSL series HAProxy 3.0 is linked with (trixie's), and the trixie
# release taken when the mirror lacks the current one's tarball (its SHA-256
# as trixie's Sources index gave it, package 3.5.7-1~deb13u2).
OPENSSL30_SERIES=3.5
OPENSSL_FALLBACK=3.5.7
OPENSSL_FALLBACK_SHA256=a8c0d28a529ca480f9f36cf5792e2cd21984552a3c8e4aa11a24aa31aeac98e8
TRIXIE_SOURCES=/etc/apt/sources.list.d/haproxy-sidecar-trixie-src.sources
# No libssl-dev: HAProxy 3.0 links the OpenSSL built below.
BUILD_DEPS=(libpcre2-dev liblua5.4-dev dpkg-dev build-essential)

export DEBIAN_FRONTEND=noninteractive

log() { printf 'install-haproxy: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [ "$ONLY_26" -eq 1 ] && [ -x "$HAPROXY26_BIN" ] && "$HAPROXY26_BIN" -v >/dev/null 2>&1; then
	log "$("$HAPROXY26_BIN" -v | head -n1)"
	echo "HAPROXY26_BIN=$HAPROXY26_BIN"
	exit 0
fi

[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get and $CACHE_DIR need it)"
command -v apt-get >/dev/null || die "apt-get not found; this script targets Debian bookworm"

# Serialize concurrent runs (e.g. parallel CI jobs on one machine): the second waits
# for the first and then finds the cache filled.
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.install.lock"
flock 9

# has_version BIN MAJOR.MINOR — true when BIN runs and reports that version.
# Not "haproxy -v | grep -q": grep -q exits at the first match, haproxy may
# then die of SIGPIPE, and pipefail turns that into "not installed" (seen:
# a cached 3.0 rebuilt for nothing).
has_version() {
	local out
	[ -x "$1" ] && out=$("$1" -v 2>/dev/null) || return 1
	case "$out" in
	"HAProxy version $2."*) return 0 ;;
	esac
	return 1
}

# has_openssl BIN SERIES — true when BIN runs on OpenSSL SERIES.x ("haproxy -vv":
# "Running on OpenSSL version : OpenSSL 3.5.7 ..."). A 3.0 cached before it was
# linked with trixie's OpenSSL runs on bookworm's 3.0 and is built again.
has_openssl() {
	local out
	[ -x "$1" ] && out=$("$1" -vv 2>/dev/null) || return 1
	case "$out" in
	*"Running on OpenSSL version : OpenSSL $2."*) return 0 ;;
	esac
	return 1
}

apt_updated=0
apt_update() {
	if [ "$apt_updated" -eq 0 ]; then
		apt-get update -q >&2
		apt_updated=1
	fi
}

# missing_pkgs PKG... — print the packages that are not installed.
missing_pkgs() {
	local p
	for p in "$@"; do
		[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || echo "$p"
	done
}

# --- 1. HAProxy 2.6 from bookworm -------------------------------------------------
if [ ! -x "$HAPROXY26_BIN" ]; then
	log "installing Debian's haproxy package"
	apt_update
	# Keep the package's init script from starting a system-wide HAProxy: tests
	# and the sidecar run their own. policy-rc.d exit 101 = "action forbidden".
	own_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		own_policy=1
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	apt-get install -y -q haproxy >&2
	if [ "$own_policy" -eq 1 ]; then
		rm -f /usr/sbin/policy-rc.d
		trap - EXIT
	fi
fi
"$HAPROXY26_BIN" -v >/dev/null || die "$HAPROXY26_BIN does not run"

if [ "$ONLY_26" -eq 1 ]; then
	log "$("$HAPROXY26_BIN" -v | head -n1)"
	echo "HAPROXY26_BIN=$HAPROXY26_BIN"
	exit 0
fi

# --- 2. HAProxy 3.0 from trixie's source package ------------------------------------

# trixie_src_stanza prints a deb822 stanza: the machine's main Debian entry (the one
# listing this release's codename, e.g. "bookworm") with Types/Suites replaced.
# Falls back to the one-line /etc/apt/sources.list format.
trixie_src_stanza() {
	local codename f
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	[ -n "$codename" ] || die "cannot read VERSION_CODENAME from /etc/os-release"
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -e "$f" ] || continue
		[ "$f" = "$TRIXIE_SOURCES" ] && continue
		# Paragraph mode: one record per stanza. Pick the first whose Suites field has
		# the bare codename (not "-security"/"-updates" only) and whose URI is a
		# Debian archive; drop comments, rewrite Types and Suites, keep the rest
		# (URIs, Components, Signed-By, ...).
		awk -v cn="$codename" '
			BEGIN { RS = ""; FS = "\n" }
			{
				suites_ok = 0; uri_ok = 0
				for (i = 1; i <= NF; i++) {
					if ($i ~ /^Suites:/) {
						n = split(substr($i, 8), s, /[ \t]+/)
						for (j = 1; j <= n; j++) if (s[j] == cn) suites_ok = 1
					}
					if ($i ~ /^URIs:/ && $i ~ /debian/ && $i !~ /security/) uri_ok = 1
				}
				if (!(suites_ok && uri_ok)) next
				for (i = 1; i <= NF; i++) {
					if ($i ~ /^[ \t]*#/ || $i == "") continue
					if ($i ~ /^Types:/) { print "Types: deb-src"; continue }
					if ($i ~ /^Suites:/) { print "Suites: trixie"; continue }
					print $i
				}
				found = 1
				exit
			}
			END { exit found ? 0 : 1 }
		' "$f" && return 0
	done
	if [ -f /etc/apt/sources.list ]; then
		# "deb [opts] URI bookworm main ..." -> deb822 with deb-src/trixie.
		awk -v cn="$codename" '
			$1 == "deb" {
				i = 2; opts = ""
				if ($2 ~ /^\[/) { while ($i !~ /\]$/) { opts = opts " " $i; i++ } opts = opts " " $i; i++ }
				if ($(i+1) != cn || $i !~ /debian/ || $i ~ /security/) next
				comps = ""; for (j = i + 2; j <= NF; j++) comps = comps " " $j
				print "Types: deb-src"; print "URIs: " $i; print "Suites: trixie"
				print "Components:" comps
				if (match(opts, /signed-by=[^ \]]+/)) print "Signed-By: " substr(opts, RSTART + 10, RLENGTH - 10)
				found = 1; exit
			}
			END { exit found ? 0 : 1 }
		' /etc/apt/sources.list && return 0
	fi
	die "no Debian $codename entry found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list"
}

# build_openssl WORK PREFIX — OpenSSL from trixie's source package (the upstream
# tarball; apt verifies its hash against the signed Sources index), its
# libraries only and static (no-shared), installed into PREFIX for HAProxy's
# build to link in: the cached binary then needs no library beside it and
# never picks up bookworm's libssl.so.3. Its configuration directory is
# Debian's (/usr/lib/ssl), so it reads the system's openssl.cnf and CA store.
build_openssl() {
	local work="$1/openssl-src" prefix="$2" tarball src
	mkdir -p "$work"
	log "fetching openssl source from trixie into $work"
	if ! (cd "$work" && apt-get source -q --tar-only openssl/trixie >&2); then
		# Seen on a mirror that serves trixie's current Sources index before the
		# tarball it names (404): take the release pinned below from the same
		# pool, its SHA-256 checked by apt's own downloader.
		local uri
		uri=$(awk '$1 == "URIs:" { print $2; exit }' "$TRIXIE_SOURCES")
		log "trixie's current openssl tarball is not on $uri; taking OpenSSL $OPENSSL_FALLBACK (pinned SHA-256)"
		rm -rf "$work" && mkdir -p "$work"
		/usr/lib/apt/apt-helper download-file \
			"$uri/pool/main/o/openssl/openssl_$OPENSSL_FALLBACK.orig.tar.gz" \
			"$work/openssl_$OPENSSL_FALLBACK.orig.tar.gz" "SHA256:$OPENSSL_FALLBACK_SHA256" >&2
	fi
	tarball=$(find "$work" -maxdepth 1 -name 'openssl_*.orig.tar.*' ! -name '*.asc' | head -n1)
	[ -n "$tarball" ] || die "apt-get source --tar-only fetched no openssl_*.orig.tar.* into $work"
	tar -C "$work" -xf "$tarball"
	src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'openssl-*' | head -n1)
	[ -n "$src" ] || die "the openssl tarball has no openssl-* directory"
	case "$(basename "$src")" in
	"openssl-$OPENSSL30_SERIES."*) ;;
	*) die "trixie's OpenSSL is $(basename "$src"), want $OPENSSL30_SERIES.x (update OPENSSL30_SERIES and the tests' image check)" ;;
	esac
	log "building $(basename "$src") (libraries only, static; a few minutes)"
	(cd "$src" && ./config --prefix="$prefix" --libdir=lib --openssldir=/usr/lib/ssl \
		no-shared no-tests no-docs >&2 &&
		make -j"$(nproc)" build_libs >&2 &&
		make install_dev >&2)
	[ -f "$prefix/lib/libssl.a" ] && [ -f "$prefix/lib/libcrypto.a" ] ||
		die "OpenSSL's build left no libssl.a and libcrypto.a in $prefix/lib"
}

build_haproxy30() {
	local content work src
	content=$(printf '# Managed by haproxy-sidecar scripts/install-haproxy.sh: source packages only.\n%s' \
		"$(trixie_src_stanza)")
	if [ ! -f "$TRIXIE_SOURCES" ] || [ "$(cat "$TRIXIE_SOURCES")" != "$content" ]; then
		log "writing $TRIXIE_SOURCES (deb-src only: no trixie binaries become installable)"
		printf '%s\n' "$content" >"$TRIXIE_SOURCES"
	fi
	# Always refresh here, even when step 1 already ran `apt-get update`: that
	# update happened before the deb-src entry existed (a bare machine), or on
	# an earlier run that may have died before its own update. Without it,
	# `apt-get source` answers "You must put some 'deb-src' URIs in your
	# sources.list". This path runs only when 3.0 is not cached yet.
	apt_updated=0
	apt_update

	local missing
	missing=$(missing_pkgs "${BUILD_DEPS[@]}")
	if [ -n "$missing" ]; then
		log "installing build dependencies: $missing"
		# shellcheck disable=SC2086 # word splitting intended
		apt-get install -y -q $missing >&2
	fi

	work="$CACHE_DIR/build"
	rm -rf "$work"
	mkdir -p "$work"
	log "fetching haproxy source from trixie into $work"
	# apt may warn that the download is unsandboxed (root-owned dir); harmless.
	if ! (cd "$work" && apt-get source -q haproxy/trixie >&2); then
		# Seen on mirrors/caches that carry the upstream tarball but not the current
		# .dsc/.debian.tar.xz (404). The upstream tarball alone builds the same
		# HAProxy minus Debian's few packaging patches; apt still verifies its hash
		# against the signed Sources index.
		log "full source package unavailable; falling back to the upstream tarball (--tar-only)"
		rm -rf "$work" && mkdir -p "$work"
		(cd "$work" && apt-get source -q --tar-only haproxy/trixie >&2)
		local tarball
		tarball=$(find "$work" -maxdepth 1 -name 'haproxy_*.orig.tar.*' | head -n1)
		[ -n "$tarball" ] || die "apt-get source --tar-only fetched no haproxy_*.orig.tar.* into $work"
		tar -C "$work" -xf "$tarball"
	fi
	src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'haproxy-*' | head -n1)
	[ -n "$src" ] || die "apt-get source produced no haproxy-* directory in $work"

	local ssl="$work/openssl"
	build_openssl "$work" "$ssl"

	log "building $(basename "$src") with OpenSSL from $ssl"
	make -C "$src" -j"$(nproc)" TARGET=linux-glibc \
		USE_OPENSSL=1 SSL_INC="$ssl/include" SSL_LIB="$ssl/lib" \
		USE_PCRE2=1 USE_PCRE2_JIT=1 \
		USE_LUA=1 LUA_INC=/usr/include/lua5.4 LUA_LIB_NAME=lua5.4 \
		USE_PROMEX=1 >&2

	has_version "$src/haproxy" 3.0 || die "built binary is not HAProxy 3.0: $("$src/haproxy" -v | head -n1)"
	has_openssl "$src/haproxy" "$OPENSSL30_SERIES" ||
		die "built HAProxy 3.0 does not run on OpenSSL $OPENSSL30_SERIES: $("$src/haproxy" -vv | grep -i 'openssl version')"

	# Install atomically: a concurrent reader never sees a half-copied binary.
	mkdir -p "$(dirname "$HAPROXY30_BIN")"
	install -m 0755 "$src/haproxy" "$HAPROXY30_BIN.tmp"
	mv -f "$HAPROXY30_BIN.tmp" "$HAPROXY30_BIN"
	rm -rf "$work"
}

if has_version "$HAPROXY30_BIN" 3.0 && has_openssl "$HAPROXY30_BIN" "$OPENSSL30_SERIES"; then
	log "HAProxy 3.0 already cached"
else
	build_haproxy30
fi

log "$("$HAPROXY26_BIN" -v | head -n1)"
log "$("$HAPROXY30_BIN" -v | head -n1)"
echo "HAPROXY26_BIN=$HAPROXY26_BIN"
echo "HAPROXY30_BIN=$HAPROXY30_BIN"
