package sidecartest

// What the tests do with a running sidecar, and helpers for them: echo
// backends that can answer slowly, manifest builders, a client polling a
// route every 20 ms that counts every failed request, and a view of the
// HAProxy processes on the machine read from /proc.

import (
	"bufio"
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
	"unsafe"

	"github.com/haproxy-sidecar/haproxy-sidecar/admin"
	"github.com/haproxy-sidecar/haproxy-sidecar/controller"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
)

// ForEachHAProxy runs f as one subtest per supported HAProxy version.
func ForEachHAProxy(t *testing.T, f func(t *testing.T, bin string)) {
	t.Helper()
	for _, v := range []string{"2.6", "3.0"} {
		bin := testenv.HAProxies(t)[v]
		t.Run("haproxy-"+v, func(t *testing.T) { f(t, bin) })
	}
}

// Echo is an HTTP backend on 127.0.0.1 answering "svc:<name>". A request
// for /slow?ms=N is answered after N milliseconds (at most 30 s): a request
// still in flight while something else happens.
type Echo struct {
	Name string
	Port int
	// Slow receives one value when a /slow request has reached the
	// backend (buffered; never blocks the handler).
	Slow chan struct{}
}

// StartEcho starts an echo backend for the rest of the test.
func StartEcho(t testing.TB, name string) *Echo {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &Echo{Name: name, Port: ln.Addr().(*net.TCPAddr).Port, Slow: make(chan struct{}, 64)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
			select {
			case e.Slow <- struct{}{}:
			default:
			}
			select {
			case <-time.After(time.Duration(min(max(ms, 0), 30000)) * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, "svc:"+name)
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return e
}

// IngressClass makes the sidecar's class the default one.
const IngressClass = `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: haproxy-sidecar
  annotations:
    ingressclass.kubernetes.io/is-default-class: "true"
spec:
  controller: haproxy-sidecar.io/controller
`

// App is a Service named name (port 80, "http") with one EndpointSlice per
// backend, each with the address 127.0.0.1 (no API server checks it here).
func App(name string, backends ...*Echo) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: v1
kind: Service
metadata:
  name: %s
spec:
  ports:
  - name: http
    port: 80
`, name)
	for i, e := range backends {
		fmt.Fprintf(&b, `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %s-%d
  labels:
    kubernetes.io/service-name: %s
addressType: IPv4
ports:
- name: http
  port: %d
endpoints:
- addresses: ["127.0.0.1"]
`, name, i, name, e.Port)
	}
	return b.String()
}

// Ingress routes host + each path (Prefix) to a Service: routes are pairs
// path, service.
func Ingress(name, host string, routes ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: %s
spec:
  rules:
  - host: %s
    http:
      paths:
`, name, host)
	for i := 0; i+1 < len(routes); i += 2 {
		fmt.Fprintf(&b, `      - path: %s
        pathType: Prefix
        backend:
          service:
            name: %s
            port:
              name: http
`, routes[i], routes[i+1])
	}
	return b.String()
}

// Path is a path inside the manifests directory.
func (s *Sidecar) Path(name string) string { return filepath.Join(s.Manifests, name) }

// Write puts a manifest file in place atomically (write, then rename).
func (s *Sidecar) Write(name, content string) {
	s.T.Helper()
	WriteManifest(s.T, s.Manifests, name, content)
}

// WriteManifest puts a file into a manifests directory atomically (write,
// then rename), the way editors and kubectl-like tools replace files.
func WriteManifest(t testing.TB, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(p), ".tmp-"+filepath.Base(p))
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// Remove deletes a manifest file.
func (s *Sidecar) Remove(name string) {
	s.T.Helper()
	if err := os.Remove(s.Path(name)); err != nil {
		s.T.Fatal(err)
	}
}

// Get sends one request to HAProxy over a new connection and returns
// "svc:<name>" for an echo backend's answer or "status:<code>" otherwise.
func (s *Sidecar) Get(host, path string) (string, error) {
	status, body, err := Get(s.HTTPPort, host, path)
	if err != nil {
		return "", err
	}
	if status == 200 && strings.HasPrefix(body, "svc:") {
		return body, nil
	}
	return "status:" + strconv.Itoa(status), nil
}

// Expect waits (10 s) until a request gets the wanted answer.
func (s *Sidecar) Expect(host, path, want string) {
	s.T.Helper()
	s.ExpectWithin(10*time.Second, host, path, want)
}

// ExpectWithin waits until a request gets the wanted answer.
func (s *Sidecar) ExpectWithin(limit time.Duration, host, path, want string) {
	s.T.Helper()
	s.Eventually(limit, fmt.Sprintf("http://%s%s -> %s", host, path, want), func() error {
		got, err := s.Get(host, path)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("got %s", got)
		}
		return nil
	})
}

// ExpectStays checks that an answer holds for d.
func (s *Sidecar) ExpectStays(host, path, want string, d time.Duration) {
	s.T.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		got, err := s.Get(host, path)
		if err != nil || got != want {
			s.T.Fatalf("http://%s%s: got %q (%v), want %s to stay", host, path, got, err, want)
		}
	}
}

// AdminGet sends one GET to 127.0.0.1:port (a new connection).
func AdminGet(port int, path string) (int, string, error) {
	code, body, _, err := adminGet(port, path)
	return code, body, err
}

func adminGet(port int, path string) (code int, body, contentType string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://127.0.0.1:"+strconv.Itoa(port)+path, nil)
	if err != nil {
		return 0, "", "", err
	}
	resp, err := noKeepAlive.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("Content-Type"), err
}

// TryStatus asks /status on the debug address once, and returns it with
// the JSON as served.
func (s *Sidecar) TryStatus() (admin.Status, string, error) {
	code, body, ctype, err := adminGet(s.DebugPort, "/status")
	if err != nil {
		return admin.Status{}, "", err
	}
	if code != http.StatusOK || ctype != "application/json" {
		return admin.Status{}, body, fmt.Errorf("/status: %d %s %s", code, ctype, body)
	}
	var st admin.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		return admin.Status{}, body, fmt.Errorf("/status: %v in %s", err, body)
	}
	return st, body, nil
}

// History is /history on the debug address, the newest pass first,
// failing the test if it does not answer.
func (s *Sidecar) History() []controller.Pass {
	s.T.Helper()
	code, body, _, err := adminGet(s.DebugPort, "/history")
	if err != nil || code != http.StatusOK {
		s.T.Fatalf("/history: %d %v %.200s", code, err, body)
	}
	var passes []controller.Pass
	if err := json.Unmarshal([]byte(body), &passes); err != nil {
		s.T.Fatalf("/history: %v in %.200s", err, body)
	}
	return passes
}

// Status asks /status on the debug address, failing the test if it does
// not answer.
func (s *Sidecar) Status() admin.Status {
	s.T.Helper()
	st, _, err := s.TryStatus()
	if err != nil {
		s.T.Fatal(err)
	}
	return st
}

// StatusJSON is /status as served, failing the test if it does not
// answer.
func (s *Sidecar) StatusJSON() string {
	s.T.Helper()
	_, body, err := s.TryStatus()
	if err != nil {
		s.T.Fatal(err)
	}
	return body
}

// EventuallyProblem waits (10 s) until /status lists a problem containing
// every one of parts, and returns it.
func (s *Sidecar) EventuallyProblem(parts ...string) string {
	s.T.Helper()
	var found string
	s.Eventually(10*time.Second, fmt.Sprintf("a problem in /status with %q", parts), func() error {
		st, _, err := s.TryStatus()
		if err != nil {
			return err
		}
		for _, p := range st.Problems {
			if containsAll(p, parts...) {
				found = p
				return nil
			}
		}
		return fmt.Errorf("problems: %q", st.Problems)
	})
	return found
}

// WaitLog waits until the log holds at least n occurrences of substr.
func (s *Sidecar) WaitLog(limit time.Duration, substr string, n int) {
	s.T.Helper()
	s.Eventually(limit, fmt.Sprintf("%d× %q in the log", n, substr), func() error {
		if got := s.LogCount(substr); got < n {
			return fmt.Errorf("%d so far", got)
		}
		return nil
	})
}

// LogLines returns the log lines containing every one of parts.
func (s *Sidecar) LogLines(parts ...string) []string {
	var out []string
	for _, l := range strings.Split(s.Logs.String(), "\n") {
		if containsAll(l, parts...) {
			out = append(out, l)
		}
	}
	return out
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// Reloads is HAProxy's own reload counter (show proc).
func (s *Sidecar) Reloads() int {
	s.T.Helper()
	return s.Procs().Reloads
}

// Signal sends sig to the sidecar process.
func (s *Sidecar) Signal(sig syscall.Signal) {
	s.T.Helper()
	if err := s.Cmd.Process.Signal(sig); err != nil {
		s.T.Fatalf("signal %v: %v", sig, err)
	}
}

// WaitExit waits for the sidecar to exit and fails the test if it takes
// longer than limit.
func (s *Sidecar) WaitExit(limit time.Duration) {
	s.T.Helper()
	select {
	case <-s.done:
	case <-time.After(limit):
		s.T.Fatalf("haproxy-sidecar still running %s after being told to stop", limit)
	}
}

// Poller sends one request every 20 ms, each over a new connection, to a
// working route, and counts every connection error, every non-200 answer
// and every 200 with an unexpected body as a failure. It stops by itself
// after PollLimit.
type Poller struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	res    PollResult
}

// PollLimit bounds every Poller.
const PollLimit = 3 * time.Minute

// PollResult is what a Poller counted.
type PollResult struct {
	OK, Failed int
	// Samples are the first failures, with their time.
	Samples []string
	// FirstFail and LastFail are the times of the first and last failed
	// request (zero without failures).
	FirstFail, LastFail time.Time
	Duration            time.Duration
}

// FailSpan is the time from the first failed request to the end of the
// last one: how long the route was out.
func (r PollResult) FailSpan() time.Duration {
	if r.Failed == 0 {
		return 0
	}
	return r.LastFail.Sub(r.FirstFail)
}

func (r PollResult) String() string {
	return fmt.Sprintf("%d ok, %d failed over %s (failures spanning %s), e.g. %q",
		r.OK, r.Failed, r.Duration.Round(time.Millisecond), r.FailSpan().Round(time.Millisecond), r.Samples)
}

// StartPoller polls http://host/path on HAProxy's port. want are the
// bodies accepted with a 200 (any "svc:" body when none is given).
func StartPoller(t testing.TB, port int, host, path string, want ...string) *Poller {
	ctx, cancel := context.WithTimeout(context.Background(), PollLimit)
	p := &Poller{cancel: cancel, done: make(chan struct{})}
	start := time.Now()
	go func() {
		defer close(p.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			code, body, err := Get(port, host, path)
			ok := err == nil && code == 200 && strings.HasPrefix(body, "svc:")
			if ok && len(want) > 0 {
				ok = false
				for _, w := range want {
					ok = ok || body == w
				}
			}
			now := time.Now()
			p.mu.Lock()
			if ok {
				p.res.OK++
			} else {
				p.res.Failed++
				if p.res.FirstFail.IsZero() {
					p.res.FirstFail = now
				}
				p.res.LastFail = now
				if len(p.res.Samples) < 8 {
					what := fmt.Sprintf("status %d body %.40q", code, body)
					if err != nil {
						what = err.Error()
					}
					p.res.Samples = append(p.res.Samples, now.Format("15:04:05.000")+" "+what)
				}
			}
			p.res.Duration = now.Sub(start)
			p.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		if r := p.Stop(); t.Failed() {
			t.Logf("poller at the end of the failed test: %s", r)
		}
	})
	return p
}

// Now returns the counts so far.
func (p *Poller) Now() PollResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.res
	r.Samples = append([]string(nil), r.Samples...)
	return r
}

// settle polls on for 300 ms more, and until it has polled for at least
// a second: the state after the last step of a test is sampled too.
func (p *Poller) settle() {
	time.Sleep(300 * time.Millisecond)
	for p.Now().Duration < time.Second {
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends polling and returns the counts.
func (p *Poller) Stop() PollResult {
	p.cancel()
	<-p.done
	return p.Now()
}

// ExpectNone stops the poller and fails the test on any failed request;
// why says why none is allowed. It also fails when too few requests went
// through for the poll to have covered the fault.
func (p *Poller) ExpectNone(t testing.TB, why string) PollResult {
	t.Helper()
	p.settle()
	r := p.Stop()
	t.Logf("poller: %s", r)
	if r.Failed != 0 {
		t.Errorf("%d requests failed, want 0 (%s): %s", r.Failed, why, r)
	}
	if r.OK < 10 {
		t.Errorf("only %d requests succeeded: the polling did not cover the fault", r.OK)
	}
	return r
}

// ExpectOutageAtMost stops the poller and fails the test when the failed
// requests span more than limit; why says why failures are allowed at all.
func (p *Poller) ExpectOutageAtMost(t testing.TB, limit time.Duration, why string) PollResult {
	t.Helper()
	p.settle()
	r := p.Stop()
	t.Logf("poller: %s", r)
	if r.FailSpan() > limit {
		t.Errorf("failed requests spanned %s, want at most %s (%s): %s", r.FailSpan().Round(time.Millisecond), limit, why, r)
	}
	if max := int(limit/(20*time.Millisecond)) + 1; r.Failed > max {
		t.Errorf("%d requests failed, want at most %d (%s of polling; %s): %s", r.Failed, max, limit, why, r)
	}
	if r.OK < 10 {
		t.Errorf("only %d requests succeeded: the polling did not cover the fault", r.OK)
	}
	return r
}

// ProcInfo is a process as /proc shows it.
type ProcInfo struct {
	PID, PPID int
	State     string
	Args      []string
}

// HAProxyProcesses lists the live HAProxy processes (zombies excluded:
// nothing reaps orphans in a container without an init) whose command line
// contains needle, such as a master socket or config-dir path.
func HAProxyProcesses(needle string) []ProcInfo {
	entries, _ := os.ReadDir("/proc")
	var out []ProcInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if filepath.Base(args[0]) != "haproxy" || !strings.Contains(string(raw), needle) {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		_, rest, _ := strings.Cut(string(stat), ") ")
		fields := strings.Fields(rest)
		if len(fields) < 2 || fields[0] == "Z" || fields[0] == "X" {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		out = append(out, ProcInfo{PID: pid, PPID: ppid, State: fields[0], Args: args})
	}
	return out
}

// HAProxyMasters are the processes of HAProxyProcesses(needle) whose parent
// is not one of them: the masters.
func HAProxyMasters(needle string) []ProcInfo {
	procs := HAProxyProcesses(needle)
	in := map[int]bool{}
	for _, p := range procs {
		in[p.PID] = true
	}
	var out []ProcInfo
	for _, p := range procs {
		if !in[p.PPID] {
			out = append(out, p)
		}
	}
	return out
}

// KillHAProxies SIGKILLs every HAProxy process whose command line contains
// needle.
func KillHAProxies(needle string) {
	for range 3 {
		procs := HAProxyProcesses(needle)
		if len(procs) == 0 {
			return
		}
		for _, p := range procs {
			syscall.Kill(p.PID, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SetNoFileLimit sets another process's RLIMIT_NOFILE (soft and hard),
// with prlimit(2).
func SetNoFileLimit(pid int, n uint64) error {
	lim := syscall.Rlimit{Cur: n, Max: n}
	_, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(syscall.RLIMIT_NOFILE),
		uintptr(unsafe.Pointer(&lim)), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// OpenFDs counts a process's open file descriptors.
func OpenFDs(pid int) int {
	entries, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	return len(entries)
}

// ShowMap asks the current worker, through the master socket, for the
// entries of a map ("@1 show map <name>"): one "key value" pair per entry.
func ShowMap(socket, name string) ([][2]string, error) {
	out, err := reload.NewMasterCLI(socket).Worker(context.Background(), "show map "+name)
	if err != nil {
		return nil, err
	}
	var entries [][2]string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		// "0x55d1c8f0a2c0 a.test/ default_a_80"
		f := strings.Fields(sc.Text())
		if len(f) == 3 && strings.HasPrefix(f[0], "0x") {
			entries = append(entries, [2]string{f[1], f[2]})
			continue
		}
		if strings.TrimSpace(sc.Text()) != "" {
			return entries, fmt.Errorf("show map %s: unexpected line %q in %q", name, sc.Text(), out)
		}
	}
	return entries, nil
}
