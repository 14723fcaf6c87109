package run

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
		s := startSidecar(t, sidecartest.Options{HAProxy: bin, Templates: tmplDir, MinReloadInterval: 10 * time.Millisecond,
			Args: []string{"--haproxy-check-timeout", "3s"}})
		s.Write("class.yaml", ingressClass)
		s.Write("a.yaml", app("a", a)+"---\n"+ingress("a", "a.test", "/", "a"))
		s.Expect("a.test", "/", "svc:a")
		poll := sidecartest.StartPoller(t, s.HTTPPort, "a.test", "/", "svc:a")
		before := s.settled()
		generation, reloads := s.Status().Generation, s.Procs().Reloads

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
		st := s.Status()
		if !strings.Contains(st.LastError, "did not finish within 3s") || st.Generation != generation || !st.Ready {
			t.Errorf("/status: last_error %q, generation %d (was %d), ready %v", st.LastError, st.Generation, generation, st.Ready)
		}
		if code, body := httpGet(t, s.HealthPort, "/readyz"); code != 200 || !strings.Contains(body, "degraded: HAProxy rejects the new configuration") ||
			!strings.Contains(body, "did not finish within 3s") {
			t.Errorf("/readyz: %d %q", code, body)
		}
		if got := s.Procs().Reloads; got != reloads {
			t.Errorf("HAProxy reloaded %d times onto a configuration that was not checked", got-reloads)
		}

		// The loop is not stuck: a new Ingress is taken in (and, the
		// template being what it is, rejected the same way).
		before = s.settled()
		s.Write("b.yaml", ingress("b", "b.test", "/", "a"))
		p = s.waitPass(before)
		t.Logf("then: %s", p.Error)
		if p.Outcome != controller.OutcomeRejected || !strings.Contains(p.Error, "did not finish within 3s") ||
			!strings.Contains(p.Error, "Ingress default/b") {
			t.Errorf("pass with a new Ingress: outcome %s, error %q", p.Outcome, p.Error)
		}

		// Fixed: it applies, with the Ingress that came meanwhile.
		writeTemplate(t, tmplDir, strings.Replace(good, "    default-path config\n", "    default-path config\n    # fixed\n", 1))
		s.Expect("b.test", "/", "svc:a")
		if !containsLine(s.liveConfig(), "    # fixed") {
			t.Errorf("the fixed template is not what HAProxy runs")
		}
		s.Eventually(5*time.Second, "the error cleared", func() error {
			if st := s.Status(); st.LastError != "" {
				return os.ErrExist
			}
			return nil
		})
		poll.ExpectNone(t, "HAProxy kept the last good configuration throughout")
	})
}

// settingsMap is the settings ConfigMap with one maxconn.
func settingsMap(maxconn int) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: haproxy-sidecar\n  namespace: default\ndata:\n  maxconn: \"" +
		strconv.Itoa(maxconn) + "\"\n"
}

// A reload that does not finish: custom templates HAProxy has accepted
// output of load a never-returning Lua script only for one maxconn, so a
// settings change is staged and reloaded without haproxy -c (the reload is
// the check) and the master, single-threaded, parses without end. At
// --haproxy-reload-timeout the generation is rolled back and the master
// restarted on it; the candidate is reported and not tried again; the
// next good configuration applies. The route polled throughout fails no
// request: the new master starts beside the stuck one, which is killed once
// the new worker runs.
func TestRunReloadDeadline(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		tmplDir := hangOnMaxConn4242(t)
		a := startEcho(t, "a")
		s := startSidecar(t, sidecartest.Options{HAProxy: bin, Templates: tmplDir, MinReloadInterval: 10 * time.Millisecond,
			Args: []string{"--haproxy-reload-timeout", "3s", "--configmap", "default/haproxy-sidecar"}})
		s.Write("class.yaml", ingressClass)
		s.Write("settings.yaml", settingsMap(1000))
		s.Write("a.yaml", app("a", a)+"---\n"+ingress("a", "a.test", "/", "a"))
		s.Expect("a.test", "/", "svc:a")
		poll := sidecartest.StartPoller(t, s.HTTPPort, "a.test", "/", "svc:a")
		before := s.settled()
		generation, master := s.Status().Generation, s.Procs().Master.PID

		s.Write("settings.yaml", settingsMap(4242))
		p := s.waitPass(before)
		t.Logf("%s: %s", p.Outcome, p.Error)
		if p.Outcome != controller.OutcomeRejected || !strings.Contains(p.Error, "did not finish reloading onto the new configuration within 3s") ||
			!strings.Contains(p.Error, "replaced") || !strings.Contains(p.Error, tmplDir) || !strings.Contains(p.Error, "ConfigMap default/haproxy-sidecar") {
			t.Fatalf("pass with the stuck reload: outcome %s, error %q", p.Outcome, p.Error)
		}
		s.Eventually(20*time.Second, "a new master on the last good configuration", func() error {
			st, err := s.TryProcs()
			if err != nil {
				return err
			}
			if st.Master.PID == master || st.CurrentWorker() == 0 {
				return fmt.Errorf("master %d", st.Master.PID)
			}
			return nil
		})
		s.Eventually(5*time.Second, "the stuck master killed", func() error {
			if alive(master) {
				return fmt.Errorf("master %d alive", master)
			}
			return nil
		})
		s.Expect("a.test", "/", "svc:a")
		if live := s.liveConfig(); strings.Contains(live, "lua-load") || !strings.Contains(live, "maxconn 1000") {
			t.Errorf("the current generation is not the last good one:\n%.600s", live)
		}
		st := s.Status()
		if st.Generation != generation || !strings.Contains(st.LastError, "did not finish reloading") {
			t.Errorf("/status: generation %d (was %d), last_error %q", st.Generation, generation, st.LastError)
		}
		if code, body := httpGet(t, s.HealthPort, "/readyz"); code != 200 || !strings.Contains(body, "degraded: HAProxy did not finish reloading") {
			t.Errorf("/readyz: %d %q", code, body)
		}
		// The restart is followed by a pass, which renders the same
		// candidate: not tried again (no second stuck master).
		s.ExpectStays("a.test", "/", "svc:a", time.Second)
		if n := s.LogCount("not trying it again"); n == 0 {
			t.Errorf("the pass after the restart did not skip the candidate")
		}
		if now := s.Procs(); now.Reloads > 1 {
			t.Errorf("the new master was reloaded %d times after the restart; want the stuck candidate left alone", now.Reloads)
		}

		s.Write("settings.yaml", settingsMap(2000))
		s.Eventually(20*time.Second, "maxconn 2000 served", func() error {
			if !strings.Contains(s.liveConfig(), "maxconn 2000") || s.Status().LastError != "" {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		s.Expect("a.test", "/", "svc:a")
		poll.ExpectNone(t, "the stuck master's worker serves until the new master's worker runs")
	})
}

// Custom templates that hang from the first pass, in a fresh config-dir:
// HAProxy's start on the bootstrap configuration (rendered from them) is
// killed at --haproxy-start-timeout and tried again; the first pass's
// haproxy -c is killed at its deadline. /readyz is 503 naming the check's
// deadline, /status answers at once, and fixing the templates brings
// HAProxy up serving the objects.
func TestRunFirstPassDeadline(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		good, hanging, tmplDir := hangingTemplates(t)
		writeTemplate(t, tmplDir, hanging)
		a := startEcho(t, "a")
		manifests := t.TempDir()
		for name, text := range map[string]string{"class.yaml": ingressClass, "a.yaml": app("a", a) + "---\n" + ingress("a", "a.test", "/", "a")} {
			if err := os.WriteFile(filepath.Join(manifests, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		s := startSidecar(t, sidecartest.Options{HAProxy: bin, Templates: tmplDir, Manifests: manifests, MinReloadInterval: -1, Wait: sidecartest.WaitNone,
			Args: []string{"--haproxy-check-timeout", "2s", "--haproxy-start-timeout", "2s"}})
		s.Eventually(15*time.Second, "/readyz naming the check's deadline", func() error {
			code, body, err := sidecartest.Get(s.HealthPort, "localhost", "/readyz")
			if err != nil {
				return err
			}
			if code != 503 || !strings.Contains(body, "haproxy -c did not finish within 2s") {
				return fmt.Errorf("%d %q", code, body)
			}
			return nil
		})
		s.Eventually(15*time.Second, "a hung start killed", func() error {
			if s.LogCount("haproxy did not start within the start timeout") == 0 {
				return os.ErrNotExist
			}
			return nil
		})
		start := time.Now()
		st := s.Status()
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("/status took %s", took)
		}
		if st.Ready || !strings.Contains(st.LastError, "did not finish within 2s") || !strings.Contains(st.LastError, tmplDir) {
			t.Errorf("/status: ready %v, last_error %q", st.Ready, st.LastError)
		}

		writeTemplate(t, tmplDir, good)
		s.Eventually(30*time.Second, "a.test served", func() error {
			got, err := s.Get("a.test", "/")
			if err != nil {
				return err
			}
			if got != "svc:a" {
				return fmt.Errorf("got %s", got)
			}
			return nil
		})
		s.Eventually(10*time.Second, "/readyz 200 without a degraded line", func() error {
			if code, body := httpGet(t, s.HealthPort, "/readyz"); code != 200 || strings.Contains(body, "degraded") {
				return fmt.Errorf("%d %q", code, body)
			}
			return nil
		})
	})
}

// startHAProxy starts HAProxy as another container would, on the
// config-dir's current configuration, and returns it.
func startHAProxy(t *testing.T, bin, socket, configDir string) *exec.Cmd {
	t.Helper()
	haproxy := exec.Command(bin, "-W", "-S", socket, "-f", filepath.Join(configDir, "current", "haproxy.cfg"))
	haproxy.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out sidecartest.LockedBuffer
	haproxy.Stdout, haproxy.Stderr = &out, &out
	if err := haproxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-haproxy.Process.Pid, syscall.SIGKILL)
		haproxy.Wait()
		if t.Failed() {
			t.Logf("haproxy output:\n%s", out.String())
		}
	})
	return haproxy
}

// A reload that does not finish on an HAProxy another container started:
// the sidecar cannot replace its master, so it puts the last good
// generation back and says the container needs a restart; the stuck
// master's worker keeps serving throughout. Once HAProxy is restarted (as
// kubelet would), it runs the last good configuration and takes the next.
func TestRunReloadDeadlineExternalHAProxy(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		tmplDir := hangOnMaxConn4242(t)
		a := startEcho(t, "a")
		manifests := t.TempDir()
		sidecartest.WriteManifest(t, manifests, "class.yaml", ingressClass)
		sidecartest.WriteManifest(t, manifests, "settings.yaml", settingsMap(1000))
		sidecartest.WriteManifest(t, manifests, "a.yaml", app("a", a)+"---\n"+ingress("a", "a.test", "/", "a"))
		s := startSidecar(t, sidecartest.Options{External: true, HAProxy: bin, Manifests: manifests, DebugPort: -1,
			GracePeriod: -1, MinReloadInterval: 10 * time.Millisecond, Templates: tmplDir, Wait: sidecartest.WaitNone,
			Args: []string{"--configmap", "default/haproxy-sidecar", "--haproxy-reload-timeout", "3s"}})
		configDir, socket := s.ConfigDir, s.Socket
		s.Eventually(20*time.Second, "/startupz", func() error {
			if code, body, err := sidecartest.Get(s.HealthPort, "localhost", "/startupz"); err != nil || code != 200 {
				return fmt.Errorf("%d %q %v", code, body, err)
			}
			return nil
		})
		first := startHAProxy(t, bin, socket, configDir)
		s.Expect("a.test", "/", "svc:a")
		s.Eventually(10*time.Second, "/readyz", func() error {
			if code, body := httpGet(t, s.HealthPort, "/readyz"); code != 200 {
				return fmt.Errorf("%d %q", code, body)
			}
			return nil
		})
		poll := sidecartest.StartPoller(t, s.HTTPPort, "a.test", "/", "svc:a")

		s.Write("settings.yaml", settingsMap(4242))
		s.Eventually(20*time.Second, "the stuck reload reported", func() error {
			if s.LogCount("takes no further reload until HAProxy's container is restarted") == 0 {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		if live := s.liveConfig(); strings.Contains(live, "lua-load") || !strings.Contains(live, "maxconn 1000") {
			t.Errorf("the current generation is not the last good one:\n%.600s", live)
		}
		if code, body := httpGet(t, s.HealthPort, "/readyz"); code != 200 || !strings.Contains(body, "degraded: HAProxy did not finish reloading") {
			t.Errorf("/readyz: %d %q", code, body)
		}
		s.ExpectStays("a.test", "/", "svc:a", time.Second)
		poll.ExpectNone(t, "the stuck master's worker serves the last good configuration")

		// HAProxy's container restarted: it runs the last good
		// configuration and takes the next one.
		syscall.Kill(-first.Process.Pid, syscall.SIGKILL)
		first.Wait()
		startHAProxy(t, bin, socket, configDir)
		s.Expect("a.test", "/", "svc:a")
		s.Write("settings.yaml", settingsMap(2000))
		s.Eventually(40*time.Second, "maxconn 2000 served", func() error {
			st, err := s.TryProcs()
			if err != nil {
				return err
			}
			if !strings.Contains(s.liveConfig(), "maxconn 2000") || st.Reloads == 0 {
				return fmt.Errorf("not yet (reloads %d)", st.Reloads)
			}
			return nil
		})
		s.Expect("a.test", "/", "svc:a")
	})
}

// hangOnMaxConn4242 writes templates that load a Lua script looping
// forever, so that parsing never ends, once the settings ConfigMap sets
// maxconn 4242, and returns their directory: a reload of a configuration
// haproxy -c was never asked about, from templates HAProxy accepted.
func hangOnMaxConn4242(t *testing.T) string {
	t.Helper()
	good, _, tmplDir := hangingTemplates(t)
	lua := filepath.Join(t.TempDir(), "hang.lua")
	if err := os.WriteFile(lua, []byte("while true do end\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const anchor = "    default-path config\n"
	writeTemplate(t, tmplDir, strings.Replace(good, anchor, anchor+"{{if eq .Settings.MaxConn 4242}}    lua-load "+lua+"\n{{end}}", 1))
	return tmplDir
}
