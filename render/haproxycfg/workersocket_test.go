package haproxycfg

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

// Config.WorkerSocket is one "stats socket" line of the global section,
// only when set, quoted (a test's directory may hold '=' or a space),
// which HAProxy 2.6 and 3.0 accept (haproxy -c); a relative path or one
// with a control character is refused. That the
// sidecar's batches then go through it is reload's
// TestSendThroughWorkerSocket and e2e/run's TestRunWorkerSocket.
func TestWorkerSocketLine(t *testing.T) {
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	m := render.BuildModel(render.Inputs{}, render.Options{})
	cfg := func(socket string) Config {
		return Config{HTTPBind: "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)), HTTPSBind: "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)),
			Template: tmpl, WorkerSocket: socket}
	}
	lines := func(out *Output) []string {
		var got []string
		for _, l := range strings.Split(string(out.Get(ConfigFile)), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "stats socket") {
				got = append(got, strings.TrimSpace(l))
			}
		}
		return got
	}
	out, err := Render(m, cfg(""))
	if err != nil {
		t.Fatal(err)
	}
	if got := lines(out); len(got) != 0 {
		t.Errorf("without a worker socket: %q", got)
	}

	dir := t.TempDir()
	socket := filepath.Join(dir, "n=1 it's", "master-worker.sock")
	if out, err = Render(m, cfg(socket)); err != nil {
		t.Fatal(err)
	}
	global, _, _ := strings.Cut(string(out.Get(ConfigFile)), "\ndefaults")
	want := "stats socket '" + strings.ReplaceAll(socket, "'", `'\''`) + "' mode 600 level admin expose-fd listeners"
	if got := lines(out); len(got) != 1 || got[0] != want || !strings.Contains(global, want) {
		t.Errorf("with a worker socket: %q, want one %q in the global section", got, want)
	}
	checkedByHAProxy(t, dir, out, "a worker socket")

	for _, bad := range []string{"run/w.sock", "/run/w.sock\n    stats socket /tmp/x", "/run/w\x00.sock", "/run/w\r.sock"} {
		if _, err := Render(m, cfg(bad)); err == nil || !strings.Contains(err.Error(), "worker socket") {
			t.Errorf("worker socket %q: %v, want an error naming it", bad, err)
		}
	}
}
