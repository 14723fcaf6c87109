package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/haproxy-sidecar/haproxy-sidecar/admin"
	"github.com/haproxy-sidecar/haproxy-sidecar/controller"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/watch"
)

type runFlags struct {
	renderFlags
	clusterFlags
	manifests         string
	healthAddr        string
	configDir         string
	masterSocket      string
	haproxyStart      bool
	init              bool
	minReloadInterval time.Duration
	socketWait        time.Duration
	logLevel          string
}

func runCommand(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f runFlags
	f.renderFlags.register(fs)
	fs.StringVar(&f.manifests, "manifests", "", "file or directory of Kubernetes manifests to watch instead of a cluster")
	f.clusterFlags.register(fs)
	fs.StringVar(&f.healthAddr, "health-addr", ":10254", "listen address of /healthz and /readyz (empty to disable)")
	fs.StringVar(&f.configDir, "config-dir", "", "directory holding the generations of HAProxy's configuration; HAProxy runs <dir>/current/haproxy.cfg (required)")
	fs.StringVar(&f.masterSocket, "master-socket", "", "HAProxy master CLI socket (haproxy -W -S <path>) (required)")
	fs.BoolVar(&f.haproxyStart, "haproxy-start", false, "start and supervise HAProxy in master-worker mode instead of using one another container started")
	fs.BoolVar(&f.init, "init", false, "write a valid minimal configuration into --config-dir (unless one is there) and exit; for an HAProxy container to start on")
	fs.DurationVar(&f.minReloadInterval, "min-reload-interval", time.Second, "minimum time between two reloads (runtime API updates are not limited)")
	fs.DurationVar(&f.socketWait, "socket-wait", 5*time.Minute, "how long to wait for the master socket of an HAProxy started elsewhere")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
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
	log, err := newLogger(f.logLevel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "run: %v\n", err)
		return 2
	}
	defer log.Sync() //nolint:errcheck // stderr
	if err := f.run(ctx, log); err != nil {
		log.Error("run failed", zap.Error(err))
		return 1
	}
	return 0
}

func newLogger(level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), lvl)
	return zap.New(core), nil
}

func (f *runFlags) run(ctx context.Context, log *zap.Logger) error {
	configDir, err := filepath.Abs(f.configDir)
	if err != nil {
		return err
	}
	// HAProxy reads a -S argument without a slash as host:port.
	if f.masterSocket != "" {
		if f.masterSocket, err = filepath.Abs(f.masterSocket); err != nil {
			return err
		}
	}
	store, err := reload.NewStore(configDir)
	if err != nil {
		return err
	}
	renderer, err := f.renderer()
	if err != nil {
		return err
	}

	// HAProxy needs a configuration before it can start: the last good
	// one when there is one, else an empty cluster's (404 for everything).
	_, empty, err := renderer(render.Inputs{})
	if err != nil {
		return fmt.Errorf("rendering the bootstrap configuration: %w", err)
	}
	boot, err := store.Bootstrap(controller.Files(empty))
	if err != nil {
		return fmt.Errorf("writing the bootstrap configuration: %w", err)
	}
	if f.init {
		log.Info("configuration ready", zap.String("config", store.ConfigPath()), zap.Bool("written", boot.Changed))
		return nil
	}

	cli := reload.NewMasterCLI(f.masterSocket)
	var haproxy controller.HAProxy = cli
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); wg.Wait() }()

	if f.haproxyStart {
		sup := &reload.Supervisor{Bin: f.haproxyBin, Config: store.ConfigPath(), Socket: f.masterSocket, Log: log.Named("haproxy"),
			Output: os.Stderr, StopGrace: f.gracePeriod}
		haproxy = supervised{MasterCLI: sup.CLI(), sup: sup}
		// HAProxy outlives the loop: it is stopped last, gracefully.
		supCtx, stopHAProxy := context.WithCancel(context.WithoutCancel(ctx))
		supDone := make(chan struct{})
		go func() {
			defer close(supDone)
			if err := sup.Run(supCtx); err != nil {
				log.Error("stopping HAProxy", zap.Error(err))
			}
		}()
		defer func() { stopHAProxy(); <-supDone }()
		readyCtx, cancelReady := context.WithTimeout(ctx, 30*time.Second)
		err := sup.WaitReady(readyCtx)
		cancelReady()
		if err != nil {
			return err
		}
	} else if err := waitForSocket(ctx, f.masterSocket, f.socketWait, log); err != nil {
		return err
	}

	var source controller.Source
	var ctl *controller.Controller
	var kc *cluster
	notify := func() { ctl.Notify() }
	var runners []func(context.Context) error
	if f.manifests != "" {
		source = controller.FileSource{Path: f.manifests}
		w := &watch.Dir{Path: f.manifests, Notify: notify, Log: log.Named("watch")}
		runners = append(runners, w.Run)
	} else {
		if kc, err = newCluster(f, log, notify); err != nil {
			return err
		}
		source = kc.source
		runners = append(runners, func(ctx context.Context) error { return kc.run(ctx, f.statusSyncInterval) })
	}
	if f.templatesDir != "" {
		reparse := func() {
			r, err := f.renderer()
			if err != nil {
				ctl.TemplatesFailed(err)
				log.Error("templates do not parse; keeping the last good ones", zap.Error(err))
				return
			}
			ctl.SetRenderer(r)
		}
		// Templates are re-read once they have been quiet for a moment: an
		// editor or `>` writes a file in steps, and a half-written template
		// can parse and render nonsense. Manifests need no such wait: a
		// half-written manifest only misses objects for one pass.
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
		runners = append(runners, w.Run)
	}

	ctl = controller.New(controller.Config{
		Source:            source,
		Store:             store,
		Validate:          reload.Validator(ctx, f.haproxyBin),
		HAProxy:           haproxy,
		MinReloadInterval: f.minReloadInterval,
		Log:               log.Named("controller"),
		OnApplied: func(ev controller.Event) {
			if kc != nil {
				kc.applied(ev)
			}
			if !ev.Changed {
				return
			}
			for _, p := range ev.Problems {
				if p.Severity == render.Warning {
					log.Warn("skipped", zap.String("problem", p.String()))
				}
			}
		},
	}, renderer)
	if f.healthAddr != "" {
		srv := &admin.Server{Addr: f.healthAddr, Ready: ctl.Ready, Log: log.Named("admin"),
			Status:  func(ctx context.Context) any { return currentStatus(ctx, ctl, store, cli, kc) },
			Explain: func(url string) (string, error) { return explainServed(ctl, url) }}
		runners = append(runners, srv.Run)
	}
	if kc != nil {
		// The first render must see the whole cluster, not a partial cache.
		ks := kc.source
		wg.Add(1)
		go func() { defer wg.Done(); ks.Run(ctx) }() //nolint:errcheck // returns nil
		syncCtx, cancelSync := context.WithTimeout(ctx, 2*time.Minute)
		err := ks.WaitForSync(syncCtx)
		cancelSync()
		if err != nil {
			return err
		}
	}
	for _, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r(ctx); err != nil {
				log.Error("stopped", zap.Error(err))
			}
		}()
	}
	log.Info("running", zap.String("manifests", f.manifests), zap.String("watch_namespace", f.watchNamespace), zap.String("config", store.ConfigPath()),
		zap.String("master_socket", f.masterSocket), zap.Bool("haproxy_start", f.haproxyStart))
	err = ctl.Run(ctx)
	log.Info("stopping", zap.Any("stats", ctl.Stats()))
	return err
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
	sup *reload.Supervisor
}

func (s supervised) Reload(ctx context.Context) (reload.ReloadResult, error) {
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
}

func currentStatus(ctx context.Context, ctl *controller.Controller, store *reload.Store, cli *reload.MasterCLI, kc *cluster) runStatus {
	st := runStatus{Status: ctl.Status(), Config: store.ConfigPath()}
	if gen, err := store.CurrentGeneration(); err == nil {
		st.Generation = gen
	}
	if procs, err := cli.ShowProc(ctx); err != nil {
		st.HAProxyError = err.Error()
	} else {
		// [] rather than null in the JSON when there are none.
		procs.Workers = append(make([]reload.Proc, 0, len(procs.Workers)), procs.Workers...)
		procs.OldWorkers = append(make([]reload.Proc, 0, len(procs.OldWorkers)), procs.OldWorkers...)
		st.HAProxy, st.OldWorkers = &procs, len(procs.OldWorkers)
	}
	if kc != nil {
		leader := kc.leader.IsLeader()
		st.Leader = &leader
	}
	return st
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
