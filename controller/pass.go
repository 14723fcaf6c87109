package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
)

// A pass renders once and brings HAProxy to the result. Its steps (read,
// render, plan, apply at run time, write and check, reload) each return
// values; the pass puts them into its result, which finish reports. The
// steps change the loop's state (what HAProxy runs, the model on disk,
// the reload spacing) but never report the outcome: no step writes a
// record, /status, a log line of the outcome or an outcome's counter (the
// render step counts renders: a pass that waits for its reload spacing
// renders twice).

// pass renders and applies once, again after waiting when a reload has
// to wait for its spacing (whatever changed meanwhile goes into it).
func (c *Controller) pass(ctx context.Context) result {
	var old *haproxycfg.Output
	for {
		r, again := c.attempt(ctx)
		if r.old == nil {
			// A runtime update failed before the wait: what HAProxy ran
			// before it is still the history's "before".
			r.old = old
		}
		if !again {
			return r
		}
		old = r.old
	}
}

// attempt is one try of a pass; again is true when a reload had to wait
// for its spacing and the pass starts over with what changed meanwhile.
func (c *Controller) attempt(ctx context.Context) (r result, again bool) {
	r.started = time.Now()
	c.mu.Lock()
	renderer, rendGen, current := c.renderer, c.rendGen, c.current
	c.mu.Unlock()
	if current != nil {
		r.old = current.out
	}

	in, loadProblems, err := c.cfg.Source.Inputs(ctx)
	if err != nil {
		return r.failedWith(fmt.Errorf("reading objects: %w", err)), false
	}
	readDone := time.Now()
	r.phases.Read = readDone.Sub(r.started)
	rd, err := c.render(in, loadProblems, renderer, rendGen, current)
	renderDone := time.Now()
	r.phases.Render = renderDone.Sub(readDone)
	r.trigger = rd.trigger
	if err != nil {
		// A template that fails to execute: keep serving the last good
		// configuration and wait for the next change.
		return r.rejectedWith(rejectedRender, fmt.Errorf("render failed; keeping the last good configuration: %w", err)), false
	}
	r.model, r.out = rd.model, rd.out
	r.problems, r.newProblems, r.goneProblems = rd.problems, rd.newProblems, rd.goneProblems
	cand := candidate{next: &state{model: rd.model, out: rd.out, renderer: rendGen}, haproxy: c.cfg.HAProxy}
	if cand.haproxy != nil && c.cfg.HAProxyUp != nil && !c.cfg.HAProxyUp() {
		// Not started yet: write and validate only.
		cand.haproxy = nil
	}

	if current != nil && haproxycfg.SameFiles(current.out, rd.out) {
		r.outcome = OutcomeUnchanged
		// Same files, but the model may differ in what is not rendered
		// (e.g. which Ingresses are served with no rules).
		c.setCurrent(&state{model: rd.model, out: current.out, renderer: rendGen})
		return r, false
	}
	c.mu.Lock()
	unfinished, unfinishedErr := c.unfinished, c.unfinishedErr
	c.mu.Unlock()
	if unfinished != nil && haproxycfg.SameFiles(unfinished, rd.out) {
		return r.rejectedWith(rejectedUnfinished, fmt.Errorf("not tried again, the same configuration as before: %w", unfinishedErr)), false
	}
	p := diff(current, cand.next)
	planDone := time.Now()
	r.phases.Plan = planDone.Sub(renderDone)

	if !p.reload && cand.haproxy != nil {
		if p, r.commands = c.applyRuntime(ctx, p); p.reload {
			// HAProxy may now be between the two states: make it whole
			// with a reload. Forgetting the current state makes every
			// later plan (after a rate-limit wait, too) a reload, never
			// a replay of half-applied commands.
			c.setCurrent(nil)
			current = nil
		}
	}
	runtimeTook := time.Since(planDone)
	if p.reload && cand.haproxy != nil {
		// A pass that skipped the loop's Quiet (Config.WholeChanges)
		// waits it out before a reload; the reload spacing applies only
		// while old workers pile up.
		wait := time.Until(c.settleUntil)
		if spaced := c.reloadSpacing - time.Since(c.lastReload); spaced > wait && c.pilingUp(ctx, cand.haproxy) {
			wait = spaced
		}
		if wait > 0 {
			c.cfg.Log.Debug("reload rate-limited", zap.Duration("wait", wait))
			if !sleep(ctx, wait) {
				r.out = nil
				return r.failedWith(ctx.Err()), false
			}
			// Whatever changed meanwhile goes into this reload.
			select {
			case <-c.trigger:
			default:
			}
			return r, true
		}
	}
	r.cause, r.detail = p.cause, p.detail
	return c.apply(ctx, r, cand, p, current, runtimeTook), false
}

// candidate is what a pass brings HAProxy to, and the HAProxy it updates
// (nil while it is not up, or in render-only use).
type candidate struct {
	next    *state
	haproxy HAProxy
}

// apply brings HAProxy from current to the candidate along plan p: the
// runtime API commands already sent (runtimeTook) are all when p needs no
// reload; otherwise a generation is written and checked, then reloaded.
func (c *Controller) apply(ctx context.Context, r result, cand candidate, p plan, current *state, runtimeTook time.Duration) result {
	next := cand.next
	if !p.reload && cand.haproxy != nil {
		// HAProxy serves next already. The new generation differs from
		// the validated current one only in map entries and server slot
		// addresses, which HAProxy has just accepted: it is written in
		// the background (no haproxy -c), and the next change need not
		// wait for the disk.
		c.writer.submit(func() reload.Contents { return Contents(next.out) })
		c.mu.Lock()
		c.model, c.out = next.model, next.out
		c.mu.Unlock()
		c.setCurrent(next)
		return r.atRuntime(p, runtimeTook)
	}

	// This pass writes (and validates) a generation itself: what the
	// background writer has not written yet goes first.
	c.writer.settle(ctx)
	w := c.write(ctx, next.out, p.reload && cand.haproxy != nil && next.renderer == c.provenRendGen)
	r.phases.Write, r.phases.Check, r.generation = w.took-w.check, w.check, w.res.Generation
	if w.err != nil {
		var ce *reload.CheckError
		if !errors.As(w.err, &ce) {
			return r.failedWith(fmt.Errorf("writing configuration: %w", w.err))
		}
		return c.checkRejected(r, ce) // retried on the next change, not in a loop
	}
	if !w.staged {
		if w.res.Changed {
			c.provenRendGen = next.renderer // haproxy -c accepted it
		}
		c.wrote(next.model, next.out)
	}
	if cand.haproxy == nil && c.cfg.HAProxy != nil {
		// Written for an HAProxy that is not up yet; whatever it starts
		// on, the first pass after it is up reloads it.
		c.setCurrent(nil)
		r.outcome, r.cause, r.detail = OutcomeWritten, "", ""
		return r
	}
	// Without a known current state (first pass, or a failed reload or
	// update) HAProxy may run anything: reload even when the files on
	// disk are already these.
	if !(p.reload && cand.haproxy != nil && (w.res.Changed || current == nil)) {
		c.setCurrent(next)
		return r.atRuntime(p, runtimeTook)
	}
	r = c.reload(ctx, r, cand.haproxy, w, current)
	if r.outcome == OutcomeReload {
		c.provenRendGen = next.renderer
		if w.staged {
			c.wrote(next.model, next.out)
		}
		c.setCurrent(next)
	}
	return r
}

// checkRejected ends a pass whose candidate haproxy -c refused, or did
// not finish checking in time (then it is not tried again unchanged).
func (c *Controller) checkRejected(r result, ce *reload.CheckError) result {
	r.reasons = ExplainCheckError(ce, r.out)
	if ce.TimedOut() {
		r.reasons += c.unfinishedCauses(r.trigger)
	}
	err := fmt.Errorf("HAProxy rejects the new configuration; keeping the last good one: %s", r.reasons)
	if ce.TimedOut() {
		c.setUnfinished(r.out, err)
	}
	return r.rejectedWith(rejectedCheck, err)
}

// atRuntime ends a pass HAProxy took in without a reload (or, without an
// HAProxy to update, one whose files were written).
func (r result) atRuntime(p plan, took time.Duration) result {
	r.outcome, r.maps, r.slots = OutcomeRuntime, len(p.maps), len(p.slots)
	r.phases.Apply = took
	return r
}

// rendered is what the render step returns: the model and files, what
// changed since the pass before, and the problems after it (those the
// source reported with the render's) with those it added and resolved.
type rendered struct {
	model                     *render.Model
	out                       *haproxycfg.Output
	trigger                   []Change
	problems                  []render.Problem
	newProblems, goneProblems []render.Problem
}

// render renders in with renderer against what HAProxy serves (or what
// is on disk for it), and names what changed since the pass before: the
// objects (found on the other core while the render runs: both only read
// them, and on a first pass at 10k Ingresses it is tens of milliseconds)
// and the templates. The problems become the loop's (Problems, /status).
func (c *Controller) render(in render.Inputs, loadProblems []render.Problem, renderer Renderer, rendGen int, current *state) (rendered, error) {
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
	rd := rendered{model: model, out: out, trigger: capChanges(<-tracked)}
	c.mu.Lock()
	if c.lastRendGen != rendGen {
		rd.trigger = append(rd.trigger, Change{Kind: "Templates", Name: "haproxy.cfg.tmpl", Op: "updated"})
	}
	c.mu.Unlock()
	c.stats.renders.Add(1)
	if err != nil {
		return rd, err
	}
	rd.problems = append(loadProblems, model.Problems...)
	if p, ok := c.nothingServed(model); ok {
		rd.problems = append(rd.problems, p)
	}
	c.mu.Lock()
	rd.newProblems, rd.goneProblems = problemChanges(c.problems, rd.problems)
	c.problems = rd.problems
	c.lastRendGen = rendGen
	c.mu.Unlock()
	return rd, nil
}

// applyRuntime makes a plan's map and server slot changes in the running
// worker, in one batch, returning the commands sent. When they fail, the
// plan returned is a reload instead.
func (c *Controller) applyRuntime(ctx context.Context, p plan) (plan, []string) {
	if p.runtimeOps() == 0 {
		return p, p.commands()
	}
	p.keepsIdle = c.keepsIdle(ctx)
	if err := c.cfg.HAProxy.Send(ctx, p.batch()); err != nil {
		c.cfg.Log.Warn("runtime update failed; reloading instead", zap.Error(err))
		return reloadFor(CauseRuntimeFailed, "a runtime API command failed: "+err.Error()), nil
	}
	return p, p.commands()
}

// written is what the write step returns.
type written struct {
	res reload.Result
	// staged: the generation waits for the reload to confirm it (no
	// haproxy -c ran).
	staged bool
	// took is the whole step, check the haproxy -c within it.
	took, check time.Duration
	err         error
}

// write writes out as a new generation. A reload validates what it
// loads, more strictly than haproxy -c, and one HAProxy refuses leaves
// the old worker serving: a pass that reloads (mayStage) stages its
// generation and lets the reload be the check (at 10k Ingresses that
// saves a quarter of a second of HAProxy parsing). Not for a configuration
// without a listener, which only haproxy -c refuses, and not for templates
// HAProxy has not accepted the output of yet (the caller's mayStage): a
// template error, the likely cause of a refusal, costs a haproxy -c run
// instead of a failed reload.
func (c *Controller) write(ctx context.Context, out *haproxycfg.Output, mayStage bool) written {
	var w written
	validate := c.cfg.Validate
	timedValidate := func(dir string) error {
		t := time.Now()
		err := validate(dir)
		w.check = time.Since(t)
		return err
	}
	files := Contents(out)
	if cfg, ok := files[reload.ConfigName]; ok && mayStage {
		// Read from the pieces: neither the check nor the write puts
		// haproxy.cfg together. (A file in pieces cannot fail to read.)
		w.staged, _ = reload.ContentHasListener(cfg)
	}
	start := time.Now()
	if w.staged {
		w.res, w.err = c.cfg.Store.StageContents(ctx, files)
		if errors.Is(w.err, reload.ErrNoCurrent) {
			w.staged = false
		}
	}
	if !w.staged {
		w.res, w.err = c.cfg.Store.ApplyContents(ctx, files, timedValidate)
	}
	w.took = time.Since(start)
	return w
}

// reload reloads HAProxy onto the generation w wrote, confirming a staged
// one; a refused one is put back. It returns r ended as a reload, a
// rejection or a failure.
func (c *Controller) reload(ctx context.Context, r result, haproxy HAProxy, w written, current *state) result {
	applyStart := time.Now()
	res, err := haproxy.Reload(ctx)
	r.phases.Apply = time.Since(applyStart)
	if err == nil && w.staged && w.res.Changed {
		err = c.cfg.Store.Confirm(w.res.Generation)
	}
	if err == nil {
		// Spaced from the previous reload's start, not its end: at 10k
		// Ingresses a reload takes over a second, and counting from its
		// end would add that to every back-to-back change.
		c.lastReload = applyStart
		c.reloadSpacing = reloadSpacing(c.cfg.MinReloadInterval, r.phases.Apply, res.OldWorkers)
		r.outcome, r.worker, r.oldWorkers = OutcomeReload, res.Worker, res.OldWorkers
		return r
	}
	var te *reload.ReloadTimeoutError
	if errors.As(err, &te) {
		return c.reloadTimedOut(r, te, w, current)
	}
	var re *reload.ReloadError
	refused := errors.As(err, &re)
	if w.staged && w.res.Changed {
		rejected, restored, rbErr := c.cfg.Store.Rollback(w.res.Generation)
		if rbErr != nil {
			c.cfg.Log.Error("putting the previous generation back", zap.Int("generation", w.res.Generation), zap.Error(rbErr))
		} else {
			// The pass record names what is current, as after a refused
			// haproxy -c; the candidate is in rejected/.
			r.generation = restored
		}
		if refused && rbErr == nil {
			// The old worker serves what it served: current stays, as
			// after a failed haproxy -c.
			r.reasons = c.explainRefusal(re, rejected, r.out)
			return r.rejectedWith(rejectedReload,
				fmt.Errorf("HAProxy refused to reload onto the new configuration; keeping the last good one: %s", r.reasons))
		}
	}
	c.setCurrent(nil)
	return r.failedWith(fmt.Errorf("reloading HAProxy: %w", err))
}

// reloadTimedOut handles a reload whose new worker did not come within the
// reload deadline: the master is parsing something that does not end, and
// takes no further reload. The staged generation is put back, then the
// master is restarted (supervised HAProxy only) on what is current. Like a
// refused configuration, the candidate is reported and not retried; the
// pass fails only when HAProxy could not be brought back.
func (c *Controller) reloadTimedOut(r result, te *reload.ReloadTimeoutError, w written, current *state) result {
	// HAProxy runs what is current on disk once restarted; until then
	// nothing is known.
	c.setCurrent(nil)
	what := fmt.Sprintf("HAProxy did not finish reloading onto the new configuration within %s and printed no ALERT line naming what it was parsing; keeping the last good one", te.Timeout)
	switch {
	case !w.res.Changed:
		// The files on disk were these already (a reload to learn what
		// HAProxy runs): nothing to put back.
		what = fmt.Sprintf("HAProxy did not finish reloading the configuration on disk within %s and printed no ALERT line naming what it was parsing", te.Timeout)
	case w.staged:
		if _, restored, err := c.cfg.Store.Rollback(w.res.Generation); err != nil {
			c.cfg.Log.Error("putting the previous generation back", zap.Int("generation", w.res.Generation), zap.Error(err))
		} else {
			r.generation = restored
		}
	default:
		// haproxy -c passed it in time, so Apply made it current: put
		// the previous one back, or a restart would start on it.
		if restored, err := c.cfg.Store.Revert(w.res.Generation); err != nil {
			c.cfg.Log.Error("putting the previous generation back", zap.Int("generation", w.res.Generation), zap.Error(err))
		} else {
			r.generation = restored
			if current != nil {
				c.wrote(current.model, current.out)
			}
		}
		what += " (haproxy -c had passed it in time)"
	}
	var restartErr error
	if rs, ok := c.cfg.HAProxy.(Restarter); ok {
		if restartErr = rs.RestartStuck(te.Master); restartErr == nil {
			what += fmt.Sprintf("; its master (pid %d), stuck parsing, is replaced by a new one", te.Master)
		}
	} else {
		what += fmt.Sprintf("; its master (pid %d) is stuck parsing and takes no further reload until HAProxy's container is restarted", te.Master)
	}
	err := fmt.Errorf("%s%s", what, c.unfinishedCauses(r.trigger))
	c.setUnfinished(r.out, err)
	r = r.rejectedWith(rejectedReloadTimeout, err)
	r.stuck = te
	if restartErr != nil {
		// The candidate's line is logged all the same (rejectErr).
		r = r.failedWith(fmt.Errorf("restarting HAProxy's stuck master: %w", restartErr))
	}
	return r
}

// unfinishedCauses names what may make a configuration that HAProxy did not
// finish parsing: HAProxy says nothing then, so the custom templates (if
// any) and what changed since the last configuration it took are listed.
func (c *Controller) unfinishedCauses(trigger []Change) string {
	var b strings.Builder
	if c.cfg.Templates != "" {
		fmt.Fprintf(&b, "\n  the custom templates in %s (--templates) render it: a lua-load script of theirs, or another directive, may not finish", c.cfg.Templates)
	}
	if len(trigger) > 0 {
		names := make([]string, 0, len(trigger))
		for _, ch := range trigger {
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
