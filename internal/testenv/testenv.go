// Package testenv finds the real components the tests run against. A
// missing component fails the test with the command that installs it: the
// suite never skips what it is meant to prove.
package testenv

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
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

// SelfSigned returns a fresh self-signed ECDSA P-256 certificate for host
// (also its CN) and its PKCS#8 key, both PEM. org, when set, becomes the
// certificate's Organization: tests use it to tell certificates apart.
func SelfSigned(t testing.TB, host, org string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	if org != "" {
		tmpl.Subject.Organization = []string{org}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// LockedBuffer collects a process's output while a test reads it.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// FreePort returns a loopback port nothing listens on (yet), below the
// kernel's ephemeral range. A port from that range (what ":0" gives) may
// become the source port of some outgoing connection between this call and
// the bind of whoever uses it, and the tests open thousands of
// connections: a sidecar then failed to start with "address already in
// use" now and then.
func FreePort(t testing.TB) int {
	t.Helper()
	const low = 10000
	if high := ephemeralLow(); high > low+1000 {
		for range 200 {
			p := low + mrand.IntN(high-low)
			if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
				ln.Close()
				return p
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// ephemeralLow is the first port of the kernel's ephemeral range, or 0.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// StartHAProxy runs HAProxy in the foreground on cfg until the test ends
// and waits until it accepts connections on the loopback port. It returns
// what HAProxy prints, logs included; a failed test shows it.
func StartHAProxy(t testing.TB, bin, cfg string, port int) *LockedBuffer {
	t.Helper()
	cmd := exec.Command(bin, "-db", "-f", cfg)
	var logs LockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("haproxy output:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			return &logs
		}
		select {
		case <-done:
			t.Fatalf("haproxy exited: %s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy did not listen on %d: %s", port, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
