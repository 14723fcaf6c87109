package controller

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
)

// Outcome is how a pass ended.
type Outcome string

const (
	// OutcomeUnchanged: the files are what HAProxy runs already.
	OutcomeUnchanged Outcome = "unchanged"
	// OutcomeRuntime: applied through the runtime API, no reload.
	OutcomeRuntime Outcome = "runtime"
	// OutcomeReload: a new generation and a reload.
	OutcomeReload Outcome = "reload"
	// OutcomeWritten: validated and written; HAProxy was not up yet.
	OutcomeWritten Outcome = "written"
	// OutcomeRejected: HAProxy refused the candidate; the last good
	// configuration stays.
	OutcomeRejected Outcome = "rejected"
	// OutcomeFailed: reading, rendering, writing or reloading failed; it
	// is retried.
	OutcomeFailed Outcome = "failed"
)

// Change is one object (or the templates) that changed since the pass
// before.
type Change struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Op is added, updated or deleted.
	Op string `json:"op"`
}

func (c Change) String() string {
	if c.Namespace == "" {
		return fmt.Sprintf("%s %s %s", c.Op, c.Kind, c.Name)
	}
	return fmt.Sprintf("%s %s %s/%s", c.Op, c.Kind, c.Namespace, c.Name)
}

// Phases are the durations of a pass's steps.
type Phases struct {
	// Wait is from the first change notification the pass took in to its
	// start: the loop's Quiet, or the pass before it still running (zero
	// for a retry).
	Wait   time.Duration `json:"wait,omitempty"`
	Read   time.Duration `json:"read"`
	Render time.Duration `json:"render"`
	Plan   time.Duration `json:"plan"`
	// Write is writing the generation (Check excluded).
	Write time.Duration `json:"write"`
	// Check is haproxy -c (none for a runtime-only change).
	Check time.Duration `json:"check"`
	// Apply is the runtime API commands or the reload.
	Apply time.Duration `json:"apply"`
}

// Pass is the record of one pass of the loop: what triggered it, how it
// was applied, how long each step took, and what changed in the files.
type Pass struct {
	ID      int64     `json:"id"`
	Time    time.Time `json:"time"`
	Trigger []Change  `json:"trigger"`
	Outcome Outcome   `json:"outcome"`
	// ReloadCause is why a reload was needed, from a closed set
	// (Causes); ReloadReason says it in words (which file changed, what a
	// failed runtime command said).
	ReloadCause  Cause  `json:"reload_cause,omitempty"`
	ReloadReason string `json:"reload_reason,omitempty"`
	// Commands are the runtime API commands sent.
	Commands   []string      `json:"commands,omitempty"`
	Phases     Phases        `json:"phases"`
	Took       time.Duration `json:"took"`
	Generation int           `json:"generation"`
	// Error is why the pass failed or the candidate was rejected (with the
	// objects behind HAProxy's failing line).
	Error string `json:"error,omitempty"`
	// ChangeToApplied is the time from the first change notification
	// this pass took in to HAProxy serving the result.
	ChangeToApplied time.Duration `json:"change_to_applied,omitempty"`
	// Diff is the unified diff of every generated file (certificates by
	// fingerprint, never key bytes).
	Diff string `json:"diff,omitempty"`
	// Problems is the number of problems after the pass; NewProblems and
	// GoneProblems are the ones it added and resolved (at most
	// maxTrigger each), with their typed reasons.
	Problems     int              `json:"problems"`
	NewProblems  []render.Problem `json:"new_problems,omitempty"`
	GoneProblems []render.Problem `json:"gone_problems,omitempty"`
}

// problemChanges lists the problems in next but not in old, and the other
// way round, compared as reported.
func problemChanges(old, next []render.Problem) (added, gone []render.Problem) {
	was := make(map[string]bool, len(old))
	for _, p := range old {
		was[p.Report()] = true
	}
	now := make(map[string]bool, len(next))
	for _, p := range next {
		now[p.Report()] = true
		if !was[p.Report()] && len(added) < maxTrigger {
			added = append(added, p)
		}
	}
	for _, p := range old {
		if !now[p.Report()] && len(gone) < maxTrigger {
			gone = append(gone, p)
		}
	}
	return added, gone
}

// Changed is true for passes that belong in the history: anything but
// "unchanged".
func (p *Pass) Changed() bool { return p.Outcome != OutcomeUnchanged }

// result is a pass's outcome value. The pass's steps (render, plan,
// runtime, write and check, reload) return the values it is made of, and
// finish turns it, in one place, into everything that reports a pass:
// the record (the history, OnPass and so the metrics), the log line,
// /status and the counters, and OnApplied's event.
type result struct {
	outcome Outcome
	// cause and detail say why the pass reloaded, or would have: set
	// once a plan is made, cleared when HAProxy was not up to reload.
	cause  Cause
	detail string
	// generation is the one the pass wrote (0 for a runtime change, whose
	// files are written in the background), or, after a candidate was
	// put back, the one current again.
	generation int
	// commands are the runtime API commands sent.
	commands []string
	trigger  []Change
	// problems are the problems after the pass (nil when nothing was
	// rendered); newProblems and goneProblems what it added and resolved.
	problems                  []render.Problem
	newProblems, goneProblems []render.Problem
	phases                    Phases
	// err is why the pass failed (retried) or its candidate was rejected
	// (not retried until the input changes).
	err error
	// rejected says which refusal a rejected candidate met (also set for
	// a failure that followed one: a stuck master that could not be
	// replaced); rejectErr is what was said about the candidate, reasons
	// HAProxy's alerts with the objects behind them, stuck the reload
	// that did not finish.
	rejected  rejection
	rejectErr error
	reasons   string
	stuck     *reload.ReloadTimeoutError

	// model and out are what the pass rendered (nil when nothing was),
	// old the files HAProxy ran before (the history's diff).
	model    *render.Model
	old, out *haproxycfg.Output
	// maps and slots count a runtime change's operations; worker is a
	// reload's new worker and oldWorkers the ones still draining.
	maps, slots        int
	worker, oldWorkers int
	// started is when the pass's last attempt began (a reload waiting
	// for its spacing starts again): OnApplied's Took.
	started time.Time
}

// rejection is the refusal a candidate met: each has its own log line.
type rejection int

const (
	notRejected rejection = iota
	// rejectedRender: the templates failed to execute.
	rejectedRender
	// rejectedUnfinished: the same files HAProxy did not finish parsing
	// before; not tried again.
	rejectedUnfinished
	// rejectedCheck: haproxy -c refused the candidate or did not finish.
	rejectedCheck
	// rejectedReload: HAProxy refused to reload onto it.
	rejectedReload
	// rejectedReloadTimeout: the reload did not finish in time.
	rejectedReloadTimeout
)

// failedWith ends a pass as failed (retried after a backoff).
func (r result) failedWith(err error) result {
	r.outcome, r.err = OutcomeFailed, err
	return r
}

// rejectedWith ends a pass with its candidate rejected.
func (r result) rejectedWith(why rejection, err error) result {
	r.outcome, r.rejected, r.err, r.rejectErr = OutcomeRejected, why, err, err
	return r
}

// statusErr is what /status says about a failed or rejected pass: the
// pass's error, or for a candidate not tried again, what was said the
// time it was tried.
func (r result) statusErr() error {
	if r.rejected == rejectedUnfinished {
		if inner := errors.Unwrap(r.err); inner != nil {
			return inner
		}
	}
	return r.err
}

// record is the pass record of r for the pass id that started at start.
// changedAt is when the first change this pass took in was notified
// (UnixNano), 0 for a retry.
func (r result) record(id int64, start time.Time, changedAt int64) *Pass {
	rec := &Pass{
		ID: id, Time: start, Trigger: r.trigger, Outcome: r.outcome, ReloadCause: r.cause, ReloadReason: r.detail,
		Commands: r.commands, Phases: r.phases, Took: time.Since(start), Generation: r.generation,
		Problems: len(r.problems), NewProblems: r.newProblems, GoneProblems: r.goneProblems,
	}
	if r.err != nil {
		rec.Error = r.err.Error()
	}
	if changedAt != 0 {
		rec.Phases.Wait = max(start.Sub(time.Unix(0, changedAt)), 0)
		switch r.outcome {
		case OutcomeRuntime, OutcomeReload, OutcomeUnchanged, OutcomeWritten:
			rec.ChangeToApplied = time.Since(time.Unix(0, changedAt))
		}
	}
	return rec
}

// finish reports a pass: counters and /status first (whoever reads the
// log finds the same in /status), then the log line, OnApplied, and the
// record for OnPass and the history. It returns the record.
func (c *Controller) finish(r result, id int64, start time.Time, changedAt int64, diffs chan<- diffJob) *Pass {
	rec := r.record(id, start, changedAt)
	switch r.outcome {
	case OutcomeUnchanged:
		c.stats.unchanged.Add(1)
	case OutcomeRuntime:
		c.stats.runtime.Add(1)
	case OutcomeReload:
		c.stats.reloads.Add(1)
	case OutcomeFailed:
		c.stats.failures.Add(1)
	}
	switch r.outcome {
	case OutcomeUnchanged, OutcomeRuntime, OutcomeReload:
		c.applied()
	case OutcomeRejected, OutcomeFailed:
		c.failed(r.statusErr())
	}
	c.logPass(r, rec)
	switch r.outcome {
	case OutcomeUnchanged, OutcomeRuntime, OutcomeReload:
		ev := Event{Model: r.model, Changed: r.outcome != OutcomeUnchanged, Reloaded: r.outcome == OutcomeReload,
			Generation: r.generation, Problems: r.problems, Took: time.Since(r.started)}
		if r.outcome == OutcomeRuntime {
			ev.RuntimeOps = r.maps + r.slots
		}
		c.notifyApplied(ev)
	}
	// OnPass first: once rec is in the history, the diff worker writes
	// its Diff under the history's lock.
	if c.cfg.OnPass != nil {
		c.cfg.OnPass(*rec)
	}
	if c.cfg.History != nil && rec.Changed() {
		c.cfg.History.add(rec)
		if r.out != nil {
			select {
			case diffs <- diffJob{rec: rec, old: r.old, next: r.out}:
			default:
				c.cfg.History.setDiff(rec, "(diff skipped: passes came faster than diffs could be made)")
			}
		}
	}
	return rec
}

// logPass writes a pass's log line, if it has one: a change applied or
// written, or a candidate rejected. A failure is logged by Run, which
// says when it is retried.
func (c *Controller) logPass(r result, rec *Pass) {
	log := c.cfg.Log
	switch r.rejected {
	case rejectedRender:
		log.Error("render failed; keeping the last good configuration", zap.Error(r.rejectErr))
	case rejectedUnfinished:
		log.Warn("the configuration did not finish parsing before; not trying it again until the objects or templates change")
	case rejectedCheck:
		log.Error("HAProxy rejects the new configuration; keeping the last good one", zap.String("reasons", r.reasons))
	case rejectedReload:
		log.Error("HAProxy refused to reload onto the new configuration; keeping the last good one", zap.String("reasons", r.reasons))
	case rejectedReloadTimeout:
		log.Error("HAProxy did not finish reloading", zap.Error(r.rejectErr), zap.NamedError("wait", r.stuck.Err))
	}
	switch r.outcome {
	case OutcomeWritten:
		log.Info("configuration written; HAProxy is not up yet", zap.Int("generation", r.generation))
	case OutcomeReload:
		log.Info("reloaded HAProxy", append(passFields(rec, r.out),
			zap.Int("worker", r.worker), zap.Int("old_workers", r.oldWorkers),
			zap.String("reason", r.detail), zap.String("cause", string(r.cause)))...)
	case OutcomeRuntime:
		fields := passFields(rec, r.out)
		if rec.Generation == 0 {
			// A runtime-only pass's files are written afterwards
			// (writer.go): the line names the generation on disk now,
			// which /status shows, rather than 0.
			if g, err := c.cfg.Store.CurrentGeneration(); err == nil {
				fields = slices.DeleteFunc(fields, func(f zap.Field) bool { return f.Key == "generation" })
				fields = append(fields, zap.Int("generation", g))
			}
		}
		log.Info("updated HAProxy at run time", append(fields,
			zap.Int("map_changes", r.maps), zap.Int("slot_changes", r.slots))...)
	}
}

// passFields are the log fields of a pass that changed what HAProxy
// serves, read from its record: one line says what triggered it, how long
// each phase took, how large the result is and how it was applied.
func passFields(rec *Pass, out *haproxycfg.Output) []zap.Field {
	trigger := make([]string, 0, len(rec.Trigger))
	for _, c := range rec.Trigger {
		trigger = append(trigger, c.String())
	}
	size := 0
	for _, f := range out.Files {
		size += f.Size()
	}
	return []zap.Field{
		zap.Int64("pass", rec.ID), zap.Int("generation", rec.Generation), zap.Strings("trigger", trigger),
		zap.Duration("took", rec.Took), zap.Duration("read", rec.Phases.Read), zap.Duration("render", rec.Phases.Render),
		zap.Duration("plan", rec.Phases.Plan), zap.Duration("write", rec.Phases.Write), zap.Duration("check", rec.Phases.Check),
		zap.Duration("apply", rec.Phases.Apply), zap.Int("files", len(out.Files)), zap.Int("bytes", size),
	}
}
