package run

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/controller"
	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
)

// refusingTemplates is a templates directory with the embedded template,
// except that HAProxy refuses its output for the backend of a Service named
// "refused": a template error that only some objects reach.
func refusingTemplates(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("../../templates/haproxy.cfg.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "    balance {{.Balance}}\n"
	if !strings.Contains(string(src), marker) {
		t.Fatal("the backend template has changed: update this test")
	}
	dir := t.TempDir()
	tmpl := strings.Replace(string(src), marker, marker+"{{- if eq .Service \"refused\"}}\n    no-such-keyword\n{{- end}}\n", 1)
	if err := os.WriteFile(filepath.Join(dir, "haproxy.cfg.tmpl"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A pass that reloads lets the reload validate its configuration (no
// haproxy -c) once HAProxy has accepted output of the same templates.
// When HAProxy refuses such a reload, the old worker serves on, the
// previous generation is current again on disk, the candidate is kept in
// rejected/, and the refusal names the objects behind the failing line.
func TestRunReloadValidates(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		a := startEcho(t, "a")
		tmplDir := refusingTemplates(t)
		// Objects in place before the start: the first configuration of
		// these templates is not the empty one the config-dir starts with.
		manifests := t.TempDir()
		for name, doc := range map[string]string{"class.yaml": ingressClass, "a.yaml": app("a", a) + "---\n" + ingress("a", "a.test", "/", "a")} {
			if err := os.WriteFile(filepath.Join(manifests, name), []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		s := startSidecar(t, sidecartest.Options{HAProxy: bin, Templates: tmplDir, Manifests: manifests, MinReloadInterval: 10 * time.Millisecond})
		s.Expect("a.test", "/", "svc:a")
		// It was checked with haproxy -c.
		s.settled()
		checked := false
		for _, p := range s.History() {
			checked = checked || p.Phases.Check > 0
		}
		if !checked {
			t.Error("no pass ran haproxy -c on the first output of custom templates")
		}

		// A new Service: a reload, validated by the reload itself.
		s.Write("b.yaml", app("b", a)+"---\n"+ingress("b", "b.test", "/", "b"))
		s.Expect("b.test", "/", "svc:a")
		s.settled()
		pass := s.History()[0]
		if pass.Outcome != controller.OutcomeReload || pass.Phases.Check != 0 {
			t.Errorf("new Service: outcome %s, haproxy -c %v; want a reload without haproxy -c", pass.Outcome, pass.Phases.Check)
		}
		good := s.liveConfig()
		before := s.Procs()

		// A Service whose backend HAProxy refuses.
		s.Write("refused.yaml", app("refused", a)+"---\n"+ingress("refused", "refused.test", "/", "refused"))
		s.Eventually(10*time.Second, "refusal logged", func() error {
			if s.LogCount("HAProxy refused to reload onto the new configuration") == 0 {
				return os.ErrNotExist
			}
			return nil
		})
		if st := s.Status(); !strings.Contains(st.LastError, "no-such-keyword") || !strings.Contains(st.LastError, "caused by Service default/refused port 80") {
			t.Errorf("/status last_error %q: want HAProxy's alert and the Service behind it", st.LastError)
		}
		s.ExpectStays("a.test", "/", "svc:a", 300*time.Millisecond)
		s.Expect("refused.test", "/", "status:404")
		if got := s.liveConfig(); got != good {
			t.Errorf("the live configuration is not the last good one after the refusal")
		}
		rejected, err := os.ReadFile(filepath.Join(s.ConfigDir, "rejected", "haproxy.cfg"))
		if err != nil || !strings.Contains(string(rejected), "no-such-keyword") {
			t.Errorf("rejected/haproxy.cfg should hold the refused candidate (err %v)", err)
		}
		if _, err := os.Lstat(filepath.Join(s.ConfigDir, "pending")); err == nil {
			t.Error("pending link left after the refusal")
		}
		// The refused pass's record names the generation still current,
		// not the candidate moved to rejected/.
		found := false
		for _, p := range s.History() {
			if p.Outcome == controller.OutcomeRejected {
				found = true
				if p.Generation != pass.Generation {
					t.Errorf("the refused pass records generation %d; %d is current", p.Generation, pass.Generation)
				}
				break
			}
		}
		if !found {
			t.Error("no refused pass in /history")
		}
		after := s.Procs()
		if after.CurrentWorker() != before.CurrentWorker() {
			t.Errorf("worker changed from %d to %d on a refused reload", before.CurrentWorker(), after.CurrentWorker())
		}

		// Fixed: the next reload takes it in.
		s.Write("refused.yaml", app("refused", a)+"---\n"+ingress("refused", "refused.test", "/", "a"))
		s.Expect("refused.test", "/", "svc:a")
		s.Expect("b.test", "/", "svc:a")
		s.Eventually(5*time.Second, "/status clear of errors", func() error {
			if st := s.Status(); st.LastError != "" {
				return fmt.Errorf("last_error %q", st.LastError)
			}
			return nil
		})
	})
}
