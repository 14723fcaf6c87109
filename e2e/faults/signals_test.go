package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
)

// Defect 2: SIGHUP follows the daemon convention. The sidecar keeps
// running with the same HAProxy, and re-reads the source: a change the
// directory watch cannot see (written through a symlink to a file outside
// the watched directory) is served after SIGHUP. Failures allowed: 0
// (HAProxy is never stopped).
func TestSIGHUPReReads(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		s, _ := serving(t, bin)
		outside := filepath.Join(t.TempDir(), "ext.yaml")
		writeFile(t, outside, ingress("ext", "ext.test", "/", "a"))
		if err := os.Symlink(outside, s.Path("ext.yaml")); err != nil {
			t.Fatal(err)
		}
		s.Expect("ext.test", "/", "svc:a")
		master := s.Procs().Master.PID
		p := poll(t, s)

		// Written in place through the link: no event in the watched
		// directory, so the change waits for a re-read.
		writeFile(t, outside, ingress("ext", "hup.test", "/", "a"))
		time.Sleep(500 * time.Millisecond)
		if got, err := s.Get("hup.test", "/"); err != nil || got != "status:404" {
			t.Fatalf("hup.test answers %q (%v) before SIGHUP: the watch saw the change, so this test proves nothing", got, err)
		}

		s.Signal(syscall.SIGHUP)
		s.Expect("hup.test", "/", "svc:a")
		s.WaitLog(5*time.Second, "SIGHUP: re-reading", 1)
		// Again, twice in a row: still alive, still the same HAProxy.
		s.Signal(syscall.SIGHUP)
		s.Signal(syscall.SIGHUP)
		s.WaitLog(5*time.Second, "SIGHUP: re-reading", 2)
		time.Sleep(300 * time.Millisecond)
		if s.Exited() {
			t.Fatalf("the sidecar exited after SIGHUP (%v)", s.Cmd.ProcessState)
		}
		if now := s.Procs().Master.PID; now != master {
			t.Errorf("HAProxy's master changed from %d to %d across SIGHUP", master, now)
		}
		if m := sidecartest.HAProxyMasters(s.Socket); len(m) != 1 {
			t.Errorf("%d HAProxy masters for the socket after SIGHUP, want 1: %v", len(m), m)
		}
		p.ExpectNone(t, "SIGHUP re-reads; it never stops HAProxy")
	})
}

// Defect 2: a sidecar killed with SIGKILL leaves HAProxy serving, and the
// next sidecar with the same --config-dir and --master-socket adopts it:
// the same master before and after, never a second one. Failures allowed:
// 0 (HAProxy runs throughout).
func TestSIGKILLedSidecarIsReplacedWithoutOutage(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		s, _ := serving(t, bin)
		before := s.Procs()
		p := poll(t, s)

		s.Signal(syscall.SIGKILL)
		s.WaitExit(5 * time.Second)
		time.Sleep(time.Second)
		if r := p.Now(); r.Failed != 0 {
			t.Errorf("%d requests failed while no sidecar ran, want 0 (HAProxy must outlive a killed sidecar): %s", r.Failed, r)
		}
		masters := sidecartest.HAProxyMasters(s.Socket)
		if len(masters) != 1 || masters[0].PID != before.Master.PID {
			t.Fatalf("HAProxy masters after the sidecar was killed: %v, want only %d", masters, before.Master.PID)
		}

		s2 := sidecartest.Start(t, s.Options)
		s2.WaitLog(20*time.Second, "adopted", 1)
		if after := s2.Procs(); after.Master.PID != before.Master.PID {
			t.Errorf("HAProxy master %d after the restart, want the adopted %d", after.Master.PID, before.Master.PID)
		}
		s2.Write("b.yaml", ingress("b", "b.test", "/", "a"))
		s2.Expect("b.test", "/", "svc:a")
		// A second HAProxy on the same ports (SO_REUSEPORT) would answer
		// some requests with the old routes: ask many times.
		for i := range 40 {
			if got, err := s2.Get("b.test", "/"); err != nil || got != "svc:a" {
				t.Fatalf("request %d to the new host: %q (%v): an HAProxy with old routes still serves", i, got, err)
			}
		}
		masters = sidecartest.HAProxyMasters(s.Socket)
		if len(masters) != 1 || masters[0].PID != before.Master.PID {
			t.Errorf("HAProxy masters after the restart and a change: %v, want only %d", masters, before.Master.PID)
		}
		p.ExpectNone(t, "HAProxy runs throughout; only the sidecar was replaced")

		// The adopted HAProxy is stopped like one the sidecar started.
		s2.Signal(syscall.SIGTERM)
		s2.WaitExit(20 * time.Second)
		expectNoHAProxy(t, s2)
	})
}

// Defect 2: SIGTERM stops the sidecar and HAProxy; afterwards no HAProxy
// process uses that master socket or config-dir. Failures allowed: 0 until
// the SIGTERM (which stops HAProxy on purpose).
func TestSIGTERMLeavesNoHAProxy(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		s, _ := serving(t, bin)
		p := poll(t, s)
		if n := len(sidecartest.HAProxyProcesses(s.ConfigDir)); n < 2 {
			t.Fatalf("%d HAProxy processes found for the config-dir before SIGTERM, want a master and a worker: the scan is broken", n)
		}
		p.ExpectNone(t, "nothing was done yet")
		s.Signal(syscall.SIGTERM)
		s.WaitExit(20 * time.Second)
		if code := s.Cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit code %d after SIGTERM", code)
		}
		expectNoHAProxy(t, s)
	})
}

// Defect 2: HAProxy's master killed, then SIGTERM to the sidecar right
// away, or just after the supervisor started a new HAProxy (0 to 100 ms
// after it logged "haproxy started"): whatever the timing, no HAProxy for
// that config-dir survives the sidecar. Failures allowed: 0 before the
// kill; any after (HAProxy is killed, then stopped, on purpose).
func TestKillMasterThenSIGTERM(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		for _, c := range []struct {
			afterRestart bool
			delay        time.Duration
		}{{false, 0}, {true, 0}, {true, 20 * time.Millisecond}, {true, 50 * time.Millisecond}, {true, 100 * time.Millisecond}} {
			name := "at-once"
			if c.afterRestart {
				name = fmt.Sprint("restarted+", c.delay)
			}
			t.Run(name, func(t *testing.T) {
				s, _ := serving(t, bin)
				p := poll(t, s)
				master := s.Procs().Master.PID
				started := s.LogCount("haproxy started")
				p.ExpectNone(t, "nothing was done yet")
				syscall.Kill(master, syscall.SIGKILL)
				if c.afterRestart {
					s.WaitLog(20*time.Second, "haproxy started", started+1)
				}
				time.Sleep(c.delay)
				s.Signal(syscall.SIGTERM)
				s.WaitExit(30 * time.Second)
				expectNoHAProxy(t, s)
			})
		}
	})
}

// Already handled: a slow request in flight when the sidecar gets SIGTERM
// completes with 200 while HAProxy stops gracefully. Failures allowed: 0
// until the SIGTERM; the request in flight must succeed.
func TestSIGTERMWithRequestInFlight(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		s, a := serving(t, bin)
		p := poll(t, s)
		type answer struct {
			got  string
			err  error
			took time.Duration
		}
		done := make(chan answer, 1)
		go func() {
			start := time.Now()
			got, err := s.Get("a.test", "/slow?ms=2000")
			done <- answer{got, err, time.Since(start)}
		}()
		select {
		case <-a.Slow:
		case <-time.After(10 * time.Second):
			t.Fatal("the slow request never reached the backend")
		}
		p.ExpectNone(t, "nothing was stopped yet")
		s.Signal(syscall.SIGTERM)
		select {
		case r := <-done:
			if r.err != nil || r.got != "svc:a" {
				t.Errorf("the request in flight during SIGTERM got %q (%v) after %s", r.got, r.err, r.took)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the request in flight never completed")
		}
		s.WaitExit(20 * time.Second)
		if code := s.Cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit code %d after SIGTERM", code)
		}
		expectNoHAProxy(t, s)
	})
}

// expectNoHAProxy fails when any HAProxy process still uses the sidecar's
// master socket or config-dir. It is checked as soon as the sidecar has
// exited: stopping must confirm that HAProxy exited.
func expectNoHAProxy(t *testing.T, s *sidecar) {
	t.Helper()
	for _, needle := range []string{s.Socket, s.ConfigDir} {
		if procs := sidecartest.HAProxyProcesses(needle); len(procs) > 0 {
			var desc []string
			for _, p := range procs {
				desc = append(desc, fmt.Sprintf("pid %d (parent %d, state %s): %s", p.PID, p.PPID, p.State, strings.Join(p.Args, " ")))
			}
			t.Errorf("HAProxy processes still running for %s after the sidecar exited:\n%s", needle, strings.Join(desc, "\n"))
		}
	}
}
