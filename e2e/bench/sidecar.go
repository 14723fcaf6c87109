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
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
)

// Sidecar is a running `haproxy-sidecar run` in Kubernetes mode that
// started its own HAProxy (the harness's), with what the benchmarks read
// of it.
type Sidecar struct {
	*sidecartest.Sidecar
	Front Front
}

// StartSidecar starts the sidecar (binary, with kubeconfig) on a fresh
// config directory and ports, passing only what it must be told and
// extra: the binary's own defaults are what is measured. It returns at
// once; Started is when the process started.
func StartSidecar(t testing.TB, binary, haproxy, kubeconfig string, extra ...string) *Sidecar {
	s := &Sidecar{Sidecar: sidecartest.Start(t, sidecartest.Options{Binary: binary, HAProxy: haproxy, Kubeconfig: kubeconfig,
		Args: extra, BinaryDefaults: true, Wait: sidecartest.WaitNone})}
	s.Front = Front{HTTPPort: s.HTTPPort, HTTPSPort: s.HTTPSPort}
	return s
}

// Poll is Front.Poll that gives up as soon as the sidecar has exited.
func (s *Sidecar) Poll(start time.Time, limit time.Duration, host, path string, secure bool, want func(Answer) bool) (time.Duration, error) {
	return s.Front.PollUntil(s.Done(), start, limit, host, path, secure, want)
}

// PeakRSS is the sidecar process's peak resident set size (VmHWM).
func (s *Sidecar) PeakRSS() (int64, error) { return VmHWM(s.Cmd.Process.Pid) }

// VmHWM is process pid's peak resident set size, in bytes, from
// /proc/PID/status (read while the process lives).
func VmHWM(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
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
	resp, err := metricsClient.Get("http://127.0.0.1:" + strconv.Itoa(s.HealthPort) + "/metrics")
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

// SaveHeapProfile writes the sidecar's live heap (after a collection, from
// /debug/pprof/heap?gc=1) to path, for `go tool pprof`.
func (s *Sidecar) SaveHeapProfile(path string) error {
	data, err := s.debugGet("/debug/pprof/heap?gc=1")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// SaveMemory writes what the sidecar's memory is made of to path: its
// /proc/PID/status and smaps_rollup (the resident pages, the binary's own
// among them) and the Go runtime's MemStats as they are, no collection
// forced (how much of the heap is free but not yet returned).
func (s *Sidecar) SaveMemory(path string) error {
	var out []byte
	for _, f := range []string{"status", "smaps_rollup"} {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(s.Cmd.Process.Pid) + "/" + f)
		if err != nil {
			return err
		}
		out = append(append(out, "# /proc/PID/"+f+"\n"...), b...)
	}
	data, err := s.debugGet("/debug/pprof/heap?debug=1")
	if err != nil {
		return err
	}
	if i := bytes.Index(data, []byte("\n# runtime.MemStats")); i >= 0 {
		out = append(out, data[i+1:]...)
	}
	return os.WriteFile(path, out, 0o644)
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
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(s.DebugPort) + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", path, resp.Status)
	}
	return io.ReadAll(resp.Body)
}
