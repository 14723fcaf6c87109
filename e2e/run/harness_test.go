// Package run holds end-to-end tests of `haproxy-sidecar run` driven by a
// manifests directory: the real binary, a real HAProxy (2.6 and 3.0) and
// HTTP echo backends, all on loopback.
package run

import (
	"context"
	"encoding/json"
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

// sidecar is a running `haproxy-sidecar run --manifests DIR --haproxy-start`.
type sidecar struct {
	*sidecartest.Process
	t          testing.TB
	manifests  string
	configDir  string
	socket     string
	httpPort   int
	adminPort  int // --debug-addr: /status, /explain
	healthPort int
	// renderFlags are the flags that shape the rendered files, for
	// `render` and `diff` to render what this sidecar does.
	renderFlags []string
	logs        *sidecartest.LockedBuffer
}

type sidecarOpts struct {
	haproxy           string
	minReloadInterval time.Duration // negative: the default
	templates         string
	manifests         string   // default: a fresh directory
	args              []string // more flags of run
	// noWait: return at once, not once HAProxy serves.
	noWait bool
}

func startSidecar(t testing.TB, o sidecarOpts) *sidecar {
	t.Helper()
	work := t.TempDir()
	s := &sidecar{
		t:         t,
		manifests: o.manifests,
		configDir: filepath.Join(work, "config"),
		socket:    filepath.Join(work, "master.sock"),
	}
	ports := sidecartest.FreePorts(t, 4)
	s.httpPort, s.adminPort, s.healthPort = ports[0], ports[2], ports[3]
	if s.manifests == "" {
		s.manifests = filepath.Join(work, "manifests")
		if err := os.MkdirAll(s.manifests, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.renderFlags = []string{"--grace-period", "5s", "--http-bind", "127.0.0.1:" + strconv.Itoa(s.httpPort),
		"--https-bind", "127.0.0.1:" + strconv.Itoa(ports[1])}
	args := []string{"run", "--manifests", s.manifests, "--config-dir", s.configDir, "--master-socket", s.socket,
		"--haproxy-start", "--haproxy", o.haproxy, "--log-level", "debug", "--grace-period", "5s", "--health-addr", "127.0.0.1:" + strconv.Itoa(s.healthPort),
		"--debug-addr", "127.0.0.1:" + strconv.Itoa(s.adminPort),
		"--http-bind", "127.0.0.1:" + strconv.Itoa(s.httpPort), "--https-bind", "127.0.0.1:" + strconv.Itoa(ports[1])}
	if o.minReloadInterval >= 0 {
		args = append(args, "--min-reload-interval", o.minReloadInterval.String())
	}
	if o.templates != "" {
		args = append(args, "--templates", o.templates)
	}
	args = append(args, o.args...)
	s.Process = sidecartest.Start(t, s.socket, args...)
	s.logs = s.Logs
	if o.noWait {
		return s
	}
	// Serving means the frontend answers (404 before any Ingress).
	s.eventually(20*time.Second, "HAProxy serving", func() error {
		_, err := s.get("nothing.test", "/")
		return err
	})
	return s
}

func (s *sidecar) stop() { s.Stop() }

// write puts a manifest file in place atomically, the way editors and
// kubectl-like tools replace files.
func (s *sidecar) write(name, content string) {
	s.t.Helper()
	p := filepath.Join(s.manifests, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(p), ".tmp-"+filepath.Base(p))
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		s.t.Fatal(err)
	}
}

func (s *sidecar) remove(name string) {
	s.t.Helper()
	if err := os.Remove(filepath.Join(s.manifests, name)); err != nil {
		s.t.Fatal(err)
	}
}

// get sends one request on a new connection and returns "svc:<name>" for
// an echo backend's answer or "status:<code>" otherwise.
func (s *sidecar) get(host, path string) (string, error) {
	return get(s.httpPort, host, path)
}

func get(port int, host, path string) (string, error) {
	status, body, err := sidecartest.Get(port, host, path)
	if err != nil {
		return "", err
	}
	if status == 200 && strings.HasPrefix(body, "svc:") {
		return body, nil
	}
	return "status:" + strconv.Itoa(status), nil
}

// expect waits until a request gets the wanted answer.
func (s *sidecar) expect(host, path, want string) {
	s.t.Helper()
	s.eventually(10*time.Second, fmt.Sprintf("http://%s%s -> %s", host, path, want), func() error {
		got, err := s.get(host, path)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("got %s", got)
		}
		return nil
	})
}

// expectStays checks that an answer holds for a while (a change that must
// not take effect).
func (s *sidecar) expectStays(host, path, want string, d time.Duration) {
	s.t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		got, err := s.get(host, path)
		if err != nil || got != want {
			s.t.Fatalf("http://%s%s: got %q (%v), want %s to stay", host, path, got, err, want)
		}
	}
}

func (s *sidecar) eventually(limit time.Duration, what string, f func() error) {
	s.t.Helper()
	s.Eventually(limit, what, f)
}

// procs is HAProxy's own view of its processes.
func (s *sidecar) procs() reload.ProcStatus { return s.Procs() }

// tryProcs asks once, for use inside eventually.
func (s *sidecar) tryProcs() (reload.ProcStatus, error) { return s.TryProcs() }

// logCount counts log lines containing a string.
func (s *sidecar) logCount(substr string) int { return s.LogCount(substr) }

// status is the part of the admin server's /status the tests read.
type status struct {
	Ready         bool     `json:"ready"`
	LastError     string   `json:"last_error"`
	TemplateError string   `json:"template_error"`
	Generation    int      `json:"generation"`
	Reloads       int      `json:"reloads"`
	OldWorkers    int      `json:"old_workers"`
	Problems      []string `json:"problems"`
	HAProxy       *struct {
		Workers    []reload.Proc `json:"workers"`
		OldWorkers []reload.Proc `json:"old_workers"`
	} `json:"haproxy"`
	HAProxyError string `json:"haproxy_error"`
}

func (s *sidecar) status() status {
	s.t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(s.adminPort) + "/status")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st status
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		s.t.Fatalf("/status: %s, %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		s.t.Fatalf("/status: %v", err)
	}
	return st
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
	s.t.Helper()
	st := s.procs()
	syscall.Kill(st.Master.PID, syscall.SIGKILL)
	for _, w := range append(st.Workers, st.OldWorkers...) {
		syscall.Kill(w.PID, syscall.SIGKILL)
	}
	s.eventually(20*time.Second, "a new HAProxy master", func() error {
		now, err := reload.NewMasterCLI(s.socket).ShowProc(context.Background())
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
	data, _ := os.ReadFile(filepath.Join(s.configDir, "current", "haproxy.cfg"))
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
