package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Sidecar is a running `haproxy-sidecar run` in Kubernetes mode that
// started its own HAProxy.
type Sidecar struct {
	Cmd     *exec.Cmd
	Front   Front
	Health  int // port of /healthz, /readyz, /metrics
	Started time.Time
	Dir     string
	Debug   int // port of /debug/pprof/

	logs lockedBuffer
	out  accessLogFilter
	done chan struct{}
	err  error
}

// SidecarConfig is how to start one.
type SidecarConfig struct {
	Binary     string
	HAProxy    string
	Kubeconfig string
	Dir        string // working directory: config-dir and master socket
	Ports      [4]int // http, https, health, debug on 127.0.0.1
	Extra      []string
}

// StartSidecar starts the sidecar with default flags apart from what it
// must be told (kubeconfig, config dir, socket, listeners, HAProxy binary).
func StartSidecar(c SidecarConfig) (*Sidecar, error) {
	s := &Sidecar{Front: Front{HTTPPort: c.Ports[0], HTTPSPort: c.Ports[1]}, Health: c.Ports[2], Debug: c.Ports[3], Dir: c.Dir, done: make(chan struct{})}
	args := append([]string{"run", "--kubeconfig", c.Kubeconfig,
		"--config-dir", filepath.Join(c.Dir, "config"), "--master-socket", filepath.Join(c.Dir, "master.sock"),
		"--haproxy-start", "--haproxy", c.HAProxy,
		"--http-bind", "127.0.0.1:" + strconv.Itoa(c.Ports[0]), "--https-bind", "127.0.0.1:" + strconv.Itoa(c.Ports[1]),
		"--health-addr", "127.0.0.1:" + strconv.Itoa(c.Ports[2]), "--debug-addr", "127.0.0.1:" + strconv.Itoa(c.Ports[3]),
	}, c.Extra...)
	s.Cmd = exec.Command(c.Binary, args...)
	s.out.to = &s.logs
	s.Cmd.Stdout, s.Cmd.Stderr = &s.out, &s.out
	s.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.Started = time.Now()
	if err := s.Cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.err = s.Cmd.Wait(); close(s.done) }()
	return s, nil
}

// Poll is Front.Poll that gives up as soon as the sidecar has exited.
func (s *Sidecar) Poll(start time.Time, limit time.Duration, host, path string, secure bool, want func(Answer) bool) (time.Duration, error) {
	return s.Front.PollUntil(s.done, start, limit, host, path, secure, want)
}

// Exited reports whether the sidecar has ended.
func (s *Sidecar) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Logs is the tail of the sidecar's output.
func (s *Sidecar) Logs(n int) string {
	l := s.logs.String()
	if len(l) > n {
		return "…" + l[len(l)-n:]
	}
	return l
}

// Stop sends SIGTERM and waits; then kills what is left of its process
// group and any HAProxy it started (found by its config directory in the
// command line; HAProxy runs in a process group of its own).
func (s *Sidecar) Stop() error {
	var err error
	if !s.Exited() {
		_ = s.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			err = errors.New("haproxy-sidecar did not stop within 30s of SIGTERM")
		}
	}
	_ = syscall.Kill(-s.Cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	for _, pid := range pidsWithArg(filepath.Join(s.Dir, "config")) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return err
}

// pidsWithArg lists processes with an argument starting with prefix.
func pidsWithArg(prefix string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for _, arg := range bytes.Split(cmdline, []byte{0}) {
			if bytes.HasPrefix(arg, []byte(prefix)) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// PeakRSS is the sidecar process's peak resident set size (VmHWM).
func (s *Sidecar) PeakRSS() (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(s.Cmd.Process.Pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmHWM in /proc/PID/status")
}

var metricsClient = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 5 * time.Second}

// Metrics is the sidecar's /metrics on the health address: each series
// ("name" or "name{labels}" as written) with its value; only the series
// whose name starts with one of prefixes, when any are given.
func (s *Sidecar) Metrics(prefixes ...string) (map[string]float64, error) {
	resp, err := metricsClient.Get("http://127.0.0.1:" + strconv.Itoa(s.Health) + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	return ParseMetrics(io.LimitReader(resp.Body, 16<<20), prefixes...)
}

// ParseMetrics reads Prometheus' text format: every sample line's series
// and value (label values holding spaces are not expected here), or only
// those whose name starts with one of prefixes.
func ParseMetrics(r io.Reader, prefixes ...string) (map[string]float64, error) {
	m := make(map[string]float64)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(prefixes) > 0 && !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(line, p) }) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("/metrics line %q: no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("/metrics line %q: %w", line, err)
		}
		m[strings.TrimSpace(line[:i])] = v
	}
	return m, sc.Err()
}

// Sum adds the values of every series of the metric name (all labels).
func Sum(m map[string]float64, name string) (float64, bool) {
	var total float64
	found := false
	for series, v := range m {
		if series == name || strings.HasPrefix(series, name+"{") {
			total += v
			found = true
		}
	}
	return total, found
}

// Passes is the number of passes of the sidecar's loop so far, of any
// outcome (haproxy_sidecar_passes_total on the health address's /metrics).
func (s *Sidecar) Passes() (int64, error) {
	m, err := s.Metrics("haproxy_sidecar_passes_total")
	if err != nil {
		return 0, err
	}
	total, found := Sum(m, "haproxy_sidecar_passes_total")
	if !found {
		return 0, errors.New("/metrics has no haproxy_sidecar_passes_total yet")
	}
	return int64(total), nil
}

// WaitIdle waits until the loop has finished a pass after `after` passes
// and then made no other pass for quiet: the change just served has been
// written out, so the next one is measured alone. It gives up after limit.
func (s *Sidecar) WaitIdle(ctx context.Context, after int64, quiet, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	last, since := int64(-1), time.Now()
	for {
		n, err := s.Passes()
		now := time.Now()
		if err == nil {
			if n != last {
				last, since = n, now
			} else if n > after && now.Sub(since) >= quiet {
				return nil
			}
		}
		if now.After(deadline) {
			return fmt.Errorf("sidecar not idle within %s (passes %d, waiting for more than %d; %v)", limit, last, after, err)
		}
		if s.Exited() {
			return errors.New("haproxy-sidecar exited")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// accessLogFilter passes the sidecar's output on line by line, except
// HAProxy's access log lines (one per request through HAProxy, relayed by
// the sidecar), which it only counts: a load of thousands of requests per
// second would otherwise fill memory with them.
type accessLogFilter struct {
	mu      sync.Mutex
	partial []byte
	dropped int64
	to      io.Writer
}

func (f *accessLogFilter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.partial = append(f.partial, p...)
	for {
		i := bytes.IndexByte(f.partial, '\n')
		if i < 0 {
			break
		}
		line := f.partial[:i+1]
		if bytes.Contains(line, []byte(" HTTP/1.1")) && bytes.Contains(line, []byte("] ingress ")) {
			f.dropped++
		} else {
			_, _ = f.to.Write(line)
		}
		f.partial = f.partial[i+1:]
	}
	if len(f.partial) > 1<<20 {
		_, _ = f.to.Write(f.partial)
		f.partial = f.partial[:0]
	}
	return len(p), nil
}

// AccessLogLines is how many access log lines were left out of Logs.
func (s *Sidecar) AccessLogLines() int64 {
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	return s.out.dropped
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// SaveHeapProfile writes the sidecar's live heap (after a collection, from
// /debug/pprof/heap?gc=1) to path, for `go tool pprof`.
func (s *Sidecar) SaveHeapProfile(path string) error {
	data, err := s.debugGet("/debug/pprof/heap?gc=1")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// LiveHeap is the sidecar's heap in use after a collection, in bytes: the
// HeapAlloc /debug/pprof/heap?gc=1&debug=1 reports once it collected.
func (s *Sidecar) LiveHeap() (uint64, error) {
	data, err := s.debugGet("/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "# HeapAlloc = "); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("heap profile: no HeapAlloc line")
}

// debugGet returns the body of path on the sidecar's debug address.
func (s *Sidecar) debugGet(path string) ([]byte, error) {
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(s.Debug) + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", path, resp.Status)
	}
	return io.ReadAll(resp.Body)
}
