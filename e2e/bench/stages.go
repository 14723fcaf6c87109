package bench

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/controller"
)

// Stages split one change's latency, from the API write's return to the
// first right answer, by the sidecar's record of the pass that applied
// it (/history): the clocks of the benchmark and of the sidecar are the
// same machine's wall clock.
type Stages struct {
	// Reload: the pass reloaded HAProxy (else it changed it at run time).
	Reload bool
	// Watch is from the write's return to the sidecar's loop being told
	// (the informer's event handled); negative when the API server's
	// event reached the sidecar before its answer reached the client.
	Watch time.Duration
	// Wait is from that notification to the pass's start (the loop's
	// debounce, Quiet, or a reload's spacing).
	Wait time.Duration
	// Read, Render, Plan are the pass's phases; Write and Check its
	// generation's files and haproxy -c (a reload's only); Apply its
	// runtime API commands (the master-CLI round trip, HAProxy's answer
	// included) or its reload (until the new worker runs).
	Read, Render, Plan, Write, Check, Apply time.Duration
	// After is from the runtime commands' answer (or the reload's end) to
	// the probe's first right answer: HAProxy's next request after the
	// change, and the probe's resolution (one request each PollInterval,
	// over a new connection).
	After time.Duration
}

// StageOf finds the pass of passes (newest first) triggered by a change
// of the object kind ns/name that ended with outcome, and splits the
// change written at written and served at served by it. ok is false
// when there is no such pass.
func StageOf(passes []controller.Pass, kind, ns, name string, outcome controller.Outcome, written, served time.Time) (Stages, bool) {
	for _, p := range passes {
		for _, c := range p.Trigger {
			if c.Kind != kind || c.Namespace != ns || c.Name != name || p.Outcome != outcome {
				continue
			}
			wait := p.Phases.Wait
			if wait == 0 && p.ChangeToApplied > 0 {
				// A sidecar whose record has no wait phase: the record's
				// Took and ChangeToApplied end at the same moment.
				wait = p.ChangeToApplied - p.Took
			}
			notified := p.Time.Add(-wait)
			ph := p.Phases
			applied := p.Time.Add(ph.Read + ph.Render + ph.Plan + ph.Write + ph.Check + ph.Apply)
			return Stages{Reload: outcome == controller.OutcomeReload, Watch: notified.Sub(written), Wait: wait,
				Read: ph.Read, Render: ph.Render, Plan: ph.Plan, Write: ph.Write, Check: ph.Check,
				Apply: ph.Apply, After: served.Sub(applied)}, true
		}
	}
	return Stages{}, false
}

// stage is one stage as the results table names it.
type stage struct {
	name string
	of   func(Stages) time.Duration
	// reloadOnly: not a stage of a runtime change.
	reloadOnly bool
}

// stages in order; apply is named by the kind of pass.
var stages = []stage{
	{"watch: write returned → sidecar notified", func(s Stages) time.Duration { return s.Watch }, false},
	{"wait: notified → pass start (debounce)", func(s Stages) time.Duration { return s.Wait }, false},
	{"read: objects from the informers", func(s Stages) time.Duration { return s.Read }, false},
	{"render: model and files", func(s Stages) time.Duration { return s.Render }, false},
	{"plan: runtime commands", func(s Stages) time.Duration { return s.Plan }, false},
	{"write: the generation's files", func(s Stages) time.Duration { return s.Write }, true},
	{"check: haproxy -c (none when the reload is the check)", func(s Stages) time.Duration { return s.Check }, true},
	{"", func(s Stages) time.Duration { return s.Apply }, false},
	{"after: applied → probe's first right answer", func(s Stages) time.Duration { return s.After }, false},
}

// StageRows are one row per stage of ss (all runtime changes, or all
// reloads): p50, p90, p99 and max of each stage on its own (the rows'
// p50s need not add up to the whole's).
func StageRows(figure, n, haproxy, variant string, ss []Stages, missing int) []Row {
	reload := len(ss) > 0 && ss[0].Reload
	rows := make([]Row, 0, len(stages))
	for _, st := range stages {
		if st.reloadOnly && !reload {
			continue
		}
		name := st.name
		if name == "" {
			name = "apply: master-CLI round trip"
			if reload {
				name = "apply: the reload, until the new worker runs"
			}
		}
		ds := make([]time.Duration, 0, len(ss))
		for _, s := range ss {
			ds = append(ds, st.of(s))
		}
		notes := "each stage's own percentiles (sidecar's /history and the probe's clock)"
		if missing > 0 {
			notes += fmt.Sprintf("; %d changes without a pass of their own in /history", missing)
		}
		rows = append(rows, LatencyRow(figure+" · "+name, n, haproxy, variant, ds, 0, notes))
	}
	return rows
}

// History is the sidecar's newest n passes (/history?n=N on the debug
// address), newest first.
func (s *Sidecar) History(n int) ([]controller.Pass, error) {
	data, err := s.debugGet(fmt.Sprintf("/history?n=%d", n))
	if err != nil {
		return nil, err
	}
	var passes []controller.Pass
	if err := json.Unmarshal(data, &passes); err != nil {
		return nil, fmt.Errorf("/history: %w", err)
	}
	return passes, nil
}
