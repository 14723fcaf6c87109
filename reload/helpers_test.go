package reload

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
)

// Tests run against real HAProxy binaries, never mocks: 2.6 from Debian
// bookworm and 3.0 built by scripts/install-haproxy.sh, found by testenv
// (which fails the test, naming the script, when one is missing).
type haproxyBin struct {
	name  string // "2.6", "3.0"
	path  string
	major int
	minor int
}

func haproxyBins(t *testing.T) []haproxyBin {
	t.Helper()
	return []haproxyBin{
		{name: "2.6", path: testenv.HAProxy26(t), major: 2, minor: 6},
		{name: "3.0", path: testenv.HAProxy30(t), major: 3, minor: 0},
	}
}

// forEachHAProxy runs f as a parallel subtest per HAProxy version.
func forEachHAProxy(t *testing.T, f func(t *testing.T, hb haproxyBin)) {
	t.Helper()
	for _, hb := range haproxyBins(t) {
		t.Run("haproxy-"+hb.name, func(t *testing.T) {
			t.Parallel()
			f(t, hb)
		})
	}
}

// shortTempDir: unix socket paths are limited to 108 bytes and HAProxy appends
// ".<pid>.tmp" while binding, so t.TempDir()'s long names are too risky.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// freePort is testenv's: a free port on 127.0.0.1 (tests only ever bind
// loopback).
func freePort(t *testing.T) int { return testenv.FreePort(t) }

// selfSignedPEM returns a certificate+key PEM bundle for HAProxy's crt.
func selfSignedPEM(t *testing.T, cn string) []byte {
	t.Helper()
	cert, key := testenv.SelfSigned(t, cn, "")
	return append(cert, key...)
}

// baseConfig is the global/defaults part every test config starts with.
const baseConfig = `global
    default-path config
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
`

// routeConfig answers every request with the Host's value in maps/exact.map,
// the worker's PID and a generation marker, so tests can see which worker and
// which config served them.
func routeConfig(port int, marker string) string {
	return baseConfig + fmt.Sprintf(`frontend fe
    bind 127.0.0.1:%d
    http-request return status 200 content-type text/plain lf-string "route=%%[req.hdr(host),map_str(maps/exact.map,none)] pid=%%pid gen=%s"
`, port, marker)
}

func writeFiles(t *testing.T, dir string, files Files) {
	t.Helper()
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// field extracts "key=value" from a response body like "200 route=a1 pid=12 gen=1".
func field(body, key string) string {
	for _, f := range strings.Fields(body) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}
