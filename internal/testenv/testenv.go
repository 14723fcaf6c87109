// Package testenv finds the real components the tests run against. A
// missing component fails the test with the command that installs it: the
// suite never skips what it is meant to prove.
package testenv

import (
	"flag"
	"os"
	"os/exec"
	"testing"
)

// HAProxy26 is Debian bookworm's HAProxy, installed by apt.
func HAProxy26(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("HAPROXY26_BIN"); p != "" {
		return p
	}
	p, err := exec.LookPath("haproxy")
	if err != nil {
		for _, c := range []string{"/usr/sbin/haproxy"} {
			if _, err := os.Stat(c); err == nil {
				return c
			}
		}
		t.Fatalf("haproxy 2.6 not found (run: sudo bash scripts/install-haproxy.sh): %v", err)
	}
	return p
}

// HAProxy30 is HAProxy 3.0 built from Debian trixie's source package by
// scripts/install-haproxy.sh.
func HAProxy30(t testing.TB) string {
	t.Helper()
	p := os.Getenv("HAPROXY30_BIN")
	if p == "" {
		dir := os.Getenv("HAPROXY_CACHE_DIR")
		if dir == "" {
			dir = "/var/cache/haproxy-sidecar"
		}
		p = dir + "/haproxy-3.0/haproxy"
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("haproxy 3.0 not found at %s (run: sudo bash scripts/install-haproxy.sh): %v", p, err)
	}
	return p
}

// HAProxies returns every supported HAProxy version by name.
func HAProxies(t testing.TB) map[string]string {
	t.Helper()
	return map[string]string{"2.6": HAProxy26(t), "3.0": HAProxy30(t)}
}

// Update is the -update flag of `go test ./... -update`, which rewrites
// golden files. It is defined here, in the package every test package
// imports, so that the flag exists in all of them.
var Update = flag.Bool("update", false, "rewrite golden files in testdata/")
