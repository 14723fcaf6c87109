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
	// Watch is from the write's return to the sidecar's loop being told
	// (the informer's event handled); negative when the API server's
	// event reached the sidecar before its answer reached the client.
	Watch time.Duration
	// Wait is from that notification to the pass's start (the loop's
	// debounce, Quiet).
	Wait time.Duration
	// Read, Render, Plan are the pass's phases; Apply its runtime API
	// commands: the master-CLI round trip, HAProxy's answer included.
	Read, Render, Plan, Apply time.Duration
	// After is from the runtime commands' answer to the probe's first
	// right answer: HAProxy's next request after the change, and the
	// probe's resolution (one request each PollInterval, over a new
	// connection).
	After time.Duration
}

// StageOf finds the pass of passes (newest first) triggered by an update
// of the EndpointSlice ns/name and splits the change written at written
// and served at served by it. ok is false when no such pass is there,
// or it was not a runtime pass.
func StageOf(passes []controller.Pass, ns, name string, written, served time.Time) (Stages, bool) {
	for _, p := range passes {
		for _, c := range p.Trigger {
			if c.Kind != "EndpointSlice" || c.Namespace != ns || c.Name != name || p.Outcome != controller.OutcomeRuntime {
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
			applied := p.Time.Add(ph.Read + ph.Render + ph.Plan + ph.Apply)
			return Stages{Watch: notified.Sub(written), Wait: wait, Read: ph.Read, Render: ph.Render, Plan: ph.Plan,
				Apply: ph.Apply, After: served.Sub(applied)}, true
		}
	}
	return Stages{}, false
}

// stageNames are the stages as the results table names them, in order.
var stageNames = []string{
	"watch: write returned → sidecar notified",
	"wait: notified → pass start (debounce)",
	"read: objects from the informers",
	"render: model and files",
	"plan: runtime commands",
	"apply: master-CLI round trip",
	"after: commands answered → probe's first right answer",
}

func (s Stages) list() []time.Duration {
	return []time.Duration{s.Watch, s.Wait, s.Read, s.Render, s.Plan, s.Apply, s.After}
}

// StageRows are one row per stage of ss: p50, p90, p99 and max of each
// stage on its own (the rows' p50s need not add up to the whole's).
func StageRows(figure, n, haproxy, variant string, ss []Stages, missing int) []Row {
	rows := make([]Row, 0, len(stageNames))
	for i, name := range stageNames {
		ds := make([]time.Duration, 0, len(ss))
		for _, s := range ss {
			ds = append(ds, s.list()[i])
		}
		notes := "each stage's own percentiles (sidecar's /history and the probe's clock)"
		if missing > 0 {
			notes += fmt.Sprintf("; %d changes without a runtime pass of their own in /history", missing)
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
