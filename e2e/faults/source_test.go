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

// Defect 1: one file that cannot be read (a dangling symlink) is a
// problem on that file; it never drops the other files' routes.
// Failures allowed: 0 (HAProxy is never stopped; nothing served changes).
func TestMissingFileDropsNothing(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		s, _ := serving(t, bin)
		p := poll(t, s)
		if err := os.Symlink("/nonexistent", s.Path("zz.yaml")); err != nil {
			t.Fatal(err)
		}
		// Later changes are still applied with the broken link there.
		s.Write("b.yaml", ingress("b", "b.test", "/", "a"))
		s.Expect("b.test", "/", "svc:a")
		prob := s.EventuallyProblem("zz.yaml")
		if !strings.HasPrefix(prob, "warning:") {
			t.Errorf("problem for the unreadable file is %q, want a warning", prob)
		}
		// /readyz stays 200 (the load balancer serves) and names the fault.
		if code, body, err := sidecartest.AdminGet(s.HealthPort, "/readyz"); err != nil || code != 200 ||
			!strings.Contains(body, "degraded: File") || !strings.Contains(body, "zz.yaml") {
			t.Errorf("/readyz with an unreadable file: %d %q %v, want 200 naming zz.yaml", code, body, err)
		}
		s.ExpectStays("a.test", "/", "svc:a", 300*time.Millisecond)
		p.ExpectNone(t, "one unreadable file must not change what the others serve")
	})
}

// Defect 1: a file that was served and can no longer be read (a FIFO, or a
// dangling symlink, renamed over it) keeps its objects served, and is
// reported. Failures allowed: 0 on the route that file defines.
func TestUnreadableFileKeepsItsObjects(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		s, _ := serving(t, bin)
		s.Write("b.yaml", ingress("b", "b.test", "/", "a"))
		s.Write("c.yaml", ingress("c", "c.test", "/", "a"))
		s.Expect("b.test", "/", "svc:a")
		s.Expect("c.test", "/", "svc:a")
		pb := sidecartest.StartPoller(t, s.HTTPPort, "b.test", "/", "svc:a")
		pc := sidecartest.StartPoller(t, s.HTTPPort, "c.test", "/", "svc:a")

		// A FIFO replaces b.yaml atomically: a read would block forever.
		fifo := s.Path(".new-b")
		if err := syscall.Mkfifo(fifo, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(fifo, s.Path("b.yaml")); err != nil {
			t.Fatal(err)
		}
		s.Write("d.yaml", ingress("d", "d.test", "/", "a"))
		s.Expect("d.test", "/", "svc:a")
		s.EventuallyProblem("b.yaml")

		// A dangling symlink replaces c.yaml atomically.
		link := s.Path(".new-c")
		if err := os.Symlink(filepath.Join(t.TempDir(), "gone.yaml"), link); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(link, s.Path("c.yaml")); err != nil {
			t.Fatal(err)
		}
		s.Write("e.yaml", ingress("e", "e.test", "/", "a"))
		s.Expect("e.test", "/", "svc:a")
		s.EventuallyProblem("c.yaml")

		s.ExpectStays("b.test", "/", "svc:a", 300*time.Millisecond)
		pb.ExpectNone(t, "b.yaml could be read before: its objects stay served")
		pc.ExpectNone(t, "c.yaml could be read before: its objects stay served")
	})
}

// Defect 1: an unrelated file renamed back and forth (each rename makes it
// vanish between listing and reading now and then) neither drops routes
// nor alternates between full and empty configurations. The file holds a
// Service no Ingress uses, so nothing it holds changes the configuration:
// any reload is one too many; two are allowed for slack. Failures allowed:
// 0.
func TestRenameLoopChangesNothing(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		s, a := serving(t, bin)
		// Files read before the renamed one widen the window between
		// listing the directory and reading it.
		for i := range 100 {
			s.Write(fmt.Sprintf("filler-%03d.yaml", i), fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: filler-%03d
data:
  key: value
`, i))
		}
		s.Write("zz.yaml", app("unused", a))
		time.Sleep(time.Second)
		reloads := s.Reloads()
		logged := s.LogCount("reloaded HAProxy")
		runtime := s.LogCount("updated HAProxy at run time")
		p := poll(t, s)

		on, off := s.Path("zz.yaml"), s.Path("zz.yaml.off")
		const renames = 300
		start := time.Now()
		for i := range renames {
			from, to := on, off
			if i%2 == 1 {
				from, to = off, on
			}
			if err := os.Rename(from, to); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("%d renames in %s", renames, time.Since(start).Round(time.Millisecond))
		time.Sleep(time.Second)
		p.ExpectNone(t, "the renamed file holds nothing that is served")
		if got := s.Reloads() - reloads; got > 2 {
			t.Errorf("HAProxy reloaded %d times for renames of a file that changes nothing, want at most 2", got)
		}
		if got := s.LogCount("reloaded HAProxy") - logged; got > 2 {
			t.Errorf("%d reloads logged, want at most 2", got)
		}
		if got := s.LogCount("updated HAProxy at run time") - runtime; got > 2 {
			t.Errorf("%d runtime updates logged for renames of a file that changes nothing, want at most 2", got)
		}
		s.Expect("a.test", "/", "svc:a")
	})
}

// Defect 3: a FIFO named *.yaml and a symlink to /dev/zero are reported as
// not regular files and never read; later changes are still applied, and
// SIGTERM still stops the sidecar. Failures allowed: 0 until the SIGTERM
// (which stops HAProxy on purpose).
func TestSpecialFilesInManifests(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		s, _ := serving(t, bin)
		p := poll(t, s)
		if err := syscall.Mkfifo(s.Path("zz.yaml"), 0o644); err != nil {
			t.Fatal(err)
		}
		s.Write("b.yaml", ingress("b", "b.test", "/", "a"))
		s.Expect("b.test", "/", "svc:a")
		s.EventuallyProblem("zz.yaml", "regular file")

		if err := os.Symlink("/dev/zero", s.Path("z.yaml")); err != nil {
			t.Fatal(err)
		}
		s.Write("c.yaml", ingress("c", "c.test", "/", "a"))
		s.Expect("c.test", "/", "svc:a")
		s.EventuallyProblem("z.yaml", "regular file")
		if code, body, err := sidecartest.AdminGet(s.HealthPort, "/healthz"); err != nil || code != 200 {
			t.Errorf("/healthz: %d %q %v", code, body, err)
		}
		p.ExpectNone(t, "special files must not change what the others serve")

		start := time.Now()
		s.Signal(syscall.SIGTERM)
		s.WaitExit(15 * time.Second)
		t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
		if code := s.Cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit code %d after SIGTERM", code)
		}
	})
}

// Defect 3, offline: render finishes with a FIFO, /dev/zero or a file over
// the 64 MiB limit among the manifests, reports it on stderr and renders
// the rest. No HAProxy serves here; each version validates once.
func TestRenderSkipsSpecialFiles(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		a := startEcho(t, "a")
		for _, c := range []struct {
			name string
			make func(path string) error
		}{
			{"zz.yaml", func(p string) error { return syscall.Mkfifo(p, 0o644) }},
			{"z.yaml", func(p string) error { return os.Symlink("/dev/zero", p) }},
			{"big.yaml", func(p string) error {
				// Sparse: takes no space.
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					return err
				}
				return os.Truncate(p, 64<<20+1)
			}},
		} {
			t.Run(c.name, func(t *testing.T) {
				m := t.TempDir()
				writeFile(t, filepath.Join(m, "class.yaml"), ingressClass)
				writeFile(t, filepath.Join(m, "a.yaml"), app("a", a)+"---\n"+ingress("a", "a.test", "/", "a"))
				if err := c.make(filepath.Join(m, c.name)); err != nil {
					t.Fatal(err)
				}
				for _, validate := range []bool{false, true} {
					args := []string{"render", "--manifests", m, "--stdout", "--haproxy", bin,
						"--http-bind", "127.0.0.1:18080", "--https-bind", "127.0.0.1:18443"}
					if !validate {
						args = append(args, "--no-validate")
					}
					stdout, stderr, code, err := runBinary(t, 30*time.Second, args...)
					if err != nil {
						t.Fatalf("render (validate %v): %v\nstderr:\n%s", validate, err, stderr)
					}
					if code != 0 {
						t.Errorf("render (validate %v) exited %d:\n%s", validate, code, stderr)
					}
					if !strings.Contains(stderr, c.name) {
						t.Errorf("render (validate %v): stderr does not name %s:\n%s", validate, c.name, stderr)
					}
					if !strings.Contains(stdout, "backend default_a_80") {
						t.Errorf("render (validate %v): the other files' routes are missing from the output:\n%s", validate, stdout)
					}
				}
			})
		}
	})
}

// Already handled: invalid YAML written over a served file is reported
// and does not touch the other files' routes. Failures allowed: 0 on the
// route of another file.
func TestInvalidYAMLOverServedFile(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		s, _ := serving(t, bin)
		s.Write("b.yaml", ingress("b", "b.test", "/", "a"))
		s.Expect("b.test", "/", "svc:a")
		p := poll(t, s)
		s.Write("b.yaml", "kind: [unclosed\n")
		s.EventuallyProblem("b.yaml")
		s.Write("c.yaml", ingress("c", "c.test", "/", "a"))
		s.Expect("c.test", "/", "svc:a")
		// Fixed again: served again.
		s.Write("b.yaml", ingress("b", "b.test", "/x", "a"))
		s.Expect("b.test", "/x", "svc:a")
		p.ExpectNone(t, "an invalid file must not change what the others serve")
	})
}

// Already handled: a manifest written in several chunks with pauses
// (a slow copy) is served once complete, and its half-written states do
// not disturb the other files' routes. Failures allowed: 0.
func TestHalfWrittenFile(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		s, a := serving(t, bin)
		p := poll(t, s)
		// Not "n": YAML 1.1 reads it as false.
		content := app("half", a) + "---\n" + ingress("half", "half.test", "/", "half") + "---\n" + ingress("half2", "half2.test", "/", "a")
		f, err := os.Create(s.Path("half.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		// Chunks end mid-line and mid-document.
		for cut := 0; cut < len(content); {
			next := min(len(content), cut+len(content)/5+3)
			if _, err := f.WriteString(content[cut:next]); err != nil {
				t.Fatal(err)
			}
			cut = next
			time.Sleep(300 * time.Millisecond)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		s.Expect("half.test", "/", "svc:a")
		s.Expect("half2.test", "/", "svc:a")
		p.ExpectNone(t, "a half-written file must not change what the others serve")
	})
}
