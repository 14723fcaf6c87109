package controller

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
)

// With WholeChanges, a lone change that finds the loop idle is applied at
// once (no Quiet), an endpoint moved into a serving slot is one command,
// and a change that needs a reload still waits Quiet and takes in what
// came meanwhile: two changes written a moment apart are one reload.
// Without it (files), a lone change waits Quiet. Through HAProxy 2.6 and
// 3.0.
func TestQuietSkippedForWholeChanges(t *testing.T) {
	for version, bin := range testenv.HAProxies(t) {
		t.Run(version, func(t *testing.T) {
			t.Run("whole", func(t *testing.T) { testQuiet(t, bin, true) })
			t.Run("files", func(t *testing.T) { testQuiet(t, bin, false) })
		})
	}
}

func testQuiet(t *testing.T, bin string, whole bool) {
	// Long enough to tell apart from a pass's own time on a busy machine.
	const quiet = 300 * time.Millisecond
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
	history := NewHistory(20)
	c = New(Config{
		Source: NewFileSource(manifests), Store: store, Validate: reload.Validator(ctx, bin, 10*time.Second),
		HAProxy: sup.CLI(), Quiet: quiet, WholeChanges: whole, History: history, BuiltinTemplates: true,
		MinReloadInterval: time.Millisecond,
	}, renderer)
	// Written first for an HAProxy not up yet; then HAProxy starts on it
	// and the next pass reloads it.
	var up atomic.Bool
	c.cfg.HAProxyUp = up.Load
	write(outcomeClass + outcomeApp("a", "a.test", a1))
	waitPass := func(after int64) Pass { return nextPass(t, history, c, after) }
	get := func(host string) string { return getHost(t, httpPort, host) }
	// Written for an HAProxy that is not up yet; then HAProxy starts on
	// it and the next pass reloads it, not knowing what it runs.
	_, first := runThenStartHAProxy(t, ctx, cancel, c, sup, &up, history)
	if first.Outcome != OutcomeReload || get("a.test") != "a1" {
		t.Fatalf("first pass %s (%s), a.test %q", first.Outcome, first.Error, get("a.test"))
	}

	// A lone endpoint move after a quiet moment.
	time.Sleep(2 * quiet)
	write(outcomeClass + outcomeApp("a", "a.test", a2))
	moved := waitPass(first.ID)
	if moved.Outcome != OutcomeRuntime || get("a.test") != "a2" {
		t.Fatalf("endpoint move: %s (%s), a.test %q", moved.Outcome, moved.Error, get("a.test"))
	}
	switch {
	case whole && moved.Phases.Wait >= quiet/2:
		t.Errorf("whole changes: the endpoint move waited %s for its pass; want it at once", moved.Phases.Wait)
	case !whole && moved.Phases.Wait < quiet:
		t.Errorf("files: the endpoint move waited %s for its pass; want Quiet (%s)", moved.Phases.Wait, quiet)
	}
	// The slot served a1: moving it is one command, no state change (on
	// 2.6 too: maintenance would leave the backend without a server).
	if want := []string{"set server default_a_80/s1 addr 127.0.0.1 port " + strconv.Itoa(a2)}; !slices.Equal(moved.Commands, want) {
		t.Errorf("endpoint move commands %q; want %q", moved.Commands, want)
	}

	// A change needing a reload, and a second change a moment later
	// (well within Quiet): one reload takes in both.
	time.Sleep(2 * quiet)
	write(outcomeClass + outcomeApp("a", "a.test", a2) + outcomeApp("b", "b.test", b))
	time.Sleep(quiet / 6)
	write(outcomeClass + outcomeApp("a", "a.test", a2) + outcomeApp("b", "b.test", b) + quietIngress("c", "c.test", "b"))
	grown := waitPass(moved.ID)
	if grown.Outcome != OutcomeReload {
		t.Fatalf("new Service: %s (%s)", grown.Outcome, grown.Error)
	}
	if got := get("b.test") + " " + get("c.test"); got != "b b" {
		t.Errorf("after the reload: b.test and c.test answer %q", got)
	}
	if h := history.List(0); len(h) != 4 {
		var ps []string
		for _, p := range h {
			ps = append(ps, string(p.Outcome)+" "+changesString(p.Trigger))
		}
		t.Errorf("passes %q; want the two changes in one reload", ps)
	}
}

// quietIngress routes host to Service svc.
func quietIngress(name, host, svc string) string {
	return `---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ` + name + `
spec:
  rules:
  - host: ` + host + `
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: ` + svc + `
            port:
              name: http
`
}

func changesString(cs []Change) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.String())
	}
	return strings.Join(s, ", ")
}
