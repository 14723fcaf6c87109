package controller

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

const outcomeClass = `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: haproxy
  annotations:
    ingressclass.kubernetes.io/is-default-class: "true"
spec:
  controller: haproxy-sidecar.io/controller
`

// outcomeApp is a Service with one endpoint at 127.0.0.1:port, and an
// Ingress routing host to it.
func outcomeApp(name, host string, port int) string {
	return fmt.Sprintf(`---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
spec:
  ports:
  - name: http
    port: 80
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %[1]s-0
  labels:
    kubernetes.io/service-name: %[1]s
addressType: IPv4
ports:
- name: http
  port: %[3]d
endpoints:
- addresses: ["127.0.0.1"]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: %[1]s
spec:
  rules:
  - host: %[2]s
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: %[1]s
            port:
              name: http
`, name, host, port)
}

// A pass's outcome is one value: the record OnPass gets, the one in the
// history, the log line and /status's counters all say the same thing of
// each pass, through HAProxy 2.6 and 3.0 brought up, reloaded and updated
// at run time by the loop.
func TestPassOutcomeReachesEveryReader(t *testing.T) {
	for version, bin := range testenv.HAProxies(t) {
		t.Run(version, func(t *testing.T) { testPassOutcome(t, bin) })
	}
}

func testPassOutcome(t *testing.T, bin string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newLoopFixture(t, bin)
	a1, a2, b := f.a1, f.a2, f.b
	var c *Controller
	write := func(content string) {
		t.Helper()
		f.write(t, c, content)
	}
	store, manifests, renderer, sup, httpPort := f.store, f.manifests, f.renderer, f.sup, f.httpPort
	var up atomic.Bool
	core, logs := observer.New(zap.InfoLevel)
	var mu sync.Mutex
	var seen []Pass // by OnPass
	history := NewHistory(20)
	c = New(Config{
		Source: NewFileSource(manifests), Store: store, Validate: reload.Validator(ctx, bin, 10*time.Second),
		HAProxy: sup.CLI(), HAProxyUp: up.Load, Log: zap.New(core), History: history, BuiltinTemplates: true,
		OnPass: func(p Pass) {
			mu.Lock()
			seen = append(seen, p)
			mu.Unlock()
		},
	}, renderer)
	write(outcomeClass + outcomeApp("a", "a.test", a1))
	waitPass := func(after int64) Pass { return nextPass(t, history, c, after) }
	get := func(host string) string { return getHost(t, httpPort, host) }
	// Written for an HAProxy that is not up yet; then HAProxy starts on
	// it and the next pass reloads it, not knowing what it runs.
	written, first := runThenStartHAProxy(t, ctx, cancel, c, sup, &up, history)
	if got := get("a.test"); got != "a1" {
		t.Errorf("a.test after the first reload: %q", got)
	}
	// The endpoint moves: a runtime change.
	write(outcomeClass + outcomeApp("a", "a.test", a2))
	moved := waitPass(first.ID)
	if got := get("a.test"); got != "a2" {
		t.Errorf("a.test after the endpoint moved: %q", got)
	}
	// A new Service behind a new host: a reload for new backends.
	write(outcomeClass + outcomeApp("a", "a.test", a2) + outcomeApp("b", "b.test", b))
	grown := waitPass(moved.ID)
	if got := get("b.test"); got != "b" {
		t.Errorf("b.test after the reload: %q", got)
	}

	for _, want := range []struct {
		p       Pass
		outcome Outcome
		cause   Cause
	}{
		{written, OutcomeWritten, ""},
		{first, OutcomeReload, CauseUnknownState},
		{moved, OutcomeRuntime, ""},
		{grown, OutcomeReload, CauseBackends},
	} {
		p := want.p
		if p.Outcome != want.outcome || p.ReloadCause != want.cause || (p.ReloadCause != "") != (p.ReloadReason != "") || p.Error != "" {
			t.Errorf("pass %d: %s, cause %q (%q), error %q; want %s, cause %q", p.ID, p.Outcome, p.ReloadCause, p.ReloadReason, p.Error, want.outcome, want.cause)
		}
		// OnPass got the record the history keeps (but for the diff,
		// made afterwards).
		mu.Lock()
		i := slices.IndexFunc(seen, func(s Pass) bool { return s.ID == p.ID })
		var got Pass
		if i >= 0 {
			got = seen[i]
		}
		mu.Unlock()
		got.Diff = p.Diff
		if fmt.Sprint(got) != fmt.Sprint(p) {
			t.Errorf("pass %d: OnPass got\n%+v\nthe history has\n%+v", p.ID, got, p)
		}
		// The log line says what the record says.
		var msg string
		switch p.Outcome {
		case OutcomeReload:
			msg = "reloaded HAProxy"
		case OutcomeRuntime:
			msg = "updated HAProxy at run time"
		case OutcomeWritten:
			msg = "configuration written; HAProxy is not up yet"
		}
		var line map[string]any
		for _, e := range logs.FilterMessage(msg).All() {
			f := e.ContextMap()
			if f["pass"] == p.ID || (p.Outcome == OutcomeWritten && f["generation"] == int64(p.Generation)) {
				line = f
			}
		}
		switch {
		case line == nil:
			t.Errorf("pass %d: no %q line", p.ID, msg)
		case p.Outcome == OutcomeReload && (line["cause"] != string(p.ReloadCause) || line["reason"] != p.ReloadReason ||
			line["generation"] != int64(p.Generation) || line["apply"] != p.Phases.Apply):
			t.Errorf("pass %d: log line %v, record %+v", p.ID, line, p)
		case p.Outcome == OutcomeRuntime && (line["map_changes"] != int64(0) || line["slot_changes"] != int64(1) || line["apply"] != p.Phases.Apply):
			t.Errorf("pass %d: log line %v, commands %q", p.ID, line, p.Commands)
		}
	}
	if len(moved.Commands) == 0 {
		t.Errorf("the runtime pass records no commands")
	}
	// /status counts what the records say.
	st := c.Status()
	if st.Reloads != 2 || st.RuntimeUpdates != 1 || st.Failures != 0 || st.LastError != "" || !st.Ready {
		t.Errorf("status %+v; want 2 reloads, 1 runtime update, no failure", st)
	}
}

// nextPass waits (20 s) for the newest pass in history to come after the
// pass with ID after, and returns it.
func nextPass(t *testing.T, history *History, c *Controller, after int64) Pass {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if h := history.List(1); len(h) == 1 && h[0].ID > after {
			return h[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no pass after %d: %s", after, c.Status().LastError)
	return Pass{}
}

// getHost is the body HAProxy's HTTP port answers for host.
func getHost(t *testing.T, port int, host string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+strconv.Itoa(port)+"/", nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", host, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// loopFixture is what the loop tests run on, under a short temporary
// directory (the master socket's path must fit a sockaddr_un): a store, a
// manifest file, three backends answering their names, a renderer with
// the built-in templates, and a supervisor for HAProxy bin.
type loopFixture struct {
	store     *reload.Store
	manifests string
	a1, a2, b int // the backends' ports
	httpPort  int
	renderer  func(render.Inputs, *render.Model) (*render.Model, *haproxycfg.Output, error)
	sup       *reload.Supervisor
}

func newLoopFixture(t *testing.T, bin string) *loopFixture {
	t.Helper()
	tmp, err := os.MkdirTemp("", "lf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	f := &loopFixture{manifests: filepath.Join(tmp, "manifests.yaml")}
	if f.store, err = reload.NewStore(filepath.Join(tmp, "cfg")); err != nil {
		t.Fatal(err)
	}
	backend := func(name string) int {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) }))
		t.Cleanup(srv.Close)
		u, _ := url.Parse(srv.URL)
		port, _ := strconv.Atoi(u.Port())
		return port
	}
	f.a1, f.a2, f.b = backend("a1"), backend("a2"), backend("b")
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	f.httpPort = testenv.FreePort(t)
	cfg := haproxycfg.Config{HTTPBind: "127.0.0.1:" + strconv.Itoa(f.httpPort), HTTPSBind: "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)), Template: tmpl}
	f.renderer = func(in render.Inputs, previous *render.Model) (*render.Model, *haproxycfg.Output, error) {
		m := render.BuildModel(in, render.Options{Previous: previous})
		out, err := haproxycfg.Render(m, cfg)
		return m, out, err
	}
	f.sup = &reload.Supervisor{Bin: bin, Config: f.store.ConfigPath(), Socket: filepath.Join(tmp, "m.sock"),
		MinBackoff: 50 * time.Millisecond, StopGrace: time.Second}
	return f
}

// write replaces the manifest file whole and tells c, as watch/ does on
// a file change in run mode.
func (f *loopFixture) write(t *testing.T, c *Controller, content string) {
	t.Helper()
	if err := os.WriteFile(f.manifests+".tmp", []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.manifests+".tmp", f.manifests); err != nil {
		t.Fatal(err)
	}
	c.Notify()
}

// runThenStartHAProxy runs c's loop until its first pass (written for an
// HAProxy that is not up yet), then starts sup on that configuration,
// tells the loop HAProxy is up and returns both passes; the second is the
// reload of an HAProxy whose state the loop does not know. The loop and
// HAProxy stop when the test ends.
func runThenStartHAProxy(t *testing.T, ctx context.Context, cancel context.CancelFunc, c *Controller, sup *reload.Supervisor, up *atomic.Bool, history *History) (written, first Pass) {
	t.Helper()
	loopDone, supDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(loopDone)
		c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-loopDone
		if sup.PID() != 0 {
			<-supDone
		}
	})
	written = nextPass(t, history, c, 0)
	go func() {
		defer close(supDone)
		sup.Run(ctx)
	}()
	readyCtx, readyCancel := context.WithTimeout(ctx, 10*time.Second)
	defer readyCancel()
	if err := sup.WaitReady(readyCtx); err != nil {
		t.Fatal(err)
	}
	up.Store(true)
	c.Notify()
	return written, nextPass(t, history, c, written.ID)
}
