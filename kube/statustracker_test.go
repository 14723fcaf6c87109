package kube

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"weak"

	"go.uber.org/zap/zaptest"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	e2ekube "github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
)

// statusWanted answers as comparing with the wanted status made whole
// does, for statuses made of our entries, another controller's, and both.
func TestStatusWantedAgreesWithDesired(t *testing.T) {
	pool := []networkingv1.IngressLoadBalancerIngress{{IP: "198.51.100.7"}, {IP: "198.51.100.8"}, {Hostname: "lb.example.com"}, {IP: "192.0.2.1"}, {Hostname: "other.example.com"}}
	rng := rand.New(rand.NewPCG(3, 4))
	pick := func(max int) []networkingv1.IngressLoadBalancerIngress {
		var out []networkingv1.IngressLoadBalancerIngress
		for range rng.IntN(max + 1) {
			out = append(out, pool[rng.IntN(len(pool))])
		}
		return out
	}
	for range 5000 {
		ours, cur, served := statusNormalize(pick(3)), pick(4), rng.IntN(2) == 0
		if rng.IntN(4) == 0 {
			cur = slices.Clone(ours)
		}
		want := statusEqual(cur, statusDesired(cur, ours, served))
		if got := statusWanted(cur, ours, served); got != want {
			t.Fatalf("statusWanted(%q, ours %q, served %v) = %v, want %v", statusStrings(cur), statusStrings(ours), served, got, want)
		}
	}
}

// The tracker's served set is always the set of the last keys, whatever
// came and went, and when it says which keys changed it names at least
// those: keys are handed out as the engine does (an Ingress that stays
// served keeps its string; a new or re-created one gets a new string).
func TestStatusTrackerServedSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for run := range 200 {
		tr := newStatusTracker(&StatusWriter{})
		var keys []string
		for step := range 60 {
			next := make([]string, 0, len(keys)+4)
			for _, k := range keys {
				switch rng.IntN(20) {
				case 0: // gone
				case 1: // re-created: the same name, a new string
					next = append(next, strings.Clone(k))
				default:
					next = append(next, k)
				}
			}
			for range rng.IntN(3 + run%40) {
				at := rng.IntN(len(next) + 1)
				next = slices.Insert(next, at, "ns"+strconv.Itoa(rng.IntN(3))+"/ing-"+strconv.Itoa(rng.IntN(400)))
			}
			next = uniqueKeys(next)
			was := maps.Clone(tr.served)
			flipped, all := tr.servedNow(next)
			want := map[types.NamespacedName]struct{}{}
			for _, k := range next {
				want[servedName(k)] = struct{}{}
			}
			if !maps.Equal(tr.served, want) {
				t.Fatalf("run %d step %d: served set %v, want %v", run, step, tr.served, want)
			}
			if all {
				continue
			}
			named := map[types.NamespacedName]bool{}
			for _, k := range flipped {
				named[servedName(k)] = true
			}
			for n := range want {
				if _, ok := was[n]; !ok && !named[n] {
					t.Fatalf("run %d step %d: %v became served, not named among %q", run, step, n, flipped)
				}
			}
			for n := range was {
				if _, ok := want[n]; !ok && !named[n] {
					t.Fatalf("run %d step %d: %v left, not named among %q", run, step, n, flipped)
				}
			}
			keys = next
		}
	}
}

// uniqueKeys keeps the first of each key, as Model.Served lists each
// Ingress once.
func uniqueKeys(keys []string) []string {
	seen := map[string]bool{}
	return slices.DeleteFunc(keys, func(k string) bool {
		if seen[k] {
			return true
		}
		seen[k] = true
		return false
	})
}

// The status loop after a pass reads only what the pass changed: with
// nothing changed it reads no Ingress and allocates nothing; a new
// Ingress, one that stops being served and one whose status another
// controller wrote are each written; after every run a full Sync finds
// nothing left to write; a replica that stops leading checks everything
// once it leads again.
func TestStatusTrackerReadsOnlyWhatChanged(t *testing.T) {
	c := e2ekube.Start(t)
	ctx := context.Background()
	ns := apiTestNamespace(t, c.Client, "status-tracker")
	addrs, err := ParsePublishAddresses("198.51.100.7")
	if err != nil {
		t.Fatal(err)
	}
	leading := true
	w := &StatusWriter{Client: c.Client, PublishAddresses: addrs, IsLeader: func() bool { return leading }, Log: zaptest.NewLogger(t)}
	tr := newStatusTracker(w)

	// The source's list: an update replaces an object in its place, an
	// addition goes at the end.
	var list []*networkingv1.Ingress
	var served []string
	for i := range 30 {
		ing := statusIngress(t, c.Client, ns, "app-"+strconv.Itoa(i))
		list = append(list, ing)
		if i%3 != 0 {
			served = append(served, ns+"/"+ing.Name)
		}
	}
	handed := slices.Clone(list) // before any status was written
	lookup := func(key string) *networkingv1.Ingress {
		for _, ing := range list {
			if ns+"/"+ing.Name == key {
				return ing
			}
		}
		return nil
	}
	// fresh replaces the list's objects the API server changed, as the
	// informer would, in place (a new list: lists handed out are never
	// changed).
	fresh := func() {
		t.Helper()
		list = slices.Clone(list)
		for i, ing := range list {
			if got := statusGet(t, c.Client, ns, ing.Name); got.ResourceVersion != ing.ResourceVersion {
				list[i] = got
			}
		}
	}
	run := func(full bool) int {
		t.Helper()
		n, err := tr.run(ctx, list, served, lookup, full)
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		fresh()
		if left := statusSync(t, w, statusList(t, c.Client, ns), served...); left != 0 {
			t.Fatalf("a full Sync after the run wrote %d Ingresses", left)
		}
		return n
	}

	if n := run(false); n != 20 {
		t.Fatalf("first run wrote %d Ingresses, want the 20 served", n)
	}
	if n := run(false); n != 0 {
		t.Fatalf("run with every status as wanted wrote %d", n)
	}
	if a := testing.AllocsPerRun(20, func() {
		if _, err := tr.run(ctx, list, served, lookup, false); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("a run with nothing changed allocated %.0f times", a)
	}

	// One stops being served (a new served list, the other keys the same
	// strings, as the engine hands them out).
	gone := served[4]
	served = slices.Delete(slices.Clone(served), 4, 5)
	if n := run(false); n != 1 {
		t.Fatalf("run after one left the served list wrote %d, want 1", n)
	}
	_, name, _ := strings.Cut(gone, "/")
	statusWant(t, statusGet(t, c.Client, ns, name))

	// A new served Ingress.
	ing := statusIngress(t, c.Client, ns, "app-new")
	list = append(slices.Clone(list), ing)
	served = append(slices.Clone(served), ns+"/app-new")
	if n := run(false); n != 1 {
		t.Fatalf("run after a new Ingress wrote %d, want 1", n)
	}
	statusWant(t, statusGet(t, c.Client, ns, "app-new"), "198.51.100.7")

	// Another controller took our address off a served Ingress: its new
	// object, in its place, is read and written back.
	victim := statusGet(t, c.Client, ns, "app-1")
	victim.Status.LoadBalancer.Ingress = nil
	if _, err := c.Client.NetworkingV1().Ingresses(ns).UpdateStatus(ctx, victim, metav1.UpdateOptions{FieldManager: "other-controller"}); err != nil {
		t.Fatal(err)
	}
	fresh()
	if n := run(false); n != 1 {
		t.Fatalf("run after another controller's write wrote %d, want 1", n)
	}
	statusWant(t, statusGet(t, c.Client, ns, "app-1"), "198.51.100.7")

	// Not leading: nothing read or written; once leading again, every
	// Ingress is read, also those at the same place as before: one whose
	// copy the test changes in place (a source never does) is found.
	leading = false
	if n := run(false); n != 0 {
		t.Fatalf("a replica that does not lead wrote %d", n)
	}
	leading = true
	list[2].Status.LoadBalancer.Ingress = nil
	if n, err := tr.run(ctx, list, served, lookup, false); err != nil || n != 1 {
		t.Fatalf("first run as leader again: %d written, %v; want 1", n, err)
	}
	list[2] = statusGet(t, c.Client, ns, list[2].Name) // the copy changed in place, as the API server has it

	// A full check on the list the last pass was handed, from before the
	// statuses were written, while the informer (lookup) holds the
	// written ones: decided on those, nothing is sent to the API server.
	// (Decided on the list's, each was a conflicting patch and a read.)
	var requests atomic.Int64
	cfg := rest.CopyConfig(c.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			requests.Add(1)
			return rt.RoundTrip(r)
		})
	})
	counted, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cw := &StatusWriter{Client: counted, PublishAddresses: addrs, IsLeader: func() bool { return true }, Log: zaptest.NewLogger(t)}
	handed = slices.DeleteFunc(handed, func(ing *networkingv1.Ingress) bool { return ns+"/"+ing.Name == gone })
	if n, err := newStatusTracker(cw).run(ctx, handed, served, lookup, true); err != nil || n != 0 {
		t.Fatalf("full check on the list from before the writes: %d written, %v; want 0", n, err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("full check on the list from before the writes sent %d requests, want 0", n)
	}
}

// A long write (a start's: every served Ingress) lets go of the objects
// it was decided on as it goes: the informer replaces each one written,
// and keeping them kept both copies of every Ingress for the minutes such
// a write takes at 50k Ingresses.
func TestStatusTrackerLetsGoOfWrittenObjects(t *testing.T) {
	c := e2ekube.Start(t)
	ctx := context.Background()
	ns := apiTestNamespace(t, c.Client, "status-long")
	addrs, err := ParsePublishAddresses("198.51.100.7")
	if err != nil {
		t.Fatal(err)
	}
	w := &StatusWriter{Client: c.Client, PublishAddresses: addrs, IsLeader: func() bool { return true }, Log: zaptest.NewLogger(t)}
	tr := newStatusTracker(w)
	n := longWrite + 10
	list := make([]*networkingv1.Ingress, n)
	served := make([]string, n)
	kept := make([]weak.Pointer[networkingv1.Ingress], n)
	for i := range n {
		list[i] = statusIngress(t, c.Client, ns, fmt.Sprintf("app-%03d", i))
		served[i] = ns + "/" + list[i].Name
		kept[i] = weak.Make(list[i])
	}
	none := func(string) *networkingv1.Ingress { return nil }
	if written, err := tr.run(ctx, list, served, none, false); err != nil || written != n {
		t.Fatalf("first run: %d written, %v; want %d", written, err, n)
	}
	list = nil
	if alive := aliveAfterGC(kept); alive != 0 {
		t.Errorf("%d of the %d Ingress objects written are still kept", alive, n)
	}
	// The next run checks every place; every status is as written.
	if written, err := tr.run(ctx, statusList(t, c.Client, ns), served, none, false); err != nil || written != 0 {
		t.Fatalf("run after the long write: %d written, %v; want 0", written, err)
	}

	// While the write goes on: halfway through, the objects written so
	// far are let go (but those the workers hold).
	var calls atomic.Int64
	aliveHalfway := -1
	w.IsLeader = func() bool {
		if calls.Add(1) == int64(n/2) {
			aliveHalfway = aliveAfterGC(kept)
		}
		return true
	}
	ours, err := w.Addresses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	todo := make([]*networkingv1.Ingress, n)
	for i := range n {
		todo[i] = statusGet(t, c.Client, ns, fmt.Sprintf("app-%03d", i))
		kept[i] = weak.Make(todo[i])
	}
	// No longer served: each status is written without our address.
	if written, err := w.write(ctx, todo, ours, func(*networkingv1.Ingress) bool { return false }); err != nil || written != n {
		t.Fatalf("write taking our address off: %d written, %v; want %d", written, err, n)
	}
	if limit := n - n/2 + defaultStatusWorkers + 1; aliveHalfway < 0 || aliveHalfway > limit {
		t.Errorf("halfway through a write of %d, %d of its objects were kept; want at most %d", n, aliveHalfway, limit)
	}
}

// BenchmarkStatusAfterPass is the status loop's run after a pass that
// added or removed one served Ingress, at 50k Ingresses whose status is
// already as wanted (no write): as it was (a set of every served key, the
// store's list, every Ingress checked) and with the tracker.
func BenchmarkStatusAfterPass(b *testing.B) {
	const n = 50000
	w := &StatusWriter{PublishAddresses: []string{"198.51.100.7"}}
	ours, err := w.Addresses(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	var list []*networkingv1.Ingress
	var keys []string
	for i := range n + 1 {
		ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "app-" + strconv.Itoa(i)}}
		if i%5 != 0 || i == n {
			ing.Status.LoadBalancer.Ingress = slices.Clone(ours)
			keys = append(keys, "bench/"+ing.Name)
		}
		list = append(list, ing)
	}
	// Two lists a pass apart: the last Ingress (served) comes and goes.
	lists := [2][]*networkingv1.Ingress{list[:n:n], list}
	served := [2][]string{keys[: len(keys)-1 : len(keys)-1], keys}
	ctx := context.Background()
	b.Run("every-ingress", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			set := make(map[string]bool, len(served[i%2]))
			for _, k := range served[i%2] {
				set[k] = true
			}
			if _, err := w.Sync(ctx, slices.Clone(lists[i%2]), set); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("what-changed", func(b *testing.B) {
		b.ReportAllocs()
		tr := newStatusTracker(w)
		i := 0
		// The store has the last Ingress while the list does.
		lookup := func(key string) *networkingv1.Ingress {
			if i%2 == 1 && key == "bench/"+list[n].Name {
				return list[n]
			}
			return nil
		}
		for b.Loop() {
			i++
			if _, err := tr.run(ctx, lists[i%2], served[i%2], lookup, false); err != nil {
				b.Fatal(err)
			}
		}
	})
}
