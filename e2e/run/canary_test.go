package run

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
)

// canaryIngress is a canary of c.test/ on Service b taking weight of 100
// requests; younger than the main Ingress (which has no timestamp).
func canaryIngress(weight int) string {
	return fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: canary
  creationTimestamp: "2021-01-01T00:00:00Z"
  annotations:
    haproxy-sidecar.io/canary: "true"
    haproxy-sidecar.io/canary-weight: "%d"
spec:
  rules:
  - host: c.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: b
            port:
              name: http
`, weight)
}

// TestRunCanaryReweights: progressive delivery steps a canary's weight;
// each step is a runtime map update (maps/canary.map), never a reload.
// 100 steps alternating between weight 0 and 100 under load: no reload,
// no failed request, and each step in effect (three answers in a row from
// the side it chose) before the next is written. The time from the write
// to that is logged (BENCHMARKS.md, canary reweights).
func TestRunCanaryReweights(t *testing.T) {
	const steps = 100
	forEachHAProxy(t, func(t *testing.T, bin string) {
		a, b := startEcho(t, "a"), startEcho(t, "b")
		s := startSidecar(t, sidecartest.Options{HAProxy: bin, MinReloadInterval: time.Millisecond})
		s.Write("class.yaml", ingressClass)
		s.Write("apps.yaml", app("a", a)+"---\n"+app("b", b)+"---\n"+ingress("main", "c.test", "/", "a"))
		s.Write("canary.yaml", canaryIngress(0))
		s.Expect("c.test", "/", "svc:a")
		waitNoOldWorkers(s)

		load := startLoad(s.HTTPPort, "c.test", "svc:a", "svc:b")
		before := s.Procs()
		took := make([]time.Duration, 0, steps)
		for i := 1; i <= steps; i++ {
			weight, want := 0, "svc:a"
			if i%2 == 1 {
				weight, want = 100, "svc:b"
			}
			start := time.Now()
			s.Write("canary.yaml", canaryIngress(weight))
			for inARow := 0; inARow < 3; {
				got, err := s.Get("c.test", "/")
				switch {
				case err == nil && got == want:
					inARow++
				case time.Since(start) > 10*time.Second:
					t.Fatalf("step %d (weight %d): still %q (%v) after 10s", i, weight, got, err)
				default:
					inARow = 0
					time.Sleep(time.Millisecond)
				}
			}
			took = append(took, time.Since(start))
		}
		ok, failed, errs := load.finish()
		after := s.Procs()
		slices.Sort(took)
		t.Logf("%d reweights under load: write to effect p50 %v, p99 %v, max %v; %d requests succeeded, %d failed",
			steps, took[steps/2].Round(time.Microsecond), took[steps*99/100-1].Round(time.Microsecond), took[steps-1].Round(time.Microsecond), ok, failed)
		if after.Reloads != before.Reloads || after.CurrentWorker() != before.CurrentWorker() {
			t.Errorf("reloads %d -> %d, worker %d -> %d: a reweight reloaded HAProxy", before.Reloads, after.Reloads, before.CurrentWorker(), after.CurrentWorker())
		}
		if failed > 0 {
			t.Errorf("%d requests failed across %d reweights, e.g. %q", failed, steps, errs)
		}
	})
}
