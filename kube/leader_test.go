package kube

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	e2ekube "github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

func TestLeaseName(t *testing.T) {
	names := map[string]bool{}
	for _, controller := range []string{
		render.DefaultControllerName,
		"haproxy-sidecar.io.controller", // sanitizes like the default
		"Example.COM/Ingress_Controller",
		"///",
		strings.Repeat("very-long-controller-name/", 10),
	} {
		n := LeaseName(controller)
		if errs := validation.IsDNS1123Label(n); len(errs) > 0 {
			t.Errorf("LeaseName(%q) = %q: %v", controller, n, errs)
		}
		if !strings.HasPrefix(n, leaseNamePrefix) {
			t.Errorf("LeaseName(%q) = %q: no %q prefix", controller, n, leaseNamePrefix)
		}
		if n != LeaseName(controller) {
			t.Errorf("LeaseName(%q) is not stable", controller)
		}
		if names[n] {
			t.Errorf("LeaseName(%q) = %q collides", controller, n)
		}
		names[n] = true
	}
	if n := LeaseName(render.DefaultControllerName); !strings.Contains(n, "haproxy-sidecar-io-controller") {
		t.Errorf("LeaseName(%q) = %q: controller name not recognisable", render.DefaultControllerName, n)
	}
	a, err := DefaultIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := DefaultIdentity(); a == b {
		t.Errorf("two identities are both %q: a restarted pod could pass for its predecessor", a)
	}
}

// leaderReplica is one sidecar replica: a Leader and a StatusWriter gated
// by it. The replicas publish different addresses so the status itself
// shows which one wrote it (real replicas publish the same ones).
type leaderReplica struct {
	leader  *Leader
	writer  *StatusWriter
	elected chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

func leaderStart(t *testing.T, c *e2ekube.Cluster, ns, name, address string) *leaderReplica {
	t.Helper()
	r := &leaderReplica{elected: make(chan struct{}, 1), done: make(chan struct{})}
	l, err := NewLeader(LeaderConfig{
		Client:         c.Client,
		Namespace:      ns,
		ControllerName: render.DefaultControllerName,
		Identity:       name,
		// Short enough for a quick test, with a renew deadline that a
		// busy two-core machine still meets. A clean handover does not
		// wait for the lease to expire, so this costs no test time.
		LeaseDuration: 4 * time.Second,
		RenewDeadline: 2 * time.Second,
		RetryPeriod:   500 * time.Millisecond,
		OnStartedLeading: func(context.Context) {
			select {
			case r.elected <- struct{}{}:
			default:
			}
		},
		Log: zaptest.NewLogger(t).Named(name),
	})
	if err != nil {
		t.Fatal(err)
	}
	r.leader = l
	r.writer = &StatusWriter{
		Client:           c.Client,
		PublishAddresses: []string{address},
		IsLeader:         l.IsLeader,
		FieldManager:     name,
		Log:              zaptest.NewLogger(t).Named(name),
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		if err := l.Run(ctx); err != nil {
			t.Errorf("%s: Run: %v", name, err)
		}
	}()
	t.Cleanup(r.stop)
	return r
}

// stop cancels the replica and waits until it has released the Lease.
func (r *leaderReplica) stop() {
	r.cancel()
	<-r.done
}

func TestLeaderElection(t *testing.T) {
	c := e2ekube.Start(t)
	ctx := context.Background()
	ns := apiTestNamespace(t, c.Client, "leader")
	statusIngress(t, c.Client, ns, "web")
	served := map[string]bool{ns + "/web": true}

	a := leaderStart(t, c, ns, "replica-a", "198.51.100.1")
	select {
	case <-a.elected:
	case <-time.After(10 * time.Second):
		t.Fatal("replica-a alone did not become leader")
	}
	if !a.leader.IsLeader() {
		t.Fatal("replica-a was told it leads but IsLeader is false")
	}
	b := leaderStart(t, c, ns, "replica-b", "198.51.100.2")

	// Both replicas sync as run mode would after every render; for a few
	// lease periods only replica-a may lead and write.
	var mu sync.Mutex
	writes := map[string]int{}
	syncBoth := func() {
		for _, r := range []*leaderReplica{a, b} {
			n, err := r.writer.Sync(ctx, statusList(t, c.Client, ns), served)
			if err != nil {
				t.Errorf("%s: Sync: %v", r.leader.Identity(), err)
			}
			mu.Lock()
			writes[r.leader.Identity()] += n
			mu.Unlock()
		}
	}
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if b.leader.IsLeader() {
			t.Fatal("replica-b leads while replica-a holds the Lease")
		}
		syncBoth()
	}
	if writes["replica-a"] != 1 || writes["replica-b"] != 0 {
		t.Errorf("writes while replica-a leads: %v, want replica-a once and replica-b never", writes)
	}
	ing := statusGet(t, c.Client, ns, "web")
	statusWant(t, ing, "198.51.100.1")
	if mgr := statusManagers(ing); slices.Contains(mgr, "replica-b") {
		t.Errorf("status managers %q: the follower wrote", mgr)
	}
	lease, err := c.Client.CoordinationV1().Leases(ns).Get(ctx, LeaseName(render.DefaultControllerName), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := lease.Spec.HolderIdentity; h == nil || *h != "replica-a" {
		t.Errorf("Lease holder %v, want replica-a", h)
	}

	// replica-a shuts down: it releases the Lease, so replica-b takes over
	// within about a retry period instead of a whole lease duration.
	stopped := time.Now()
	a.stop()
	if a.leader.IsLeader() {
		t.Error("replica-a still claims to lead after Run returned")
	}
	select {
	case <-b.elected:
		t.Logf("replica-b took over %v after replica-a stopped", time.Since(stopped).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("replica-b did not take over within 5s")
	}
	syncBoth()
	ing = statusGet(t, c.Client, ns, "web")
	statusWant(t, ing, "198.51.100.2")
	if mgr := statusManagers(ing); !slices.Contains(mgr, "replica-b") {
		t.Errorf("status managers %q: the new leader did not write", mgr)
	}
	if writes["replica-b"] != 1 {
		t.Errorf("replica-b wrote %d times after taking over, want 1", writes["replica-b"])
	}
}
