package reload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
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

	mu     sync.Mutex
	pid    int
	starts int
	ready  chan struct{} // closed when the current instance answers on its socket
	closed bool          // ready is closed
	tail   tailBuffer
}

// CLI returns a master CLI client for the supervised HAProxy.
func (s *Supervisor) CLI() *MasterCLI {
	return &MasterCLI{Socket: s.Socket, ConfigDir: filepath.Dir(s.Config)}
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

// Run starts HAProxy and keeps it running until ctx is canceled, then stops it
// gracefully and returns nil. It returns an error only if HAProxy could not be
// stopped.
func (s *Supervisor) Run(ctx context.Context) error {
	minB, maxB, grace, log := s.defaults()
	backoff := minB
	for {
		started := time.Now()
		cmd, done, err := s.start()
		if err != nil {
			log.Error("haproxy start failed", zap.Error(err))
		} else {
			log.Info("haproxy started", zap.Int("pid", cmd.Process.Pid), zap.String("config", s.Config))
			readyCtx, cancelReady := context.WithCancel(ctx)
			go s.watchReady(readyCtx, log)
			select {
			case err := <-done:
				cancelReady()
				s.exited()
				log.Warn("haproxy exited", zap.Error(err), zap.Duration("ran", time.Since(started)),
					zap.String("output", lastLines(s.OutputTail(), 5)))
			case <-ctx.Done():
				cancelReady()
				err := s.stop(cmd, done, grace, log)
				s.exited()
				return err
			}
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

func (s *Supervisor) start() (*exec.Cmd, <-chan error, error) {
	args := append([]string{"-W", "-S", s.Socket, "-f", s.Config}, s.Args...)
	// Not exec.CommandContext: stopping must be a soft stop, not SIGKILL.
	cmd := exec.Command(s.Bin, args...)
	var out io.Writer = &s.tail
	if s.Output != nil {
		out = io.MultiWriter(&s.tail, s.Output)
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group so a last-resort kill reaches workers too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Workers inherit the output pipe; don't let one that outlives the master
	// block Wait forever.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", s.Bin, err)
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
	go func() { done <- cmd.Wait() }()
	return cmd, done, nil
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

// stop soft-stops HAProxy (SIGUSR1: the master tells workers to stop listening
// and finish their connections, then exits), escalates to SIGTERM (hard stop)
// after grace, and to SIGKILL of the whole process group after 5 more seconds.
func (s *Supervisor) stop(cmd *exec.Cmd, done <-chan error, grace time.Duration, log *zap.Logger) error {
	pid := cmd.Process.Pid
	log.Info("haproxy soft stop", zap.Int("pid", pid))
	_ = syscall.Kill(pid, syscall.SIGUSR1)
	select {
	case <-done:
		return nil
	case <-time.After(grace):
	}
	log.Warn("haproxy still running after grace period; hard stop", zap.Int("pid", pid))
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(5 * time.Second):
	}
	log.Error("haproxy ignored SIGTERM; killing its process group", zap.Int("pid", pid))
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	select {
	case <-done:
		return nil
	case <-time.After(5 * time.Second):
		return errors.New("haproxy did not exit after SIGKILL")
	}
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
