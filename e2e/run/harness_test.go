// Package run holds end-to-end tests of `haproxy-sidecar run` driven by a
// manifests directory: the real binary, a real HAProxy (2.6 and 3.0) and
// HTTP echo backends, all on loopback.
package run

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
)

// forEachHAProxy runs a test against every supported HAProxy version.
func forEachHAProxy(t *testing.T, f func(t *testing.T, bin string)) {
	for _, v := range []string{"2.6", "3.0"} {
		bin := testenv.HAProxies(t)[v]
		t.Run("haproxy-"+v, func(t *testing.T) { f(t, bin) })
	}
}

// sidecar is a running `haproxy-sidecar run`, with the views these tests
// add to the harness's.
type sidecar struct {
	*sidecartest.Sidecar
}

// startSidecar starts the sidecar (by default reading a fresh manifests
// directory, with --haproxy-start and no minimum time between reloads) and
// waits until HAProxy serves, unless o.Wait says otherwise.
func startSidecar(t testing.TB, o sidecartest.Options) *sidecar {
	t.Helper()
	return &sidecar{sidecartest.Start(t, o)}
}

// echo is an HTTP backend on loopback answering "svc:<name>". A request
// for /hold is answered only once release is called: an in-flight request
// that keeps an old HAProxy worker alive.
type echo struct {
	name     string
	port     int
	srv      *http.Server
	held     chan struct{} // one value per /hold request received
	released chan struct{}
	once     sync.Once
}

func (e *echo) release() { e.once.Do(func() { close(e.released) }) }

func startEcho(t testing.TB, name string) *echo {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{name: name, port: ln.Addr().(*net.TCPAddr).Port, held: make(chan struct{}, 16), released: make(chan struct{})}
	e.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			e.held <- struct{}{}
			select {
			case <-e.released:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "svc:"+name)
	})}
	go e.srv.Serve(ln)
	t.Cleanup(func() { e.release(); e.srv.Close() })
	return e
}

// Manifest builders: sidecartest's (EndpointSlices may name 127.0.0.1
// here: no API server checks them).

const ingressClass = sidecartest.IngressClass

// app is a Service named name whose endpoints are the given echo servers.
func app(name string, backends ...*echo) string {
	es := make([]*sidecartest.Echo, len(backends))
	for i, e := range backends {
		es[i] = &sidecartest.Echo{Name: e.name, Port: e.port}
	}
	return sidecartest.App(name, es...)
}

// ingress routes host+path (Prefix) to a Service.
func ingress(name, host string, routes ...string) string {
	return sidecartest.Ingress(name, host, routes...)
}

// killHAProxy kills the master and its workers at once, like a crashed
// container, and waits for the supervisor to start a new master.
func (s *sidecar) killHAProxy() {
	s.T.Helper()
	st := s.Procs()
	syscall.Kill(st.Master.PID, syscall.SIGKILL)
	for _, w := range append(st.Workers, st.OldWorkers...) {
		syscall.Kill(w.PID, syscall.SIGKILL)
	}
	s.Eventually(20*time.Second, "a new HAProxy master", func() error {
		now, err := reload.NewMasterCLI(s.Socket).ShowProc(context.Background())
		if err != nil {
			return err
		}
		if now.Master.PID == st.Master.PID || now.CurrentWorker() == 0 {
			return fmt.Errorf("master still %d", now.Master.PID)
		}
		return nil
	})
}

// alive is true for a process that exists and is not a zombie (nothing
// reaps orphans in this container, so a killed daemon can linger as one).
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(data), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func bin26(t testing.TB) string { return testenv.HAProxy26(t) }

// liveConfig is the configuration HAProxy runs from (current generation).
func (s *sidecar) liveConfig() string {
	data, _ := os.ReadFile(filepath.Join(s.ConfigDir, "current", "haproxy.cfg"))
	return string(data)
}

func containsLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}
