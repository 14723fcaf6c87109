// Package controller is the sidecar's main loop: a change in the source
// triggers a render; the result is validated and made current, and HAProxy
// is updated through its runtime API when that is enough, or reloaded.
package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
)

// Source provides the objects to render. The file source reads manifests;
// the Kubernetes source reads informer caches.
type Source interface {
	Inputs(ctx context.Context) (render.Inputs, []render.Problem, error)
}

// Renderer turns inputs into files (render.BuildModel + haproxycfg.Render with
// the command line's settings). previous is the model HAProxy serves, or
// nil: endpoints keep their server slots (render.Options.Previous).
type Renderer func(in render.Inputs, previous *render.Model) (*render.Model, *haproxycfg.Output, error)

// HAProxy is what the loop needs from a running HAProxy; *reload.MasterCLI
// provides it.
type HAProxy interface {
	Reload(ctx context.Context) (reload.ReloadResult, error)
	// Send runs a pass's runtime API commands in order, in as few
	// master-CLI connections as possible.
	Send(ctx context.Context, b *reload.Batch) error
}

// Config wires a Controller.
type Config struct {
	Source Source
	Store  *reload.Store
	// Validate checks a candidate directory (normally haproxy -c).
	Validate func(dir string) error
	// HAProxy is nil when no HAProxy is to be updated (render-only use).
	HAProxy HAProxy
	// MinReloadInterval spaces reloads; runtime API updates are not
	// limited.
	MinReloadInterval time.Duration
	// Quiet is how long a change waits for more before it is applied.
	// It must stay small: a lone change is applied after at most this.
	Quiet time.Duration
	Log   *zap.Logger
	// OnApplied, when set, is called after successful passes, also when
	// nothing changed (status and Events follow the model, which can
	// change without the files changing). It is called off the loop, from
	// one goroutine, with the newest pass: passes that come faster than
	// it returns are folded into one call (Changed if any of them was),
	// so that its work (Events, metrics, linear in the cluster) never
	// delays the next change.
	OnApplied func(Event)
	// History, when set, keeps the passes that changed something.
	History *History
	// OnPass, when set, is called after every pass with its record
	// (metrics).
	OnPass func(Pass)
	// HAProxyUp, when set, says whether HAProxy can be reached now. While
	// it cannot (an HAProxy container that has not started yet), passes
	// still validate and write each configuration, so that HAProxy starts
	// on a complete one, and HAProxy is brought up to date by the first
	// pass after it is up (call Notify then).
	HAProxyUp func() bool
	// BuiltinTemplates says the renderer New gets uses the built-in
	// templates, whose output the tests check against HAProxy: its reloads
	// may validate their configurations from the first pass (see pass).
	// Other templates are trusted so only once HAProxy accepted their output.
	BuiltinTemplates bool
	// Templates names the custom templates directory (--templates), ""
	// for the built-in ones: a configuration HAProxy could not parse in
	// time is traced to them when they are custom (a lua-load of theirs
	// may be what never returns).
	Templates string
}

// Restarter is implemented by an HAProxy the sidecar supervises. A reload
// that missed its deadline leaves the master parsing a configuration that
// does not end; it takes no further reload. RestartStuck replaces that
// master (by PID) by a new one on the configuration current on disk.
type Restarter interface {
	RestartStuck(master int) error
}

// Event describes one successful pass of the loop.
type Event struct {
	// Model is what HAProxy serves now.
	Model *render.Model
	// Changed is false when the files were already what HAProxy runs.
	Changed    bool
	Reloaded   bool
	RuntimeOps int
	Generation int
	Problems   []render.Problem
	Took       time.Duration
}

// Stats are counters since start.
type Stats struct {
	Renders, Reloads, RuntimeUpdates, Unchanged, Failures int64
}

// Controller runs the loop. Create it with New.
type Controller struct {
	cfg     Config
	trigger chan struct{}

	mu       sync.Mutex
	renderer Renderer
	rendGen  int    // bumped by SetRenderer
	current  *state // what HAProxy runs; nil when unknown
	problems []render.Problem

	lastReload time.Time
	// provenRendGen is the rendGen of the newest templates HAProxy
	// accepted a configuration of, by haproxy -c or a reload (-1: none
	// yet).
	provenRendGen int
	// reloadSpacing is the time from lastReload to the next reload's
	// earliest start (see reloadSpacing).
	reloadSpacing time.Duration
	ready         atomic.Bool
	// written: a configuration rendered from the source passed
	// validation and is current on disk (the startup probe).
	written atomic.Bool
	// passStart is when the running pass started (UnixNano; 0 between
	// passes), for the liveness check.
	passStart atomic.Int64
	// model is the newest model rendered and written, for explain before
	// HAProxy serves it; everServed: some pass served an Ingress.
	model      *render.Model
	out        *haproxycfg.Output
	everServed bool
	// inputs and lastRendGen follow the objects and templates from pass
	// to pass, to name what triggered a pass.
	inputs      inputTracker
	lastRendGen int
	passID      atomic.Int64
	// pendingSince is when the first change not yet taken in by a pass
	// was notified (UnixNano; 0 when none).
	pendingSince atomic.Int64
	// lastErr is why the newest objects are not what HAProxy serves;
	// templateErr why the newest templates are not the ones in use.
	lastErr   error
	lastErrAt time.Time
	// unfinished is the newest candidate HAProxy did not finish parsing
	// within its deadline (haproxy -c or a reload), and unfinishedErr
	// what was said then. The same files are not tried again: each try
	// would cost the whole deadline again and, for a reload, a restart of
	// HAProxy (a restart is followed by a pass that renders the same).
	unfinished    *haproxycfg.Output
	unfinishedErr error
	templateErr   error
	lastApplied   time.Time
	stats         struct{ renders, reloads, runtime, unchanged, failures atomic.Int64 }
	// writer writes runtime-only passes' generations; writeErr: lastErr
	// is its failure.
	writer   *backgroundWriter
	writeErr bool
	// appliedNext is the event OnApplied gets next.
	appliedMu   sync.Mutex
	appliedNext *Event
	appliedKick chan struct{}
}

// Ready is true once a configuration rendered from the source is what
// HAProxy serves (the readiness probe).
func (c *Controller) Ready() bool { return c.ready.Load() }

// Written is true once a configuration rendered from the source passed
// validation and is current on disk, even if no HAProxy runs it yet (the
// startup probe: an HAProxy container started after it starts on it).
func (c *Controller) Written() bool { return c.written.Load() }

// stuckAfter is how long one pass may run before Live fails: reading,
// rendering, haproxy -c and a reload take seconds at most even at 10k
// Ingresses, and every call to HAProxy has its own timeout.
const stuckAfter = 2 * time.Minute

// Live returns an error when a pass has been running for longer than any
// pass should (the liveness probe): the loop is stuck and will never
// apply another change.
func (c *Controller) Live() error {
	if start := c.passStart.Load(); start != 0 {
		if d := time.Since(time.Unix(0, start)); d > stuckAfter {
			return fmt.Errorf("a pass has been running for %s", d.Round(time.Second))
		}
	}
	return nil
}

// Model returns the model HAProxy serves (or, before HAProxy is up, the
// one written for it), or nil before the first pass.
func (c *Controller) Model() *render.Model {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current == nil {
		return c.model
	}
	return c.current.model
}

// HAProxyRestarted tells the loop that HAProxy was started again from the
// files on disk (after it died): what it runs is no longer known, so the
// next pass reloads it with what the source says now.
func (c *Controller) HAProxyRestarted() {
	c.setCurrent(nil)
	c.Notify()
}

// New returns a controller rendering with r.
func New(cfg Config, r Renderer) *Controller {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Quiet == 0 {
		cfg.Quiet = 2 * time.Millisecond
	}
	c := &Controller{cfg: cfg, renderer: r, trigger: make(chan struct{}, 1), appliedKick: make(chan struct{}, 1), provenRendGen: -1}
	if cfg.BuiltinTemplates {
		c.provenRendGen = 0
	}
	c.writer = newBackgroundWriter(cfg.Store, cfg.Log, c.writeFailed, c.writeDone)
	return c
}

// notifyApplied hands a pass's event to the OnApplied goroutine.
func (c *Controller) notifyApplied(ev Event) {
	if c.cfg.OnApplied == nil {
		return
	}
	c.appliedMu.Lock()
	if c.appliedNext != nil && c.appliedNext.Changed {
		ev.Changed = true
	}
	c.appliedNext = &ev
	c.appliedMu.Unlock()
	select {
	case c.appliedKick <- struct{}{}:
	default:
	}
}

// deliverApplied calls OnApplied with the newest event until ctx is done.
func (c *Controller) deliverApplied(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.appliedKick:
		}
		c.appliedMu.Lock()
		ev := c.appliedNext
		c.appliedNext = nil
		c.appliedMu.Unlock()
		if ev != nil {
			c.cfg.OnApplied(*ev)
		}
	}
}

// writeFailed and writeDone are the background writer's outcomes: a
// failure shows in /status until a write succeeds.
func (c *Controller) writeFailed(err error) {
	c.mu.Lock()
	c.lastErr, c.lastErrAt, c.writeErr = fmt.Errorf("writing configuration: %w", err), time.Now(), true
	c.mu.Unlock()
	c.stats.failures.Add(1)
}

func (c *Controller) writeDone(int) {
	c.mu.Lock()
	if c.writeErr {
		c.lastErr, c.writeErr = nil, false
	}
	c.mu.Unlock()
}

// Notify asks for a pass. It never blocks: notifications that arrive while
// a pass is pending or running fold into one more pass.
func (c *Controller) Notify() {
	c.pendingSince.CompareAndSwap(0, time.Now().UnixNano())
	select {
	case c.trigger <- struct{}{}:
	default:
	}
}

// SetRenderer replaces the renderer (after the templates changed) and
// triggers a pass.
func (c *Controller) SetRenderer(r Renderer) {
	c.mu.Lock()
	c.renderer = r
	c.rendGen++
	c.templateErr = nil
	c.mu.Unlock()
	c.Notify()
}

// TemplatesFailed records that the templates on disk do not parse, so
// the renderer in use is an older one (shown in Status until SetRenderer).
func (c *Controller) TemplatesFailed(err error) {
	c.mu.Lock()
	c.templateErr = err
	c.mu.Unlock()
}

// Status is the loop's state, for the admin server's /status.
type Status struct {
	// Ready: a configuration rendered from the source is being served.
	Ready bool `json:"ready"`
	// LastError says why the newest objects are not what HAProxy serves
	// (a template that fails to execute, a configuration HAProxy refuses,
	// a failed reload); empty once a pass brings HAProxy up to date.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// TemplateError says why edited templates are not in use.
	TemplateError string `json:"template_error,omitempty"`
	// LastApplied is when HAProxy was last brought up to date.
	LastApplied time.Time `json:"last_applied,omitzero"`
	Renders     int64     `json:"renders"`
	Reloads     int64     `json:"reloads"`
	// RuntimeUpdates counts passes applied through the runtime API alone.
	RuntimeUpdates int64 `json:"runtime_updates"`
	Unchanged      int64 `json:"unchanged"`
	Failures       int64 `json:"failures"`
	// Problems is what the last render skipped or noticed.
	Problems []string `json:"problems"`
	// ProblemDetails are the same problems as objects: kind, namespace,
	// name, field, reason (from a closed set, for programs) and message.
	ProblemDetails []render.Problem `json:"problem_details"`
}

// Status returns the loop's state.
func (c *Controller) Status() Status {
	st := c.Stats()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Status{
		Ready: c.ready.Load(), LastApplied: c.lastApplied,
		Renders: st.Renders, Reloads: st.Reloads, RuntimeUpdates: st.RuntimeUpdates,
		Unchanged: st.Unchanged, Failures: st.Failures,
		Problems: make([]string, 0, len(c.problems)), ProblemDetails: make([]render.Problem, 0, len(c.problems)),
	}
	if c.lastErr != nil {
		s.LastError, s.LastErrorAt = c.lastErr.Error(), c.lastErrAt
	}
	if c.templateErr != nil {
		s.TemplateError = c.templateErr.Error()
	}
	for _, p := range c.problems {
		s.Problems = append(s.Problems, p.Report())
		s.ProblemDetails = append(s.ProblemDetails, p)
	}
	return s
}

// failed records why the last pass left HAProxy behind the objects.
func (c *Controller) failed(err error) {
	c.mu.Lock()
	c.lastErr, c.lastErrAt = err, time.Now()
	c.mu.Unlock()
}

// applied records that HAProxy serves the newest objects.
func (c *Controller) applied() {
	c.mu.Lock()
	c.lastErr, c.lastApplied = nil, time.Now()
	c.mu.Unlock()
}

// Stats returns the counters.
func (c *Controller) Stats() Stats {
	return Stats{
		Renders: c.stats.renders.Load(), Reloads: c.stats.reloads.Load(), RuntimeUpdates: c.stats.runtime.Load(),
		Unchanged: c.stats.unchanged.Load(), Failures: c.stats.failures.Load(),
	}
}

// Problems returns what the last render skipped.
func (c *Controller) Problems() []render.Problem {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.problems
}

// Run applies changes until ctx is done. The first pass runs at once.
func (c *Controller) Run(ctx context.Context) error {
	c.Notify()
	retry := time.NewTimer(0)
	<-retry.C
	backoff := time.Duration(0)
	diffs := make(chan diffJob, 16)
	defer close(diffs)
	go c.diffWorker(diffs)
	go c.deliverApplied(ctx)
	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writer.run(writerCtx)
	}()
	// On the way out, what HAProxy serves is written before Run returns.
	defer func() {
		stopWriter()
		<-writerDone
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.trigger:
		case <-retry.C:
		}
		// A short quiet period lets a burst (an editor writing several
		// files, kubectl apply -f dir) land in one pass.
		if !sleep(ctx, c.cfg.Quiet) {
			return nil
		}
		// Drain: everything up to now is in this pass.
		select {
		case <-c.trigger:
		default:
		}
		c.passStart.Store(time.Now().UnixNano())
		rec := &Pass{ID: c.passID.Add(1), Time: time.Now()}
		changedAt := c.pendingSince.Swap(0) // 0: a retry, not a change
		old, next, err := c.pass(ctx, rec)
		c.passStart.Store(0)
		if err != nil && ctx.Err() != nil {
			return nil
		}
		c.record(rec, err, changedAt, old, next, diffs)
		if err != nil {
			c.stats.failures.Add(1)
			c.failed(err)
			backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
			c.cfg.Log.Error("apply failed; will retry", zap.Error(err), zap.Duration("retry_in", backoff))
			retry.Reset(backoff)
			continue
		}
		backoff = 0
	}
}

// record finishes a pass's record and hands it to the history and
// OnPass.
// changedAt is when the first change this pass took in was notified
// (UnixNano), 0 for a retry.
func (c *Controller) record(rec *Pass, err error, changedAt int64, old, next *haproxycfg.Output, diffs chan<- diffJob) {
	rec.Took = time.Since(rec.Time)
	if err != nil {
		rec.Outcome, rec.Error = OutcomeFailed, err.Error()
	}
	if changedAt != 0 {
		switch rec.Outcome {
		case OutcomeRuntime, OutcomeReload, OutcomeUnchanged, OutcomeWritten:
			rec.ChangeToApplied = time.Since(time.Unix(0, changedAt))
		}
	}
	// OnPass first: once rec is in the history, the diff worker writes
	// its Diff under the history's lock.
	if c.cfg.OnPass != nil {
		c.cfg.OnPass(*rec)
	}
	if c.cfg.History != nil && rec.Changed() {
		c.cfg.History.add(rec)
		if next != nil {
			select {
			case diffs <- diffJob{rec: rec, old: old, next: next}:
			default:
				c.cfg.History.setDiff(rec, "(diff skipped: passes came faster than diffs could be made)")
			}
		}
	}
}

// diffJob is a diff to make for the history, off the loop: at 10k
// Ingresses a diff takes longer than the change it describes.
type diffJob struct {
	rec       *Pass
	old, next *haproxycfg.Output
}

func (c *Controller) diffWorker(jobs <-chan diffJob) {
	for j := range jobs {
		c.cfg.History.setDiff(j.rec, FileDiff(j.old, j.next))
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// errInvalid marks a candidate HAProxy refused: nothing to retry until the
// input changes.
var errInvalid = errors.New("invalid configuration")

// pass renders once and brings HAProxy to the result, filling rec. It
// returns the files HAProxy ran before and the candidate (for the
// history's diff; nil when nothing was rendered).
func (c *Controller) pass(ctx context.Context, rec *Pass) (old, candidate *haproxycfg.Output, err error) {
	for {
		start := time.Now()
		c.mu.Lock()
		renderer, rendGen, current := c.renderer, c.rendGen, c.current
		c.mu.Unlock()
		if current != nil {
			old = current.out
		}

		in, loadProblems, err := c.cfg.Source.Inputs(ctx)
		if err != nil {
			return old, nil, fmt.Errorf("reading objects: %w", err)
		}
		readDone := time.Now()
		rec.Phases.Read = readDone.Sub(start)
		// What changed, for the pass record, is found on the other core
		// while the render runs: both only read the objects, and on a
		// first pass at 10k Ingresses it is tens of milliseconds.
		tracked := make(chan []Change, 1)
		go func() { tracked <- c.inputs.update(in) }()

		var previous *render.Model
		if current != nil {
			previous = current.model
		} else {
			c.mu.Lock()
			previous = c.model // what is on disk
			c.mu.Unlock()
		}
		model, out, err := renderer(in, previous)
		trigger := <-tracked
		renderDone := time.Now()
		rec.Phases.Render = renderDone.Sub(readDone)
		c.mu.Lock()
		rec.Trigger = capChanges(trigger)
		if c.lastRendGen != rendGen {
			rec.Trigger = append(rec.Trigger, Change{Kind: "Templates", Name: "haproxy.cfg.tmpl", Op: "updated"})
		}
		c.mu.Unlock()
		c.stats.renders.Add(1)
		if err != nil {
			// A template that fails to execute: keep serving the last
			// good configuration and wait for the next change.
			err = fmt.Errorf("render failed; keeping the last good configuration: %w", err)
			rec.Outcome, rec.Error = OutcomeRejected, err.Error()
			c.failed(err)
			c.cfg.Log.Error("render failed; keeping the last good configuration", zap.Error(err))
			return old, nil, nil
		}
		problems := append(loadProblems, model.Problems...)
		if p, ok := c.nothingServed(model); ok {
			problems = append(problems, p)
		}
		rec.Problems = len(problems)
		c.mu.Lock()
		rec.NewProblems, rec.GoneProblems = problemChanges(c.problems, problems)
		c.problems = problems
		c.lastRendGen = rendGen
		c.mu.Unlock()
		next := &state{model: model, out: out, renderer: rendGen}
		haproxy := c.cfg.HAProxy
		if haproxy != nil && c.cfg.HAProxyUp != nil && !c.cfg.HAProxyUp() {
			// Not started yet: write and validate only.
			haproxy = nil
		}

		if current != nil && sameFiles(current.out, out) {
			c.stats.unchanged.Add(1)
			rec.Outcome = OutcomeUnchanged
			// Same files, but the model may differ in what is not
			// rendered (e.g. which Ingresses are served with no rules).
			c.setCurrent(&state{model: model, out: current.out, renderer: rendGen})
			c.applied()
			c.notifyApplied(Event{Model: model, Problems: problems, Took: time.Since(start)})
			return old, out, nil
		}
		c.mu.Lock()
		unfinished, unfinishedErr := c.unfinished, c.unfinishedErr
		c.mu.Unlock()
		if unfinished != nil && sameFiles(unfinished, out) {
			err := fmt.Errorf("not tried again, the same configuration as before: %w", unfinishedErr)
			rec.Outcome, rec.Error = OutcomeRejected, err.Error()
			c.failed(unfinishedErr)
			c.cfg.Log.Warn("the configuration did not finish parsing before; not trying it again until the objects or templates change")
			return old, out, nil
		}
		p := diff(current, next)
		planDone := time.Now()
		rec.Phases.Plan = planDone.Sub(renderDone)

		if !p.reload && haproxy != nil {
			rec.Commands = p.commands()
			if err := c.applyRuntime(ctx, p); err != nil {
				// HAProxy may now be between the two states: make it
				// whole with a reload. Forgetting the current state makes
				// every later plan (after a rate-limit wait, too) a
				// reload, never a replay of half-applied commands.
				c.cfg.Log.Warn("runtime update failed; reloading instead", zap.Error(err))
				c.setCurrent(nil)
				current = nil
				p = reloadFor("a runtime API command failed: " + err.Error())
				rec.Commands = nil
			}
		}
		runtimeDone := time.Now()
		if p.reload && haproxy != nil {
			if wait := c.reloadSpacing - time.Since(c.lastReload); wait > 0 {
				c.cfg.Log.Debug("reload rate-limited", zap.Duration("wait", wait))
				if !sleep(ctx, wait) {
					return old, nil, ctx.Err()
				}
				// Whatever changed meanwhile goes into this reload.
				select {
				case <-c.trigger:
				default:
				}
				continue
			}
		}
		rec.ReloadReason = p.reason

		if !p.reload && haproxy != nil {
			// HAProxy serves next already. The new generation differs
			// from the validated current one only in map entries and
			// server slot addresses, which HAProxy has just accepted:
			// it is written in the background (no haproxy -c), and the
			// next change need not wait for the disk.
			c.writer.submit(Files(out))
			c.mu.Lock()
			c.model, c.out = model, out
			c.mu.Unlock()
			c.appliedAtRuntime(rec, out, p, runtimeDone.Sub(planDone))
			c.setCurrent(next)
			c.applied()
			c.notifyApplied(Event{Model: model, Changed: true, Problems: problems, RuntimeOps: p.runtimeOps(), Took: time.Since(start)})
			return old, out, nil
		}
		// This pass writes (and validates) a generation itself: what the
		// background writer has not written yet goes first.
		c.writer.settle(ctx)
		validate := c.cfg.Validate
		timedValidate := func(dir string) error {
			t := time.Now()
			err := validate(dir)
			rec.Phases.Check = time.Since(t)
			return err
		}
		files := Files(out)
		// A reload validates what it loads, more strictly than haproxy -c,
		// and one HAProxy refuses leaves the old worker serving: a pass that
		// reloads stages its generation and lets the reload be the check
		// (at 10k Ingresses that saves a quarter of a second of HAProxy
		// parsing). Not for a configuration without a listener, which only
		// haproxy -c refuses, and not for templates HAProxy has not accepted
		// the output of yet: a template error, the likely cause of a
		// refusal, costs a haproxy -c run instead of a failed reload.
		staged := p.reload && haproxy != nil && rendGen == c.provenRendGen &&
			reload.HasListener(files[reload.ConfigName])
		writeStart := time.Now()
		var res reload.Result
		if staged {
			res, err = c.cfg.Store.Stage(ctx, files)
			if errors.Is(err, reload.ErrNoCurrent) {
				staged = false
			}
		}
		if !staged {
			res, err = c.cfg.Store.Apply(ctx, files, timedValidate)
		}
		rec.Phases.Write = time.Since(writeStart) - rec.Phases.Check
		rec.Generation = res.Generation
		if err != nil {
			var ce *reload.CheckError
			if errors.As(err, &ce) {
				// Recorded before it is logged: whoever reads the log
				// finds it in /status too.
				reasons := ExplainCheckError(ce, out)
				if ce.TimedOut() {
					reasons += c.unfinishedCauses(rec)
				}
				err := fmt.Errorf("HAProxy rejects the new configuration; keeping the last good one: %s", reasons)
				rec.Outcome, rec.Error = OutcomeRejected, err.Error()
				c.failed(err)
				if ce.TimedOut() {
					c.setUnfinished(out, err)
				}
				c.cfg.Log.Error("HAProxy rejects the new configuration; keeping the last good one",
					zap.String("reasons", reasons))
				return old, out, nil // retried on the next change, not in a loop
			}
			return old, out, fmt.Errorf("writing configuration: %w", err)
		}
		if !staged {
			if res.Changed {
				c.provenRendGen = rendGen // haproxy -c accepted it
			}
			c.wrote(model, out)
		}
		if haproxy == nil && c.cfg.HAProxy != nil {
			// Written for an HAProxy that is not up yet; whatever it
			// starts on, the first pass after it is up reloads it.
			c.setCurrent(nil)
			rec.Outcome, rec.ReloadReason = OutcomeWritten, ""
			c.cfg.Log.Info("configuration written; HAProxy is not up yet", zap.Int("generation", res.Generation))
			return old, out, nil
		}
		ev := Event{Model: model, Changed: true, Generation: res.Generation, Problems: problems, RuntimeOps: p.runtimeOps()}
		// Without a known current state (first pass, or a failed
		// reload or update) HAProxy may run anything: reload even when
		// the files on disk are already these.
		applyStart := time.Now()
		if p.reload && haproxy != nil && (res.Changed || current == nil) {
			r, err := haproxy.Reload(ctx)
			rec.Phases.Apply = time.Since(applyStart)
			if err == nil && staged && res.Changed {
				err = c.cfg.Store.Confirm(res.Generation)
			}
			if err != nil {
				var re *reload.ReloadError
				refused := errors.As(err, &re)
				var te *reload.ReloadTimeoutError
				if errors.As(err, &te) {
					return old, out, c.reloadTimedOut(rec, te, staged, res, current, out)
				}
				if staged && res.Changed {
					rejected, restored, rbErr := c.cfg.Store.Rollback(res.Generation)
					if rbErr != nil {
						c.cfg.Log.Error("putting the previous generation back", zap.Int("generation", res.Generation), zap.Error(rbErr))
					} else {
						// The pass record names what is current, as after
						// a refused haproxy -c; the candidate is in rejected/.
						rec.Generation = restored
					}
					if refused && rbErr == nil {
						// The old worker serves what it served: current
						// stays, as after a failed haproxy -c.
						reasons := c.explainRefusal(re, rejected, out)
						err := fmt.Errorf("HAProxy refused to reload onto the new configuration; keeping the last good one: %s", reasons)
						rec.Outcome, rec.Error = OutcomeRejected, err.Error()
						c.failed(err)
						c.cfg.Log.Error("HAProxy refused to reload onto the new configuration; keeping the last good one",
							zap.String("reasons", reasons))
						return old, out, nil
					}
				}
				c.setCurrent(nil)
				return old, out, fmt.Errorf("reloading HAProxy: %w", err)
			}
			c.provenRendGen = rendGen
			if staged {
				c.wrote(model, out)
			}
			// Spaced from the previous reload's start, not its end: at
			// 10k Ingresses a reload takes over a second, and counting
			// from its end would add that to every back-to-back change.
			c.lastReload = applyStart
			c.reloadSpacing = reloadSpacing(c.cfg.MinReloadInterval, rec.Phases.Apply, r.OldWorkers)
			c.stats.reloads.Add(1)
			rec.Outcome = OutcomeReload
			ev.Reloaded, ev.RuntimeOps = true, 0
			c.cfg.Log.Info("reloaded HAProxy", append(passFields(rec, out),
				zap.Int("worker", r.Worker), zap.Int("old_workers", r.OldWorkers), zap.String("reason", p.reason))...)
		} else {
			c.appliedAtRuntime(rec, out, p, runtimeDone.Sub(planDone))
		}
		c.setCurrent(next)
		c.applied()
		ev.Took = time.Since(start)
		c.notifyApplied(ev)
		return old, out, nil
	}
}

// reloadTimedOut handles a reload whose new worker did not come within the
// reload deadline: the master is parsing something that does not end, and
// takes no further reload. The staged generation is put back, then the
// master is restarted (supervised HAProxy only) on what is current. Like a
// refused configuration, the candidate is reported and not retried; the
// error returned is non-nil only when HAProxy could not be brought back.
func (c *Controller) reloadTimedOut(rec *Pass, te *reload.ReloadTimeoutError, staged bool, res reload.Result, current *state, out *haproxycfg.Output) error {
	// HAProxy runs what is current on disk once restarted; until then
	// nothing is known.
	c.setCurrent(nil)
	what := fmt.Sprintf("HAProxy did not finish reloading onto the new configuration within %s and printed no ALERT line naming what it was parsing; keeping the last good one", te.Timeout)
	switch {
	case !res.Changed:
		// The files on disk were these already (a reload to learn
		// what HAProxy runs): nothing to put back.
		what = fmt.Sprintf("HAProxy did not finish reloading the configuration on disk within %s and printed no ALERT line naming what it was parsing", te.Timeout)
	case staged:
		if _, restored, err := c.cfg.Store.Rollback(res.Generation); err != nil {
			c.cfg.Log.Error("putting the previous generation back", zap.Int("generation", res.Generation), zap.Error(err))
		} else {
			rec.Generation = restored
		}
	default:
		// haproxy -c passed it in time, so Apply made it current: put
		// the previous one back, or a restart would start on it.
		if restored, err := c.cfg.Store.Revert(res.Generation); err != nil {
			c.cfg.Log.Error("putting the previous generation back", zap.Int("generation", res.Generation), zap.Error(err))
		} else {
			rec.Generation = restored
			if current != nil {
				c.wrote(current.model, current.out)
			}
		}
		what += " (haproxy -c had passed it in time)"
	}
	var restartErr error
	if r, ok := c.cfg.HAProxy.(Restarter); ok {
		if restartErr = r.RestartStuck(te.Master); restartErr == nil {
			what += fmt.Sprintf("; its master (pid %d), stuck parsing, is replaced by a new one", te.Master)
		}
	} else {
		what += fmt.Sprintf("; its master (pid %d) is stuck parsing and takes no further reload until HAProxy's container is restarted", te.Master)
	}
	err := fmt.Errorf("%s%s", what, c.unfinishedCauses(rec))
	rec.Outcome, rec.Error = OutcomeRejected, err.Error()
	c.failed(err)
	c.setUnfinished(out, err)
	c.cfg.Log.Error("HAProxy did not finish reloading", zap.Error(err), zap.NamedError("wait", te.Err))
	if restartErr != nil {
		return fmt.Errorf("restarting HAProxy's stuck master: %w", restartErr)
	}
	return nil
}

// unfinishedCauses names what may make a configuration that HAProxy did not
// finish parsing: HAProxy says nothing then, so the custom templates (if
// any) and what changed since the last configuration it took are listed.
func (c *Controller) unfinishedCauses(rec *Pass) string {
	var b strings.Builder
	if c.cfg.Templates != "" {
		fmt.Fprintf(&b, "\n  the custom templates in %s (--templates) render it: a lua-load script of theirs, or another directive, may not finish", c.cfg.Templates)
	}
	if len(rec.Trigger) > 0 {
		names := make([]string, 0, len(rec.Trigger))
		for _, ch := range rec.Trigger {
			names = append(names, ch.String())
		}
		fmt.Fprintf(&b, "\n  changed since the last pass: %s", strings.Join(names, ", "))
	}
	return b.String()
}

func (c *Controller) setUnfinished(out *haproxycfg.Output, err error) {
	c.mu.Lock()
	c.unfinished, c.unfinishedErr = out, err
	c.mu.Unlock()
}

// RetryUnfinished forgets the configuration HAProxy did not finish parsing
// in time, so that the next pass tries it again even unchanged (SIGHUP: the
// deadline may have been missed on an overloaded node).
func (c *Controller) RetryUnfinished() {
	c.mu.Lock()
	c.unfinished, c.unfinishedErr = nil, nil
	c.mu.Unlock()
}

// wrote records that model and out passed validation and are current on
// disk (explain before HAProxy serves them, and the startup probe).
func (c *Controller) wrote(model *render.Model, out *haproxycfg.Output) {
	c.written.Store(true)
	c.mu.Lock()
	c.model, c.out = model, out
	c.mu.Unlock()
}

// explainRefusal lists the alerts of a reload HAProxy refused, each with the
// objects behind its line: from the reload's log, or, when there is none
// (HAProxy 2.6 started by another container answers a reload with nothing),
// from haproxy -c of the rejected candidate.
func (c *Controller) explainRefusal(re *reload.ReloadError, rejected string, out *haproxycfg.Output) string {
	if alerts := re.Alerts(); len(alerts) > 0 {
		return explainAlerts(alerts, re.Log, out)
	}
	if c.cfg.Validate != nil {
		var ce *reload.CheckError
		if err := c.cfg.Validate(rejected); errors.As(err, &ce) {
			return ExplainCheckError(ce, out)
		}
	}
	return re.Error()
}

// appliedAtRuntime records a pass HAProxy took in without a reload.
func (c *Controller) appliedAtRuntime(rec *Pass, out *haproxycfg.Output, p plan, took time.Duration) {
	rec.Outcome = OutcomeRuntime
	rec.Phases.Apply = took
	c.stats.runtime.Add(1)
	fields := passFields(rec, out)
	if rec.Generation == 0 {
		// A runtime-only pass's files are written afterwards (writer.go):
		// the line names the generation on disk now, which /status shows,
		// rather than 0.
		if g, err := c.cfg.Store.CurrentGeneration(); err == nil {
			fields = slices.DeleteFunc(fields, func(f zap.Field) bool { return f.Key == "generation" })
			fields = append(fields, zap.Int("generation", g))
		}
	}
	c.cfg.Log.Info("updated HAProxy at run time", append(fields,
		zap.Int("map_changes", len(p.maps)), zap.Int("slot_changes", len(p.slots)))...)
}

// reloadSpacing is how long after a reload's start the next may start:
// --min-reload-interval, or as long as that reload took if it took longer
// (at 10k Ingresses a reload takes most of a second: reloads never queue
// up behind each other), doubled for every two old workers beyond the one
// a reload replaces that were still draining, up to 8 times: a pile of
// draining workers, each holding the whole configuration, is what spacing
// reloads protects against. A storm of changes gets one reload at once,
// then one per spacing while it lasts, then the last.
func reloadSpacing(minInterval, took time.Duration, oldWorkers int) time.Duration {
	d := max(minInterval, took)
	for extra := oldWorkers - 1; extra >= 2 && d < 8*max(minInterval, took); extra -= 2 {
		d *= 2
	}
	return d
}

// passFields are the log fields of a pass that changed what HAProxy
// serves: one line says what triggered it, how long each phase took, how
// large the result is and how it was applied.
func passFields(rec *Pass, out *haproxycfg.Output) []zap.Field {
	trigger := make([]string, 0, len(rec.Trigger))
	for _, c := range rec.Trigger {
		trigger = append(trigger, c.String())
	}
	size := 0
	for _, f := range out.Files {
		size += len(f.Data)
	}
	return []zap.Field{
		zap.Int64("pass", rec.ID), zap.Int("generation", rec.Generation), zap.Strings("trigger", trigger),
		zap.Duration("took", time.Since(rec.Time)), zap.Duration("read", rec.Phases.Read), zap.Duration("render", rec.Phases.Render),
		zap.Duration("plan", rec.Phases.Plan), zap.Duration("write", rec.Phases.Write), zap.Duration("check", rec.Phases.Check),
		zap.Duration("apply", rec.Phases.Apply), zap.Int("files", len(out.Files)), zap.Int("bytes", size),
	}
}

// nothingServed is a warning when no Ingress is served any more although
// some were before: deleting every manifest, a wrong --watch-namespace or
// an IngressClass change is almost always a mistake, and HAProxy now
// answers 404 for every host.
func (c *Controller) nothingServed(m *render.Model) (render.Problem, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(m.Served) > 0 {
		c.everServed = true
		return render.Problem{}, false
	}
	if !c.everServed {
		return render.Problem{}, false
	}
	return render.Problem{Severity: render.Warning, ObjectRef: render.ObjectRef{Kind: "Source", Name: "Ingresses"}, Reason: render.NothingServed,
		Message: "no Ingress is served any more although some were; every request now gets 404 (a deleted manifest directory, a wrong namespace or class?)"}, true
}

func (c *Controller) setCurrent(s *state) {
	c.mu.Lock()
	c.current = s
	c.mu.Unlock()
	if s != nil {
		c.ready.Store(true)
	}
}

// applyRuntime makes map and server slot changes in the running worker,
// in one batch.
func (c *Controller) applyRuntime(ctx context.Context, p plan) error {
	if p.runtimeOps() == 0 {
		return nil
	}
	return c.cfg.HAProxy.Send(ctx, p.batch())
}

func sameFiles(a, b *haproxycfg.Output) bool {
	if len(a.Files) != len(b.Files) {
		return false
	}
	for i := range a.Files {
		if a.Files[i].Path != b.Files[i].Path || !bytes.Equal(a.Files[i].Data, b.Files[i].Data) {
			return false
		}
	}
	return true
}

// Files converts rendered output to what the store writes.
func Files(out *haproxycfg.Output) reload.Files {
	files := make(reload.Files, len(out.Files))
	for _, f := range out.Files {
		files[f.Path] = f.Data
	}
	return files
}

// ExplainCheckError lists HAProxy's alerts, each with the objects behind
// the line it names.
func ExplainCheckError(ce *reload.CheckError, out *haproxycfg.Output) string {
	return explainAlerts(ce.Alerts(), ce.Output, out)
}

// explainAlerts lists alerts, each with the objects behind the line it
// names; raw, HAProxy's whole output, when there are none.
func explainAlerts(alerts []reload.Diagnostic, raw string, out *haproxycfg.Output) string {
	var b strings.Builder
	for _, d := range alerts {
		if where := out.Origin(d.File, d.Line); where != "" {
			fmt.Fprintf(&b, "%s\n  caused by %s\n", d, where)
		} else {
			fmt.Fprintf(&b, "%s\n", d)
		}
	}
	if b.Len() == 0 {
		b.WriteString(raw)
	}
	return strings.TrimRight(b.String(), "\n")
}
