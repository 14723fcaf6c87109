package faults

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// Defect 6: the current link removed and HAProxy killed: the sidecar
// restores current from the newest complete generation, HAProxy comes back
// on the same routes, and the repair is logged and shown in /status.
// Failures allowed: only while HAProxy is dead (at most
// haproxyRestartOutage).
func TestMissingCurrentLinkIsRestored(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		s, _ := serving(t, bin)
		s.Write("b.yaml", ingress("b", "b.test", "/", "a"))
		s.Expect("b.test", "/", "svc:a")
		time.Sleep(300 * time.Millisecond) // the generation is persisted after it is served
		link := filepath.Join(s.ConfigDir, "current")
		gen, err := os.Readlink(link)
		if err != nil {
			t.Fatal(err)
		}
		p := poll(t, s)

		if err := os.Remove(link); err != nil {
			t.Fatal(err)
		}
		before := s.Procs()
		syscall.Kill(before.Master.PID, syscall.SIGKILL)
		for _, w := range append(before.Workers, before.OldWorkers...) {
			syscall.Kill(w.PID, syscall.SIGKILL)
		}
		waitNewMaster(t, s, before.Master.PID)
		s.Expect("a.test", "/", "svc:a")
		s.Expect("b.test", "/", "svc:a")
		p.ExpectOutageAtMost(t, haproxyRestartOutage, "HAProxy was killed; nothing serves until it runs again")

		if now, err := os.Readlink(link); err != nil || now != gen {
			t.Errorf("current -> %q (%v), want the newest complete generation %q", now, err, gen)
		}
		s.WaitLog(5*time.Second, "restored current", 1)
		st, raw, err := s.TryStatus()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(raw, `"store_repaired"`) {
			t.Errorf("/status does not report the repaired current link:\n%s", raw)
		}
		if want := strings.TrimPrefix(gen, "gen-"); fmt.Sprint(st.Generation) != want {
			t.Errorf("/status generation %d, want %s", st.Generation, want)
		}
		// And it goes on.
		s.Write("c.yaml", ingress("c", "c.test", "/", "a"))
		s.Expect("c.test", "/", "svc:a")
	})
}

// tmpfs mounts a small tmpfs for the test and unmounts it at the end
// (after the sidecar stopped: cleanups run last-registered first).
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cfg")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs (the test needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if err := exec.Command("umount", dir).Run(); err != nil {
			exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

// fill writes a file in dir until the file system is full, and returns a
// function that removes it.
func fill(t *testing.T, dir string) (free func()) {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, size := range []int{64 << 10, 1 << 10, 1} {
		chunk := make([]byte, size)
		for {
			if _, err := f.Write(chunk); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	return func() {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

// mapEntries counts the current worker's entries of a map whose key starts
// with prefix.
func mapEntries(t *testing.T, s *sidecar, name, prefix string) int {
	t.Helper()
	var entries [][2]string
	s.Eventually(10*time.Second, "show map "+name, func() (err error) {
		entries, err = sidecartest.ShowMap(s.Socket, name)
		return err
	})
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e[0], prefix) {
			n++
		}
	}
	return n
}

// Defect 7: with the config-dir full, runtime updates (an endpoint
// change, a new path on an existing Service) are served, the write of the
// new generation fails and is retried, and the retries never send the
// same runtime commands again: once there is space, the new path's map
// entry exists exactly once in HAProxy, and deleting that path later works
// at run time, without a forced reload. Failures allowed: 0 (HAProxy is
// never stopped or reloaded).
func TestFullConfigDirAfterRuntimeUpdates(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		cfg := tmpfs(t, "4m")
		a1, a2, b := startEcho(t, "a1"), startEcho(t, "a2"), startEcho(t, "b")
		s := start(t, sidecartest.Options{HAProxy: bin, ConfigDir: cfg})
		s.Write("class.yaml", ingressClass)
		s.Write("apps.yaml", app("a", a1)+"---\n"+app("b", b))
		s.Write("a.yaml", ingress("a", "a.test", "/", "a"))
		// Routed to, so b's backend exists: a path to b is a map entry.
		s.Write("keep.yaml", ingress("keep", "keep.test", "/", "b"))
		s.Expect("a.test", "/", "svc:a1")
		s.Expect("keep.test", "/", "svc:b")
		time.Sleep(300 * time.Millisecond)
		p := sidecartest.StartPoller(t, s.HTTPPort, "a.test", "/", "svc:a1", "svc:a2")
		reloads := s.Reloads()

		free := fill(t, cfg)
		// Runtime updates are written in the background, after HAProxy
		// serves them; a failed write is retried there.
		const writeFailed = "writing the configuration HAProxy serves failed; will retry"
		failures := s.LogCount(writeFailed)
		// Endpoint change: a server slot's address, at run time.
		s.Write("apps.yaml", app("a", a2)+"---\n"+app("b", b))
		s.Expect("a.test", "/", "svc:a2")
		// A new path to an existing backend: a map entry, at run time.
		s.Write("a.yaml", ingress("a", "a.test", "/", "a", "/new", "b"))
		s.Expect("a.test", "/new", "svc:b")
		// Several retries of the write.
		s.WaitLog(20*time.Second, writeFailed, failures+3)
		if st := s.Status(); !strings.Contains(st.LastError, "no space left") {
			t.Errorf("/status last_error = %q, want the failed write (no space left on device)", st.LastError)
		}
		free()
		s.Eventually(40*time.Second, "the generation written once there is space", func() error {
			st, _, err := s.TryStatus()
			if err != nil {
				return err
			}
			if st.LastError != "" {
				return errors.New(st.LastError)
			}
			return nil
		})
		if n := mapEntries(t, s, render.PrefixMapFile, "a.test/new"); n != 1 {
			t.Errorf("%d entries for a.test/new in HAProxy's %s, want 1 (runtime commands replayed by the retries?)", n, render.PrefixMapFile)
		}
		disk, err := os.ReadFile(filepath.Join(cfg, "current", render.PrefixMapFile))
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(disk), "a.test/new"); n != 1 {
			t.Errorf("%d lines for a.test/new in current/%s, want 1:\n%s", n, render.PrefixMapFile, disk)
		}
		if got := s.Reloads(); got != reloads {
			t.Errorf("HAProxy reloaded %d times for runtime-only changes", got-reloads)
		}

		// Deleting the path works at run time.
		forced := s.LogCount("reloading instead")
		s.Write("a.yaml", ingress("a", "a.test", "/", "a"))
		s.Expect("a.test", "/new", "svc:a2")
		if n := mapEntries(t, s, render.PrefixMapFile, "a.test/new"); n != 0 {
			t.Errorf("%d entries for a.test/new left in HAProxy after the path was deleted", n)
		}
		if got := s.Reloads(); got != reloads {
			t.Errorf("deleting the path reloaded HAProxy (%d reloads): its map entry was not what the sidecar thought", got-reloads)
		}
		if got := s.LogCount("reloading instead"); got != forced {
			t.Errorf("a runtime update failed and forced a reload: %q", s.LogLines("reloading instead"))
		}
		p.ExpectNone(t, "HAProxy is never stopped; runtime updates are served before they are written")
	})
}

// Already handled: a read-only config-dir keeps the last good
// configuration served, and the failed write shows in /status; once it is
// writable again the changes are applied. Failures allowed: 0.
func TestReadOnlyConfigDir(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		cfg := tmpfs(t, "4m")
		s, a := serving(t, bin, func(o *sidecartest.Options) { o.ConfigDir = cfg })
		time.Sleep(300 * time.Millisecond)
		p := poll(t, s)
		if out, err := exec.Command("mount", "-o", "remount,ro", cfg).CombinedOutput(); err != nil {
			t.Fatalf("remount ro: %v: %s", err, out)
		}
		remounted := false
		defer func() {
			if !remounted {
				exec.Command("mount", "-o", "remount,rw", cfg).Run()
			}
		}()
		// A change that needs a reload (a new backend) and one that does
		// not (a new host on an existing backend).
		s.Write("c.yaml", app("c", a)+"---\n"+ingress("c", "c.test", "/", "c"))
		s.Write("d.yaml", ingress("d", "d.test", "/", "a"))
		s.Eventually(20*time.Second, "the failed write in /status", func() error {
			st, _, err := s.TryStatus()
			if err != nil {
				return err
			}
			if !strings.Contains(st.LastError, "read-only file system") {
				return fmt.Errorf("last_error %q", st.LastError)
			}
			return nil
		})
		s.ExpectStays("a.test", "/", "svc:a", 500*time.Millisecond)

		if out, err := exec.Command("mount", "-o", "remount,rw", cfg).CombinedOutput(); err != nil {
			t.Fatalf("remount rw: %v: %s", err, out)
		}
		remounted = true
		s.ExpectWithin(40*time.Second, "c.test", "/", "svc:a")
		s.Expect("d.test", "/", "svc:a")
		s.Eventually(10*time.Second, "/status clear", func() error {
			st, _, err := s.TryStatus()
			if err != nil {
				return err
			}
			if st.LastError != "" {
				return errors.New(st.LastError)
			}
			return nil
		})
		if n := mapEntries(t, s, render.ExactMapFile, "d.test"); n != 0 {
			t.Errorf("d.test in %s: %d, want 0 (it is a prefix route)", render.ExactMapFile, n)
		}
		if n := mapEntries(t, s, render.PrefixMapFile, "d.test"); n != 1 {
			t.Errorf("%d entries for d.test in HAProxy's %s, want 1", n, render.PrefixMapFile)
		}
		p.ExpectNone(t, "HAProxy is never stopped; a read-only config-dir only holds changes back")
	})
}
