// Package controller is the sidecar's main loop: a change in the source
// triggers a render; the result is validated and made current, and HAProxy
// is updated through its runtime API when that is enough, or reloaded.
package controller

import (
	"context"
	"fmt"
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
	// OldWorkers counts the workers earlier reloads replaced that are
	// still finishing their connections.
	OldWorkers(ctx context.Context) (int, error)
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
	// WholeChanges says every notification is a whole change (an object
	// the API server stored, never a file half written): a change that
	// finds the loop idle, with HAProxy's state known, is then applied at
	// once instead of after Quiet. Changes that come while a pass runs
	// wait Quiet as always, and a pass that started at once and needs a
	// reload waits the rest of Quiet before it (and renders again), so a
	// burst still lands in one reload.
	WholeChanges bool
	Log          *zap.Logger
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
	// idleKnown is keepsIdle's answer for the HAProxy served; nil until
	// asked, and again once the state is lost.
	idleKnown *bool

	lastReload time.Time
	// settleUntil is when the Quiet a pass skipped (WholeChanges) ends:
	// a reload waits until then.
	settleUntil time.Time
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
	var lastEnd time.Time // when the last pass ended
	for {
		notified := false
		select {
		case <-ctx.Done():
			return nil
		case <-c.trigger:
			notified = true
		case <-retry.C:
		}
		c.settleUntil = time.Time{}
		if first := c.pendingSince.Load(); notified && c.startsAtOnce(first, lastEnd) {
			c.settleUntil = time.Unix(0, first).Add(c.cfg.Quiet)
		} else if !sleep(ctx, c.cfg.Quiet) {
			// A short quiet period lets a burst (an editor writing
			// several files, kubectl apply -f dir) land in one pass.
			return nil
		}
		// Drain: everything up to now is in this pass.
		select {
		case <-c.trigger:
		default:
		}
		c.passStart.Store(time.Now().UnixNano())
		id, start := c.passID.Add(1), time.Now()
		changedAt := c.pendingSince.Swap(0) // 0: a retry, not a change
		r := c.pass(ctx)
		c.passStart.Store(0)
		lastEnd = time.Now()
		if r.outcome == OutcomeFailed && ctx.Err() != nil {
			return nil
		}
		c.finish(r, id, start, changedAt, diffs)
		if r.outcome == OutcomeFailed {
			backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
			c.cfg.Log.Error("apply failed; will retry", zap.Error(r.err), zap.Duration("retry_in", backoff))
			retry.Reset(backoff)
			continue
		}
		backoff = 0
	}
}

// startsAtOnce says whether a change first notified at first (UnixNano)
// is applied without waiting Quiet (Config.WholeChanges): it came at
// least Quiet after the last pass ended, so it is not the tail of a burst
// that pass took in part of, and HAProxy's state is known, so that it may
// be a runtime change (a reload waits the Quiet out all the same).
func (c *Controller) startsAtOnce(first int64, lastEnd time.Time) bool {
	if !c.cfg.WholeChanges || first == 0 || time.Unix(0, first).Sub(lastEnd) < c.cfg.Quiet {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current != nil
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

// Reloads are spaced only while old workers pile up: a reload starts at
// once when at most one worker an earlier reload replaced is still
// finishing its connections (pilingUp says), which is the normal state
// right after a reload; with more, it waits reloadSpacing from the
// previous reload's start.
//
// reloadSpacing is --min-reload-interval, or as long as the previous
// reload took if it took longer (at 10k Ingresses a reload takes most of
// a second: reloads never queue up behind each other), doubled for every
// two old workers beyond the one a reload replaces that were still
// draining right after it, up to 8 times: a pile of draining workers,
// each holding the whole configuration, is what spacing reloads protects
// against. A storm of changes with long-lived connections gets reloads at
// once until two old workers are left, then one per spacing while it
// lasts, then the last; without such connections every reload starts at
// once.
func reloadSpacing(minInterval, took time.Duration, oldWorkers int) time.Duration {
	d := max(minInterval, took)
	for extra := oldWorkers - 1; extra >= 2 && d < 8*max(minInterval, took); extra -= 2 {
		d *= 2
	}
	return d
}

// keepsIdle reports whether the HAProxy served keeps a server's idle
// connections across an address change (before 3.0; plan.keepsIdle),
// asked once per master (the version is kept until the state is lost:
// a restart, a failure) and assumed when it cannot say.
func (c *Controller) keepsIdle(ctx context.Context) bool {
	c.mu.Lock()
	known := c.idleKnown
	c.mu.Unlock()
	if known != nil {
		return *known
	}
	v, ok := c.cfg.HAProxy.(interface {
		Version(context.Context) (reload.HAProxyVersion, error)
	})
	if !ok {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	version, err := v.Version(ctx)
	if err != nil {
		return true
	}
	keeps := !version.AtLeast(3, 0)
	c.mu.Lock()
	c.idleKnown = &keeps
	c.mu.Unlock()
	return keeps
}

// pilingUp reports whether more than one worker earlier reloads replaced
// is still running; when HAProxy cannot say (within a second), it is
// taken to be.
func (c *Controller) pilingUp(ctx context.Context, haproxy HAProxy) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	n, err := haproxy.OldWorkers(ctx)
	if err != nil {
		c.cfg.Log.Debug("counting old workers before a reload", zap.Error(err))
		return true
	}
	return n > 1
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
	if s == nil {
		// HAProxy may be another one from now on.
		c.idleKnown = nil
	}
	c.mu.Unlock()
	if s != nil {
		c.ready.Store(true)
	}
}

// Contents are out's files as the store writes them, each from what it
// is: haproxy.cfg and the route maps in pieces, never put together
// (haproxycfg.File.WriteTo).
func Contents(out *haproxycfg.Output) reload.Contents {
	c := make(reload.Contents, len(out.Files))
	for _, f := range out.Files {
		c[f.Path] = f
	}
	return c
}

// Files are out's files whole, for what reads them as bytes (render
// --out, the bootstrap configuration).
func Files(out *haproxycfg.Output) reload.Files {
	files := make(reload.Files, len(out.Files))
	for _, f := range out.Files {
		files[f.Path] = f.Data()
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
