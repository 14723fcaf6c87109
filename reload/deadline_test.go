package reload

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// loopingLua never returns from loading: HAProxy runs lua-load files while
// it parses, in haproxy -c, at a start and at a reload. Before looping it
// starts a process that outlives the shell, as a script may (os.execute),
// and writes its PID next to the configuration.
const loopingLua = `os.execute("sleep 600 >/dev/null 2>&1 & echo $! > sleep.pid")
while true do end
`

// withLua adds a lua-load of file to a configuration's global section.
func withLua(cfg, file string) string {
	return strings.Replace(cfg, "    default-path config\n", "    default-path config\n    lua-load "+file+"\n", 1)
}

// processesWith lists the live processes whose command line contains s.
func processesWith(t *testing.T, s string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(cmd), s) && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// A haproxy -c that does not finish is killed at its deadline, with every
// process it started, and reported as a rejection saying so; a
// configuration that parses is still accepted under the same deadline.
func TestCheckDeadline(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, hb haproxyBin) {
		ctx := context.Background()
		dir := t.TempDir()
		port := freePort(t)
		writeFiles(t, dir, Files{"haproxy.cfg": []byte(withLua(routeConfig(port, "1"), "hang.lua")),
			"hang.lua": []byte(loopingLua), "maps/exact.map": nil})
		const timeout = 2 * time.Second
		start := time.Now()
		err := CheckWithin(ctx, hb.path, filepath.Join(dir, ConfigName), timeout)
		took := time.Since(start)
		var ce *CheckError
		if !errors.As(err, &ce) || !ce.TimedOut() || ce.Timeout != timeout {
			t.Fatalf("want a timed-out *CheckError, got %#v", err)
		}
		// The deadline plus the one-second wait for the output pipes,
		// with room for a busy machine.
		if took < timeout || took > timeout+5*time.Second {
			t.Errorf("CheckWithin returned after %s, want about %s", took, timeout)
		}
		if !strings.Contains(ce.Error(), "did not finish within 2s") {
			t.Errorf("Error() = %q, want it to name the deadline", ce.Error())
		}
		if a := ce.Alerts(); len(a) != 1 || a[0].File != "" {
			t.Errorf("alerts %+v, want one naming no file", a)
		}
		pidText, err := os.ReadFile(filepath.Join(dir, "sleep.pid"))
		if err != nil {
			t.Fatalf("the script did not run: %v", err)
		}
		sleeper, _ := strconv.Atoi(strings.TrimSpace(string(pidText)))
		eventually(t, "the script's process killed with haproxy -c", func() bool { return sleeper > 0 && !alive(sleeper) })
		if left := processesWith(t, filepath.Join(dir, ConfigName)); len(left) > 0 {
			t.Errorf("haproxy -c still running: %v", left)
		}

		// Accepted in time: not a timeout, not an error.
		good := t.TempDir()
		writeFiles(t, good, Files{"haproxy.cfg": []byte(routeConfig(port, "1")), "maps/exact.map": nil})
		if err := CheckWithin(ctx, hb.path, filepath.Join(good, ConfigName), timeout); err != nil {
			t.Errorf("a configuration that parses: %v", err)
		}
		// The caller's own cancellation is not a verdict on the
		// configuration.
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if err := CheckWithin(cctx, hb.path, filepath.Join(dir, ConfigName), timeout); err == nil || errors.As(err, &ce) {
			t.Errorf("canceled by the caller: want a plain error, got %v", err)
		}
	})
}

// poller requests a route every 10 ms on new connections and keeps the
// times of failed requests, until stopped (at most two minutes).
type poller struct {
	mu       sync.Mutex
	ok       int
	failures []time.Time
	stop     chan struct{}
	done     chan struct{}
}

func startPoller(port int, host string) *poller {
	p := &poller{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
		end := time.Now().Add(2 * time.Minute)
		for time.Now().Before(end) {
			req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
			req.Host = host
			resp, err := client.Do(req)
			ok := err == nil && resp.StatusCode == 200
			if err == nil {
				resp.Body.Close()
			}
			p.mu.Lock()
			if ok {
				p.ok++
			} else {
				p.failures = append(p.failures, time.Now())
			}
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return p
}

// failedSince counts the failures after t, and their span.
func (p *poller) failedSince(t time.Time) (n int, span time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var first, last time.Time
	for _, f := range p.failures {
		if f.After(t) {
			if n == 0 {
				first = f
			}
			last = f
			n++
		}
	}
	return n, last.Sub(first)
}

func (p *poller) end() (ok, failed int) {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ok, len(p.failures)
}

// A reload whose configuration never finishes parsing: the master answers
// nothing, the old worker keeps serving, and Reload returns a
// *ReloadTimeoutError at its deadline. Putting the last good generation
// back and replacing the master through the supervisor (a new one beside
// it on the old worker's listening sockets, taken over the worker socket
// the template declares with expose-fd listeners; the stuck one killed
// once the new worker runs) refuses no request, and HAProxy takes the
// next good configuration.
func TestReloadDeadlineAndRestart(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, hb haproxyBin) {
		ctx := context.Background()
		tmp := shortTempDir(t)
		port := freePort(t)
		store, err := NewStore(filepath.Join(tmp, "cfg"))
		if err != nil {
			t.Fatal(err)
		}
		worker := filepath.Join(tmp, "m-worker.sock")
		gen := func(marker string) Files {
			cfg := strings.Replace(routeConfig(port, marker), "global\n", "global\n    stats socket "+worker+" mode 600 level admin expose-fd listeners\n", 1)
			return Files{"haproxy.cfg": []byte(cfg), "maps/exact.map": []byte("a.example a1\n")}
		}
		if _, err := store.Apply(ctx, gen("1"), Validator(ctx, hb.path, 0)); err != nil {
			t.Fatal(err)
		}
		sup := &Supervisor{Bin: hb.path, Config: store.ConfigPath(), Socket: filepath.Join(tmp, "m.sock"),
			MinBackoff: 50 * time.Millisecond, StopGrace: 2 * time.Second, Log: zaptest.NewLogger(t),
			ReloadTimeout: 2 * time.Second, ListenerSocket: worker,
			Prepare: func() error { _, err := store.Repair(); return err }}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- sup.Run(runCtx) }()
		t.Cleanup(func() {
			cancel()
			<-done
		})
		waitReady := func() {
			t.Helper()
			wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
			defer wcancel()
			if err := sup.WaitReady(wctx); err != nil {
				t.Fatalf("not ready: %v", err)
			}
		}
		waitReady()
		if got := get(t, port, "a.example"); field(got, "gen") != "1" {
			t.Fatalf("before: %q", got)
		}
		listening := listenInodes(t, port)
		if len(listening) != 1 {
			t.Fatalf("listening sockets on port %d: %v, want one", port, listening)
		}
		p := startPoller(port, "a.example")
		pollStart := time.Now()

		// Staged like the controller's reloads: the reload is the check.
		stuck := gen("2")
		stuck["haproxy.cfg"] = []byte(withLua(string(stuck["haproxy.cfg"]), "hang.lua"))
		stuck["hang.lua"] = []byte("while true do end\n")
		res, err := store.Stage(ctx, stuck)
		if err != nil {
			t.Fatal(err)
		}
		master := sup.PID()
		start := time.Now()
		_, err = sup.Reload(ctx)
		took := time.Since(start)
		var te *ReloadTimeoutError
		if !errors.As(err, &te) || te.Master != master || te.Timeout != 2*time.Second {
			t.Fatalf("want a *ReloadTimeoutError for master %d, got %#v", master, err)
		}
		if took < 2*time.Second || took > 8*time.Second {
			t.Errorf("Reload returned after %s, want about 2s", took)
		}
		// The master is stuck: it answers nothing, while its worker
		// still serves the last good configuration.
		if _, err := (&MasterCLI{Socket: sup.Socket, Timeout: 500 * time.Millisecond}).ShowProc(ctx); err == nil {
			t.Errorf("the stuck master answered show proc")
		}
		if got := get(t, port, "a.example"); field(got, "gen") != "1" {
			t.Errorf("while the master is stuck: %q, want gen 1", got)
		}
		if n, _ := p.failedSince(pollStart); n != 0 {
			t.Errorf("%d requests failed while the master was stuck, want 0", n)
		}

		// The controller's way out: the last good generation back, then
		// a new master.
		if _, _, err := store.Rollback(res.Generation); err != nil {
			t.Fatal(err)
		}
		restartAt := time.Now()
		if err := sup.RestartStuck(master); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a new master", func() bool { return sup.PID() != 0 && sup.PID() != master })
		waitReady()
		eventually(t, "the stuck master killed", func() bool { return !alive(master) })
		if left := family(master); len(left) > 0 {
			// Its worker soft-stops; nothing holds it here.
			eventually(t, "the stuck master's worker gone", func() bool { return len(family(master)) == 0 })
		}
		if got := get(t, port, "a.example"); field(got, "gen") != "1" {
			t.Errorf("after the restart: %q, want gen 1", got)
		}
		// The new worker accepts on the very socket the stuck master's
		// worker listened on (-x), not on one of its own beside it.
		if now := listenInodes(t, port); !slices.Equal(now, listening) {
			t.Errorf("listening sockets on port %d after the replacement: %v, want the stuck worker's %v", port, now, listening)
		}
		// A replacement, not a crash and a restart after backoff.
		if sup.Starts() != 2 {
			t.Errorf("%d starts, want 2", sup.Starts())
		}

		// And HAProxy takes the next good configuration.
		if _, err := store.Stage(ctx, gen("3")); err != nil {
			t.Fatal(err)
		}
		if _, err := sup.Reload(ctx); err != nil {
			t.Fatalf("reload onto a good configuration after the restart: %v", err)
		}
		if got := get(t, port, "a.example"); field(got, "gen") != "3" {
			t.Errorf("after the next reload: %q, want gen 3", got)
		}
		time.Sleep(200 * time.Millisecond)
		refused, span := p.failedSince(restartAt)
		ok, failed := p.end()
		t.Logf("HAProxy %s: replacing a stuck master: %d requests failed over %s (%d ok, %d failed in all, one every 10 ms)",
			hb.name, refused, span.Round(time.Millisecond), ok, failed)
		if failed != 0 {
			t.Errorf("%d requests failed (%d from the replacement on), want 0", failed, refused)
		}
		if ok < 100 {
			t.Errorf("only %d requests succeeded: the polling did not cover the replacement", ok)
		}
	})
}

// A start that does not finish (a master parsing without end) is killed at
// the start timeout and counts as a failed start; the next start, on a
// configuration that parses, serves.
func TestSupervisorStartDeadline(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, hb haproxyBin) {
		ctx := context.Background()
		tmp := shortTempDir(t)
		port := freePort(t)
		flag := filepath.Join(tmp, "hang")
		if err := os.WriteFile(flag, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		// Loops while the flag file exists.
		lua := fmt.Sprintf("local f = io.open(%q)\nif f then f:close(); while true do end end\n", flag)
		writeFiles(t, tmp, Files{"haproxy.cfg": []byte(withLua(routeConfig(port, "1"), "hang.lua")),
			"hang.lua": []byte(lua), "maps/exact.map": []byte("a.example a1\n")})
		sup := &Supervisor{Bin: hb.path, Config: filepath.Join(tmp, ConfigName), Socket: filepath.Join(tmp, "m.sock"),
			MinBackoff: 100 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, StopGrace: 2 * time.Second,
			Log: zaptest.NewLogger(t), StartTimeout: time.Second}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- sup.Run(runCtx) }()
		t.Cleanup(func() {
			cancel()
			<-done
		})
		eventually(t, "a first start", func() bool { return sup.PID() != 0 })
		first, firstAt := sup.PID(), time.Now()
		deadline := time.Now().Add(10 * time.Second)
		var secondAt time.Time
		for sup.Starts() < 3 {
			if time.Now().After(deadline) {
				t.Fatalf("%d starts after 10 s; want hung starts killed after 1 s each", sup.Starts())
			}
			if secondAt.IsZero() && sup.Starts() == 2 {
				secondAt = time.Now()
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Killed at the deadline, not failed at once.
		if secondAt.IsZero() || secondAt.Sub(firstAt) < 900*time.Millisecond {
			t.Errorf("the second start came %s after the first; want the first killed after the 1 s start timeout", secondAt.Sub(firstAt))
		}
		if alive(first) {
			t.Errorf("the hung master %d is still alive", first)
		}
		if err := os.Remove(flag); err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		defer wcancel()
		if err := sup.WaitReady(wctx); err != nil {
			t.Fatalf("not ready once the configuration parses: %v", err)
		}
		if got := get(t, port, "a.example"); field(got, "gen") != "1" {
			t.Errorf("served %q", got)
		}
	})
}

// Revert puts the previous generation back after Apply made one current
// that HAProxy then did not finish reloading onto, so that a restart never
// starts on it; the reverted one is kept in rejected/.
func TestStoreRevert(t *testing.T) {
	ctx := context.Background()
	s, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	v1 := Files{"haproxy.cfg": []byte(routeConfig(1, "1"))}
	v2 := Files{"haproxy.cfg": []byte(routeConfig(1, "2"))}
	if _, err := s.Apply(ctx, v1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revert(1); err == nil {
		t.Errorf("Revert of the only generation succeeded")
	}
	r, err := s.Apply(ctx, v2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revert(r.Generation + 1); err == nil {
		t.Errorf("Revert of a generation that is not current succeeded")
	}
	restored, err := s.Revert(r.Generation)
	if err != nil || restored != 1 {
		t.Fatalf("Revert(%d) = %d, %v; want 1", r.Generation, restored, err)
	}
	if cur, err := s.Current(); err != nil || !cur.Equal(v1) {
		t.Errorf("current after Revert: %v, equal to v1: %v", err, cur.Equal(v1))
	}
	if got, err := os.ReadFile(filepath.Join(s.Dir(), "rejected", ConfigName)); err != nil || string(got) != string(v2["haproxy.cfg"]) {
		t.Errorf("rejected/: %v", err)
	}
	// The store goes on: the next Apply is current.
	v3 := Files{"haproxy.cfg": []byte(routeConfig(1, "3"))}
	if r, err := s.Apply(ctx, v3, nil); err != nil || !r.Changed {
		t.Fatalf("Apply after Revert: %+v, %v", r, err)
	}
	if cur, err := s.Current(); err != nil || !cur.Equal(v3) {
		t.Errorf("current after the next Apply: %v", err)
	}
}

// listenInodes lists the inodes of the TCP sockets listening on
// 127.0.0.1:port (/proc/net/tcp; the tests bind IPv4 loopback), sorted.
func listenInodes(t *testing.T, port int) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf("0100007F:%04X", port)
	var inodes []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		// sl local_address rem_address st ... uid timeout inode
		if len(f) > 9 && f[1] == local && f[3] == "0A" {
			inodes = append(inodes, f[9])
		}
	}
	slices.Sort(inodes)
	return inodes
}

func TestExposesListeners(t *testing.T) {
	const sock = "/run/haproxy/master-worker.sock"
	cases := []struct {
		cfg  string
		want bool
	}{
		{"global\n    stats socket " + sock + " mode 600 level admin expose-fd listeners\n", true},
		{"global\n    stats socket '" + sock + "' mode 600 level admin expose-fd listeners\n", true},
		{"global\n    stats socket " + sock + " mode 600 level admin\n", false},
		{"global\n    stats socket /other.sock expose-fd listeners\n    stats socket " + sock + " level admin\n", false},
		{"global\n    # stats socket " + sock + " expose-fd listeners\n", false},
		{"", false},
	}
	for _, c := range cases {
		if got := exposesListeners([]byte(c.cfg), sock); got != c.want {
			t.Errorf("exposesListeners(%q) = %v, want %v", c.cfg, got, c.want)
		}
	}
}
