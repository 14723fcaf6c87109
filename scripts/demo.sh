#!/usr/bin/env bash
# demo.sh — run haproxy-sidecar on this machine against the manifests in
# testdata/demo, with a real HAProxy and small echo backends, all on 127.0.0.1.
# `make run` builds bin/haproxy-sidecar and calls this script.
#
# It copies testdata/demo to $DEMO_DIR/manifests (edit the copy, never the
# repository), starts hack/echo as the "web", "api" and "docs" Services, and
# runs `haproxy-sidecar run --haproxy-start` watching the copy. Once HAProxy
# serves the demo routes it prints curl commands to try, and keeps running
# until Ctrl-C (or SIGTERM), then stops everything it started.
#
# Settings (environment variables):
#   DEMO_DIR          work directory           (/tmp/haproxy-sidecar-demo)
#   DEMO_HTTP_PORT    HAProxy's HTTP port      (8080)
#   DEMO_HTTPS_PORT   HAProxy's HTTPS port     (8443)
#   DEMO_ADMIN_PORT   the sidecar's /healthz, /readyz and /startupz (10254)
#   DEMO_DEBUG_PORT   the sidecar's /status and /explain (10255)
#   DEMO_STATS_PORT   HAProxy's stats frontend: /healthz, /metrics (8404)
#   DEMO_WEB_PORT, DEMO_API_PORT, DEMO_DOCS_PORT
#                     the echo backends' ports (18081, 18082, 18083)
#   DEMO_START_TIMEOUT  seconds to wait for the demo routes (60)
#   HAPROXY           HAProxy binary           (haproxy from PATH or /usr/sbin)
#   SIDECAR           haproxy-sidecar binary   (bin/haproxy-sidecar)
#   GO                go command used to build hack/echo (go)
#
# Works as root or as an ordinary user (every port is above 1024).
#
# shellcheck disable=SC2317  # stop, cleanup & co. run from traps
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${DEMO_DIR:-/tmp/haproxy-sidecar-demo}
HTTP_PORT=${DEMO_HTTP_PORT:-8080}
HTTPS_PORT=${DEMO_HTTPS_PORT:-8443}
ADMIN_PORT=${DEMO_ADMIN_PORT:-10254}
STATS_PORT=${DEMO_STATS_PORT:-8404}
DEBUG_PORT=${DEMO_DEBUG_PORT:-10255}
WEB_PORT=${DEMO_WEB_PORT:-18081}
API_PORT=${DEMO_API_PORT:-18082}
DOCS_PORT=${DEMO_DOCS_PORT:-18083}
START_TIMEOUT=${DEMO_START_TIMEOUT:-60}
SIDECAR=${SIDECAR:-$ROOT/bin/haproxy-sidecar}
GO=${GO:-go}
MARKER=.haproxy-sidecar-demo

log() { printf 'demo: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- checks
for p in "$HTTP_PORT" "$HTTPS_PORT" "$STATS_PORT" "$WEB_PORT" "$API_PORT" "$DOCS_PORT"; do
	if ! [[ $p =~ ^[0-9]+$ ]] || ((10#$p < 1 || 10#$p > 65535)); then
		die "port '$p' is not a number between 1 and 65535"
	fi
done
if [[ -z ${HAPROXY:-} ]]; then
	HAPROXY=$(command -v haproxy || true)
	for c in /usr/sbin/haproxy /usr/local/sbin/haproxy; do
		[[ -n $HAPROXY ]] || { [[ -x $c ]] && HAPROXY=$c; }
	done
fi
[[ -n ${HAPROXY:-} && -x $HAPROXY ]] || die "HAProxy not found. 'make run' installs it (as root), or: sudo bash scripts/install-haproxy.sh --only-2.6  (or set HAPROXY=/path/to/haproxy)"
command -v curl >/dev/null || die "curl not found; the demo is driven with curl (apt-get install curl)"
[[ -x $SIDECAR ]] || die "$SIDECAR not found; run 'make build' first (or use 'make run')"
RUN_HELP=$("$SIDECAR" run -h 2>&1 || true)
grep -q -- '-haproxy-start' <<<"$RUN_HELP" ||
	die "$SIDECAR has no 'run' command with --haproxy-start; rebuild it with 'make build'"

# Something already answering on a demo port (often a previous demo) would
# make the curl results below misleading.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$HTTP_PORT" "$HTTPS_PORT" "$STATS_PORT" "$WEB_PORT" "$API_PORT" "$DOCS_PORT"; do
	port_busy "$p" && die "127.0.0.1:$p is already in use (another demo still running?). Stop it, or choose other ports with DEMO_HTTP_PORT, DEMO_HTTPS_PORT, DEMO_STATS_PORT, DEMO_WEB_PORT, DEMO_API_PORT, DEMO_DOCS_PORT"
done

# ---------------------------------------------------------------- work dir
# Only a directory this script created (it holds $MARKER) is ever emptied.
if [[ -e $WORK ]]; then
	[[ -d $WORK ]] || die "$WORK exists and is not a directory; set DEMO_DIR"
	if [[ ! -e $WORK/$MARKER && -n $(ls -A "$WORK") ]]; then
		die "$WORK is not empty and was not made by this script; set DEMO_DIR to another directory"
	fi
	rm -rf "${WORK:?}"/* "${WORK:?}"/.[!.]* 2>/dev/null || die "cannot empty $WORK (made by another user?); set DEMO_DIR"
fi
mkdir -p "$WORK/manifests" "$WORK/config"
touch "$WORK/$MARKER"
cp "$ROOT"/testdata/demo/*.yaml "$WORK/manifests/"
# The EndpointSlices name the echo ports; follow DEMO_*_PORT in the copy.
sed -i -E "s/\\b18081\\b/$WEB_PORT/" "$WORK/manifests/app-web.yaml"
sed -i -E "s/\\b18082\\b/$API_PORT/" "$WORK/manifests/app-api.yaml"
sed -i -E "s/\\b18083\\b/$DOCS_PORT/" "$WORK/manifests/app-docs.yaml"
# Settings: redirects to HTTPS name the port the demo serves HTTPS on.
cat >"$WORK/manifests/settings.yaml" <<EOF
# Written by scripts/demo.sh: the settings ConfigMap (--configmap default/haproxy-sidecar).
apiVersion: v1
kind: ConfigMap
metadata:
  name: haproxy-sidecar
  namespace: default
data:
  https-redirect-port: "$HTTPS_PORT"
EOF
# The demo certificate, so that curl can verify it instead of using -k.
CA=$WORK/secure.demo.test.crt
sed -n 's/^  tls.crt: //p' "$WORK/manifests/secret-secure-demo-tls.yaml" | base64 -d >"$CA"

log "building hack/echo"
(cd "$ROOT" && "$GO" build -buildvcs=false -o "$WORK/echo" ./hack/echo) || die "could not build hack/echo with '$GO'"

# ---------------------------------------------------------------- processes
ECHO_PID=
SIDECAR_PID=
TAIL_PID=

# pids_of_demo_haproxy prints the HAProxy processes started with this demo's
# master socket (the sidecar starts them in their own process group).
pids_of_demo_haproxy() {
	local d cmd
	for d in /proc/[0-9]*; do
		cmd=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline") || continue
		[[ $cmd == *haproxy*" -S $WORK/master.sock "* ]] && echo "${d#/proc/}"
	done
	return 0
}

# stop PID NAME SECONDS: SIGTERM, then SIGKILL if still there after SECONDS.
stop() {
	local pid=$1 name=$2 secs=$3 i
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
		sleep 0.1
	done
	log "$name (pid $pid) did not stop within ${secs}s; killing it"
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleaned=0
cleanup() {
	local rc=$?
	((cleaned)) && return
	cleaned=1
	# Finish stopping even if Ctrl-C is pressed again.
	trap '' INT TERM
	echo >&2
	log "stopping"
	# The sidecar stops HAProxy gracefully before it exits.
	stop "$SIDECAR_PID" haproxy-sidecar 20
	if [[ -n $TAIL_PID ]]; then
		sleep 0.3 # let tail show the sidecar's last lines
		kill "$TAIL_PID" 2>/dev/null || true
		wait "$TAIL_PID" 2>/dev/null || true
	fi
	local left
	left=$(pids_of_demo_haproxy)
	if [[ -n $left ]]; then
		log "HAProxy still running after the sidecar stopped (pids ${left//$'\n'/ }); stopping it"
		for p in $left; do kill -TERM "$p" 2>/dev/null || true; done
		sleep 2
		for p in $(pids_of_demo_haproxy); do kill -KILL "$p" 2>/dev/null || true; done
	fi
	stop "$ECHO_PID" echo 5
	log "stopped; logs and rendered configurations are kept in $WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$WORK/echo" \
	--serve "web=127.0.0.1:$WEB_PORT" \
	--serve "api=127.0.0.1:$API_PORT" \
	--serve "docs=127.0.0.1:$DOCS_PORT" >"$WORK/echo.log" 2>&1 &
ECHO_PID=$!

extra=()
# A short grace period (how long old workers and, on exit, HAProxy's soft
# stop may wait for open connections) keeps reloads and Ctrl-C quick.
if grep -q -- '-grace-period' <<<"$RUN_HELP"; then extra+=(--grace-period 2s); fi
# /status and /explain on their own loopback port (older builds serve them
# on --health-addr).
STATUS_PORT=$ADMIN_PORT
if grep -q -- '-debug-addr' <<<"$RUN_HELP"; then
	extra+=(--debug-addr "127.0.0.1:$DEBUG_PORT")
	STATUS_PORT=$DEBUG_PORT
fi
# HAProxy's stats frontend: monitor-uri /healthz, and its own Prometheus
# exporter on /metrics when this HAProxy has it (haproxy -vv).
STATS=
if grep -q -- '-stats-bind' <<<"$RUN_HELP"; then
	extra+=(--stats-bind "127.0.0.1:$STATS_PORT")
	STATS="
HAProxy's own health check and Prometheus metrics (the stats frontend, --stats-bind):
  curl -s http://127.0.0.1:$STATS_PORT/healthz
  curl -s http://127.0.0.1:$STATS_PORT/metrics | grep haproxy_frontend_http_requests_total
"
fi
log "starting haproxy-sidecar (log: $WORK/sidecar.log)"
"$SIDECAR" run \
	--manifests "$WORK/manifests" \
	--configmap default/haproxy-sidecar \
	--config-dir "$WORK/config" \
	--master-socket "$WORK/master.sock" \
	--haproxy-start --haproxy "$HAPROXY" \
	--http-bind "127.0.0.1:$HTTP_PORT" \
	--https-bind "127.0.0.1:$HTTPS_PORT" \
	--health-addr "127.0.0.1:$ADMIN_PORT" \
	"${extra[@]}" >"$WORK/sidecar.log" 2>&1 &
SIDECAR_PID=$!

# HAProxy first serves a bootstrap configuration (404 for everything); the
# demo is ready when web.demo.test reaches the web backend.
deadline=$((SECONDS + START_TIMEOUT))
until [[ $(curl -fsS --max-time 2 -H 'Host: web.demo.test' "http://127.0.0.1:$HTTP_PORT/" 2>/dev/null) == "service=web "* ]]; do
	if ! kill -0 "$SIDECAR_PID" 2>/dev/null; then
		tail -n 30 "$WORK/sidecar.log" >&2
		die "haproxy-sidecar exited; its log is above and in $WORK/sidecar.log"
	fi
	if ! kill -0 "$ECHO_PID" 2>/dev/null; then
		cat "$WORK/echo.log" >&2
		die "the echo backends exited; see $WORK/echo.log"
	fi
	if ((SECONDS >= deadline)); then
		tail -n 30 "$WORK/sidecar.log" >&2
		die "the demo routes were not served within ${START_TIMEOUT}s; see $WORK/sidecar.log"
	fi
	sleep 0.2
done

M=$WORK/manifests
H=http://127.0.0.1:$HTTP_PORT
cat <<EOF | tee "$WORK/HOWTO.txt"

haproxy-sidecar demo is running. HAProxy listens on 127.0.0.1:$HTTP_PORT (HTTP) and
127.0.0.1:$HTTPS_PORT (HTTPS); the echo backends answer "service=NAME path=... host=...".

Host routing, Prefix and Exact (ingress-web.yaml):
  curl -H 'Host: web.demo.test' $H/
      service=web path=/ host=web.demo.test
  curl -H 'Host: web.demo.test' $H/api/users
      service=api path=/api/users host=web.demo.test          (Prefix /api)
  curl -H 'Host: web.demo.test' $H/apiary
      service=web path=/apiary host=web.demo.test             (/api does not match /apiary)
  curl -H 'Host: web.demo.test' $H/help
      service=docs path=/help host=web.demo.test              (Exact /help)
  curl -H 'Host: web.demo.test' $H/help/more
      service=web path=/help/more host=web.demo.test          (Exact: /help only)

Wildcard host (ingress-wildcard.yaml):
  curl -H 'Host: docs.demo.test' $H/guide
      service=docs path=/guide host=docs.demo.test
  curl -H 'Host: a.b.demo.test' $H/
      404 page not found                                       (* is one label only)

Rules without host (ingress-fallback.yaml):
  curl $H/status/live
      service=api path=/status/live host=127.0.0.1:$HTTP_PORT
  curl -H 'Host: a.b.demo.test' $H/status
      service=api path=/status host=a.b.demo.test

TLS (ingress-secure.yaml, secret-secure-demo-tls.yaml):
  curl --resolve secure.demo.test:$HTTPS_PORT:127.0.0.1 --cacert $CA https://secure.demo.test:$HTTPS_PORT/
      service=api path=/ host=secure.demo.test:$HTTPS_PORT
  curl --resolve secure.demo.test:$HTTPS_PORT:127.0.0.1 -k https://secure.demo.test:$HTTPS_PORT/
      the same, without verifying the certificate
  curl -si -H 'Host: secure.demo.test' $H/x
      HTTP/1.1 308 Permanent Redirect, location: https://secure.demo.test:$HTTPS_PORT/x
      (the port comes from https-redirect-port in settings.yaml, the settings ConfigMap)
  curl -sL --resolve secure.demo.test:$HTTP_PORT:127.0.0.1 --resolve secure.demo.test:$HTTPS_PORT:127.0.0.1 --cacert $CA http://secure.demo.test:$HTTP_PORT/x
      service=api path=/x host=secure.demo.test:$HTTPS_PORT          (the redirect, followed)

Which rule serves a request, and why (the same model the sidecar serves):
  $SIDECAR explain --manifests $M --configmap default/haproxy-sidecar https://secure.demo.test/x

Edit the copy of the manifests in $M and watch it take effect within a
second or two (the sidecar logs each change below and in $WORK/sidecar.log):
  sed -i 's|path: /help|path: /manual|' $M/ingress-web.yaml
  curl -H 'Host: web.demo.test' $H/manual
      service=docs path=/manual host=web.demo.test
  rm $M/ingress-fallback.yaml
  curl $H/status/live
      404 page not found

The copy is replaced by a fresh one from testdata/demo at the next start.

${STATS}
What the sidecar is doing (generation served, last error, skipped objects,
HAProxy's workers and old workers still draining after a reload):
  curl -s http://127.0.0.1:$STATUS_PORT/status

Rendered configuration: $WORK/config/current/haproxy.cfg
  (with maps/ and crt-list.txt beside it; ls $WORK/config for every generation)
Logs: $WORK/sidecar.log (sidecar and HAProxy), $WORK/echo.log
These instructions: $WORK/HOWTO.txt

Press Ctrl-C to stop HAProxy, the sidecar and the echo backends.
---------------------------------------------------------------- sidecar log
EOF

tail -n 0 -f "$WORK/sidecar.log" &
TAIL_PID=$!

# Wait until a process ends (or a signal arrives: the traps exit, which runs
# cleanup).
set +e
wait -n "$SIDECAR_PID" "$ECHO_PID"
rc=$?
set -e
if ! kill -0 "$SIDECAR_PID" 2>/dev/null; then
	log "haproxy-sidecar exited (status $rc); see $WORK/sidecar.log"
else
	log "the echo backends exited (status $rc); see $WORK/echo.log"
fi
exit 1
