package cluster

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	sidecarkube "github.com/haproxy-sidecar/haproxy-sidecar/kube"
)

// eventCounts are an Ingress's Events by type and reason, with their
// counts added up.
func (e *env) eventCounts(name string) map[string]int32 {
	e.t.Helper()
	list, err := e.client.CoreV1().Events(e.ns).List(e.ctx(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]int32{}
	for _, ev := range list.Items {
		out[ev.Type+"/"+ev.Reason] += ev.Count
	}
	return out
}

// expectEventsOnce waits until each Ingress has exactly one Served Event
// and one BackendNotFound Warning, and checks that no more arrive.
func (e *env) expectEventsOnce(names ...string) {
	e.t.Helper()
	want := map[string]int32{"Normal/Served": 1, "Warning/BackendNotFound": 1}
	check := func() error {
		for _, n := range names {
			if got := e.eventCounts(n); !maps.Equal(got, want) {
				return fmt.Errorf("Ingress %s: events %v, want %v", n, got, want)
			}
		}
		return nil
	}
	eventually(e.t, 30*time.Second, "events "+strings.Join(names, ", "), check)
	time.Sleep(3 * time.Second)
	if err := check(); err != nil {
		e.t.Fatalf("more events arrived: %v", err)
	}
}

// leaderOf returns the replica whose /status says it leads, waiting for
// one.
func leaderOf(t *testing.T, limit time.Duration, rs ...*replica) *replica {
	t.Helper()
	var found *replica
	eventually(t, limit, "a leader", func() error {
		for _, r := range rs {
			if st, err := r.status(); err == nil && st.Leader != nil && *st.Leader {
				found = r
				return nil
			}
		}
		return fmt.Errorf("no replica leads")
	})
	return found
}

// Every Ingress gets its Served Event and its Warning once, whichever
// replica leads when it is first seen: one created right after the
// leader was killed (kill -9) gets them from the replica that takes over,
// one created while no replica ran gets them from the one restarted, and
// nothing written before is written again. The takeover after kill -9
// stays within kube.TakeoverBound of the default timings.
func TestClusterEventsAcrossFailover(t *testing.T) {
	e := start0(t)
	kube.StartEcho(t, "web", kube.BackendIP(0)+":8080")
	e.service("web", 8080, kube.BackendIP(0))
	common := []string{"--election-namespace", e.ns}
	a := e.replica("a", testenv.HAProxy26(t), common...)
	b := e.replica("b", testenv.HAProxy30(t), common...)
	// Served, with a path whose Service does not exist: one Warning.
	broken := func(name string) {
		ing := ingress(name, name+".test", "/", "web")
		p := ing.Spec.Rules[0].HTTP.Paths[0]
		p.Path, p.Backend.Service = "/missing", p.Backend.Service.DeepCopy()
		p.Backend.Service.Name = "missing"
		ing.Spec.Rules[0].HTTP.Paths = append(ing.Spec.Rules[0].HTTP.Paths, p)
		e.create(ing)
	}
	broken("one")
	e.expectEventsOnce("one")

	// The leader is killed; "two" is created at once, seen first while
	// the other replica does not lead yet.
	leader := leaderOf(t, 30*time.Second, a, b)
	other := map[*replica]*replica{a: b, b: a}[leader]
	leader.kill()
	killed := time.Now()
	broken("two")
	eventually(t, 5*time.Second, "two served by "+other.name, func() error {
		if got := other.get("two.test"); got != "service=web" {
			return fmt.Errorf("got %s", got)
		}
		return nil
	})
	leaderOf(t, 40*time.Second, other)
	took := time.Since(killed)
	bound := sidecarkube.TakeoverBound(sidecarkube.DefaultLeaseDuration, sidecarkube.DefaultRetryPeriod)
	t.Logf("%s took over %v after %s was killed (documented bound %v after its last renewal)", other.name, took.Round(time.Millisecond), leader.name, bound)
	// /status is polled every 50 ms.
	if took > bound+time.Second {
		t.Errorf("takeover after kill -9 took %v, documented at most %v", took, bound)
	}
	e.expectEventsOnce("one", "two")

	// Now the other is killed too, "three" is created while no replica
	// runs, and the first one is started again (it adopts its HAProxy).
	other.kill()
	broken("three")
	leader.start()
	leaderOf(t, 60*time.Second, leader)
	e.expectEventsOnce("one", "two", "three")
	names := slices.Sorted(maps.Keys(e.eventCounts("three")))
	t.Logf("Events of three: %v", names)
}
