// Package faults is the fault-injection suite of issue 8: the real binary
// in run mode with --haproxy-start, real HAProxy 2.6 and 3.0 on loopback,
// echo backends, and a client polling a working route every 20 ms through
// every fault, counting each failed request. Each test states how many
// failed requests it allows and why: none wherever HAProxy itself was not
// killed.
//
// The faults: unreadable, vanishing, special and huge manifest files;
// signals to the sidecar and to HAProxy; a private key in a bad document;
// a connection flood on the admin ports; a broken config-dir (current link
// removed, disk full, read-only); `render --out` into a directory it does
// not own; and the faults that were already handled and must stay so.
package faults

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
)

type (
	sidecar = sidecartest.Sidecar
	echo    = sidecartest.Echo
)

var (
	forEachHAProxy = sidecartest.ForEachHAProxy
	startEcho      = sidecartest.StartEcho
	app            = sidecartest.App
	ingress        = sidecartest.Ingress
	runBinary      = sidecartest.RunOnce
)

const ingressClass = sidecartest.IngressClass

// start starts a sidecar with the fault tests' defaults besides the
// harness's: console logs, at least 10 ms between reloads.
func start(t *testing.T, o sidecartest.Options) *sidecar {
	t.Helper()
	if o.LogFormat == "" {
		o.LogFormat = "console"
	}
	if o.MinReloadInterval == 0 {
		o.MinReloadInterval = 10 * time.Millisecond
	}
	return sidecartest.Start(t, o)
}

// serving starts a sidecar serving a.test/ from Service a (echo "a"),
// defined in a.yaml, and waits until it answers.
func serving(t *testing.T, bin string, opts ...func(*sidecartest.Options)) (*sidecar, *echo) {
	t.Helper()
	a := startEcho(t, "a")
	o := sidecartest.Options{HAProxy: bin}
	for _, f := range opts {
		f(&o)
	}
	s := start(t, o)
	s.Write("class.yaml", ingressClass)
	s.Write("a.yaml", app("a", a)+"---\n"+ingress("a", "a.test", "/", "a"))
	s.Expect("a.test", "/", "svc:a")
	return s, a
}

// poll polls a.test/ (answered by "svc:a") for the rest of the test.
func poll(t *testing.T, s *sidecar) *sidecartest.Poller {
	return sidecartest.StartPoller(t, s.HTTPPort, "a.test", "/", "svc:a")
}

// leaks returns the secrets that text contains.
func leaks(text string, secrets []string) []string {
	var found []string
	for _, s := range secrets {
		if strings.Contains(text, s) {
			found = append(found, s)
		}
	}
	return found
}

// writeFile writes a file, failing the test on error.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
