package faults

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
)

// An API server that cannot be reached is said at once and again at each
// retry (backing off), with the error, the server and the next attempt;
// /readyz names it; and every line of the log is JSON (client-go's own,
// through klog, too: TestClusterRouting reads its leader-election lines). Two ways to be unreachable: a port that refuses
// connections, and a listener that accepts them and never answers (a
// stopped or cut-off API server), where nothing fails for client-go's
// first 10 s (its TLS handshake timeout).
func TestUnreachableAPIServerIsSaid(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		addr := closedAddr(t)
		s := startOn(t, addr)
		s.WaitLog(5*time.Second, "Kubernetes API server unreachable", 1)
		first := jsonLine(t, s, "Kubernetes API server unreachable")
		if first["server"] != "https://"+addr || !strings.Contains(fmt.Sprint(first["error"]), "connection refused") || first["retry_in"] == nil {
			t.Errorf("the outage's first line is %v, want the server, the error and the next attempt", first)
		}
		// Retried every 50 ms to 1 s; said 1 s after the first line, then
		// 2 s after that: two more lines within 3 s and some.
		s.WaitLog(6*time.Second, "Kubernetes API server still unreachable", 2)
		again := jsonLine(t, s, "Kubernetes API server still unreachable")
		if n, _ := again["failed_attempts"].(float64); n < 1 || again["down_for"] == nil || again["retry_in"] == nil {
			t.Errorf("a retry's line is %v, want the attempts since the line before, the outage's length and the next attempt", again)
		}
		expectReadyz(t, s, "Kubernetes API server unreachable since", "("+"https://"+addr+")", "connection refused")
		allJSON(t, s)
	})
	t.Run("silent", func(t *testing.T) {
		addr := silentAddr(t)
		s := startOn(t, addr)
		// Nothing has failed yet: the wait itself is said, 2 s in.
		s.WaitLog(6*time.Second, "waiting for the Kubernetes API server's first lists", 1)
		wait := jsonLine(t, s, "waiting for the Kubernetes API server's first lists")
		if wait["server"] != "https://"+addr || !strings.Contains(fmt.Sprint(wait["api"]), "no answer from the Kubernetes API server") {
			t.Errorf("the wait's line is %v, want the server and that it has not answered", wait)
		}
		expectReadyz(t, s, "no answer from the Kubernetes API server (https://"+addr+") yet")
		// client-go gives up on the handshake after 10 s: the outage
		// starts, with the error.
		s.Eventually(25*time.Second, "the outage logged with the handshake's timeout", func() error {
			if len(s.LogLines(`"logger":"kube.api"`, "Kubernetes API server unreachable", "TLS handshake timeout")) == 0 {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		expectReadyz(t, s, "Kubernetes API server unreachable since", "TLS handshake timeout")
		allJSON(t, s)
	})
}

// startOn starts a sidecar (JSON log) whose kubeconfig names the API
// server at addr.
func startOn(t *testing.T, addr string) *sidecar {
	t.Helper()
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	writeFile(t, kc, `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://`+addr+`", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: not-a-real-token}
contexts:
- name: c
  context: {cluster: c, user: u}
current-context: c
`)
	return sidecartest.Start(t, sidecartest.Options{Kubeconfig: kc, LogLevel: "info", Wait: sidecartest.WaitNone})
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentAddr is a loopback address that accepts connections and never
// answers on them.
func silentAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 1024)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-held:
				c.Close()
			default:
				return
			}
		}
	})
	return ln.Addr().String()
}

// jsonLine decodes the last log line holding substr.
func jsonLine(t *testing.T, s *sidecar, substr string) map[string]any {
	t.Helper()
	lines := s.LogLines(substr)
	if len(lines) == 0 {
		t.Fatalf("no log line holds %q", substr)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("log line %q is not JSON: %v", lines[len(lines)-1], err)
	}
	return m
}

// expectReadyz waits until /readyz answers 503 with every one of parts.
func expectReadyz(t *testing.T, s *sidecar, parts ...string) {
	t.Helper()
	s.Eventually(5*time.Second, "/readyz naming the API server", func() error {
		code, body, err := sidecartest.AdminGet(s.HealthPort, "/readyz")
		if err != nil {
			return err
		}
		for _, p := range parts {
			if code != 503 || !strings.Contains(body, p) {
				return fmt.Errorf("%d %q, want 503 with %q", code, body, p)
			}
		}
		return nil
	})
}

// allJSON checks that every line the sidecar wrote is a JSON object.
func allJSON(t *testing.T, s *sidecar) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSpace(s.Logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("a log line is not JSON: %q", l)
		}
	}
	if t.Failed() {
		fmt.Fprintln(os.Stderr, s.Logs.String())
	}
}
