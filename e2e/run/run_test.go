package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/admin"
	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
)

// Edits, additions, deletions and editor-style replacements of manifests
// are served; the directory may not exist when the sidecar starts.
func TestRunFollowsManifests(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		a, b := startEcho(t, "a"), startEcho(t, "b")
		dir := filepath.Join(t.TempDir(), "not-yet")
		s := startSidecar(t, sidecartest.Options{HAProxy: bin, Manifests: dir})
		s.Expect("a.test", "/", "status:404")

		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		s.Write("class.yaml", ingressClass)
		s.Write("apps.yaml", app("a", a)+"---\n"+app("b", b))
		s.Write("ing-a.yaml", ingress("a", "a.test", "/", "a"))
		s.Expect("a.test", "/", "svc:a")

		// Edit in place (truncate and write), as `>` in a shell does.
		if err := os.WriteFile(filepath.Join(dir, "ing-a.yaml"), []byte(ingress("a", "a.test", "/", "b")), 0o644); err != nil {
			t.Fatal(err)
		}
		s.Expect("a.test", "/", "svc:b")

		// A new file in a new sub-directory.
		s.Write("team/ing-c.yaml", ingress("c", "c.test", "/", "a"))
		s.Expect("c.test", "/x", "svc:a")

		// Delete.
		s.Remove("ing-a.yaml")
		s.Expect("a.test", "/", "status:404")
		s.Expect("c.test", "/x", "svc:a")
	})
}

// An invalid manifest or template leaves the last good routing served and
// is reported; fixing it is picked up.
func TestRunKeepsServingOnBadInput(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		a := startEcho(t, "a")
		tmplDir := t.TempDir()
		src, err := os.ReadFile("../../templates/haproxy.cfg.tmpl")
		if err != nil {
			t.Fatal(err)
		}
		good := string(src)
		writeTmpl := func(s string) {
			t.Helper()
			if err := os.WriteFile(filepath.Join(tmplDir, "haproxy.cfg.tmpl"), []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		writeTmpl(good)
		s := startSidecar(t, sidecartest.Options{HAProxy: bin, Templates: tmplDir})
		s.Write("class.yaml", ingressClass)
		s.Write("a.yaml", app("a", a)+"---\n"+ingress("a", "a.test", "/", "a"))
		s.Expect("a.test", "/", "svc:a")

		// A file that is not YAML: reported, the rest still served.
		s.Write("broken.yaml", "kind: [unclosed\n")
		s.Write("b.yaml", ingress("b", "b.test", "/", "a"))
		s.Expect("b.test", "/", "svc:a")
		s.Expect("a.test", "/", "svc:a")

		// A template that does not parse: reported, last good stays.
		writeTmpl(good + "{{ .Unclosed ")
		s.Eventually(5*time.Second, "template error logged", func() error {
			if s.LogCount("templates do not parse") == 0 {
				return os.ErrNotExist
			}
			return nil
		})
		s.Write("c.yaml", ingress("c", "c.test", "/", "a"))
		s.Expect("c.test", "/", "svc:a") // old templates still render new objects
		if st := s.Status(); !strings.Contains(st.TemplateError, "haproxy.cfg.tmpl") {
			t.Errorf("/status template_error = %q, want the template's parse error", st.TemplateError)
		}

		// A template HAProxy rejects: the candidate never goes live.
		reloads := s.Procs().Reloads
		writeTmpl(strings.Replace(good, "    balance {{.Balance}}\n", "    balance {{.Balance}}\n    no-such-keyword\n", 1))
		s.Eventually(10*time.Second, "rejection logged", func() error {
			if s.LogCount("HAProxy rejects the new configuration") == 0 {
				return os.ErrNotExist
			}
			return nil
		})
		if !strings.Contains(s.Logs.String(), "caused by Service default/a port 80") {
			t.Errorf("rejection does not name the Service behind the failing line")
		}
		if st := s.Status(); !strings.Contains(st.LastError, "caused by Service default/a port 80") || st.TemplateError != "" {
			t.Errorf("/status after the rejection: last_error %q, template_error %q", st.LastError, st.TemplateError)
		}
		s.ExpectStays("a.test", "/", "svc:a", 300*time.Millisecond)
		if got := s.Procs().Reloads; got != reloads {
			t.Errorf("HAProxy reloaded %d times for a rejected configuration", got-reloads)
		}
		// The live configuration is still the last good one.
		live, err := os.ReadFile(filepath.Join(s.ConfigDir, "current", "haproxy.cfg"))
		if err != nil || strings.Contains(string(live), "no-such-keyword") {
			t.Errorf("live configuration holds the rejected template (err %v)", err)
		}

		// A template that renders no listener at all (an empty file) is
		// valid to haproxy -c but would serve nothing: refused too.
		writeTmpl("")
		s.Eventually(10*time.Second, "empty configuration refused", func() error {
			if s.LogCount("has no listener") == 0 {
				return os.ErrNotExist
			}
			return nil
		})
		s.ExpectStays("a.test", "/", "svc:a", 300*time.Millisecond)
		if st := s.Status(); !strings.Contains(st.LastError, "no listener") {
			t.Errorf("/status last_error = %q, want the missing listener", st.LastError)
		}

		writeTmpl(good)
		s.Write("d.yaml", ingress("d", "d.test", "/", "a"))
		s.Expect("d.test", "/", "svc:a")
		s.Eventually(5*time.Second, "/status clear of errors", func() error {
			if st := s.Status(); st.LastError != "" || st.TemplateError != "" {
				return fmt.Errorf("last_error %q, template_error %q", st.LastError, st.TemplateError)
			}
			return nil
		})
	})
}

// Endpoint changes and route changes to existing backends go through the
// runtime API: the worker generation stays the same, and the files on disk
// match what HAProxy runs.
func TestRunRuntimeUpdatesWithoutReload(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		a1, a2, b := startEcho(t, "a1"), startEcho(t, "a2"), startEcho(t, "b")
		s := startSidecar(t, sidecartest.Options{HAProxy: bin})
		s.Write("class.yaml", ingressClass)
		s.Write("apps.yaml", app("a", a1)+"---\n"+app("b", b))
		s.Write("ing.yaml", ingress("web", "web.test", "/", "a"))
		// Backends exist for referenced Services only: b is in use here.
		s.Write("other.yaml", ingress("other", "other.test", "/", "b"))
		s.Expect("web.test", "/", "svc:a1")
		s.Expect("other.test", "/", "svc:b")
		// Let the first reload's old worker go away before counting.
		time.Sleep(200 * time.Millisecond)
		before := s.Procs()

		// Endpoint change: a1 is replaced by a2.
		s.Write("apps.yaml", app("a", a2)+"---\n"+app("b", b))
		s.Expect("web.test", "/", "svc:a2")
		// Route change to an existing backend.
		s.Write("ing.yaml", ingress("web", "web.test", "/", "a", "/b", "b"))
		s.Expect("web.test", "/b/x", "svc:b")
		s.Expect("web.test", "/", "svc:a2")
		// A route removed.
		s.Write("ing.yaml", ingress("web", "web.test", "/", "a"))
		s.Expect("web.test", "/b/x", "svc:a2")

		after := s.Procs()
		if after.Reloads != before.Reloads || after.CurrentWorker() != before.CurrentWorker() {
			t.Errorf("HAProxy was reloaded: reloads %d -> %d, worker %d -> %d",
				before.Reloads, after.Reloads, before.CurrentWorker(), after.CurrentWorker())
		}
		// The commands went to the worker's own socket, beside the
		// master's (reload's TestSendThroughWorkerSocket shows Send
		// prefers it): the serving worker answers there.
		worker := reload.WorkerSocketFor(s.Socket)
		if worker == "" || !strings.Contains(s.Logs.String(), `"worker_socket":"`+worker+`"`) {
			t.Errorf("the sidecar did not log worker socket %q", worker)
		}
		if info, err := workerCommand(worker, "show info"); err != nil || !strings.Contains(info, "\nPid: "+strconv.Itoa(after.CurrentWorker())+"\n") {
			t.Errorf("show info on the worker socket %s (worker %d): %v\n%s", worker, after.CurrentWorker(), err, info)
		}
		// Served first, persisted (validated) right after.
		s.Eventually(5*time.Second, "3 runtime updates logged", func() error {
			if n := s.LogCount("updated HAProxy at run time"); n < 3 {
				return fmt.Errorf("%d logged", n)
			}
			return nil
		})

		// The files on disk are what HAProxy runs: a restart from them
		// serves the same.
		s.killHAProxy()
		s.Expect("web.test", "/", "svc:a2")
		s.Expect("web.test", "/b/x", "svc:a2")
	})
}

// startServingA starts the sidecar on HAProxy bin with one app, "a" on
// host a.test, and returns once a.test is served.
func startServingA(t *testing.T, bin string) *sidecar {
	t.Helper()
	a := startEcho(t, "a")
	s := startSidecar(t, sidecartest.Options{HAProxy: bin})
	s.Write("class.yaml", ingressClass)
	s.Write("a.yaml", app("a", a)+"---\n"+ingress("a", "a.test", "/", "a"))
	s.Expect("a.test", "/", "svc:a")
	return s
}

// HAProxy killed under --haproxy-start comes back on the last good
// configuration.
func TestRunRestartsKilledHAProxy(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		s := startServingA(t, bin)
		s.killHAProxy()
		s.Expect("a.test", "/", "svc:a")
		// And it still follows changes.
		s.Write("b.yaml", ingress("b", "b.test", "/", "a"))
		s.Expect("b.test", "/", "svc:a")
	})
}

// HAProxy's internal HTTP client is not left verifying, which would load
// the system's CA store at every start and reload (about 50 ms each). Asked
// of the worker serving a reloaded configuration: its list of loaded CA
// files is empty.
func TestRunHAProxyLoadsNoCAStore(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		s := startServingA(t, bin)
		if st := s.Procs(); st.Reloads == 0 {
			t.Fatalf("no reload before the check: %+v", st)
		}
		out, err := reload.NewMasterCLI(s.Socket).Worker(context.Background(), "show ssl ca-file")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "@system-ca") || strings.Contains(strings.ToLower(out), "unknown") {
			t.Errorf("show ssl ca-file: %q; want no CA file loaded", out)
		}
	})
}

// SIGTERM stops the sidecar and, with --haproxy-start, HAProxy.
func TestRunStopsCleanly(t *testing.T) {
	s := startServingA(t, bin26(t))
	master := s.Procs()
	s.Stop()
	if code := s.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	for _, p := range master.Workers {
		if alive(p.PID) {
			t.Errorf("HAProxy worker %d still running after the sidecar stopped", p.PID)
		}
	}
	if _, _, err := sidecartest.Get(s.HTTPPort, "a.test", "/"); err == nil {
		t.Errorf("HAProxy still answers after the sidecar stopped")
	}
}

// HAProxy started by another container: --init writes a configuration for
// it to start on, and run (without --haproxy-start) waits for its master
// socket, then drives it through the master CLI only.
func TestRunWithExternalHAProxy(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		a := startEcho(t, "a")
		// The 30 s default grace period, as the pod's containers have.
		initProc := sidecartest.Start(t, sidecartest.Options{Init: true, GracePeriod: -1, Wait: sidecartest.WaitNone})
		for end := time.Now().Add(20 * time.Second); !initProc.Exited(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatal("--init did not finish within 20s")
			}
		}
		if code := initProc.Cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("--init exited %d", code)
		}

		// The sidecar first, as in the pod: it writes the configuration
		// of the objects there are before HAProxy exists, and says so on
		// /startupz; HAProxy then starts on it.
		manifests := t.TempDir()
		sidecartest.WriteManifest(t, manifests, "class.yaml", ingressClass)
		sidecartest.WriteManifest(t, manifests, "a.yaml", app("a", a)+"---\n"+ingress("a", "a.test", "/", "a"))
		o := initProc.Options
		o.Init, o.External, o.HAProxy, o.Manifests, o.DebugPort = false, true, bin, manifests, -1
		// Templates HAProxy refuses for one Service (see below).
		o.MinReloadInterval, o.Templates = 10*time.Millisecond, refusingTemplates(t)
		s := startSidecar(t, o)
		configDir, socket, health := s.ConfigDir, s.Socket, s.HealthPort
		s.Eventually(10*time.Second, "waiting for the socket", func() error {
			if s.LogCount("waiting for HAProxy's master socket") == 0 {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		s.Eventually(20*time.Second, "/startupz", func() error {
			if code, body, err := sidecartest.Get(health, "localhost", "/startupz"); err != nil || code != 200 {
				return fmt.Errorf("%d %q %v", code, body, err)
			}
			return nil
		})
		if code, _, _ := sidecartest.Get(health, "localhost", "/readyz"); code != 503 {
			t.Errorf("/readyz before HAProxy runs = %d, want 503", code)
		}
		// --init was given no --master-socket, so its configuration has
		// no worker socket: still the bootstrap one, not one rendered
		// from the source (which would make /startupz answer 200 before
		// the first pass, and HAProxy start on the bootstrap).
		if n := s.LogCount("rendered from the source by an earlier run"); n != 0 {
			t.Errorf("--init's bootstrap configuration taken for one rendered from the source")
		}

		startHAProxy(t, bin, socket, configDir)

		// The first request already gets the Ingress: HAProxy started on
		// the configuration /startupz promised, not the bootstrap one.
		s.Eventually(10*time.Second, "HAProxy listening", func() error {
			got, err := s.Get("a.test", "/")
			if err != nil {
				return err
			}
			if got != "svc:a" {
				t.Fatalf("first answer of the HAProxy started after /startupz: %s, want svc:a", got)
			}
			return nil
		})
		s.Write("b.yaml", ingress("b", "b.test", "/", "a"))
		s.Expect("b.test", "/", "svc:a")

		// A reload HAProxy refuses, checked by the reload itself (the
		// templates' first output passed haproxy -c): HAProxy 2.6 answers
		// such a reload with nothing, so the sidecar explains it with
		// haproxy -c of the rejected candidate; 3.0 sends its log.
		s.Write("refused.yaml", app("refused", a)+"---\n"+ingress("refused", "refused.test", "/", "refused"))
		s.Eventually(10*time.Second, "refusal logged", func() error {
			if s.LogCount("HAProxy refused to reload onto the new configuration") == 0 {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		if !strings.Contains(s.Logs.String(), "caused by Service default/refused port 80") {
			t.Error("the refusal does not name the Service behind the failing line")
		}
		s.ExpectStays("a.test", "/", "svc:a", 300*time.Millisecond)
		if live := s.liveConfig(); strings.Contains(live, "no-such-keyword") {
			t.Error("the refused configuration is current on disk")
		}
	})
}

// /status shows what a person debugging the load balancer needs: the
// generation served, HAProxy's workers, old workers still draining after a
// reload, and what was skipped.
func TestRunStatus(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		a := startEcho(t, "a")
		s := startSidecar(t, sidecartest.Options{HAProxy: bin})
		s.Write("class.yaml", ingressClass)
		s.Write("a.yaml", app("a", a)+"---\n"+ingress("a", "a.test", "/", "a")+"---\n"+ingress("bad", "bad_host.test", "/", "a"))
		s.Expect("a.test", "/", "svc:a")
		waitNoOldWorkers(s)

		// HAProxy may serve the new worker a moment before the sidecar has
		// confirmed the reload; Ready and a generation may come from the
		// earlier pass of the IngressClass alone: wait for a.yaml's problem.
		badHost := func(p string) bool { return strings.HasPrefix(p, "warning: Ingress default/bad: spec.rules[0].host") }
		var st admin.Status
		s.Eventually(5*time.Second, "/status after the configuration with a.yaml", func() error {
			st = s.Status()
			if !st.Ready || st.LastError != "" || st.Generation == 0 || st.HAProxy == nil || len(st.HAProxy.Workers) != 1 || st.OldWorkers != 0 ||
				!slices.ContainsFunc(st.Problems, badHost) {
				return fmt.Errorf("%+v", st)
			}
			return nil
		})

		// /explain answers from the configuration being served.
		explain := func(query string) (int, string) {
			resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(s.DebugPort) + "/explain?" + query)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body)
		}
		// The model /explain reads is the one the sidecar has confirmed
		// HAProxy runs: a moment after the new worker serves.
		s.Eventually(5*time.Second, "/explain of the configuration with a.yaml", func() error {
			code, body := explain("url=http://A.test:8080/x%3Fy&url=http://bad_host.test/")
			for _, w := range []string{
				"http://A.test:8080/x?y\n",
				"  rule: Ingress default/a spec.rules[0].http.paths[0], host a.test, Prefix path \"/\"",
				"ready endpoints (1): 127.0.0.1:" + strconv.Itoa(a.port),
				// The bad host's rule was skipped: nothing serves it.
				"http://bad_host.test/\n",
				"  => 404 from HAProxy",
			} {
				if code != 200 || !strings.Contains(body, w) {
					return fmt.Errorf("/explain: %d, lacks %q:\n%s", code, w, body)
				}
			}
			return nil
		})
		if code, body := explain("url=ftp://a.test/"); code != http.StatusBadRequest {
			t.Errorf("/explain of an ftp URL: %d %s", code, body)
		}

		// A request in flight keeps the old worker alive across a reload.
		answer := make(chan string, 1)
		go func() {
			got, err := s.Get("a.test", "/hold")
			answer <- fmt.Sprint(got, err)
		}()
		select {
		case <-a.held:
		case <-time.After(5 * time.Second):
			t.Fatal("the held request never reached the backend")
		}
		s.Write("b.yaml", app("b", a)+"---\n"+ingress("b", "b.test", "/", "b"))
		s.Expect("b.test", "/", "svc:a")
		s.Eventually(3*time.Second, "the old worker in /status", func() error {
			now := s.Status()
			if now.OldWorkers != 1 || now.HAProxy == nil || len(now.HAProxy.OldWorkers) != 1 {
				return fmt.Errorf("old_workers %d: %+v", now.OldWorkers, now.HAProxy)
			}
			if now.Generation <= st.Generation || now.Reloads == 0 {
				return fmt.Errorf("generation %d (was %d), reloads %d", now.Generation, st.Generation, now.Reloads)
			}
			return nil
		})
		a.release()
		if got := <-answer; got != "svc:a<nil>" {
			t.Errorf("the request in flight during the reload got %q", got)
		}
		s.Eventually(10*time.Second, "no old worker in /status", func() error {
			if n := s.Status().OldWorkers; n != 0 {
				return fmt.Errorf("%d old workers", n)
			}
			return nil
		})
	})
}

// A server slot that gets a new address at run time sends nothing more to
// the old one, not even requests of a client connection kept alive across
// the change (HAProxy could otherwise reuse the slot's server connection).
// The old backend keeps running, so a stale answer would show.
func TestRunEndpointChangeLeavesOldAddress(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		a1, a2 := startEcho(t, "a1"), startEcho(t, "a2")
		s := startSidecar(t, sidecartest.Options{HAProxy: bin})
		s.Write("class.yaml", ingressClass)
		s.Write("apps.yaml", app("a", a1))
		s.Write("ing.yaml", ingress("web", "web.test", "/", "a"))
		s.Expect("web.test", "/", "svc:a1")

		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		defer client.CloseIdleConnections()
		reused := 0
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
			if i.Reused {
				reused++
			}
		}}
		get := func() string {
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace),
				http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(s.HTTPPort)+"/", nil)
			req.Host = "web.test"
			resp, err := client.Do(req)
			if err != nil {
				return err.Error()
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return string(body)
		}
		for range 5 {
			if got := get(); got != "svc:a1" {
				t.Fatalf("before the change: %q", got)
			}
		}
		updates := s.LogCount("updated HAProxy at run time")
		s.Write("apps.yaml", app("a", a2))
		s.Eventually(5*time.Second, "the runtime update", func() error {
			if s.LogCount("updated HAProxy at run time") == updates {
				return errors.New("not applied yet")
			}
			return nil
		})
		reused = 0
		for i := range 50 {
			if got := get(); got != "svc:a2" {
				t.Fatalf("request %d after the change on a kept-alive connection: %q", i, got)
			}
		}
		if reused < 45 {
			t.Errorf("only %d of 50 requests reused the client connection: the test did not test reuse", reused)
		}
	})
}

// A canary Ingress in run mode: added beside the primary it takes the
// requests its header rule selects, a weight change moves the rest, and
// with the primary gone its path is not served until the primary is back.
// Every step goes through the engine, the planner and a reload.
func TestRunCanary(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		a, b := startEcho(t, "a"), startEcho(t, "b")
		s := startSidecar(t, sidecartest.Options{HAProxy: bin, MinReloadInterval: -1})
		s.Write("class.yaml", ingressClass)
		s.Write("apps.yaml", app("a", a)+"---\n"+app("b", b))
		s.Write("web.yaml", ingress("web", "web.test", "/", "a"))
		s.Expect("web.test", "/", "svc:a")

		canary := func(weight string) string {
			return strings.Replace(ingress("web-canary", "web.test", "/", "b"), "  name: web-canary\n",
				"  name: web-canary\n  annotations:\n    haproxy-sidecar.io/canary-by-header: X-Canary\n    haproxy-sidecar.io/canary-weight: \""+weight+"\"\n", 1)
		}
		withHeader := func(v string) (string, error) {
			req, _ := http.NewRequest("GET", "http://127.0.0.1:"+strconv.Itoa(s.HTTPPort)+"/", nil)
			req.Host = "web.test"
			req.Header.Set("X-Canary", v)
			resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			return string(body), err
		}
		s.Write("web-canary.yaml", canary("0"))
		s.Eventually(10*time.Second, "X-Canary: always -> svc:b", func() error {
			if got, err := withHeader("always"); err != nil || got != "svc:b" {
				return fmt.Errorf("got %q (%v)", got, err)
			}
			return nil
		})
		s.ExpectStays("web.test", "/", "svc:a", 300*time.Millisecond) // weight 0
		if got, err := withHeader("never"); err != nil || got != "svc:a" {
			t.Errorf("X-Canary: never: %q (%v), want svc:a", got, err)
		}

		s.Write("web-canary.yaml", canary("100"))
		s.Expect("web.test", "/", "svc:b")
		if got, err := withHeader("never"); err != nil || got != "svc:a" {
			t.Errorf("weight 100, X-Canary: never: %q (%v), want svc:a", got, err)
		}

		// No primary: the canary has nothing to share, and says so.
		s.Remove("web.yaml")
		s.Expect("web.test", "/", "status:404")
		s.Eventually(10*time.Second, "CanaryWithoutPrimary reported", func() error {
			for _, p := range s.Status().Problems {
				if strings.Contains(p, "web-canary") && strings.Contains(p, "canary path not served") {
					return nil
				}
			}
			return fmt.Errorf("problems %v", s.Status().Problems)
		})
		s.Write("web.yaml", ingress("web", "web.test", "/", "a"))
		s.Expect("web.test", "/", "svc:b")

		s.Remove("web-canary.yaml")
		s.Expect("web.test", "/", "svc:a")
	})
}

// workerCommand sends one command to a worker's stats socket and returns
// its answer.
func workerCommand(socket, cmd string) (string, error) {
	conn, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(conn)
	return string(b), err
}
