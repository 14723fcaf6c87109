// Package sidecartest is the one harness that runs the real haproxy-sidecar
// binary in the end-to-end tests and benchmarks. It builds the binary once;
// Start turns Options into the command line (Options.args is the only place
// that knows the flags), runs `run` in its own process group, keeps its
// output line by line without HAProxy's access log lines (printed when a
// test fails), waits until it serves, and stops it with SIGTERM when the
// test ends. /status is decoded into admin.Status, the type the sidecar
// fills.
package sidecartest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/lines"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// Binary builds haproxy-sidecar once per test process and returns its
// path. The directory is left for the OS to clean (tests run in t.TempDir
// parents that the harness removes).
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		_, here, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(here), "..", "..")
		dir, err := os.MkdirTemp("", "haproxy-sidecar-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "haproxy-sidecar")
		cmd := exec.Command("go", "build", "-o", binary, ".")
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatalf("building haproxy-sidecar: %v", buildErr)
	}
	return binary
}

// Options say how to start `haproxy-sidecar run`. Zero fields get the
// tests' defaults: fresh directories and ports on 127.0.0.1, debug logs, a
// 5 s grace period (so that an old worker does not outlive a test by 30 s)
// and no minimum time between reloads.
type Options struct {
	// Binary is the haproxy-sidecar to run; default Binary(t), built from
	// this tree.
	Binary string
	// HAProxy is --haproxy; not passed when empty.
	HAProxy string
	// Kubeconfig, when set, makes the sidecar read a cluster
	// (--kubeconfig); otherwise it reads Manifests (--manifests), a fresh
	// directory when empty.
	Kubeconfig string
	Manifests  string
	// ConfigDir (--config-dir) and Socket (--master-socket) default to
	// "config" and "master.sock" in a fresh directory.
	ConfigDir, Socket string
	// External: HAProxy is started by someone else, as by its own
	// container (no --haproxy-start).
	External bool
	// Init runs `run --init`: it writes a configuration for HAProxy to
	// start on into ConfigDir and exits. Only ConfigDir, the listeners,
	// GracePeriod, Templates and Args are passed.
	Init bool
	// HTTPPort and HTTPSPort are HAProxy's listeners; HealthPort serves
	// /healthz, /readyz, /startupz and /metrics, DebugPort /status,
	// /explain and /history. A fresh free port each when zero; a negative
	// HealthPort or DebugPort turns that address off.
	HTTPPort, HTTPSPort, HealthPort, DebugPort int
	// LogLevel ("debug" when empty) and LogFormat (not passed when empty:
	// JSON).
	LogLevel, LogFormat string
	// GracePeriod is --grace-period: 5 s when zero, not passed when
	// negative.
	GracePeriod time.Duration
	// MinReloadInterval is --min-reload-interval: 0s when zero, not
	// passed (500 ms) when negative.
	MinReloadInterval time.Duration
	// SpareBackends is --spare-backends: 0 (none, so that every backend
	// has its Service port's own name, which most tests read) when zero,
	// not passed (run's default) when negative. BinaryDefaults passes it
	// only when positive.
	SpareBackends int
	// Templates is --templates; not passed when empty.
	Templates string
	// TCPServicesConfigMap is --tcp-services-configmap; not passed when
	// empty.
	TCPServicesConfigMap string
	// Threads is --haproxy-threads; not passed when zero (then run
	// takes HAProxy's thread count from HAPROXY_CPU_LIMIT or its cgroup).
	Threads int
	// Env are added to the sidecar's environment (which is the test's
	// otherwise), as KEY=VALUE.
	Env []string
	// Args are added to the command line.
	Args []string
	// BinaryDefaults passes only what the sidecar must be told (source,
	// directories, listeners, HAProxy) and the fields set here: no test
	// defaults. Benchmarks use it, since they may run another build and
	// measure its defaults.
	BinaryDefaults bool
	// Wait is what Start waits for before it returns.
	Wait Wait
}

// Wait is what Start waits for.
type Wait int

const (
	// WaitServing: HAProxy answers on the HTTP port (a 404 before any
	// Ingress), within 20 s.
	WaitServing Wait = iota
	// WaitReady: /readyz answers 200, within 60 s (a cluster to sync).
	WaitReady
	// WaitNone: Start returns once the process runs.
	WaitNone
)

// resolve fills in the directories and ports that were left zero.
func (o Options) resolve(t testing.TB) Options {
	t.Helper()
	var work string
	dir := func() string {
		if work == "" {
			work = t.TempDir()
		}
		return work
	}
	if o.Binary == "" {
		o.Binary = Binary(t)
	}
	if o.ConfigDir == "" {
		o.ConfigDir = filepath.Join(dir(), "config")
	}
	if o.Socket == "" {
		o.Socket = filepath.Join(dir(), "master.sock")
	}
	if o.Kubeconfig == "" && o.Manifests == "" && !o.Init {
		o.Manifests = filepath.Join(dir(), "manifests")
		if err := os.MkdirAll(o.Manifests, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	free := FreePorts(t, 4)
	for i, p := range []*int{&o.HTTPPort, &o.HTTPSPort, &o.HealthPort, &o.DebugPort} {
		if *p == 0 {
			*p = free[i]
		}
	}
	if !o.BinaryDefaults {
		if o.LogLevel == "" {
			o.LogLevel = "debug"
		}
		if o.GracePeriod == 0 {
			o.GracePeriod = 5 * time.Second
		}
	} else {
		if o.MinReloadInterval == 0 {
			o.MinReloadInterval = -1
		}
		if o.SpareBackends == 0 {
			o.SpareBackends = -1
		}
	}
	return o
}

// args is the command line of resolved options: the one place that
// turns options into the sidecar's flags.
func (o Options) args() []string {
	args := []string{"run"}
	if o.Init {
		args = append(args, "--init", "--config-dir", o.ConfigDir)
		return append(append(args, o.RenderFlags()...), o.Args...)
	}
	if o.Kubeconfig != "" {
		args = append(args, "--kubeconfig", o.Kubeconfig)
	} else {
		args = append(args, "--manifests", o.Manifests)
	}
	args = append(args, "--config-dir", o.ConfigDir, "--master-socket", o.Socket)
	if !o.External {
		args = append(args, "--haproxy-start")
	}
	if o.HAProxy != "" {
		args = append(args, "--haproxy", o.HAProxy)
	}
	if o.LogLevel != "" {
		args = append(args, "--log-level", o.LogLevel)
	}
	if o.LogFormat != "" {
		args = append(args, "--log-format", o.LogFormat)
	}
	if o.MinReloadInterval >= 0 {
		args = append(args, "--min-reload-interval", o.MinReloadInterval.String())
	}
	if o.SpareBackends >= 0 {
		args = append(args, "--spare-backends", strconv.Itoa(o.SpareBackends))
	}
	args = append(args, "--health-addr", addr(o.HealthPort), "--debug-addr", addr(o.DebugPort))
	args = append(args, o.RenderFlags()...)
	return append(args, o.Args...)
}

// RenderFlags are the flags of resolved options that shape the rendered
// files, for `render` and `diff` to render what the sidecar does (Args
// aside).
func (o Options) RenderFlags() []string {
	var args []string
	if o.GracePeriod > 0 {
		args = append(args, "--grace-period", o.GracePeriod.String())
	}
	args = append(args, "--http-bind", addr(o.HTTPPort), "--https-bind", addr(o.HTTPSPort))
	if o.Templates != "" {
		args = append(args, "--templates", o.Templates)
	}
	if o.TCPServicesConfigMap != "" {
		args = append(args, "--tcp-services-configmap", o.TCPServicesConfigMap)
	}
	if o.Threads != 0 {
		args = append(args, "--haproxy-threads", strconv.Itoa(o.Threads))
	}
	return args
}

// addr is a listen address on loopback; "" (off) for a negative port.
func addr(port int) string {
	if port < 0 {
		return ""
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}

// Sidecar is a running haproxy-sidecar.
type Sidecar struct {
	T testing.TB
	// Options are the ones it was started with, every directory and port
	// filled in: Start(t, s.Options) starts it again on the same ones, as
	// a restarted container of the same pod.
	Options
	Cmd *exec.Cmd
	// Logs is its output without HAProxy's access log lines.
	Logs *LockedBuffer
	// Started is when the process was started.
	Started time.Time

	accessLines atomic.Int64
	done        chan struct{}
}

// logKept is how much of the log a failed test prints.
const logKept = 60000

// Start starts the sidecar and waits as o.Wait says. When the test ends
// the sidecar gets SIGTERM, and any HAProxy process still using its master
// socket is killed (a test that kills the sidecar leaves HAProxy running
// on purpose).
func Start(t testing.TB, o Options) *Sidecar {
	t.Helper()
	o = o.resolve(t)
	s := &Sidecar{T: t, Options: o, Logs: &LockedBuffer{}, done: make(chan struct{})}
	args := o.args()
	s.Cmd = exec.Command(o.Binary, args...)
	if len(o.Env) > 0 {
		s.Cmd.Env = append(os.Environ(), o.Env...)
	}
	out := s.output()
	s.Cmd.Stdout, s.Cmd.Stderr = out, out
	// Its own process group, so that nothing it started outlives the test.
	s.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.Started = time.Now()
	if err := s.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.Cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("haproxy-sidecar log without %d access log lines (%s):\n%s", s.AccessLogLines(), strings.Join(args, " "), s.LogTail(logKept))
		}
		KillHAProxies(o.Socket)
	})
	switch o.Wait {
	case WaitServing:
		s.Eventually(20*time.Second, "HAProxy serving", func() error {
			_, err := s.Get("nothing.test", "/")
			return err
		})
	case WaitReady:
		s.Eventually(60*time.Second, "readiness", func() error {
			if code, body, err := Get(s.HealthPort, "localhost", "/readyz"); err != nil || code != 200 {
				return fmt.Errorf("readyz %d %q %v", code, body, err)
			}
			return nil
		})
	}
	return s
}

// output passes the sidecar's output on to Logs line by line, except
// HAProxy's access log lines (one per request through HAProxy, relayed by
// the sidecar), which it only counts: a poller's or a load's requests
// would otherwise fill memory and bury what the sidecar did.
func (s *Sidecar) output() io.Writer {
	return &lines.Writer{Max: 1 << 20, Line: func(line []byte) {
		if bytes.Contains(line, []byte(" HTTP/1.1")) && bytes.Contains(line, []byte("] ingress ")) {
			s.accessLines.Add(1)
			return
		}
		s.Logs.Write(line)
		s.Logs.Write([]byte{'\n'})
	}}
}

// AccessLogLines is how many access log lines were left out of Logs.
func (s *Sidecar) AccessLogLines() int64 { return s.accessLines.Load() }

// LogTail is the last n bytes of Logs.
func (s *Sidecar) LogTail(n int) string { return tail(s.Logs.String(), n) }

// Stop sends SIGTERM and waits (failing the test after 30 s); anything
// left in the process group is killed. HAProxy started with
// --haproxy-start is the sidecar's to stop.
func (s *Sidecar) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.T.Errorf("haproxy-sidecar did not stop within 30s of SIGTERM")
	}
	syscall.Kill(-s.Cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

// StopAll is Stop, then kills any HAProxy still using the master socket.
func (s *Sidecar) StopAll() {
	s.Stop()
	KillHAProxies(s.Socket)
}

// Exited reports whether the process has ended.
func (s *Sidecar) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Done is closed when the process has ended.
func (s *Sidecar) Done() <-chan struct{} { return s.done }

// Eventually polls f until it returns nil, failing the test after limit
// or once the sidecar has exited.
func (s *Sidecar) Eventually(limit time.Duration, what string, f func() error) {
	s.T.Helper()
	var err error
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if s.Exited() {
			s.T.Fatalf("haproxy-sidecar exited while waiting for %s", what)
		}
		if err = f(); err == nil {
			return
		}
	}
	s.T.Fatalf("%s: not within %s: %v", what, limit, err)
}

// TryProcs asks HAProxy's master once for its processes.
func (s *Sidecar) TryProcs() (reload.ProcStatus, error) {
	return reload.NewMasterCLI(s.Socket).ShowProc(context.Background())
}

// Procs asks until the master answers (it does not while it re-executes
// itself for a reload).
func (s *Sidecar) Procs() reload.ProcStatus {
	s.T.Helper()
	var st reload.ProcStatus
	s.Eventually(10*time.Second, "show proc", func() (err error) {
		st, err = s.TryProcs()
		return err
	})
	return st
}

// LogCount counts occurrences of substr in the logs.
func (s *Sidecar) LogCount(substr string) int { return strings.Count(s.Logs.String(), substr) }

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// FreePorts returns n distinct TCP ports free on 127.0.0.1 right now, below
// the ephemeral range (testenv.FreePort).
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for len(ports) < n {
		if p := testenv.FreePort(t); !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	return ports
}

var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}

// Get sends one request over a new connection to 127.0.0.1:port with the
// given Host header.
func Get(port int, host, path string) (status int, body string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://127.0.0.1:"+strconv.Itoa(port)+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := noKeepAlive.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// RunOnce runs the binary with args (a one-shot command: render, dump,
// diff) in its own process group, killing the group after limit, and
// returns its output and exit code.
func RunOnce(t testing.TB, limit time.Duration, args ...string) (stdout, stderr string, code int, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, Binary(t), args...)
	var out, errOut LockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	// Its own process group, so the kill on timeout reaches everything.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return out.String(), errOut.String(), -1, fmt.Errorf("did not finish within %s", limit)
	}
	var exit *exec.ExitError
	if errors.As(runErr, &exit) {
		return out.String(), errOut.String(), exit.ExitCode(), nil
	}
	if runErr != nil {
		return out.String(), errOut.String(), -1, runErr
	}
	return out.String(), errOut.String(), 0, nil
}

// LockedBuffer is testenv's, re-exported for the e2e harnesses.
type LockedBuffer = testenv.LockedBuffer
