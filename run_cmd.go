package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/haproxy-sidecar/haproxy-sidecar/admin"
	"github.com/haproxy-sidecar/haproxy-sidecar/controller"
	"github.com/haproxy-sidecar/haproxy-sidecar/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/metrics"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	"github.com/haproxy-sidecar/haproxy-sidecar/watch"
)

type runFlags struct {
	renderFlags
	clusterFlags
	manifests         string
	healthAddr        string
	debugAddr         string
	configDir         string
	masterSocket      string
	haproxyStart      bool
	init              bool
	minReloadInterval time.Duration
	socketWait        time.Duration
	reloadTimeout     time.Duration
	startTimeout      time.Duration
	logLevel          string
	logFormat         string
	historySize       int
	// afterFirstPass, when set, is called once the loop's first pass
	// has run.
	afterFirstPass func()
}

// The sidecar's GC percent while it starts (until its first pass has
// run) and afterwards; see runCommand.
const (
	startGCPercent  = 100
	steadyGCPercent = 50
)

func runCommand(ctx context.Context, args []string, hup <-chan os.Signal, stderr io.Writer) int {
	// A long-running process whose heap is mostly caches that change a
	// little at a time: collecting at 50% growth instead of Go's 100%
	// keeps its memory (a pod limit) down for little CPU, now that a pass
	// allocates little. Not while it starts: the informers' lists and
	// the first pass build the heap from nothing, almost all of it kept,
	// and at 50% every collection marks again what the last one kept (at
	// 10k Ingresses, a third of the sidecar's CPU until the first
	// configuration was served). GOGC still overrides both.
	var f runFlags
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(startGCPercent)
		f.afterFirstPass = func() { debug.SetGCPercent(steadyGCPercent) }
	}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.renderFlags.register(fs)
	fs.StringVar(&f.manifests, "manifests", "", "file or directory of Kubernetes manifests to watch instead of a cluster")
	f.clusterFlags.register(fs)
	fs.StringVar(&f.healthAddr, "health-addr", ":10254", "listen address of /healthz, /readyz and /startupz (empty to disable)")
	fs.StringVar(&f.debugAddr, "debug-addr", "127.0.0.1:10255", "listen address of /status and /explain, which show the routing table and every problem: keep it on loopback (kubectl port-forward reaches it) (empty to disable)")
	fs.StringVar(&f.configDir, "config-dir", "", "directory holding the generations of HAProxy's configuration; HAProxy runs <dir>/current/haproxy.cfg (required)")
	fs.StringVar(&f.masterSocket, "master-socket", "", "HAProxy master CLI socket (haproxy -W -S <path>) (required)")
	fs.BoolVar(&f.haproxyStart, "haproxy-start", false, "start and supervise HAProxy in master-worker mode (adopting one already answering on --master-socket) instead of using one another container started")
	fs.BoolVar(&f.init, "init", false, "write a valid minimal configuration into --config-dir (unless one is there) and exit; for an HAProxy container to start on")
	fs.DurationVar(&f.minReloadInterval, "min-reload-interval", 500*time.Millisecond, "minimum time between the starts of two reloads; longer when a reload takes longer or old workers pile up (runtime API updates are not limited)")
	fs.DurationVar(&f.reloadTimeout, "haproxy-reload-timeout", reload.DefaultReloadTimeout, "how long a reload may take until the new worker runs; a configuration HAProxy has not finished loading by then is rejected, and a master started with --haproxy-start is restarted on the last good one (a 10k-Ingress reload takes about 1.7 s)")
	fs.DurationVar(&f.startTimeout, "haproxy-start-timeout", reload.DefaultStartTimeout, "with --haproxy-start: how long HAProxy may take to start until its worker runs; one that has not by then is killed and started again")
	fs.DurationVar(&f.socketWait, "socket-wait", 5*time.Minute, "how long to wait for the master socket of an HAProxy started elsewhere")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "json", "json (one object per line, for log collectors) or console (for people)")
	fs.IntVar(&f.historySize, "history", admin.DefaultHistory, "how many passes that changed something /history keeps")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: haproxy-sidecar run [--manifests DIR | --kubeconfig FILE] --config-dir DIR --master-socket PATH [--haproxy-start] [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if f.configDir == "" || (!f.init && f.masterSocket == "") {
		fmt.Fprintln(stderr, "run: --config-dir and --master-socket are required (--init needs only --config-dir)")
		fs.Usage()
		return 2
	}
	if _, err := f.options(); err != nil {
		fmt.Fprintf(stderr, "run: %v\n", err)
		return 2
	}
	log, err := newLogger(f.logLevel, f.logFormat, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "run: %v\n", err)
		return 2
	}
	defer log.Sync() //nolint:errcheck // stderr
	if err := f.run(ctx, hup, log); err != nil {
		log.Error("run failed", zap.Error(err))
		return 1
	}
	return 0
}

func newLogger(level, format string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	var encoder zapcore.Encoder
	switch format {
	case "json":
		encoder = zapcore.NewJSONEncoder(enc)
	case "console":
		encoder = zapcore.NewConsoleEncoder(enc)
	default:
		return nil, fmt.Errorf("--log-format: %q is neither json nor console", format)
	}
	return zap.New(zapcore.NewCore(encoder, zapcore.AddSync(w), lvl)), nil
}

// lineLogger turns HAProxy's output into log entries of the logger named
// "haproxy.output", one per line: in JSON logs HAProxy's own lines stay
// apart from the sidecar's, and each still reads as HAProxy wrote it.
type lineLogger struct {
	log     *zap.Logger
	mu      sync.Mutex
	partial []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		if line := strings.TrimRight(string(l.partial[:i]), "\r"); line != "" {
			l.log.Info(line)
		}
		l.partial = l.partial[i+1:]
	}
	if len(l.partial) > 64<<10 {
		l.log.Info(string(l.partial))
		l.partial = l.partial[:0]
	}
	return len(p), nil
}

// runner is one of run mode's long-running parts.
type runner func(context.Context) error

// group runs runners until their context ends, logging why one stopped.
type group struct {
	ctx context.Context
	wg  sync.WaitGroup
	log *zap.Logger
}

func (g *group) run(name string, r runner) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := r(g.ctx); err != nil {
			g.log.Error(name+" stopped", zap.Error(err))
		}
	}()
}

// run wires run mode: the config-dir, HAProxy, the source, the loop and
// the admin servers, and runs the loop until ctx is done.
func (f *runFlags) run(ctx context.Context, hup <-chan os.Signal, log *zap.Logger) error {
	store, renderer, servedBefore, err := f.prepareConfigDir(log)
	if err != nil || f.init {
		return err
	}
	// Listen before anything runs: a taken port is a start-up error.
	health, err := listenIf(f.healthAddr)
	if err != nil {
		return err
	}
	debug, err := listenIf(f.debugAddr)
	if err != nil {
		closeIf(health)
		return err
	}
	defer closeIf(health)
	defer closeIf(debug)

	ctx, cancel := context.WithCancel(ctx)
	g := &group{ctx: ctx, log: log}
	defer func() { cancel(); g.wg.Wait() }()

	var ctl *controller.Controller
	hap, err := f.haproxy(ctx, store, log, func() { ctl.HAProxyRestarted() })
	if err != nil {
		return err
	}
	defer hap.stop()
	src, err := f.source(log, func() { ctl.Notify() }, func() *controller.Controller { return ctl })
	if err != nil {
		return err
	}
	history := controller.NewHistory(f.historySize)
	cli := reload.NewMasterCLI(f.masterSocket)
	mets := metrics.New(func(ctx context.Context) (int, error) {
		st, err := cli.ShowProc(ctx)
		return len(st.OldWorkers), err
	})
	if kc := src.cluster; kc != nil {
		mets.WatchSource(func() metrics.SourceState {
			api := kc.API()
			return metrics.SourceState{Up: api.Up, SinceSync: api.SinceSync(time.Now()), Outages: api.Outages}
		})
	}
	ctl = controller.New(controller.Config{
		History:           history,
		Source:            src.source,
		Store:             store,
		Validate:          reload.Validator(ctx, f.haproxyBin, f.checkTimeout),
		Templates:         f.templatesDir,
		HAProxy:           hap.api,
		HAProxyUp:         hap.up,
		BuiltinTemplates:  f.templatesDir == "",
		MinReloadInterval: f.minReloadInterval,
		Log:               log.Named("controller"),
		OnApplied:         src.applied(log, mets),
		OnPass:            firstPassHook(f.afterFirstPass, mets.ObservePass),
	}, renderer)

	if health != nil {
		// A configuration an earlier run rendered is current on disk: an
		// HAProxy container started now starts on a complete one.
		started := func() bool { return servedBefore || ctl.Written() }
		h := &admin.Health{Live: ctl.Live, Started: started, Metrics: mets.Handler(),
			Degraded: func() []string { return degraded(ctl, store, src.cluster, servedBefore) },
			Ready:    readiness(ctl, hap, servedBefore)}
		g.run("health server", func(ctx context.Context) error { return admin.Serve(ctx, health, h.Handler(), log.Named("health")) })
	}
	if debug != nil {
		d := &admin.Debug{
			Status: func(ctx context.Context) any {
				return currentStatus(ctx, ctl, store, cli, src.cluster)
			},
			Explain: func(url string) (string, error) { return explainServed(ctl, url) },
			Config:  func(q admin.ConfigQuery) (string, bool, error) { return dumpServed(ctl, q) },
			History: func(n int) any { return history.List(n) },
			Pass:    func(id int64) (any, bool) { return history.Get(id) },
		}
		g.run("debug server", func(ctx context.Context) error {
			return admin.DebugLimits.Serve(ctx, debug, d.Handler(), log.Named("debug"))
		})
	}
	if hup != nil {
		g.run("SIGHUP handler", func(ctx context.Context) error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-hup:
					// The daemon convention: read everything again.
					log.Info("SIGHUP: re-reading the source and templates")
					src.reread()
					ctl.RetryUnfinished()
					ctl.Notify()
				}
			}
		})
	}
	fatal := make(chan error, 1)
	// HAProxy is waited for before the source: a sidecar restarted while
	// the API server is away serves (and is ready with) the configuration
	// HAProxy runs, long before the source can be read.
	if hap.wait != nil {
		g.run("master socket wait", func(ctx context.Context) error {
			if err := hap.wait(ctx); err != nil {
				// The pod is broken: exit non-zero so it is restarted.
				fatal <- err
				cancel()
				return nil
			}
			ctl.Notify()
			return nil
		})
	}
	if err := src.start(ctx, g, servedBefore); err != nil {
		select {
		case ferr := <-fatal:
			return ferr
		default:
			return err
		}
	}
	log.Info("running", zap.String("manifests", f.manifests), zap.String("watch_namespace", f.watchNamespace), zap.String("config", store.ConfigPath()),
		zap.String("master_socket", f.masterSocket), zap.Bool("haproxy_start", f.haproxyStart))
	err = ctl.Run(ctx)
	log.Info("stopping", zap.Any("stats", ctl.Stats()))
	select {
	case ferr := <-fatal:
		return ferr
	default:
		return err
	}
}

// firstPassHook is onPass, calling first (if set) before the first one.
func firstPassHook(first func(), onPass func(controller.Pass)) func(controller.Pass) {
	if first == nil {
		return onPass
	}
	var once sync.Once
	return func(p controller.Pass) {
		once.Do(first)
		onPass(p)
	}
}

// prepareConfigDir opens (and repairs) the config-dir and makes sure it
// holds a configuration HAProxy can start on: the last good one when there
// is one, else an empty cluster's (404 for everything).
//
// servedBefore is true when the current generation was rendered from the
// source by an earlier run (it is not the bootstrap configuration): the
// configuration HAProxy starts on, or runs when adopted, was once complete.
func (f *runFlags) prepareConfigDir(log *zap.Logger) (store *reload.Store, renderer controller.Renderer, servedBefore bool, err error) {
	configDir, err := filepath.Abs(f.configDir)
	if err != nil {
		return nil, nil, false, err
	}
	// HAProxy reads a -S argument without a slash as host:port.
	if f.masterSocket != "" {
		if f.masterSocket, err = filepath.Abs(f.masterSocket); err != nil {
			return nil, nil, false, err
		}
	}
	store, err = reload.NewStore(configDir)
	if err != nil {
		return nil, nil, false, err
	}
	if r := store.LastRepair(); r != nil {
		log.Warn("config-dir: "+r.String(), zap.String("config_dir", configDir))
	}
	renderer, err = f.renderer()
	if err != nil {
		return nil, nil, false, err
	}
	_, empty, err := renderer(render.Inputs{}, nil)
	if err != nil {
		return nil, nil, false, fmt.Errorf("rendering the bootstrap configuration: %w", err)
	}
	bootFiles := controller.Files(empty)
	boot, err := store.Bootstrap(bootFiles)
	if err != nil {
		return nil, nil, false, fmt.Errorf("writing the bootstrap configuration: %w", err)
	}
	if f.init {
		log.Info("configuration ready", zap.String("config", store.ConfigPath()), zap.Bool("written", boot.Changed))
	}
	// Only Bootstrap writes a generation without a source; one that
	// differs from what it would write came from the source. (An earlier
	// run that served an empty source wrote the same bytes: it counts as
	// never served, which only delays readiness until the source is read.)
	if !boot.Changed {
		cur, err := os.ReadFile(store.ConfigPath())
		servedBefore = err == nil && !bytes.Equal(cur, bootFiles[reload.ConfigName])
	}
	if servedBefore {
		log.Info("the current configuration was rendered from the source by an earlier run; serving it until the source is read",
			zap.Int("generation", boot.Generation))
	}
	return store, renderer, servedBefore, nil
}

func listenIf(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	return admin.Listen(addr)
}

func closeIf(ln net.Listener) {
	if ln != nil {
		ln.Close()
	}
}

// sourceParts is what run mode reads objects from, and what watches it.
type sourceParts struct {
	source  controller.Source
	cluster *kube.Cluster // Kubernetes mode only
	runners []runner
	reread  func() // SIGHUP: files and templates read again
}

// source sets up the manifests directory or the Kubernetes source, and the
// templates watcher.
func (f *runFlags) source(log *zap.Logger, notify func(), ctl func() *controller.Controller) (*sourceParts, error) {
	sp := &sourceParts{}
	rereadSource := func() {}
	if f.manifests != "" {
		fsrc := controller.NewFileSource(f.manifests)
		sp.source, rereadSource = fsrc, fsrc.Reread
		w := &watch.Dir{Path: f.manifests, Notify: notify, Log: log.Named("watch")}
		sp.runners = append(sp.runners, w.Run)
	} else {
		kc, err := newCluster(f, log, notify)
		if err != nil {
			return nil, err
		}
		sp.source, sp.cluster = kc.Source, kc
		sp.runners = append(sp.runners, func(ctx context.Context) error { return kc.Run(ctx, f.statusSyncInterval) })
	}
	reparse := func() {}
	if f.templatesDir != "" {
		var w *watch.Dir
		w, reparse = f.watchTemplates(ctl, log)
		sp.runners = append(sp.runners, w.Run)
	}
	sp.reread = func() { rereadSource(); reparse() }
	return sp, nil
}

// applied is the loop's OnApplied: status and Events in Kubernetes mode,
// and the problems of a pass that changed something in the log.
func (sp *sourceParts) applied(log *zap.Logger, mets *metrics.Metrics) func(controller.Event) {
	return func(ev controller.Event) {
		mets.ObserveModel(ev.Model, ev.Problems)
		if sp.cluster != nil {
			sp.cluster.Applied(ev.Model)
		}
		if !ev.Changed {
			return
		}
		for _, p := range ev.Problems {
			if p.Severity == render.Warning {
				log.Warn("skipped", zap.String("problem", p.Report()), zap.String("reason", string(p.Reason)),
					zap.String("object", p.ObjectRef.String()), zap.String("field", p.Field))
			}
		}
	}
}

// start runs the source's watchers. In Kubernetes mode it first waits for
// the informers: the first render must see the whole cluster, not a
// partial cache. A sidecar with nothing to serve gives up after
// sourceSyncLimit (the pod is restarted and says why); one whose HAProxy
// serves a configuration from an earlier run waits as long as it takes
// (the API server may be away), ready and saying so on /readyz.
func (sp *sourceParts) start(ctx context.Context, g *group, servedBefore bool) error {
	if sp.cluster != nil {
		g.run("kubernetes source", sp.cluster.Source.Run)
		syncCtx, cancel := ctx, context.CancelFunc(func() {})
		if !servedBefore {
			syncCtx, cancel = context.WithTimeout(ctx, sourceSyncLimit)
		}
		err := sp.cluster.Source.WaitForSync(syncCtx)
		cancel()
		if err != nil {
			return err
		}
	}
	for i, r := range sp.runners {
		g.run(fmt.Sprintf("watcher %d", i), r)
	}
	return nil
}

// sourceSyncLimit is how long a sidecar with nothing served yet waits for
// the source's first full read.
const sourceSyncLimit = 2 * time.Minute

// haproxyConn is how run mode reaches HAProxy.
type haproxyConn struct {
	api controller.HAProxy
	// up says whether HAProxy can be reached now (nil: always).
	up func() bool
	// ready is nil when HAProxy serves, else why not (readiness).
	ready func() error
	// wait, when set, waits for an HAProxy started elsewhere.
	wait func(context.Context) error
	// stop stops a supervised HAProxy; it returns when HAProxy is gone.
	stop func()
}

// haproxy starts (or adopts) and supervises HAProxy with --haproxy-start,
// or prepares to use the one another container starts.
func (f *runFlags) haproxy(ctx context.Context, store *reload.Store, log *zap.Logger, restarted func()) (haproxyConn, error) {
	cli := reload.NewMasterCLI(f.masterSocket)
	cli.ReloadTimeout = f.reloadTimeout
	// HAProxy 2.7+ answers a refused reload with its log: its file names
	// are made relative to the config-dir's current generation, so that
	// the lines they name are traced to objects.
	cli.ConfigDir = filepath.Dir(store.ConfigPath())
	if !f.haproxyStart {
		// The sidecar does not wait for HAProxy before its first pass:
		// in the pod, HAProxy's container starts only once the sidecar's
		// startup probe sees a configuration from the source written.
		up := func() bool {
			st, err := os.Stat(f.masterSocket)
			return err == nil && st.Mode()&os.ModeSocket != 0
		}
		return haproxyConn{api: cli, up: up, stop: func() {},
			ready: func() error { return nil },
			wait:  func(ctx context.Context) error { return waitForSocket(ctx, f.masterSocket, f.socketWait, log) }}, nil
	}
	sup := &reload.Supervisor{Bin: f.haproxyBin, Config: store.ConfigPath(), Socket: f.masterSocket, Log: log.Named("haproxy"),
		Output: &lineLogger{log: log.Named("haproxy.output")}, StopGrace: f.gracePeriod,
		StartTimeout: f.startTimeout, ReloadTimeout: f.reloadTimeout,
		Prepare: func() error {
			r, err := store.Repair()
			if r != nil {
				log.Warn("config-dir: "+r.String()+", before HAProxy starts", zap.String("config_dir", store.Dir()))
			}
			if errors.Is(err, reload.ErrNoCurrent) {
				return nil // Bootstrap wrote one; nothing else can be done
			}
			return err
		}}
	starts := 0
	sup.OnStart = func(adopted bool) {
		if starts++; starts > 1 {
			restarted()
		}
	}
	// HAProxy outlives the loop: it is stopped last, gracefully, and
	// stop returns only when it is gone.
	supCtx, stopHAProxy := context.WithCancel(context.WithoutCancel(ctx))
	supDone := make(chan error, 1)
	go func() { supDone <- sup.Run(supCtx) }()
	// HAProxy starts while the source loads (at 10k Ingresses both take
	// a while); passes before it is up write only, and the first pass
	// after it is up brings it up to date.
	var up atomic.Bool
	var supErr error
	var once sync.Once
	stop := func() {
		once.Do(func() {
			stopHAProxy()
			if err := <-supDone; err != nil {
				supErr = err
				log.Error("stopping HAProxy", zap.Error(err))
			}
		})
	}
	return haproxyConn{
		up: up.Load,
		wait: func(ctx context.Context) error {
			// A start that hangs is killed at the start timeout and
			// tried once more before the sidecar gives up.
			readyCtx, cancelReady := context.WithTimeout(ctx, max(30*time.Second, 2*f.startTimeout+5*time.Second))
			err := sup.WaitReady(readyCtx)
			cancelReady()
			if err != nil {
				stop()
				if supErr != nil {
					return supErr
				}
				return fmt.Errorf("HAProxy did not start: %w", err)
			}
			up.Store(true)
			return nil
		},
		api: supervised{MasterCLI: sup.CLI(), sup: sup, startTimeout: f.startTimeout},
		ready: func() error {
			if sup.PID() == 0 {
				return errors.New("HAProxy is not running; restarting it")
			}
			return nil
		},
		stop: stop,
	}, nil
}

// watchTemplates re-reads the templates directory once it has been quiet
// for a moment: an editor or `>` writes a file in steps, and a half-written
// template can parse and render nonsense. Manifests need no such wait: a
// file with a document that does not decode is served as last read. It
// returns the watcher and the re-read itself (for SIGHUP).
func (f *runFlags) watchTemplates(ctl func() *controller.Controller, log *zap.Logger) (*watch.Dir, func()) {
	reparse := func() {
		r, err := f.renderer()
		if err != nil {
			ctl().TemplatesFailed(err)
			log.Error("templates do not parse; keeping the last good ones", zap.Error(err))
			return
		}
		ctl().SetRenderer(r)
	}
	var mu sync.Mutex
	var settle *time.Timer
	w := &watch.Dir{Path: f.templatesDir, Log: log.Named("templates"), Notify: func() {
		mu.Lock()
		defer mu.Unlock()
		if settle == nil {
			settle = time.AfterFunc(templateSettle, reparse)
		} else {
			settle.Reset(templateSettle)
		}
	}}
	return w, reparse
}

// templateSettle is how long a templates directory must be quiet before
// it is re-read.
const templateSettle = 150 * time.Millisecond

// waitForSocket waits for an HAProxy started by another container to
// create its master socket.
func waitForSocket(ctx context.Context, path string, limit time.Duration, log *zap.Logger) error {
	deadline := time.Now().Add(limit)
	logged := false
	for {
		if st, err := os.Stat(path); err == nil && st.Mode()&os.ModeSocket != 0 {
			return nil
		}
		if !logged {
			log.Info("waiting for HAProxy's master socket", zap.String("path", path))
			logged = true
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("master socket %s did not appear within %s", path, limit)
		}
		select {
		case <-ctx.Done():
			return errors.New("stopped while waiting for the master socket")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// supervised talks to an HAProxy the sidecar started: runtime commands go
// to the master CLI, reloads through the supervisor, which adds HAProxy's
// own startup errors to a failed 2.6 reload.
type supervised struct {
	*reload.MasterCLI
	sup          *reload.Supervisor
	startTimeout time.Duration
}

// RestartStuck restarts a master that did not finish a reload
// (controller.Restarter).
func (s supervised) RestartStuck(master int) error { return s.sup.RestartStuck(master) }

func (s supervised) Reload(ctx context.Context) (reload.ReloadResult, error) {
	// Just restarted after it died: wait until it answers.
	readyCtx, cancel := context.WithTimeout(ctx, max(30*time.Second, s.startTimeout+5*time.Second))
	defer cancel()
	if err := s.sup.WaitReady(readyCtx); err != nil {
		return reload.ReloadResult{}, err
	}
	return s.sup.Reload(ctx)
}

// runStatus is the admin server's /status: the loop's state, the generation
// HAProxy's configuration path points at, and HAProxy's processes as its
// master reports them (old workers are previous generations still draining
// connections after a reload).
type runStatus struct {
	controller.Status
	Generation   int                `json:"generation"`
	Config       string             `json:"config"`
	OldWorkers   int                `json:"old_workers"`
	HAProxy      *reload.ProcStatus `json:"haproxy,omitempty"`
	HAProxyError string             `json:"haproxy_error,omitempty"`
	// Leader is set in Kubernetes mode: whether this replica writes status.
	Leader *bool `json:"leader,omitempty"`
	// Source is set in Kubernetes mode: whether the API server can be
	// reached, since when it cannot, and the last error.
	Source *kube.APIState `json:"source,omitempty"`
	// StoreRepaired is set when the config-dir's current link was found
	// missing or broken and restored (HAProxy could not have restarted).
	StoreRepaired *reload.Repair `json:"store_repaired,omitempty"`
}

// statusProcTimeout bounds /status's "show proc" (an answer takes
// milliseconds).
const statusProcTimeout = 2 * time.Second

func currentStatus(ctx context.Context, ctl *controller.Controller, store *reload.Store, cli *reload.MasterCLI, kc *kube.Cluster) runStatus {
	st := runStatus{Status: ctl.Status(), Config: store.ConfigPath(), StoreRepaired: store.LastRepair()}
	if gen, err := store.CurrentGeneration(); err == nil {
		st.Generation = gen
	}
	// Bounded well below the master CLI's own 10 s: a master that is not
	// up, or stuck parsing a configuration, must not hold up /status,
	// which is where people look to find out why.
	procCtx, cancel := context.WithTimeout(ctx, statusProcTimeout)
	defer cancel()
	if procs, err := cli.ShowProc(procCtx); err != nil {
		st.HAProxyError = err.Error()
	} else {
		// [] rather than null in the JSON when there are none.
		procs.Workers = append(make([]reload.Proc, 0, len(procs.Workers)), procs.Workers...)
		procs.OldWorkers = append(make([]reload.Proc, 0, len(procs.OldWorkers)), procs.OldWorkers...)
		st.HAProxy, st.OldWorkers = &procs, len(procs.OldWorkers)
	}
	if kc != nil {
		leader := kc.IsLeader()
		st.Leader = &leader
		api := kc.API()
		st.Source = &api
	}
	return st
}

// readiness is /readyz's rule: ready while HAProxy runs a configuration
// that was once complete: one rendered from the source by this run, or,
// after a restart, the one an earlier run rendered (adopted with HAProxy,
// or started from the config-dir) while the source cannot be read yet.
// Taking a pod that serves its last good configuration out of its
// Service would turn a control-plane outage into a data-plane one. A pod
// that has never served anything from the source stays unready.
func readiness(ctl *controller.Controller, hap haproxyConn, servedBefore bool) func() error {
	return func() error {
		if err := hap.ready(); err != nil {
			return err
		}
		if ctl.Ready() {
			return nil
		}
		if servedBefore && (hap.up == nil || hap.up()) {
			return nil
		}
		// Why, when a pass said so: e.g. the first configuration HAProxy
		// did not finish checking.
		if last := ctl.Status().LastError; last != "" {
			first, _, _ := strings.Cut(last, "\n")
			return errors.New("no configuration rendered from the source is served yet: " + first)
		}
		return errors.New("no configuration rendered from the source is served yet")
	}
}

// degraded lists the faults /readyz names while HAProxy keeps serving.
func degraded(ctl *controller.Controller, store *reload.Store, kc *kube.Cluster, servedBefore bool) []string {
	var out []string
	if kc != nil {
		if api := kc.API(); !api.Up && api.DownSince != nil {
			out = append(out, fmt.Sprintf("source: Kubernetes API server unreachable since %s (%s): %s",
				api.DownSince.UTC().Format(time.RFC3339), time.Since(*api.DownSince).Round(time.Second), api.LastError))
		}
	}
	if servedBefore && !ctl.Ready() {
		out = append(out, "source: not read yet; serving the configuration an earlier run rendered from it")
	}
	st := ctl.Status()
	if st.LastError != "" {
		first, _, _ := strings.Cut(st.LastError, "\n")
		out = append(out, first)
	}
	if r := store.LastRepair(); r != nil && time.Since(r.At) < 10*time.Minute {
		out = append(out, "config-dir: "+r.String())
	}
	for _, p := range st.ProblemDetails {
		switch p.Reason {
		case render.FileUnreadable, render.FileInvalid, render.NothingServed:
			out = append(out, p.String())
		}
	}
	return out
}

// dumpServed prints the configuration HAProxy runs now, or part of it.
func dumpServed(ctl *controller.Controller, q admin.ConfigQuery) (string, bool, error) {
	out := ctl.Served()
	if out == nil {
		return "", true, errors.New("no configuration served yet")
	}
	text, err := controller.Dump(out, ctl.Problems(), controller.DumpQuery{File: q.File,
		Selector: haproxycfg.Selector{Ingress: q.Ingress, Host: q.Host}})
	if errors.Is(err, controller.ErrNotFound) {
		return "", false, err
	}
	return text, true, err
}

// explainServed explains a request against the model HAProxy serves now.
func explainServed(ctl *controller.Controller, url string) (string, error) {
	r, err := render.ParseRequestURL(url)
	if err != nil {
		return "", err
	}
	m := ctl.Model()
	if m == nil {
		return "", errors.New("no configuration served yet")
	}
	return m.Explain(r).String(), nil
}
