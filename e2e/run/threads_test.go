package run

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
)

// HAProxy's thread count follows the CPU limit it is given, not the
// machine's CPUs: --haproxy-threads, else HAPROXY_CPU_LIMIT (the Downward
// API's limits.cpu of the HAProxy container, as deploy/ sets it) rounded
// up and bounded by the CPUs there are. HAProxy 2.6 and 3.0 accept the
// nbthread line and run that many threads (show info's Nbthread).
func TestHAProxyThreads(t *testing.T) {
	cpus := runtime.NumCPU()
	if cpus < 2 {
		t.Fatalf("%d CPU: a limit of one thread cannot be told from HAProxy's default here", cpus)
	}
	forEachHAProxy(t, func(t *testing.T, bin string) {
		for _, c := range []struct {
			name    string
			threads int
			env     string
			want    int // Nbthread
			line    bool
		}{
			{name: "flag beats the limit", threads: 1, env: "8", want: 1, line: true},
			{name: "half a CPU is one thread", env: "500m", want: 1, line: true},
			{name: "the Downward API's whole CPUs", env: "1", want: 1, line: true},
			{name: "a limit above the CPUs there are", env: "64", want: cpus, line: true},
			{name: "no limit: HAProxy's default", want: cpus, line: false},
		} {
			t.Run(c.name, func(t *testing.T) {
				o := sidecartest.Options{HAProxy: bin, Threads: c.threads}
				if c.env != "" {
					o.Env = []string{"HAPROXY_CPU_LIMIT=" + c.env}
				}
				s := startSidecar(t, o)
				cfg, err := os.ReadFile(filepath.Join(s.ConfigDir, "current", "haproxy.cfg"))
				if err != nil {
					t.Fatal(err)
				}
				m := regexp.MustCompile(`(?m)^\s*nbthread (\d+)$`).FindSubmatch(cfg)
				switch {
				case c.line && (m == nil || string(m[1]) != strconv.Itoa(c.want)):
					t.Errorf("haproxy.cfg: nbthread %q, want %d", m, c.want)
				case !c.line && m != nil:
					t.Errorf("haproxy.cfg has %q without a limit", m[0])
				}
				got := nbthread(t, s.Socket)
				t.Logf("Nbthread %d (CPUs %d)", got, cpus)
				if got != c.want {
					t.Errorf("HAProxy runs %d threads, want %d", got, c.want)
				}
			})
		}
	})
}

// nbthread is the current worker's thread count, from `show info`.
func nbthread(t *testing.T, socket string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int
	var last error
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		out, err := reload.NewMasterCLI(socket).Worker(ctx, "show info")
		if err != nil {
			last = err
			continue
		}
		m := regexp.MustCompile(`(?m)^Nbthread: (\d+)`).FindStringSubmatch(out)
		if m == nil {
			last = fmt.Errorf("show info without Nbthread: %.300q", out)
			continue
		}
		n, _ = strconv.Atoi(m[1])
		return n
	}
	t.Fatalf("show info: %v", last)
	return 0
}
