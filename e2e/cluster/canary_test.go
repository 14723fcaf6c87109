package cluster

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
)

// A canary's weight stepped through the API server, as Argo Rollouts and
// Flagger do: 100 updates of its canary-weight annotation, alternating 0
// and 100 (from 100), each in effect (three answers in a row from the side it chose)
// before the next; no reload. The time from the API write's answer to
// that is logged (BENCHMARKS.md, canary reweights).
func TestClusterCanaryReweights(t *testing.T) {
	const steps = 100
	for version, bin := range map[string]string{"2.6": testenv.HAProxy26(t), "3.0": testenv.HAProxy30(t)} {
		t.Run("haproxy-"+version, func(t *testing.T) {
			e := start(t, bin)
			kube.StartEcho(t, "stable", kube.BackendIP(0)+":8080")
			kube.StartEcho(t, "canary", kube.BackendIP(1)+":8080")
			e.service("stable", 8080, kube.BackendIP(0))
			e.service("canary", 8080, kube.BackendIP(1))
			e.create(ingress("main", "c.test", "/", "stable"))
			e.expect("c.test", "/", "service=stable")
			can := ingress("canary", "c.test", "/", "canary")
			can.Annotations = map[string]string{"haproxy-sidecar.io/canary": "true", "haproxy-sidecar.io/canary-weight": "100"}
			e.create(can)
			e.expect("c.test", "/", "service=canary")
			e.sidecar.Eventually(20*time.Second, "the canary's reload done", func() error {
				st, err := e.sidecar.TryProcs()
				if err == nil && len(st.OldWorkers) > 0 {
					return fmt.Errorf("%d old workers", len(st.OldWorkers))
				}
				return err
			})

			ings := e.client.NetworkingV1().Ingresses(e.ns)
			before := e.sidecar.Procs()
			took := make([]time.Duration, 0, steps)
			for i := 1; i <= steps; i++ {
				weight, want := 100, "service=canary"
				if i%2 == 1 {
					weight, want = 0, "service=stable"
				}
				ctx := e.ctx()
				cur, err := ings.Get(ctx, "canary", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				cur.Annotations["haproxy-sidecar.io/canary-weight"] = strconv.Itoa(weight)
				if _, err := ings.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
				written := time.Now()
				for inARow := 0; inARow < 3; {
					got, err := e.get("c.test", "/")
					switch {
					case err == nil && got == want:
						inARow++
					case time.Since(written) > 10*time.Second:
						t.Fatalf("step %d (weight %d): still %q (%v) after 10s", i, weight, got, err)
					default:
						inARow = 0
						time.Sleep(time.Millisecond)
					}
				}
				took = append(took, time.Since(written))
			}
			after := e.sidecar.Procs()
			slices.Sort(took)
			t.Logf("%d reweights through the API server: write to effect p50 %v, p99 %v, max %v", steps,
				took[steps/2].Round(time.Microsecond), took[steps*99/100-1].Round(time.Microsecond), took[steps-1].Round(time.Microsecond))
			if after.Reloads != before.Reloads || after.CurrentWorker() != before.CurrentWorker() {
				t.Errorf("reloads %d -> %d, worker %d -> %d: a reweight reloaded HAProxy", before.Reloads, after.Reloads, before.CurrentWorker(), after.CurrentWorker())
			}
		})
	}
}
