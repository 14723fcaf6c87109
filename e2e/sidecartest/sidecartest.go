// Package sidecartest runs the real haproxy-sidecar binary in end-to-end
// tests: it builds it once, starts `run` in its own process group, keeps
// its logs (printed when a test fails) and stops it with SIGTERM.
package sidecartest

import (
	"bytes"
	"context"
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
	"syscall"
	"testing"
	"time"

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

// Process is a running `haproxy-sidecar` with its logs.
type Process struct {
	t      testing.TB
	Cmd    *exec.Cmd
	Logs   *LockedBuffer
	Socket string // the master socket, for HAProxy's own view
	done   chan struct{}
}

// Start runs the binary with args until the test ends. socket is the
// --master-socket it was given.
func Start(t testing.TB, socket string, args ...string) *Process {
	t.Helper()
	logs := &LockedBuffer{}
	return start(t, socket, logs, logs, func() string { return "haproxy-sidecar log" }, 20000, args...)
}

// start runs the binary with its output going to out, kept in logs; when
// the test fails, the log's last keep bytes are printed under header().
func start(t testing.TB, socket string, logs *LockedBuffer, out io.Writer, header func() string, keep int, args ...string) *Process {
	t.Helper()
	p := &Process{t: t, Logs: logs, Socket: socket, done: make(chan struct{})}
	p.Cmd = exec.Command(Binary(t), args...)
	p.Cmd.Stdout, p.Cmd.Stderr = out, out
	// Its own process group, so that nothing it started outlives the test.
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.Cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s (%s):\n%s", header(), strings.Join(args, " "), tail(p.Logs.String(), keep))
		}
	})
	return p
}

// Stop sends SIGTERM and waits; anything left in the group is killed.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Errorf("haproxy-sidecar did not stop within 30s of SIGTERM")
	}
	syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Eventually polls f until it returns nil, failing the test after limit.
func (p *Process) Eventually(limit time.Duration, what string, f func() error) {
	p.t.Helper()
	var err error
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if p.Exited() {
			p.t.Fatalf("haproxy-sidecar exited while waiting for %s", what)
		}
		if err = f(); err == nil {
			return
		}
	}
	p.t.Fatalf("%s: not within %s: %v", what, limit, err)
}

// TryProcs asks HAProxy's master once for its processes.
func (p *Process) TryProcs() (reload.ProcStatus, error) {
	return reload.NewMasterCLI(p.Socket).ShowProc(context.Background())
}

// Procs asks until the master answers (it does not while it re-executes
// itself for a reload).
func (p *Process) Procs() reload.ProcStatus {
	p.t.Helper()
	var st reload.ProcStatus
	p.Eventually(10*time.Second, "show proc", func() (err error) {
		st, err = p.TryProcs()
		return err
	})
	return st
}

// LogCount counts occurrences of substr in the logs.
func (p *Process) LogCount(substr string) int { return strings.Count(p.Logs.String(), substr) }

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

// LockedBuffer is testenv's, re-exported for the e2e harnesses.
type LockedBuffer = testenv.LockedBuffer
