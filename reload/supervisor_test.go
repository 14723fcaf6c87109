package reload

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// alive reports whether pid exists and is not a zombie (in containers PID 1 may
// not reap orphans, so kill(pid, 0) alone would say yes).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

func TestSupervisorRestartAndStop(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, hb haproxyBin) {
		ctx := context.Background()
		tmp := shortTempDir(t)
		port := freePort(t)
		writeFiles(t, tmp, Files{"haproxy.cfg": []byte(routeConfig(port, "1")), "maps/exact.map": []byte("a.example a1\n")})
		sup := &Supervisor{Bin: hb.path, Config: filepath.Join(tmp, ConfigName), Socket: filepath.Join(tmp, "m.sock"),
			MinBackoff: 50 * time.Millisecond, StopGrace: 2 * time.Second, Log: zaptest.NewLogger(t)}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- sup.Run(runCtx) }()
		t.Cleanup(func() {
			pid := sup.PID()
			cancel()
			<-done
			if pid != 0 {
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			}
		})
		wait := func() {
			t.Helper()
			wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
			defer wcancel()
			if err := sup.WaitReady(wctx); err != nil {
				t.Fatalf("not ready: %v", err)
			}
		}
		wait()
		master := sup.PID()
		st, err := sup.CLI().ShowProc(ctx)
		if err != nil {
			t.Fatal(err)
		}
		worker := st.CurrentWorker()

		// The master dies: the supervisor starts a new one, and the orphaned
		// worker exits on its own (it watches the master).
		if err := syscall.Kill(master, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		eventually(t, "restart", func() bool { return sup.Starts() == 2 && sup.PID() != 0 && sup.PID() != master })
		wait()
		if got := get(t, port, "a.example"); field(got, "route") != "a1" {
			t.Fatalf("after restart: %q", got)
		}
		eventually(t, "orphaned worker exit", func() bool { return !alive(worker) })

		// Cancel: graceful stop, Run returns, nothing left running.
		st, err = sup.CLI().ShowProc(ctx)
		if err != nil {
			t.Fatal(err)
		}
		master, worker = sup.PID(), st.CurrentWorker()
		start := time.Now()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			done <- nil // for Cleanup
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("soft stop of an idle HAProxy took %v", d)
		}
		if sup.PID() != 0 || alive(master) {
			t.Errorf("master %d still alive", master)
		}
		eventually(t, "worker exit", func() bool { return !alive(worker) })
	})
}

// A configuration that fails at startup is retried with backoff; once it is
// fixed on disk the next attempt comes up.
func TestSupervisorBadConfigBackoff(t *testing.T) {
	hb := haproxyBins(t)[0]
	ctx := context.Background()
	tmp := shortTempDir(t)
	port := freePort(t)
	cfg := filepath.Join(tmp, ConfigName)
	writeFiles(t, tmp, Files{"haproxy.cfg": []byte(baseConfig + "frontend fe\n    bogus_keyword\n")})
	sup := &Supervisor{Bin: hb.path, Config: cfg, Socket: filepath.Join(tmp, "m.sock"),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Log: zaptest.NewLogger(t)}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sup.Run(runCtx) }()
	defer func() {
		cancel()
		<-done
	}()

	eventually(t, "several attempts", func() bool { return sup.Starts() >= 3 })
	wctx, wcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := sup.WaitReady(wctx)
	wcancel()
	if err == nil {
		t.Fatal("ready with an invalid config")
	}
	if !strings.Contains(sup.OutputTail(), "bogus_keyword") {
		t.Fatalf("output tail lacks the alert: %q", sup.OutputTail())
	}

	writeFiles(t, tmp, Files{"haproxy.cfg": []byte(routeConfig(port, "1")), "maps/exact.map": []byte("a.example a1\n")})
	wctx, wcancel = context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := sup.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	if got := get(t, port, "a.example"); field(got, "route") != "a1" {
		t.Fatalf("after fix: %q", got)
	}
}

// A supervisor that finds an HAProxy with its configuration answering on
// the socket (left by a sidecar that was killed) adopts it instead of
// starting a second one, and stopping it leaves no process behind. One
// with another configuration is neither adopted nor doubled.
func TestSupervisorAdoptsRunningHAProxy(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, hb haproxyBin) {
		ctx := context.Background()
		tmp := shortTempDir(t)
		port := freePort(t)
		writeFiles(t, tmp, Files{"haproxy.cfg": []byte(routeConfig(port, "1")), "maps/exact.map": []byte("a.example a1\n")})
		newSup := func(config string) *Supervisor {
			return &Supervisor{Bin: hb.path, Config: config, Socket: filepath.Join(tmp, "m.sock"),
				MinBackoff: 50 * time.Millisecond, StopGrace: 2 * time.Second, Log: zaptest.NewLogger(t)}
		}
		run := func(sup *Supervisor) (context.CancelFunc, chan error) {
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- sup.Run(runCtx) }()
			return cancel, done
		}
		waitReady := func(sup *Supervisor) {
			t.Helper()
			wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
			defer wcancel()
			if err := sup.WaitReady(wctx); err != nil {
				t.Fatalf("not ready: %v", err)
			}
		}

		// The first sidecar's HAProxy, left running as if the sidecar had
		// been killed: its Run is never canceled.
		first := newSup(filepath.Join(tmp, ConfigName))
		firstCancel, firstDone := run(first)
		waitReady(first)
		master := first.PID()
		t.Cleanup(func() {
			firstCancel()
			<-firstDone
			_ = syscall.Kill(-master, syscall.SIGKILL)
		})
		st, err := first.CLI().ShowProc(ctx)
		if err != nil {
			t.Fatal(err)
		}
		worker := st.CurrentWorker()

		var mu sync.Mutex
		var adopted []bool
		second := newSup(filepath.Join(tmp, ConfigName))
		second.OnStart = func(a bool) { mu.Lock(); adopted = append(adopted, a); mu.Unlock() }
		cancel, done := run(second)
		waitReady(second)
		mu.Lock()
		got := append([]bool(nil), adopted...)
		mu.Unlock()
		if second.PID() != master || len(got) != 1 || !got[0] {
			t.Fatalf("second supervisor: pid %d (running master %d), OnStart %v: want the running master adopted", second.PID(), master, got)
		}
		if got := get(t, port, "a.example"); field(got, "route") != "a1" {
			t.Fatalf("after adoption: %q", got)
		}

		// Another configuration on the same socket: refused, nothing started.
		other := filepath.Join(tmp, "other.cfg")
		if err := os.WriteFile(other, []byte(routeConfig(port, "2")), 0o644); err != nil {
			t.Fatal(err)
		}
		foreign := newSup(other)
		fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
		err = foreign.Run(fctx)
		fcancel()
		var fe *ForeignHAProxyError
		if !errors.As(err, &fe) || fe.PID != master || foreign.Starts() != 0 {
			t.Fatalf("a supervisor of another configuration: %v, %d starts; want a ForeignHAProxyError naming %d", err, foreign.Starts(), master)
		}

		// Stopping the adopted HAProxy: master and worker are gone when Run
		// returns.
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
		if alive(master) || alive(worker) {
			t.Errorf("after stopping the adopted HAProxy: master alive %v, worker alive %v", alive(master), alive(worker))
		}
	})
}

// SIGUSR1 sent while HAProxy is still starting may be lost; stopping must
// still leave nothing running.
func TestSupervisorStopRightAfterStart(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, hb haproxyBin) {
		for i := range 6 {
			tmp := shortTempDir(t)
			port := freePort(t)
			writeFiles(t, tmp, Files{"haproxy.cfg": []byte(routeConfig(port, "1")), "maps/exact.map": []byte("a.example a1\n")})
			sup := &Supervisor{Bin: hb.path, Config: filepath.Join(tmp, ConfigName), Socket: filepath.Join(tmp, "m.sock"),
				StopGrace: 2 * time.Second, Log: zaptest.NewLogger(t)}
			runCtx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- sup.Run(runCtx) }()
			eventually(t, "started", func() bool { return sup.PID() != 0 })
			master := sup.PID()
			time.Sleep(time.Duration(i*100) * time.Millisecond)
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
			if left := family(master); len(left) > 0 {
				t.Errorf("stop %d ms after start left processes %v", i*100, left)
				_ = syscall.Kill(-master, syscall.SIGKILL)
			}
		}
	})
}
