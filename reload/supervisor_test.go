package reload

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
