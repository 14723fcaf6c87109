package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/go-logr/zapr"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/klog/v2"

	"github.com/haproxy-sidecar/haproxy-sidecar/admin"
	"github.com/haproxy-sidecar/haproxy-sidecar/controller"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/cpulimit"
	"github.com/haproxy-sidecar/haproxy-sidecar/metrics"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

type runFlags struct {
	renderFlags
	clusterFlags
	manifests    string
	healthAddr   string
	debugAddr    string
	configDir    string
	masterSocket string
	// workerSocketFlag is --worker-socket as given.
	workerSocketFlag  string
	haproxyStart      bool
	init              bool
	minReloadInterval time.Duration
	socketWait        time.Duration
	reloadTimeout     time.Duration
	startTimeout      time.Duration
	logLevel          string
	logFormat         string
	historySize       int
	memoryRatio       float64
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

func newRunCommand(hup <-chan os.Signal, stderr io.Writer) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [--manifests DIR | --kubeconfig FILE] --config-dir DIR --master-socket PATH [--haproxy-start] [flags]",
		Short: "Keep HAProxy serving the Ingresses of a cluster or of manifest files",
		Long: `Keep HAProxy serving the Ingresses of a cluster (through --kubeconfig, or the pod's
service account when neither --kubeconfig nor --manifests is given) or of the
manifest files in --manifests, watched for changes. HAProxy is the one another
container started, reached on --master-socket, or with --haproxy-start one the
sidecar starts and supervises. --init only writes a minimal configuration into
--config-dir and exits, for an HAProxy container to start on.`,
		Example: `  haproxy-sidecar run --manifests ./manifests --config-dir /tmp/cfg --master-socket /tmp/master.sock --haproxy-start
  haproxy-sidecar run --config-dir /etc/haproxy/sidecar --master-socket /run/haproxy/master.sock   # in a pod
  haproxy-sidecar run --init --config-dir /etc/haproxy/sidecar`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return result(runCommand(cmd, &f, hup, stderr))
		},
	}
	fs := cmd.Flags()
	f.renderFlags.register(fs)
	fs.StringVar(&f.manifests, "manifests", "", "file or directory of Kubernetes manifests to watch instead of a cluster")
	f.clusterFlags.register(fs)
	fs.StringVar(&f.healthAddr, "health-addr", ":10254", "listen address of /healthz, /readyz and /startupz (empty to disable)")
	fs.StringVar(&f.debugAddr, "debug-addr", "127.0.0.1:10255", "listen address of /status and /explain, which show the routing table and every problem: keep it on loopback (kubectl port-forward reaches it) (empty to disable)")
	fs.StringVar(&f.configDir, "config-dir", "", "directory holding the generations of HAProxy's configuration; HAProxy runs <dir>/current/haproxy.cfg (required)")
	fs.StringVar(&f.masterSocket, "master-socket", "", "HAProxy master CLI socket (haproxy -W -S <path>) (required)")
	fs.StringVar(&f.workerSocketFlag, "worker-socket", "", `the worker's own runtime API socket the configuration declares, so that map and server changes skip the master's hop; empty: beside --master-socket, named after it (master.sock: master-worker.sock); "none": none (everything through the master). HAProxy binds it at this path, so its container must see it where the sidecar does, as with the master socket`)
	fs.BoolVar(&f.haproxyStart, "haproxy-start", false, "start and supervise HAProxy in master-worker mode (adopting one already answering on --master-socket) instead of using one another container started")
	fs.BoolVar(&f.init, "init", false, "write a valid minimal configuration into --config-dir (unless one is there) and exit; for an HAProxy container to start on")
	f.renderFlags.registerSpares(fs)
	fs.DurationVar(&f.minReloadInterval, "min-reload-interval", 500*time.Millisecond, "minimum time between the starts of two reloads while workers replaced by earlier reloads pile up (a reload starts at once while at most one is still finishing); longer when a reload takes longer or more old workers pile up (runtime API updates are not limited)")
	fs.DurationVar(&f.reloadTimeout, "haproxy-reload-timeout", reload.DefaultReloadTimeout, "how long a reload may take until the new worker runs; a configuration HAProxy has not finished loading by then is rejected, and a master started with --haproxy-start is restarted on the last good one (a 10k-Ingress reload takes about 1.7 s)")
	fs.DurationVar(&f.startTimeout, "haproxy-start-timeout", reload.DefaultStartTimeout, "with --haproxy-start: how long HAProxy may take to start until its worker runs; one that has not by then is killed and started again")
	fs.DurationVar(&f.socketWait, "socket-wait", 5*time.Minute, "how long to wait for the master socket of an HAProxy started elsewhere")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "json", "json (one object per line, for log collectors) or console (for people)")
	fs.IntVar(&f.historySize, "history", admin.DefaultHistory, "how many passes that changed something /history keeps")
	fs.Float64Var(&f.memoryRatio, "memory-limit-ratio", 0.9, "the Go collector's soft memory limit as a share of the container's memory limit (its cgroup's, read again every minute), so that it collects harder instead of the container being killed; 0 turns it off, and GOMEMLIMIT or AUTOMEMLIMIT in the environment win")
	return cmd
}

func runCommand(cmd *cobra.Command, f *runFlags, hup <-chan os.Signal, stderr io.Writer) int {
	ctx := cmd.Context()
	// A long-running process whose heap is mostly caches that change a
	// little at a time: collecting at 50% growth instead of Go's 100%
	// keeps its memory (a pod limit) down for little CPU, now that a pass
	// allocates little. Not while it starts: the informers' lists and
	// the first pass build the heap from nothing, almost all of it kept,
	// and at 50% every collection marks again what the last one kept (at
	// 10k Ingresses, a third of the sidecar's CPU until the first
	// configuration was served). GOGC still overrides both.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(startGCPercent)
		f.afterFirstPass = func() { debug.SetGCPercent(steadyGCPercent) }
	}
	if f.configDir == "" || (!f.init && f.masterSocket == "") {
		return usageFailure(stderr, cmd, "--config-dir and --master-socket are required (--init needs only --config-dir)")
	}
	f.adminAddrs = []string{f.healthAddr, f.debugAddr}
	if _, err := f.options(); err != nil {
		return usageFailure(stderr, cmd, "%v", err)
	}
	if master, err := filepath.Abs(f.masterSocket); f.masterSocket != "" && err == nil {
		// Refused here, as a usage error, rather than when the first
		// configuration renders.
		if _, err := resolveWorkerSocket(f.workerSocketFlag, master); err != nil {
			return usageFailure(stderr, cmd, "%v", err)
		}
	}
	log, err := newLogger(f.logLevel, f.logFormat, stderr)
	if err != nil {
		return usageFailure(stderr, cmd, "%v", err)
	}
	defer log.Sync() //nolint:errcheck // stderr
	routeKlog(log)
	if err := f.threadsFromLimit(log); err != nil {
		return usageFailure(stderr, cmd, "%v", err)
	}
	if err := f.memoryLimit(ctx, log); err != nil {
		return usageFailure(stderr, cmd, "%v", err)
	}
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

// routeKlog sends klog's output (client-go's leader election, reflector
// and event broadcaster lines) through log, named "klog": in JSON mode
// every line the process writes is JSON. klog keeps its own verbosity
// check (-v 0: only its V(0) lines reach zap, as before).
func routeKlog(log *zap.Logger) {
	klog.SetLogger(zapr.NewLogger(log.Named("klog")))
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
	hap := reload.NewProcess(f.processOptions(store, log, func() { ctl.HAProxyRestarted() }))
	hap.Start()
	// HAProxy outlives the loop: it is stopped last, and Stop returns
	// only when it is gone.
	defer func() {
		if err := hap.Stop(); err != nil {
			log.Error("stopping HAProxy", zap.Error(err))
		}
	}()
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
	// The binary's version now; the running master's at each scrape
	// (an HAProxy another container started may be another build).
	hv, err := haproxyVersion(ctx, f.haproxyBin)
	if err != nil {
		log.Warn("no HAProxy version for haproxy_sidecar_build_info", zap.Error(err))
		hv = "unknown"
	}
	info := metricsBuildInfo(hv)
	mets.SetBuildInfo(info, func(ctx context.Context) (string, error) {
		v, err := cli.Version(ctx)
		return v.Full, err
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
		HAProxy:           hap.Conn(),
		HAProxyUp:         hap.Up,
		BuiltinTemplates:  f.templatesDir == "",
		MinReloadInterval: f.minReloadInterval,
		WholeChanges:      src.cluster != nil, // objects come whole from the API server; files may be written in steps
		Log:               log.Named("controller"),
		OnApplied:         src.applied(log, mets),
		OnPass:            firstPassHook(f.afterFirstPass, mets.ObservePass),
	}, renderer)
	state := &admin.RunState{Controller: ctl, Store: store, Process: hap, CLI: cli, Cluster: src.cluster, ServedBefore: servedBefore}

	if health != nil {
		// A configuration an earlier run rendered is current on disk: an
		// HAProxy container started now starts on a complete one.
		started := func() bool { return servedBefore || ctl.Written() }
		h := &admin.Health{Live: ctl.Live, Started: started, Metrics: mets.Handler(), Degraded: state.Degraded, Ready: state.Ready}
		g.run("health server", func(ctx context.Context) error { return admin.Serve(ctx, health, h.Handler(), log.Named("health")) })
	}
	if debug != nil {
		d := &admin.Debug{
			Status:  state.Status,
			Explain: state.Explain,
			Config:  state.Config,
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
	g.run("master socket wait", func(ctx context.Context) error {
		if err := hap.Wait(ctx); err != nil {
			// The pod is broken: exit non-zero so it is restarted.
			fatal <- err
			cancel()
			return nil
		}
		ctl.Notify()
		return nil
	})
	if err := src.start(ctx, g, servedBefore); err != nil {
		select {
		case ferr := <-fatal:
			return ferr
		default:
			return err
		}
	}
	log.Info("running", zap.String("manifests", f.manifests), zap.String("watch_namespace", f.watchNamespace), zap.String("config", store.ConfigPath()),
		zap.String("master_socket", f.masterSocket), zap.String("worker_socket", f.workerSocket), zap.Bool("haproxy_start", f.haproxyStart),
		zap.String("version", info.Version), zap.String("commit", info.Commit), zap.String("haproxy_version", hv))
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
	if f.workerSocket, err = resolveWorkerSocket(f.workerSocketFlag, f.masterSocket); err != nil {
		return nil, nil, false, err
	}
	if f.workerSocket == "" && f.workerSocketFlag != "none" && f.masterSocket != "" {
		log.Info("no worker socket: the path beside --master-socket is too long for HAProxy to bind; runtime commands go through the master",
			zap.String("master_socket", f.masterSocket))
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
		servedBefore = err == nil && !bytes.Equal(cur, bootFiles[reload.ConfigName]) && !f.initBootstrap(cur)
	}
	if servedBefore {
		log.Info("the current configuration was rendered from the source by an earlier run; serving it until the source is read",
			zap.Int("generation", boot.Generation))
	}
	return store, renderer, servedBefore, nil
}

// initBootstrap says whether cfg is the bootstrap configuration that
// run --init writes when it is given no --master-socket: this run's
// without the worker socket, which --init cannot name. Taken for one
// rendered from the source, it made /startupz say HAProxy may start
// before the first pass had written the cluster's configuration, and
// HAProxy then started on the bootstrap one (404 for every host).
func (f *runFlags) initBootstrap(cfg []byte) bool {
	if f.workerSocket == "" {
		return false
	}
	rf := f.renderFlags
	rf.workerSocket = ""
	renderer, err := rf.renderer()
	if err != nil {
		return false
	}
	_, empty, err := renderer(render.Inputs{}, nil)
	return err == nil && bytes.Equal(cfg, controller.Files(empty)[reload.ConfigName])
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

// resolveWorkerSocket is --worker-socket's path: given, derived from the
// master socket (reload.WorkerSocketFor) when empty, none for "none".
func resolveWorkerSocket(flag, master string) (string, error) {
	switch flag {
	case "none":
		return "", nil
	case "":
		return reload.WorkerSocketFor(master), nil
	}
	p, err := filepath.Abs(flag)
	if err == nil {
		err = reload.CheckWorkerSocket(p)
	}
	if err != nil {
		return "", fmt.Errorf("--worker-socket: %w", err)
	}
	if p == master {
		return "", fmt.Errorf("--worker-socket %s is --master-socket", flag)
	}
	return p, nil
}

// processOptions is HAProxy's process as the flags describe it: started
// and supervised with --haproxy-start, else one another container starts.
// restarted is called when a supervised HAProxy was started again.
func (f *runFlags) processOptions(store *reload.Store, log *zap.Logger, restarted func()) reload.ProcessOptions {
	return reload.ProcessOptions{
		Start: f.haproxyStart, Bin: f.haproxyBin, Config: store.ConfigPath(), Socket: f.masterSocket, WorkerSocket: f.workerSocket,
		ReloadTimeout: f.reloadTimeout, StartTimeout: f.startTimeout, StopGrace: f.gracePeriod,
		SocketWait: f.socketWait, OnRestart: restarted, Log: log,
		Output: reload.NewOutputLog(log.Named("haproxy.output")),
		// A restart must never fail on a missing current link.
		Prepare: func() error {
			r, err := store.Repair()
			if r != nil {
				log.Warn("config-dir: "+r.String()+", before HAProxy starts", zap.String("config_dir", store.Dir()))
			}
			if errors.Is(err, reload.ErrNoCurrent) {
				return nil // Bootstrap wrote one; nothing else can be done
			}
			return err
		},
	}
}

// memoryLimit sets the Go runtime's soft memory limit to
// --memory-limit-ratio of the container's memory limit (cgroup v2 or v1,
// through automemlimit), and keeps it in step with the limit (a pod
// resized in place) every minute. The sidecar's live heap grows with the
// cluster (about 200 MiB at 50k Ingresses) and the collector's headroom
// with it (GOGC 50: half again). Near the limit, collecting harder costs
// CPU; an OOM kill leaves HAProxy unwatched until the sidecar is back.
// Without a memory limit nothing changes. With --haproxy-start HAProxy
// shares the container and its limit: README says to lower the ratio.
func (f *runFlags) memoryLimit(ctx context.Context, log *zap.Logger) error {
	r := f.memoryRatio
	if r == 0 {
		log.Info("Go memory limit", zap.String("from", "--memory-limit-ratio 0: none"))
		return nil
	}
	if !(r > 0 && r <= 1) {
		return fmt.Errorf("--memory-limit-ratio %v: must be 0 (off) or in (0, 1]", r)
	}
	limit, err := memlimit.Set(memlimit.WithRatio(r), memlimit.WithProvider(memlimit.FromCgroup),
		memlimit.WithRefreshInterval(ctx, time.Minute))
	auto, autoSet := os.LookupEnv("AUTOMEMLIMIT")
	switch {
	case os.Getenv("GOMEMLIMIT") != "":
		log.Info("Go memory limit", zap.String("from", "GOMEMLIMIT"), zap.Int64("bytes", limit))
	case err != nil:
		// Not a usage error: a cgroup that cannot be read (or a bad
		// AUTOMEMLIMIT) leaves the collector as it was.
		log.Warn("Go memory limit: none set", zap.Error(err))
	case autoSet && auto == "off":
		log.Info("Go memory limit", zap.String("from", "AUTOMEMLIMIT=off: none"))
	case limit == math.MaxInt64:
		log.Info("Go memory limit", zap.String("from", "none: the container has no memory limit"))
	case autoSet:
		log.Info("Go memory limit", zap.String("from", "the container's memory limit"), zap.String("ratio", "AUTOMEMLIMIT="+auto), zap.Int64("bytes", limit))
	default:
		log.Info("Go memory limit", zap.String("from", "the container's memory limit"), zap.Float64("ratio", r), zap.Int64("bytes", limit))
	}
	return nil
}

// threadsFromLimit resolves --haproxy-threads 0 to the HAProxy
// container's CPU limit (internal/cpulimit.Choose): render stays pure, and
// this, run's wiring, is where the environment and cgroup files are read.
// In the pod HAProxy is the other container, whose limit only the Downward
// API tells (HAPROXY_CPU_LIMIT); the sidecar's own cgroup is used only
// when HAProxy is its child (--haproxy-start).
func (f *runFlags) threadsFromLimit(log *zap.Logger) error {
	c, err := cpulimit.Choose(f.threads, os.Getenv(cpulimit.EnvVar), f.haproxyStart, os.DirFS("/"), runtime.NumCPU())
	if err != nil {
		return err
	}
	f.threads = c.Threads
	log.Info("HAProxy threads", zap.Int("nbthread", c.Threads), zap.String("from", c.Source), zap.Int("cpus", runtime.NumCPU()))
	return nil
}
