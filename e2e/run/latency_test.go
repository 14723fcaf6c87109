package run

import (
	"strconv"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
)

// BenchmarkChangeServed measures the time from a manifest file being
// replaced to HAProxy answering with the change: fsnotify, the quiet
// period, reading and rendering the manifests, and then either the runtime
// API (a new route to an existing backend) or a validated generation and a
// reload (a route to a new backend). Run with make bench.
func BenchmarkChangeServed(b *testing.B) {
	for _, kind := range []string{"runtime", "reload"} {
		b.Run(kind, func(b *testing.B) {
			a, other := startEcho(b, "a"), startEcho(b, "b")
			s := startSidecar(b, sidecartest.Options{HAProxy: bin26(b), MinReloadInterval: time.Millisecond})
			s.Write("class.yaml", ingressClass)
			s.Write("apps.yaml", app("a", a)+"---\n"+app("b", other))
			// b is routed to already, so its backend exists.
			s.Write("keep.yaml", ingress("keep", "keep.test", "/", "b"))
			s.Write("ing.yaml", ingress("ing", "bench.test", "/", "a"))
			s.Expect("bench.test", "/", "svc:a")
			s.Expect("keep.test", "/", "svc:b")
			b.ResetTimer()
			for i := range b.N {
				path, service := "/p"+strconv.Itoa(i), "b"
				if kind == "reload" {
					service = "n" + strconv.Itoa(i)
					s.Write("n.yaml", app(service, other))
				}
				applied := s.LogCount("reloaded HAProxy") + s.LogCount("updated HAProxy at run time")
				s.Write("ing.yaml", ingress("ing", "bench.test", "/", "a", path, service))
				// Until the change is live, the path goes to "/" (a).
				for {
					if got, err := s.Get("bench.test", path); err == nil && got == "svc:b" {
						break
					}
					time.Sleep(200 * time.Microsecond)
				}
				// Measure a lone change: let the pass finish (persisting
				// the generation) before the next one starts.
				b.StopTimer()
				for s.LogCount("reloaded HAProxy")+s.LogCount("updated HAProxy at run time") == applied {
					time.Sleep(time.Millisecond)
				}
				b.StartTimer()
			}
		})
	}
}
