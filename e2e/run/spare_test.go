package run

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
)

// inNamespace puts every object of a manifest into namespace ns.
func inNamespace(ns, manifest string) string {
	return strings.ReplaceAll(manifest, "metadata:\n", "metadata:\n  namespace: "+ns+"\n")
}

// annotated adds an annotation to the first object of a manifest.
func annotated(manifest, key, value string) string {
	return strings.Replace(manifest, "metadata:\n", fmt.Sprintf("metadata:\n  annotations:\n    %s: %q\n", key, value), 1)
}

// answers sends n requests for host/path over one kept-alive client
// connection and returns the distinct answers, sorted.
func answers(t *testing.T, c *http.Client, port int, host, path string, n int) []string {
	t.Helper()
	seen := map[string]bool{}
	for range n {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s%s: %v", host, path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		a := string(body)
		if resp.StatusCode != 200 || !strings.HasPrefix(a, "svc:") {
			a = fmt.Sprintf("status:%d", resp.StatusCode)
		}
		seen[a] = true
	}
	out := make([]string, 0, len(seen))
	for a := range seen {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// refusing is a loopback port nothing listens on: an endpoint that
// refuses connections.
func refusing(t *testing.T) *echo {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return &echo{name: "refusing", port: port}
}

// New Services are given spare backends at run time: served without a
// reload, answering exactly as the same objects do through their own
// backends (a second sidecar on the same manifests with
// --spare-backends 0), emptied at run time when removed, and given to
// another namespace's Service afterwards without any of the first one's
// connections serving it. A Service that gains a backend annotation, and
// one that finds no free spare, get their own backends with a reload.
func TestSpareBackends(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		a := startEcho(t, "a")
		s := startSidecar(t, sidecartest.Options{HAProxy: bin, SpareBackends: 2})
		own := startSidecar(t, sidecartest.Options{HAProxy: bin, Manifests: s.Manifests})
		s.Write("class.yaml", ingressClass)
		s.Write("a.yaml", app("a", a)+"---\n"+ingress("a", "a.test", "/", "a"))
		s.Expect("a.test", "/", "svc:a")
		own.Expect("a.test", "/", "svc:a")
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		defer client.CloseIdleConnections()
		// same checks that both sidecars answer host+path alike, with
		// the wanted answers; the one without spares reloads, so it is
		// given time to.
		same := func(host, path string, want ...string) {
			t.Helper()
			own.Eventually(10*time.Second, host+path+" served through own backends", func() error {
				if ref := answers(t, client, own.HTTPPort, host, path, 8); !slices.Equal(ref, want) {
					return fmt.Errorf("answers %v, want %v", ref, want)
				}
				return nil
			})
			if got := answers(t, client, s.HTTPPort, host, path, 8); !slices.Equal(got, want) {
				t.Errorf("%s%s: answers %v from spare backends, want %v as from own backends", host, path, got, want)
			}
		}
		time.Sleep(200 * time.Millisecond)
		before := s.Procs()

		// A new Service behind a new Ingress, with an endpoint that
		// refuses connections: served from spare 0.
		b1, b2, dead := startEcho(t, "b1"), startEcho(t, "b2"), refusing(t)
		s.Write("b.yaml", inNamespace("team-b", app("b", b1, b2)+"---\n"+ingress("b", "b.test", "/", "b")))
		s.Expect("b.test", "/", "svc:b1")
		own.Expect("b.test", "/", "svc:b1")
		same("b.test", "/x", "svc:b1", "svc:b2")
		s.Write("b.yaml", inNamespace("team-b", app("b", b1, dead)+"---\n"+ingress("b", "b.test", "/", "b")))
		s.Eventually(10*time.Second, "b's endpoint b2 replaced", func() error {
			if got := answers(t, client, s.HTTPPort, "b.test", "/", 4); slices.Contains(got, "svc:b2") {
				return fmt.Errorf("answers %v", got)
			}
			return nil
		})
		own.Eventually(10*time.Second, "b's endpoint b2 replaced", func() error {
			if got := answers(t, client, own.HTTPPort, "b.test", "/", 4); slices.Contains(got, "svc:b2") {
				return fmt.Errorf("answers %v", got)
			}
			return nil
		})
		same("b.test", "/", "status:503", "svc:b1")
		s.Write("b.yaml", inNamespace("team-b", app("b", b1, b2)+"---\n"+ingress("b", "b.test", "/", "b")))
		s.Expect("b.test", "/", "svc:b2")
		same("b.test", "/y", "svc:b1", "svc:b2")
		bSpare := s.spareOf("team-b", "b")
		_, explain, err := sidecartest.AdminGet(s.DebugPort, "/explain?url=http://b.test/")
		if err != nil || !strings.Contains(explain, "=> backend "+bSpare+" (Service team-b/b port 80)") ||
			!strings.Contains(explain, bSpare+" is a spare backend, given to the Service without a reload; its own would be team-b_b_80") {
			t.Errorf("/explain of b.test does not name the Service in %s (%v):\n%s", bSpare, err, explain)
		}
		if after := s.Procs(); after.Reloads != before.Reloads {
			t.Errorf("a new Service reloaded HAProxy: reloads %d -> %d", before.Reloads, after.Reloads)
		}
		if own.Procs().Reloads == 0 {
			t.Error("the sidecar without spare backends did not reload for a new Service: the comparison shows nothing")
		}

		// Removed: its spare is emptied at run time. b1 still holds
		// kept-alive connections from HAProxy in the spare's slot.
		s.Remove("b.yaml")
		s.Expect("b.test", "/", "status:404")
		same("b.test", "/", "status:404")

		// Another namespace's Service gets b's spare (the lowest free)
		// in a later pass: only its own endpoint answers it.
		c := startEcho(t, "c")
		s.Write("c.yaml", inNamespace("team-c", app("c", c)+"---\n"+ingress("c", "c.test", "/", "c")))
		s.Expect("c.test", "/", "svc:c")
		same("c.test", "/", "svc:c")
		if cSpare := s.spareOf("team-c", "c"); cSpare != bSpare {
			t.Errorf("team-c's Service is in %s, not in the spare team-b's had (%s), the lowest free one", cSpare, bSpare)
		}
		if after := s.Procs(); after.Reloads != before.Reloads {
			t.Errorf("removing a Service and adding another reloaded HAProxy: reloads %d -> %d", before.Reloads, after.Reloads)
		}

		// c gains a backend annotation with an active health check:
		// its own backend, a reload; the check takes the refusing
		// endpoint out, on both sidecars alike.
		withCheck := inNamespace("team-c", app("c", c, dead))
		ing := strings.Replace(inNamespace("team-c", ingress("c", "c.test", "/", "c")), "metadata:\n",
			"metadata:\n  annotations:\n    haproxy-sidecar.io/health-check-path: /\n    haproxy-sidecar.io/health-check-interval: 100ms\n", 1)
		s.Write("c.yaml", withCheck+"---\n"+ing)
		s.Eventually(10*time.Second, "c in its own backend", func() error {
			if cfg := s.liveConfig(); !strings.Contains(cfg, "backend team-c_c_80\n") || strings.Contains(cfg, "its own would be team-c_c_80") {
				return fmt.Errorf("not yet:\n%s", cfg)
			}
			return nil
		})
		time.Sleep(time.Second) // a few checks
		same("c.test", "/", "svc:c")
		if after := s.Procs(); after.Reloads == before.Reloads {
			t.Error("a Service that gained a backend annotation was not given its own backend by a reload")
		}

		// Out of spares: new Services take the free spares without a
		// reload until one finds none; it gets its own backend, and the
		// pool doubles in that reload.
		pool := strings.Count(s.liveConfig(), "\nbackend _spare_")
		served := []string{"a", "c"}
		for i := 0; ; i++ {
			if i > pool {
				t.Fatalf("%d new Services after %d spares and none got its own backend", i, pool)
			}
			n := fmt.Sprintf("n%d", i)
			e := startEcho(t, n)
			reloads := s.Procs().Reloads
			s.Write(n+".yaml", inNamespace("team-"+n, app(n, e)+"---\n"+ingress(n, n+".test", "/", n)))
			s.Expect(n+".test", "/", "svc:"+n)
			same(n+".test", "/", "svc:"+n)
			served = append(served, n)
			own := "backend team-" + n + "_" + n + "_80\n"
			s.Eventually(5*time.Second, n+" written", func() error {
				if cfg := s.liveConfig(); !strings.Contains(cfg, "(its own would be team-"+n+"_"+n+"_80)") && !strings.Contains(cfg, own) {
					return fmt.Errorf("%s in no backend", n)
				}
				return nil
			})
			cfg := s.liveConfig()
			if !strings.Contains(cfg, own) {
				if got := s.Procs().Reloads; got != reloads {
					t.Errorf("new Service %s in a spare backend reloaded HAProxy: reloads %d -> %d", n, reloads, got)
				}
				continue
			}
			if got := s.Procs().Reloads; got == reloads {
				t.Errorf("new Service %s found no free spare and was not given its own backend by a reload", n)
			}
			if got := strings.Count(cfg, "\nbackend _spare_"); got != 2*pool {
				t.Errorf("%d spare backends after the pool ran out, want %d", got, 2*pool)
			}
			break
		}

		// The files on disk are what HAProxy ran: a restart from them
		// serves the same.
		s.killHAProxy()
		for _, n := range served {
			s.Expect(n+".test", "/", "svc:"+n)
		}
	})
}

// spareOf is the spare backend HAProxy runs namespace/name's Service in
// (port 80), from the files written after a runtime update.
func (s *sidecar) spareOf(namespace, name string) string {
	s.T.Helper()
	comment := fmt.Sprintf("# Service %s/%s port 80 (http), in a spare backend (its own would be %s_%s_80)\nbackend ", namespace, name, namespace, name)
	var spare string
	s.Eventually(5*time.Second, namespace+"/"+name+" in a spare backend", func() error {
		cfg := s.liveConfig()
		_, rest, ok := strings.Cut(cfg, comment)
		if !ok {
			return fmt.Errorf("no such section in\n%s", cfg)
		}
		spare, _, _ = strings.Cut(rest, "\n")
		return nil
	})
	return spare
}
