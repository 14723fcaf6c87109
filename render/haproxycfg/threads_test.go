package haproxycfg

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

// Config.Threads is written as nbthread in the global section, only when
// set, and HAProxy 2.6 and 3.0 accept it (haproxy -c). That they then run
// that many threads is e2e/run's TestHAProxyThreads.
func TestThreadsLine(t *testing.T) {
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	m := render.BuildModel(render.Inputs{}, render.Options{})
	for _, c := range []struct {
		threads int
		want    string
	}{{0, ""}, {-1, ""}, {1, "nbthread 1"}, {2, "nbthread 2"}, {64, "nbthread 64"}} {
		out, err := Render(m, Config{HTTPBind: "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)), HTTPSBind: "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)), Template: tmpl, Threads: c.threads})
		if err != nil {
			t.Fatal(err)
		}
		cfg := string(out.Get(ConfigFile))
		global, _, _ := strings.Cut(cfg, "\ndefaults")
		var got []string
		for _, l := range strings.Split(cfg, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == "nbthread" {
				got = append(got, strings.Join(f, " "))
			}
		}
		switch {
		case c.want == "" && len(got) > 0:
			t.Errorf("Threads %d: %q, want no nbthread line", c.threads, got)
		case c.want != "" && (len(got) != 1 || got[0] != c.want || !strings.Contains(global, c.want)):
			t.Errorf("Threads %d: %q, want one %q in the global section", c.threads, got, c.want)
		}
		if c.threads <= 0 {
			continue
		}
		checkedByHAProxy(t, t.TempDir(), out, "nbthread "+strconv.Itoa(c.threads))
	}
}

// checkedByHAProxy writes out's files into dir and fails the test unless
// HAProxy 2.6 and 3.0 accept them (haproxy -c); what names the case.
func checkedByHAProxy(t *testing.T, dir string, out *Output, what string) {
	t.Helper()
	for _, f := range out.Files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for v, bin := range testenv.HAProxies(t) {
		if b, err := exec.Command(bin, "-c", "-f", filepath.Join(dir, ConfigFile)).CombinedOutput(); err != nil {
			t.Errorf("HAProxy %s: haproxy -c with %s: %v\n%s", v, what, err, b)
		}
	}
}
