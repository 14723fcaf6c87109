package reload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Process is HAProxy's process as run mode sees it, in one of two ways.
//
// With Start (--haproxy-start) the sidecar owns it: Start adopts an HAProxy
// left answering on the master socket with the same configuration (by a
// sidecar that was killed), or starts one; a Supervisor restarts it when its
// master dies and, through Conn, replaces a master stuck in a reload; Stop
// soft-stops it and returns when none of its processes is left.
//
// Without Start another container starts HAProxy (after the sidecar's
// startup probe saw a configuration written): Wait waits for its master
// socket, Conn is the plain master CLI, which cannot restart anything, and
// Stop has nothing to do.
//
// It lives in reload because reload owns every interaction with HAProxy,
// and Process is the Supervisor and the MasterCLI put together; package main
// only fills ProcessOptions from its flags.
type Process struct {
	opts ProcessOptions
	log  *zap.Logger
	cli  *MasterCLI
	sup  *Supervisor // Start only

	// up is set once Wait saw HAProxy answer (always, without Start).
	up      atomic.Bool
	started atomic.Bool
	// cancel ends the supervisor's Run; done is closed when it returned,
	// with its error in runErr.
	cancel context.CancelFunc
	done   chan struct{}
	runErr error
}

// ProcessOptions configures a Process; run mode fills it from its flags.
type ProcessOptions struct {
	// Start: the sidecar starts (or adopts) and supervises HAProxy.
	Start bool
	// Bin is the haproxy binary (Start only).
	Bin string
	// Config is the -f argument, Store.ConfigPath(): an HAProxy is adopted
	// only when it runs this path, and a refused reload's file names are
	// made relative to its directory.
	Config string
	// Socket is the master socket path (-S).
	Socket string
	// WorkerSocket is the worker's own CLI socket the configuration
	// declares (MasterCLI.WorkerSocket), "" for none.
	WorkerSocket string
	// ReloadTimeout bounds a reload until the new worker runs
	// (MasterCLI.ReloadTimeout).
	ReloadTimeout time.Duration
	// StartTimeout bounds a start until its worker runs
	// (Supervisor.StartTimeout; default DefaultStartTimeout).
	StartTimeout time.Duration
	// StopGrace is how long a soft stop may take (Supervisor.StopGrace).
	StopGrace time.Duration
	// SocketWait is how long Wait waits for the master socket of an
	// HAProxy started elsewhere (without Start).
	SocketWait time.Duration
	// Prepare runs before each start (not before an adoption): the sidecar
	// repairs its config-dir there.
	Prepare func() error
	// OnRestart is called when HAProxy was started again after its first
	// start or adoption (its master died, or a stuck one was replaced): it
	// runs what is current on disk now.
	OnRestart func()
	// Log receives the lifecycle's events: its own under this logger, the
	// supervisor's under "haproxy". Nil discards them.
	Log *zap.Logger
	// Output, if set, receives the output of an HAProxy the sidecar starts.
	Output io.Writer
}

// Conn is how the loop reaches the HAProxy a Process runs: reloads and
// runtime-API batches. The Conn of a supervised HAProxy can also replace a
// stuck master (RestartStuck(master int) error); that of one another
// container started cannot.
type Conn interface {
	Reload(ctx context.Context) (ReloadResult, error)
	Send(ctx context.Context, b *Batch) error
	OldWorkers(ctx context.Context) (int, error)
}

// NewProcess returns the Process opts describe; nothing runs before Start.
func NewProcess(opts ProcessOptions) *Process {
	log := opts.Log
	if log == nil {
		log = zap.NewNop()
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	p := &Process{opts: opts, log: log, done: make(chan struct{}),
		cli: &MasterCLI{Socket: opts.Socket, WorkerSocket: opts.WorkerSocket, ConfigDir: filepath.Dir(opts.Config), ReloadTimeout: opts.ReloadTimeout}}
	if !opts.Start {
		// The sidecar does not wait for HAProxy before its first pass:
		// HAProxy's container starts only once the sidecar's startup
		// probe sees a configuration from the source written.
		p.up.Store(true)
		close(p.done)
		return p
	}
	p.sup = &Supervisor{Bin: opts.Bin, Config: opts.Config, Socket: opts.Socket, Log: log.Named("haproxy"),
		Output: opts.Output, StopGrace: opts.StopGrace, StartTimeout: opts.StartTimeout,
		ReloadTimeout: opts.ReloadTimeout, Prepare: opts.Prepare, ListenerSocket: opts.WorkerSocket}
	starts := 0
	p.sup.OnStart = func(adopted bool) {
		if starts++; starts > 1 && opts.OnRestart != nil {
			opts.OnRestart()
		}
	}
	return p
}

// Start adopts or starts HAProxy and supervises it until Stop (with Start;
// otherwise it does nothing). It returns at once: HAProxy starts while the
// source loads (at 10k Ingresses both take a while); passes before it is up
// write only, and the first pass after Wait brings it up to date.
func (p *Process) Start() {
	if p.sup == nil || p.started.Swap(true) {
		return
	}
	// HAProxy outlives the loop: only Stop ends it, gracefully.
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		p.runErr = p.sup.Run(ctx)
		close(p.done)
	}()
}

// Wait returns once HAProxy answers: with Start, once its master has a
// worker; else once its master socket exists (within SocketWait). An
// HAProxy the sidecar started that does not come up (a start that hangs is
// killed at the start timeout and tried once more) is stopped, and Wait
// says why.
func (p *Process) Wait(ctx context.Context) error {
	if p.sup == nil {
		return waitForSocket(ctx, p.opts.Socket, p.opts.SocketWait, p.log)
	}
	readyCtx, cancel := context.WithTimeout(ctx, max(30*time.Second, 2*p.opts.StartTimeout+5*time.Second))
	defer cancel()
	ready := make(chan error, 1)
	go func() { ready <- p.sup.WaitReady(readyCtx) }()
	var err error
	select {
	case err = <-ready:
	case <-p.done:
		// Run gave up: an HAProxy that is not ours answers on the socket.
		cancel()
		err = <-ready
	}
	if err != nil {
		if stopErr := p.Stop(); stopErr != nil {
			return stopErr
		}
		return fmt.Errorf("HAProxy did not start: %w", err)
	}
	p.up.Store(true)
	return nil
}

// Up says whether HAProxy can be reached now: without Start, whether its
// master socket exists; with Start, whether Wait has seen it answer.
func (p *Process) Up() bool {
	if p.sup == nil {
		st, err := os.Stat(p.opts.Socket)
		return err == nil && st.Mode()&os.ModeSocket != 0
	}
	return p.up.Load()
}

// Ready is nil when HAProxy serves, else why not: a supervised HAProxy is
// not while it is restarted. (One another container runs is taken to serve.)
func (p *Process) Ready() error {
	if p.sup != nil && p.sup.PID() == 0 {
		return errors.New("HAProxy is not running; restarting it")
	}
	return nil
}

// Conn returns how the loop reaches HAProxy (see Conn).
func (p *Process) Conn() Conn {
	if p.sup == nil {
		return p.cli
	}
	return supervised{MasterCLI: p.cli, sup: p.sup, startTimeout: p.opts.StartTimeout}
}

// Stop stops a supervised HAProxy gracefully and returns once none of its
// processes is left (with the supervisor's error, if it could not stop it,
// or gave up on a socket another HAProxy answers). It may be called more
// than once.
func (p *Process) Stop() error {
	if p.cancel != nil {
		p.cancel()
	}
	if p.sup != nil && !p.started.Load() {
		return nil
	}
	<-p.done
	return p.runErr
}

// supervised talks to an HAProxy the sidecar started: runtime commands go
// to the master CLI, reloads through the supervisor, which adds HAProxy's
// own startup errors to a failed 2.6 reload.
type supervised struct {
	*MasterCLI
	sup          *Supervisor
	startTimeout time.Duration
}

// RestartStuck restarts a master that did not finish a reload
// (controller.Restarter).
func (s supervised) RestartStuck(master int) error { return s.sup.RestartStuck(master) }

func (s supervised) Reload(ctx context.Context) (ReloadResult, error) {
	// Just restarted after it died: wait until it answers.
	readyCtx, cancel := context.WithTimeout(ctx, max(30*time.Second, s.startTimeout+5*time.Second))
	defer cancel()
	if err := s.sup.WaitReady(readyCtx); err != nil {
		return ReloadResult{}, err
	}
	return s.sup.Reload(ctx)
}

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
