package run

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/controller"
	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
)

// hangingTemplates returns the embedded template, the same with a
// lua-load of a script that never returns from loading (HAProxy runs it
// while it parses, in haproxy -c too), and the directory to write them to.
func hangingTemplates(t *testing.T) (good, hanging, dir string) {
	t.Helper()
	src, err := os.ReadFile("../../templates/haproxy.cfg.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	lua := filepath.Join(t.TempDir(), "hang.lua")
	if err := os.WriteFile(lua, []byte("while true do end\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good = string(src)
	const anchor = "    default-path config\n"
	if !strings.Contains(good, anchor) {
		t.Fatalf("the template has no %q line to add the lua-load after", anchor)
	}
	hanging = strings.Replace(good, anchor, anchor+"    lua-load "+lua+"\n", 1)
	return good, hanging, t.TempDir()
}

func writeTemplate(t *testing.T, dir, text string) {
	t.Helper()
	tmp := filepath.Join(dir, ".tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "haproxy.cfg.tmpl")); err != nil {
		t.Fatal(err)
	}
}

// A custom template whose lua-load never returns: haproxy -c is killed at
// --haproxy-check-timeout and the configuration counts as rejected. The
// last good configuration keeps serving (an unrelated route polled
// throughout fails no request), /status, /history and /readyz say why,
// naming the template, later changes are still taken in, and the fixed
// template applies.
func TestRunCheckDeadline(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		good, hanging, tmplDir := hangingTemplates(t)
		writeTemplate(t, tmplDir, good)
		a := startEcho(t, "a")
		s := startSidecar(t, sidecarOpts{haproxy: bin, templates: tmplDir, minReloadInterval: 10 * time.Millisecond,
			args: []string{"--haproxy-check-timeout", "3s"}})
		s.write("class.yaml", ingressClass)
		s.write("a.yaml", app("a", a)+"---\n"+ingress("a", "a.test", "/", "a"))
		s.expect("a.test", "/", "svc:a")
		poll := sidecartest.StartPoller(t, s.httpPort, "a.test", "/", "svc:a")
		before := s.settled()
		generation, reloads := s.status().Generation, s.procs().Reloads

		start := time.Now()
		writeTemplate(t, tmplDir, hanging)
		p := s.waitPass(before)
		took := time.Since(start)
		t.Logf("rejected after %s: %s", took.Round(time.Millisecond), p.Error)
		if p.Outcome != controller.OutcomeRejected || !strings.Contains(p.Error, "haproxy -c did not finish within 3s") ||
			!strings.Contains(p.Error, tmplDir) {
			t.Fatalf("pass with the hanging template: outcome %s, error %q", p.Outcome, p.Error)
		}
		// The check's deadline, the template's settle time and the
		// pass, with room for a busy machine; not the 20 s default.
		if took > 12*time.Second {
			t.Errorf("the rejection came %s after the template changed", took)
		}
		st := s.status()
		if !strings.Contains(st.LastError, "did not finish within 3s") || st.Generation != generation || !st.Ready {
			t.Errorf("/status: last_error %q, generation %d (was %d), ready %v", st.LastError, st.Generation, generation, st.Ready)
		}
		if code, body := httpGet(t, s.healthPort, "/readyz"); code != 200 || !strings.Contains(body, "degraded: HAProxy rejects the new configuration") ||
			!strings.Contains(body, "did not finish within 3s") {
			t.Errorf("/readyz: %d %q", code, body)
		}
		if got := s.procs().Reloads; got != reloads {
			t.Errorf("HAProxy reloaded %d times onto a configuration that was not checked", got-reloads)
		}

		// The loop is not stuck: a new Ingress is taken in (and, the
		// template being what it is, rejected the same way).
		before = s.settled()
		s.write("b.yaml", ingress("b", "b.test", "/", "a"))
		p = s.waitPass(before)
		t.Logf("then: %s", p.Error)
		if p.Outcome != controller.OutcomeRejected || !strings.Contains(p.Error, "did not finish within 3s") ||
			!strings.Contains(p.Error, "Ingress default/b") {
			t.Errorf("pass with a new Ingress: outcome %s, error %q", p.Outcome, p.Error)
		}

		// Fixed: it applies, with the Ingress that came meanwhile.
		writeTemplate(t, tmplDir, strings.Replace(good, "    default-path config\n", "    default-path config\n    # fixed\n", 1))
		s.expect("b.test", "/", "svc:a")
		if !containsLine(s.liveConfig(), "    # fixed") {
			t.Errorf("the fixed template is not what HAProxy runs")
		}
		s.eventually(5*time.Second, "the error cleared", func() error {
			if st := s.status(); st.LastError != "" {
				return os.ErrExist
			}
			return nil
		})
		poll.ExpectNone(t, "HAProxy kept the last good configuration throughout")
	})
}
