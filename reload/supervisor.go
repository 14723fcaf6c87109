package reload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Supervisor runs HAProxy in master-worker mode (`haproxy -W -S <socket> -f
// <config> [args...]`) for --haproxy-start: it restarts HAProxy with backoff when
// the master dies and stops it gracefully when Run's context is canceled.
// Reloads go through CLI(); the supervisor itself never signals a reload.
type Supervisor struct {
	Bin    string   // haproxy binary
	Config string   // -f argument, normally Store.ConfigPath()
	Socket string   // master socket path (-S)
	Args   []string // extra arguments, e.g. "-L", "peer1"

	// Log receives lifecycle events; nil discards them.
	Log *zap.Logger
	// Output, if set, receives HAProxy's stdout and stderr as well (Output()
	// always keeps the tail).
	Output io.Writer

	// MinBackoff and MaxBackoff bound the delay before a restart; it doubles after
	// each quick death and resets once HAProxy ran for a minute. Defaults 200ms, 10s.
	MinBackoff, MaxBackoff time.Duration
	// StopGrace is how long a soft stop (SIGUSR1: stop accepting, finish
	// connections) may take before SIGTERM (hard stop). Default 10s.
	StopGrace time.Duration
	// Prepare, when set, runs before each start (not before an adoption):
	// the sidecar repairs its config-dir there, so that a restart never
	// fails on a missing current link.
	Prepare func() error
	// OnStart, when set, is called each time an HAProxy was started or
	// adopted (adopted: it was running already), before it is ready.
	OnStart func(adopted bool)
	// StartTimeout bounds a start: an HAProxy whose master has no worker
	// this long after it was started (parsing something that does not
	// end) is killed, and the start counts as failed. Default
	// DefaultStartTimeout.
	StartTimeout time.Duration
	// ReloadTimeout is the master CLI's (MasterCLI.ReloadTimeout).
	ReloadTimeout time.Duration
	// ListenerSocket, when set, is the worker's own stats socket
	// (WorkerSocketFor). Where the configuration declares it with
	// "expose-fd listeners", a master started beside a stuck one
	// (RestartStuck) takes the running worker's listening sockets from
	// it (-x) instead of binding sockets of its own (takeListeners).
	ListenerSocket string

	mu     sync.Mutex
	pid    int
	starts int
	// stuck takes RestartStuck's requests to Run (made by Run).
	stuck chan stuckRequest
	// retireNow is closed when Run returns: a stuck master still waiting
	// for its workers to finish (kill) is killed at once, and Run waits
	// for it (retiring), so that no HAProxy outlives the sidecar.
	retireNow chan struct{}
	retiring  sync.WaitGroup
	ready     chan struct{} // closed when the current instance answers on its socket
	closed    bool          // ready is closed
	tail      tailBuffer
}

// DefaultStartTimeout bounds a start when StartTimeout is not set: a start
// parses the configuration like a reload (1.7 s at 10k Ingresses here), so
// the same margin as DefaultReloadTimeout.
const DefaultStartTimeout = 30 * time.Second

// CLI returns a master CLI client for the supervised HAProxy.
func (s *Supervisor) CLI() *MasterCLI {
	return &MasterCLI{Socket: s.Socket, ConfigDir: filepath.Dir(s.Config), ReloadTimeout: s.ReloadTimeout}
}

// RestartStuck replaces the master with PID master, when it is the one the
// supervisor runs, by a new one on whatever the configuration path names by
// then. It is the way out of a reload that missed its deadline
// (*ReloadTimeoutError): the master is single-threaded and parses the new
// configuration, so it takes no other command, and no signal it handles
// arrives before the parse ends. Its worker keeps serving, but only as long
// as the master lives: killed, the worker stops accepting at once (2.6 and
// 3.0). So the new master is started beside it first, on the listening
// sockets of the stuck master's worker where ListenerSocket exposes them
// (else on sockets of its own beside them, SO_REUSEPORT; the stuck master
// does not listen on its socket meanwhile), and the stuck one is killed
// once the new worker runs: no request is refused (see
// TestReloadDeadlineAndRestart). The caller puts the last good
// configuration back before calling. It returns once the replacement has
// started; Run does the rest.
func (s *Supervisor) RestartStuck(master int) error {
	s.mu.Lock()
	if s.pid == 0 || s.pid != master || s.stuck == nil {
		pid := s.pid
		s.mu.Unlock()
		return fmt.Errorf("haproxy master %d is not the one running (%d)", master, pid)
	}
	stuck := s.stuck
	s.mu.Unlock()
	done := make(chan error, 1)
	select {
	case stuck <- stuckRequest{master: master, done: done}:
	default:
		return errors.New("a restart of a stuck haproxy master is under way already")
	}
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		return fmt.Errorf("haproxy master %d: no replacement started within 10s", master)
	}
}

// stuckRequest asks Run to replace a stuck master; done gets the result of
// starting the replacement.
type stuckRequest struct {
	master int
	done   chan<- error
}

// Reload is CLI().Reload plus, for HAProxy 2.6 whose master CLI returns no
// startup log, a failed reload's *ReloadError gets the lines HAProxy printed on
// its stderr meanwhile (Log and parsed Diagnostics).
func (s *Supervisor) Reload(ctx context.Context) (ReloadResult, error) {
	mark := s.tail.Total()
	res, err := s.CLI().Reload(ctx)
	var re *ReloadError
	if errors.As(err, &re) && re.Log == "" {
		// Output is copied from a pipe asynchronously: give the alert lines a
		// moment to arrive.
		deadline := time.Now().Add(500 * time.Millisecond)
		for {
			log := s.tail.Since(mark)
			if strings.Contains(log, "[ALERT]") || time.Now().After(deadline) {
				re.Log = log
				re.Diagnostics = ParseDiagnostics(log, filepath.Dir(s.Config))
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return res, err
}

// PID returns the master's PID, or 0 while HAProxy is not running.
func (s *Supervisor) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

// Starts returns how many times HAProxy has been started.
func (s *Supervisor) Starts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts
}

// OutputTail returns the last 64 KiB HAProxy printed. On 2.6 this is the only
// place a failed reload's reasons appear.
func (s *Supervisor) OutputTail() string { return s.tail.String() }

// WaitReady blocks until the running HAProxy answers "show proc" on its master
// socket with a current worker (waiting through restarts), or ctx ends.
func (s *Supervisor) WaitReady(ctx context.Context) error {
	for {
		ch := s.readyChan()
		select {
		case <-ch:
			if s.PID() != 0 {
				return nil
			}
			// Ready signal of an instance that has since died; wait for the next.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		case <-ctx.Done():
			return fmt.Errorf("haproxy not ready: %w (output: %s)", ctx.Err(), lastLines(s.OutputTail(), 5))
		}
	}
}

func (s *Supervisor) readyChan() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready == nil {
		s.ready = make(chan struct{})
	}
	return s.ready
}

func (s *Supervisor) defaults() (minB, maxB, grace time.Duration, log *zap.Logger) {
	minB, maxB, grace, log = s.MinBackoff, s.MaxBackoff, s.StopGrace, s.Log
	if minB <= 0 {
		minB = 200 * time.Millisecond
	}
	if maxB < minB {
		maxB = max(10*time.Second, minB)
	}
	if grace <= 0 {
		grace = 10 * time.Second
	}
	if log == nil {
		log = zap.NewNop()
	}
	return minB, maxB, grace, log
}

// instance is one HAProxy master the supervisor watches: one it started,
// or one it adopted.
type instance struct {
	pid     int
	adopted bool
	// done receives the exit once, then is closed, when the master has
	// exited.
	done <-chan error
}

// Run starts HAProxy and keeps it running until ctx is canceled, then stops it
// gracefully and returns nil. It returns an error only if HAProxy could not be
// stopped, or if an HAProxy that is not ours answers on the master socket.
//
// An HAProxy already answering on Socket with the same configuration path
// (left running by a sidecar that was killed or restarted) is adopted
// instead of started: starting a second one would bind the same ports
// (SO_REUSEPORT) and serve stale routes beside ours. A sidecar restart thus
// drops no request.
func (s *Supervisor) Run(ctx context.Context) error {
	minB, maxB, grace, log := s.defaults()
	s.mu.Lock()
	s.stuck = make(chan stuckRequest, 1)
	retireNow := make(chan struct{})
	s.retireNow = retireNow
	s.mu.Unlock()
	defer func() {
		close(retireNow)
		s.retiring.Wait()
	}()
	backoff := minB
	for {
		started := time.Now()
		inst, err := s.adoptOrStart(ctx, log)
		var foreign *ForeignHAProxyError
		if errors.As(err, &foreign) {
			return err
		}
		if err != nil {
			log.Error("haproxy start failed", zap.Error(err))
		}
		// retire is a stuck master to kill once inst serves.
		var retire *instance
		for inst != nil {
			ready := s.readyChan()
			readyCtx, cancelReady := context.WithCancel(ctx)
			go s.watchReady(readyCtx, log)
			if s.OnStart != nil {
				s.OnStart(inst.adopted)
			}
			next, err := s.watch(ctx, inst, ready, retire, started, grace, log)
			cancelReady()
			if err != nil || ctx.Err() != nil {
				return err
			}
			if next != nil {
				started = time.Now()
			}
			inst, retire = next, inst
		}
		if time.Since(started) > time.Minute {
			backoff = minB
		}
		log.Info("haproxy restart scheduled", zap.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxB)
	}
}

// watch waits until inst's master exits or ctx ends (HAProxy is stopped;
// the stop's error). A master it started that has no worker within the
// start timeout is killed: parsing its configuration does not end. retire,
// if set, is a stuck master inst replaces: killed once inst's worker runs,
// or with inst when inst fails. A request to replace inst (RestartStuck)
// starts the replacement and returns it, to be watched next.
func (s *Supervisor) watch(ctx context.Context, inst *instance, ready <-chan struct{}, retire *instance, started time.Time, grace time.Duration, log *zap.Logger) (next *instance, err error) {
	// The stuck master goes, whatever becomes of inst.
	defer func() {
		if retire != nil {
			s.kill(retire, log)
		}
	}()
	var deadline <-chan time.Time
	startTimeout := s.StartTimeout
	if startTimeout <= 0 {
		startTimeout = DefaultStartTimeout
	}
	if !inst.adopted {
		t := time.NewTimer(startTimeout)
		defer t.Stop()
		deadline = t.C
	} else {
		ready = nil
	}
	s.mu.Lock()
	stuck := s.stuck
	s.mu.Unlock()
	for {
		select {
		case <-ready:
			ready, deadline = nil, nil
			if retire != nil {
				log.Info("the new haproxy serves; killing the stuck master", zap.Int("stuck", retire.pid), zap.Int("pid", inst.pid))
				s.kill(retire, log)
				retire = nil
			}
		case <-deadline:
			log.Error("haproxy did not start within the start timeout; killing it", zap.Int("pid", inst.pid),
				zap.Duration("start_timeout", startTimeout), zap.String("output", lastLines(s.OutputTail(), 5)))
			// A master still parsing has not installed its signal
			// handlers: SIGTERM ends it at once.
			if err := s.terminate(inst, 0, 2*time.Second, log); err != nil {
				log.Error("haproxy that did not start", zap.Error(err))
			}
			s.exited()
			return nil, nil
		case req := <-stuck:
			if req.master != inst.pid {
				req.done <- fmt.Errorf("haproxy master %d is not the one running (%d)", req.master, inst.pid)
				continue
			}
			log.Warn("haproxy master stuck; starting a new one beside it", zap.Int("stuck", inst.pid))
			if s.Prepare != nil {
				if err := s.Prepare(); err != nil {
					log.Error("preparing to start haproxy", zap.Error(err))
				}
			}
			next, err := s.start(s.takeListeners(log)...)
			req.done <- err
			if err != nil {
				// Without a replacement, the stuck master goes anyway:
				// it would never take another reload.
				log.Error("starting haproxy beside the stuck master failed; killing it", zap.Error(err))
				s.kill(inst, log)
				s.exited()
				return nil, nil
			}
			log.Info("haproxy started", zap.Int("pid", next.pid), zap.String("config", s.Config))
			return next, nil
		case err := <-inst.done:
			s.died(inst, err, started, log)
			return nil, nil
		case <-ctx.Done():
			err := s.stop(inst, grace, log)
			s.exited()
			return nil, err
		}
	}
}

// kill ends a stuck master once its workers are done. It is stopped at
// once (SIGSTOP: no more CPU spent in its parse; its workers serve on)
// and its workers get a soft stop: they close their listeners, so every
// new connection goes to the new master's worker (which shares them, or
// listens beside them with SO_REUSEPORT: takeListeners), and finish the
// requests they have. Only then, or after the stop grace, is the master
// killed: a worker exits at once when its master dies (FIELD-NOTES),
// which failed a request in flight now and then. Off the caller's
// goroutine: the new master is watched meanwhile.
func (s *Supervisor) kill(inst *instance, log *zap.Logger) {
	_, _, grace, _ := s.defaults()
	workers := slices.DeleteFunc(family(inst.pid), func(pid int) bool { return pid == inst.pid })
	_ = syscall.Kill(inst.pid, syscall.SIGSTOP)
	signalAll(workers, syscall.SIGUSR1)
	s.mu.Lock()
	now := s.retireNow
	s.mu.Unlock()
	s.retiring.Add(1)
	go func() {
		defer s.retiring.Done()
		deadline := time.Now().Add(grace)
	wait:
		for time.Now().Before(deadline) && slices.ContainsFunc(workers, running) {
			select {
			case <-now: // the sidecar stops: no waiting
				break wait
			case <-time.After(20 * time.Millisecond):
			}
		}
		_ = syscall.Kill(inst.pid, syscall.SIGKILL)
		if err := s.terminate(&instance{pid: inst.pid, adopted: inst.adopted, done: inst.done}, 0, 2*time.Second, log); err != nil {
			log.Error("stopping the stuck haproxy's workers", zap.Error(err))
		}
	}()
}

// died cleans up after a master that exited by itself (or was killed).
func (s *Supervisor) died(inst *instance, err error, started time.Time, log *zap.Logger) {
	s.exited()
	log.Warn("haproxy exited", zap.Error(err), zap.Duration("ran", time.Since(started)),
		zap.String("output", lastLines(s.OutputTail(), 5)))
	// Workers normally exit with their master; make sure none is left
	// serving the old configuration beside the next master.
	if left := family(inst.pid); len(left) > 0 {
		log.Warn("stopping processes the dead master left", zap.Ints("pids", left))
		s.terminate(inst, 0, 2*time.Second, log)
	}
}

// ForeignHAProxyError means an HAProxy answers on the master socket but
// runs another configuration: the supervisor neither adopts it nor starts
// a second one.
type ForeignHAProxyError struct {
	PID    int
	Config string
	Socket string
}

func (e *ForeignHAProxyError) Error() string {
	return fmt.Sprintf("an HAProxy (master pid %d, -f %q) already answers on %s and runs another configuration; not starting a second one",
		e.PID, e.Config, e.Socket)
}

// adoptOrStart adopts the HAProxy answering on the socket, or starts one.
func (s *Supervisor) adoptOrStart(ctx context.Context, log *zap.Logger) (*instance, error) {
	if inst, err := s.adopt(ctx); err != nil || inst != nil {
		if inst != nil {
			log.Info("adopted the running haproxy", zap.Int("pid", inst.pid), zap.String("config", s.Config))
		}
		return inst, err
	}
	if s.Prepare != nil {
		if err := s.Prepare(); err != nil {
			return nil, fmt.Errorf("preparing to start haproxy: %w", err)
		}
	}
	inst, err := s.start()
	if err == nil {
		log.Info("haproxy started", zap.Int("pid", inst.pid), zap.String("config", s.Config))
	}
	return inst, err
}

// adopt returns the running HAProxy's master when one answers on the
// socket with our configuration, nil when none answers.
func (s *Supervisor) adopt(ctx context.Context) (*instance, error) {
	// One plain connect first: the socket file of a dead master refuses
	// at once, and MasterCLI would keep retrying a refusal (it does so on
	// purpose while a live master re-executes itself for a reload).
	conn, err := net.DialTimeout("unix", s.Socket, time.Second)
	if err != nil {
		return nil, nil // no socket, or a stale one: start a new HAProxy
	}
	conn.Close()
	cli := &MasterCLI{Socket: s.Socket, Timeout: time.Second}
	var st ProcStatus
	for attempt := 0; attempt < 3; attempt++ {
		if st, err = cli.ShowProc(ctx); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || st.Master.PID == 0 {
		return nil, nil // it stopped answering meanwhile
	}
	pid := st.Master.PID
	args, err := cmdline(pid)
	if err != nil {
		return nil, &ForeignHAProxyError{PID: pid, Config: "(its process is not visible here)", Socket: s.Socket}
	}
	if cfg := argsConfig(args); cfg != s.Config {
		return nil, &ForeignHAProxyError{PID: pid, Config: cfg, Socket: s.Socket}
	}
	s.mu.Lock()
	s.pid = pid
	s.starts++
	if s.ready == nil || s.closed {
		s.ready, s.closed = make(chan struct{}), false
	}
	s.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		// Not our child: poll. Its output went to the sidecar that
		// started it and is not ours to read.
		for running(pid) {
			time.Sleep(100 * time.Millisecond)
		}
		done <- errors.New("adopted master exited")
		close(done)
	}()
	return &instance{pid: pid, adopted: true, done: done}, nil
}

// takeListeners is the -x argument of a master started beside a stuck
// one: the running worker's listening sockets, passed over its stats
// socket, when the configuration exposes them there (expose-fd
// listeners). Both workers then accept on the same sockets, and the old
// one's soft stop only closes its copies. Without it the new master binds
// sockets of its own beside the old ones (SO_REUSEPORT), and a connection
// the kernel had queued on an old one when the soft stop closes it is
// reset: now and then one refused request under load. HAProxy 2.6 and 3.0
// both take the sockets this way in master-worker mode and drop the -x
// from the arguments their later reloads run with.
func (s *Supervisor) takeListeners(log *zap.Logger) []string {
	if s.ListenerSocket == "" {
		return nil
	}
	cfg, err := os.ReadFile(s.Config)
	if err != nil || !exposesListeners(cfg, s.ListenerSocket) {
		return nil
	}
	if _, err := os.Stat(s.ListenerSocket); err != nil {
		return nil
	}
	log.Info("the new haproxy takes the listening sockets of the stuck master's worker", zap.String("socket", s.ListenerSocket))
	return []string{"-x", s.ListenerSocket}
}

// exposesListeners says whether cfg declares a stats socket at socket with
// "expose-fd listeners". The path is matched as written (a path that
// needed escaping in haproxy.cfg does not match: no -x, the fallback).
func exposesListeners(cfg []byte, socket string) bool {
	for line := range bytes.Lines(cfg) {
		f := strings.Fields(string(line))
		if len(f) < 3 || f[0] != "stats" || f[1] != "socket" || strings.Trim(f[2], `'"`) != socket {
			continue
		}
		for i := 3; i+1 < len(f); i++ {
			if f[i] == "expose-fd" && f[i+1] == "listeners" {
				return true
			}
		}
	}
	return false
}

// start starts a master on Config with extra arguments after Args.
func (s *Supervisor) start(extra ...string) (*instance, error) {
	args := append([]string{"-W", "-S", s.Socket, "-f", s.Config}, s.Args...)
	args = append(args, extra...)
	// Not exec.CommandContext: stopping must be a soft stop, not SIGKILL.
	cmd := exec.Command(s.Bin, args...)
	var out io.Writer = &s.tail
	if s.Output != nil {
		out = io.MultiWriter(&s.tail, s.Output)
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group: its workers are found (and, as a last resort,
	// killed) through it, and a Ctrl-C meant for the sidecar's terminal
	// does not hard-stop HAProxy behind the sidecar's back.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Workers inherit the output pipe; don't let one that outlives the master
	// block Wait forever.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Bin, err)
	}
	s.mu.Lock()
	s.pid = cmd.Process.Pid
	s.starts++
	if s.ready == nil || s.closed {
		// Keep an unclosed channel: WaitReady callers may already hold it.
		s.ready, s.closed = make(chan struct{}), false
	}
	s.mu.Unlock()

	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); close(done) }()
	return &instance{pid: cmd.Process.Pid, done: done}, nil
}

func (s *Supervisor) exited() {
	s.mu.Lock()
	s.pid = 0
	s.mu.Unlock()
}

// watchReady polls the master socket until the new instance has a worker.
func (s *Supervisor) watchReady(ctx context.Context, log *zap.Logger) {
	cli := &MasterCLI{Socket: s.Socket, Timeout: time.Second}
	for {
		st, err := cli.ShowProc(ctx)
		if err == nil && st.CurrentWorker() != 0 {
			s.mu.Lock()
			if s.pid == st.Master.PID {
				if !s.closed {
					close(s.ready)
					s.closed = true
				}
				s.mu.Unlock()
				log.Info("haproxy ready", zap.Int("master", st.Master.PID), zap.Int("worker", st.CurrentWorker()))
				return
			}
			s.mu.Unlock() // a stale socket of a previous master; keep waiting
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop soft-stops HAProxy (SIGUSR1: the master tells workers to stop
// listening and finish their connections, then exits) and returns once
// the master and every worker have exited, escalating after grace.
func (s *Supervisor) stop(inst *instance, grace time.Duration, log *zap.Logger) error {
	log.Info("haproxy soft stop", zap.Int("pid", inst.pid), zap.Bool("adopted", inst.adopted))
	return s.terminate(inst, grace, 5*time.Second, log)
}

// terminate ends inst's master and workers: SIGUSR1 to the master,
// repeated every second for soft (an HAProxy that is still starting may
// lose it), then SIGTERM to every process left, then SIGKILL. It returns
// only when none is left, or an error when even SIGKILL did not help.
func (s *Supervisor) terminate(inst *instance, soft, hard time.Duration, log *zap.Logger) error {
	// Workers are remembered now: once the master is gone they are no
	// longer its children.
	known := family(inst.pid)
	left := func() []int {
		pids := family(inst.pid)
		for _, pid := range known {
			if running(pid) && !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	waitGone := func(d time.Duration, every func()) bool {
		deadline := time.Now().Add(d)
		next := time.Now().Add(time.Second)
		for {
			if len(left()) == 0 {
				return true
			}
			if time.Now().After(deadline) {
				return false
			}
			if every != nil && time.Now().After(next) {
				every()
				next = time.Now().Add(time.Second)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if soft > 0 {
		_ = syscall.Kill(inst.pid, syscall.SIGUSR1)
		if waitGone(soft, func() { _ = syscall.Kill(inst.pid, syscall.SIGUSR1) }) {
			return s.reap(inst)
		}
		log.Warn("haproxy still running after the grace period; hard stop", zap.Int("pid", inst.pid), zap.Ints("pids", left()))
	}
	signalAll(left(), syscall.SIGTERM)
	if waitGone(hard, nil) {
		return s.reap(inst)
	}
	log.Error("haproxy ignored SIGTERM; killing it", zap.Ints("pids", left()))
	signalAll(left(), syscall.SIGKILL)
	if waitGone(5*time.Second, nil) {
		return s.reap(inst)
	}
	return fmt.Errorf("haproxy processes %v did not exit after SIGKILL", left())
}

// reap waits for a master the supervisor started to be collected by its
// cmd.Wait (bounded by WaitDelay), so no zombie is left behind.
func (s *Supervisor) reap(inst *instance) error {
	if inst.adopted {
		return nil
	}
	select {
	case <-inst.done:
	case <-time.After(3 * time.Second):
	}
	return nil
}

// tailBuffer keeps the last tailSize bytes written to it.
type tailBuffer struct {
	mu    sync.Mutex
	buf   []byte
	total int64 // bytes ever written
}

// Total returns how many bytes were ever written, a mark for Since.
func (t *tailBuffer) Total() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total
}

// Since returns what was written after mark (as far as it is still kept).
func (t *tailBuffer) Since(mark int64) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.total - mark
	if n > int64(len(t.buf)) {
		n = int64(len(t.buf))
	}
	if n < 0 {
		n = 0
	}
	return string(t.buf[int64(len(t.buf))-n:])
}

const tailSize = 64 << 10

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	t.total += int64(len(p))
	if len(t.buf) > tailSize {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailSize:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
