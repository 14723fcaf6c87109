package kube

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sync/atomic"

	"go.uber.org/zap/zaptest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

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

// A leader cut off from the API server (through a proxy the test stalls)
// stops leading by the time the Lease it wrote last expires, before
// anyone else can take it; the other replica takes over within
// TakeoverBound of that renewal.
func TestLeaderPartitionedStepsDown(t *testing.T) {
	c := e2ekube.Start(t)
	ns := apiTestNamespace(t, c.Client, "leader-partition")
	proxy := e2ekube.StartProxy(t, c.APIAddr())
	cutOff, err := kubernetes.NewForConfig(c.ConfigVia(proxy.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	// The renew deadline close to the lease duration: client-go alone
	// gave up renewing about when the Lease expired and then waited the
	// renew deadline again for its release before saying it stopped.
	const lease, renew, retry = 4 * time.Second, 3500 * time.Millisecond, 500 * time.Millisecond
	var otherLeads atomic.Pointer[func() bool]
	var overlapped atomic.Bool
	type replica struct {
		leader           *Leader
		started, stopped atomic.Int64 // UnixNano
	}
	run := func(client kubernetes.Interface, name string) *replica {
		r := &replica{}
		l, err := NewLeader(LeaderConfig{Client: client, Namespace: ns, ControllerName: render.DefaultControllerName, Identity: name,
			LeaseDuration: lease, RenewDeadline: renew, RetryPeriod: retry,
			OnStartedLeading: func(context.Context) {
				r.started.CompareAndSwap(0, time.Now().UnixNano())
				// The other replica, asked the moment this one leads.
				if other := otherLeads.Load(); other != nil && (*other)() {
					overlapped.Store(true)
				}
			},
			OnStoppedLeading: func() { r.stopped.CompareAndSwap(0, time.Now().UnixNano()) },
			Log:              zaptest.NewLogger(t).Named(name)})
		if err != nil {
			t.Fatal(err)
		}
		r.leader = l
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); l.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return r
	}
	a := run(cutOff, "replica-a")
	apiTestEventually(t, 10*time.Second, func() (bool, string) { return a.leader.IsLeader(), "replica-a leads" })
	aLeads := a.leader.IsLeader
	otherLeads.Store(&aLeads)
	b := run(c.Client, "replica-b")
	time.Sleep(2 * time.Second) // b has seen a few renewals
	if b.leader.IsLeader() {
		t.Fatal("replica-b leads while replica-a renews")
	}

	proxy.Stall()
	stalled := time.Now()
	// The Lease as the API server holds it once the bytes already past
	// the proxy are in: replica-a's last renewal that got through.
	time.Sleep(200 * time.Millisecond)
	l, err := c.Client.CoordinationV1().Leases(ns).Get(context.Background(), LeaseName(render.DefaultControllerName), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := l.Spec.HolderIdentity; h == nil || *h != "replica-a" {
		t.Fatalf("Lease holder %v after the stall, want replica-a", h)
	}
	expiry := l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second)
	// Until it steps down, replica-a must never lead past the expiry of
	// the Lease as the API server holds it (its last renewal that got
	// through).
	var steppedDown time.Time
	for deadline := time.Now().Add(3 * lease); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if !a.leader.IsLeader() {
			steppedDown = time.Now()
			break
		}
	}
	if steppedDown.IsZero() {
		t.Fatalf("replica-a still leads %v after it was cut off", time.Since(stalled))
	}
	if late := steppedDown.Sub(expiry); late > 0 {
		t.Errorf("replica-a reported itself leader %v past its Lease's expiry", late)
	}
	t.Logf("replica-a stepped down %v after it was cut off, %v before its Lease expired", steppedDown.Sub(stalled).Round(time.Millisecond),
		expiry.Sub(steppedDown).Round(time.Millisecond))
	apiTestEventually(t, 2*TakeoverBound(lease, retry), func() (bool, string) { return b.leader.IsLeader(), "replica-b takes over" })
	took := time.Unix(0, b.started.Load()).Sub(l.Spec.RenewTime.Time)
	t.Logf("replica-b took over %v after replica-a's last renewal (bound %v)", took.Round(time.Millisecond), TakeoverBound(lease, retry))
	if bound := TakeoverBound(lease, retry); took > bound+time.Second {
		t.Errorf("takeover %v after the last renewal, documented at most %v", took, bound)
	}
	if overlapped.Load() {
		t.Error("replica-a still said it led when replica-b started leading")
	}
	apiTestEventually(t, 5*time.Second, func() (bool, string) { return a.stopped.Load() != 0, "replica-a's OnStoppedLeading" })
	if a.leader.IsLeader() {
		t.Error("replica-a leads again while cut off")
	}

	proxy.Resume()
}
