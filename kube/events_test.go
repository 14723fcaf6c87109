package kube

import (
	"context"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	e2ekube "github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// Every reason render can give a problem becomes an Event reason the API
// accepts: CamelCase, at most 128 characters (events.k8s.io's limit), one
// per reason, and never the Normal Event's.
func TestEventReasons(t *testing.T) {
	valid := regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
	seen := map[string]render.Reason{ReasonServed: ""}
	for _, r := range render.Reasons() {
		e := EventReason(r)
		if !valid.MatchString(e) || len(e) > 128 {
			t.Errorf("reason %q: Event reason %q is not CamelCase of at most 128 characters", r, e)
		}
		if prev, dup := seen[e]; dup {
			t.Errorf("reasons %q and %q share the Event reason %q", prev, r, e)
		}
		seen[e] = r
	}
}

// eventSeen is one Event as a test compares it: type, reason, message and
// how often it happened.
type eventSeen struct {
	Type, Reason, Message string
	Count                 int32
}

func (e eventSeen) String() string {
	return fmt.Sprintf("%s %s %q x%d", e.Type, e.Reason, e.Message, e.Count)
}

// eventList returns the Events about one Ingress, checking that they name
// it exactly and come from this controller.
func eventList(t *testing.T, c kubernetes.Interface, ing *networkingv1.Ingress) []eventSeen {
	t.Helper()
	l, err := c.CoreV1().Events(ing.Namespace).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.name=" + ing.Name,
	})
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	var out []eventSeen
	for _, e := range l.Items {
		o := e.InvolvedObject
		if o.Kind != "Ingress" || o.APIVersion != "networking.k8s.io/v1" || o.UID != ing.UID {
			t.Errorf("event %s is about %s %s %s, want Ingress %s", e.Name, o.APIVersion, o.Kind, o.UID, ing.UID)
		}
		if e.Source.Component != EventComponent || e.ReportingController != EventComponent {
			t.Errorf("event %s comes from %q/%q, want %q", e.Name, e.Source.Component, e.ReportingController, EventComponent)
		}
		out = append(out, eventSeen{e.Type, e.Reason, e.Message, e.Count})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// eventExpect waits until the Ingress's Events are exactly want (sorted
// as eventList sorts), then makes sure nothing more arrives for a while:
// Events are written asynchronously, so "no duplicate" can only be
// checked by waiting.
func eventExpect(t *testing.T, c kubernetes.Interface, ing *networkingv1.Ingress, want ...eventSeen) {
	t.Helper()
	sort.Slice(want, func(i, j int) bool { return want[i].String() < want[j].String() })
	apiTestEventually(t, 10*time.Second, func() (bool, string) {
		got := eventList(t, c, ing)
		return slices.Equal(got, want), fmt.Sprintf("events\n%v\nwant\n%v", got, want)
	})
	time.Sleep(500 * time.Millisecond)
	if got := eventList(t, c, ing); !slices.Equal(got, want) {
		t.Fatalf("more events arrived:\n%v\nwant\n%v", got, want)
	}
}

func TestEventReporter(t *testing.T) {
	c := e2ekube.Start(t)
	ns := apiTestNamespace(t, c.Client, "events")
	web := statusIngress(t, c.Client, ns, "web")
	other := statusIngress(t, c.Client, ns, "other")
	ings := []*networkingv1.Ingress{web, other}

	problem := func(sev render.Severity, name, field string, reason render.Reason, msg string) render.Problem {
		return render.Problem{Severity: sev, ObjectRef: render.ObjectRef{Kind: "Ingress", Namespace: ns, Name: name},
			Field: field, Reason: reason, Message: msg}
	}
	badHost := problem(render.Warning, "web", "spec.rules[1].host", render.InvalidHost, `"bad_host" is not a valid host; rule skipped`)
	noService := problem(render.Warning, "web", "spec.rules[0].http.paths[0].backend.service.name", render.BackendNotFound, "Service "+ns+"/api not found; answering 503")
	noSecret := problem(render.Warning, "web", "spec.tls[0].secretName", render.TLSSecretNotFound, "Secret "+ns+"/tls not found; TLS entry skipped")
	notices := []render.Problem{
		problem(render.Notice, "other", "", render.NotOurClass, `not served: no ingress class and no default IngressClass of controller "x"`),
		problem(render.Notice, "web", "spec.rules[0].http.paths[1].backend.service", render.NoEndpoints, "Service "+ns+"/web port 80 has no ready endpoints; answering 503 until it has"),
		{Severity: render.Warning, ObjectRef: render.ObjectRef{Kind: "EndpointSlice", Namespace: ns, Name: "web-abc"},
			Field: "endpoints[0].addresses[0]", Reason: render.InvalidAddress, Message: "not an IP"},
		problem(render.Warning, "deleted-meanwhile", "spec.rules[0].host", render.InvalidHost, "bad; rule skipped"),
	}
	model := func(served bool, ps ...render.Problem) *render.Model {
		m := &render.Model{Problems: append(slices.Clone(notices), ps...)}
		if served {
			m.Served = []string{ns + "/web"}
		}
		return m
	}
	served := func(n int32) eventSeen {
		return eventSeen{corev1.EventTypeNormal, ReasonServed, servedMessage, n}
	}
	warning := func(p render.Problem, n int32) eventSeen {
		return eventSeen{corev1.EventTypeWarning, EventReason(p.Reason), p.Field + ": " + p.Message, n}
	}

	var leader atomic.Bool
	leader.Store(true)
	r := NewEventReporter(EventReporterConfig{Client: c.Client, Instance: "replica-a", Namespace: ns, IsLeader: leader.Load, Log: zaptest.NewLogger(t)})
	t.Cleanup(r.Shutdown)
	r.Lead(context.Background())

	// Every render reports; only the first writes.
	start := time.Now()
	for range 5 {
		r.Report(ings, model(true, badHost, noService, noSecret))
	}
	eventExpect(t, c.Client, web, served(1), warning(badHost, 1), warning(noService, 1), warning(noSecret, 1))
	eventExpect(t, c.Client, other)
	t.Logf("first events seen and checked for duplicates in %v", time.Since(start).Round(time.Millisecond))
	// The Event reason is the problem's typed reason, whatever its
	// message says.
	var reasons []string
	for _, e := range eventList(t, c.Client, web) {
		reasons = append(reasons, e.Reason)
	}
	slices.Sort(reasons)
	if want := []string{"BackendNotFound", "InvalidHost", "Served", "TLSSecretNotFound"}; !slices.Equal(reasons, want) {
		t.Errorf("Event reasons %q, want %q", reasons, want)
	}
	for _, e := range eventList(t, c.Client, web) {
		if e.Reason == "InvalidHost" && e.Message != `spec.rules[1].host: "bad_host" is not a valid host; rule skipped` {
			t.Errorf("message %q", e.Message)
		}
	}

	// A problem that goes away and comes back is reported again (counted
	// on the same Event).
	r.Report(ings, model(true, noService, noSecret))
	r.Report(ings, model(true, badHost, noService, noSecret))
	r.Report(ings, model(true, badHost, noService, noSecret))
	eventExpect(t, c.Client, web, served(1), warning(badHost, 2), warning(noService, 1), warning(noSecret, 1))

	// So is everything about an Ingress that stops being ours (its
	// problems are no longer reported then) and comes back.
	r.Report(ings, model(false))
	r.Report(ings, model(true, badHost, noService, noSecret))
	r.Report(ings, model(true, badHost, noService, noSecret))
	eventExpect(t, c.Client, web, served(2), warning(badHost, 3), warning(noService, 2), warning(noSecret, 2))

	// A follower writes and remembers nothing; taking over reads what was
	// written, so nothing is repeated, and what nobody wrote (the bad path,
	// seen only while following) is written then.
	badPath := problem(render.Warning, "web", "spec.rules[0].http.paths[0].path", render.InvalidPath, "must start with /; path skipped")
	leader.Store(false)
	r.Follow()
	r.Report(ings, model(true, badHost, noService, noSecret, badPath))
	eventExpect(t, c.Client, web, served(2), warning(badHost, 3), warning(noService, 2), warning(noSecret, 2))
	leader.Store(true)
	r.Lead(context.Background())
	conflict := problem(render.Warning, "web", "spec.defaultBackend", render.Conflict, "ignored: the default backend of the older Ingress "+ns+"/first is used")
	r.Report(ings, model(true, badHost, noService, noSecret, badPath, conflict))
	eventExpect(t, c.Client, web, served(2), warning(badHost, 3), warning(noService, 2), warning(noSecret, 2), warning(badPath, 1), warning(conflict, 1))
	if got := warning(conflict, 1).Reason; got != "Conflict" {
		t.Errorf("conflict reported as %s", got)
	}

	// ReportLazy lists the Ingresses only when the served slice (the
	// incremental renderer keeps it while it does not change), the
	// warnings or the leadership changed; what it reports is Report's.
	lists := 0
	lazy := func(key string) *networkingv1.Ingress {
		lists++
		for _, ing := range ings {
			if ing.Namespace+"/"+ing.Name == key {
				return ing
			}
		}
		return nil
	}
	m := model(true, badHost, noService, noSecret, badPath, conflict)
	r.ReportLazy(lazy, m)
	same := &render.Model{Served: m.Served, Problems: slices.Clone(m.Problems)}
	if lists == 0 {
		t.Fatal("no Ingress was looked up")
	}
	before := lists
	r.ReportLazy(lazy, same)
	if lists != before {
		t.Errorf("Ingresses were looked up again for the same served slice and warnings")
	}
	badPath2 := problem(render.Warning, "web", "spec.rules[0].http.paths[1].path", render.InvalidPath, "must start with /; path skipped")
	before = lists
	r.ReportLazy(lazy, &render.Model{Served: m.Served, Problems: append(slices.Clone(m.Problems), badPath2)})
	if lists == before {
		t.Errorf("a new warning looked nothing up")
	}
	before = lists
	r.ReportLazy(lazy, model(true, badHost, noService, noSecret, badPath, conflict, badPath2))
	if lists == before {
		t.Errorf("a new served slice looked nothing up")
	}
	eventExpect(t, c.Client, web, served(2), warning(badHost, 3), warning(noService, 2), warning(noSecret, 2), warning(badPath, 1), warning(conflict, 1), warning(badPath2, 1))
}

// Many Ingresses served at once (a sidecar starting at 10k) each get
// their Served Event, paced.
func TestEventReporterPacesManyEvents(t *testing.T) {
	c := e2ekube.Start(t)
	ns := apiTestNamespace(t, c.Client, "many-events")
	const n = 2500
	var ings []*networkingv1.Ingress
	m := &render.Model{}
	for i := range n {
		// The API server takes Events about objects it does not hold:
		// in-memory Ingresses with UIDs of their own will do.
		ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("ing-%04d", i),
			UID: types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i))}}
		ings = append(ings, ing)
		m.Served = append(m.Served, ns+"/"+ing.Name)
	}
	r := NewEventReporter(EventReporterConfig{Client: c.Client, Instance: "replica-a", EventsPerSecond: 100, Log: zaptest.NewLogger(t)})
	t.Cleanup(r.Shutdown)
	start := time.Now()
	r.Report(ings, m)
	apiTestEventually(t, 60*time.Second, func() (bool, string) {
		list, err := c.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "reason=" + ReasonServed})
		if err != nil {
			return false, err.Error()
		}
		return len(list.Items) == n, fmt.Sprintf("%d of %d Served Events", len(list.Items), n)
	})
	t.Logf("%d Events written in %v", n, time.Since(start).Round(time.Millisecond))
}

// Whichever replica leads writes each Event once: one first seen while
// nobody led (the leader was killed) is written by the next leader, a
// replica restarted with the same objects repeats nothing, and an Event
// whose write failed while the API server was away is written once it
// is back.
func TestEventReporterTakeover(t *testing.T) {
	c := e2ekube.Start(t)
	ns := apiTestNamespace(t, c.Client, "events-takeover")
	one := statusIngress(t, c.Client, ns, "one")
	two := statusIngress(t, c.Client, ns, "two")
	three := statusIngress(t, c.Client, ns, "three")
	ings := []*networkingv1.Ingress{one, two, three}
	missing := func(name string) render.Problem {
		return render.Problem{Severity: render.Warning, ObjectRef: render.ObjectRef{Kind: "Ingress", Namespace: ns, Name: name},
			Field: "spec.rules[0].http.paths[0].backend.service.name", Reason: render.BackendNotFound, Message: "Service " + ns + "/web not found; answering 503"}
	}
	model := func(names ...string) *render.Model {
		m := &render.Model{}
		for _, n := range names {
			m.Served = append(m.Served, ns+"/"+n)
			m.Problems = append(m.Problems, missing(n))
		}
		return m
	}
	served := eventSeen{corev1.EventTypeNormal, ReasonServed, servedMessage, 1}
	warned := func(name string) eventSeen {
		p := missing(name)
		return eventSeen{corev1.EventTypeWarning, EventReason(p.Reason), p.Field + ": " + p.Message, 1}
	}
	replica := func(instance string) (*EventReporter, *atomic.Bool) {
		var leads atomic.Bool
		r := NewEventReporter(EventReporterConfig{Client: c.Client, Instance: instance, Namespace: ns, IsLeader: leads.Load, Log: zaptest.NewLogger(t).Named(instance)})
		t.Cleanup(r.Shutdown)
		return r, &leads
	}

	a, aLeads := replica("a")
	b, _ := replica("b")
	aLeads.Store(true)
	a.Lead(context.Background())
	a.Report(ings, model("one"))
	b.Report(ings, model("one"))
	eventExpect(t, c.Client, one, served, warned("one"))

	// a is killed: it writes nothing more and never says so. two is
	// first seen while nobody leads, then b takes over.
	aLeads.Store(false)
	b.Report(ings, model("one", "two"))
	eventExpect(t, c.Client, two)
	var bLeads *atomic.Bool
	b.Shutdown()
	b, bLeads = replica("b")
	b.Report(ings, model("one", "two"))
	bLeads.Store(true)
	b.Lead(context.Background())
	eventExpect(t, c.Client, two, served, warned("two"))
	eventExpect(t, c.Client, one, served, warned("one"))

	// b restarts with the same objects: nothing is repeated.
	b.Shutdown()
	b, bLeads = replica("b")
	bLeads.Store(true)
	b.Lead(context.Background())
	b.Report(ings, model("one", "two"))
	eventExpect(t, c.Client, one, served, warned("one"))
	eventExpect(t, c.Client, two, served, warned("two"))

	// The API server is away when three is first served: the writes fail,
	// stay queued, and are written once, after it is back.
	if err := c.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	b.Report(ings, model("one", "two", "three"))
	time.Sleep(2 * time.Second)
	if err := c.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	apiTestEventually(t, 30*time.Second, func() (bool, string) {
		got := eventList(t, c.Client, three)
		return len(got) == 2, fmt.Sprintf("events of three: %v", got)
	})
	eventExpect(t, c.Client, three, served, warned("three"))
	eventExpect(t, c.Client, one, served, warned("one"))
}

// A report after an Ingress came or went marks the served Ingresses in
// the one set of what is written, instead of making a set of every
// served Ingress again (at 50k Ingresses, a tenth of what the sidecar
// allocated), and what it queues and forgets is still right.
func TestEventReportMarksInPlace(t *testing.T) {
	const n = 2000
	ings := map[string]*networkingv1.Ingress{}
	keys := make([]string, 0, n+1)
	for i := range n + 1 {
		name := fmt.Sprintf("ing%05d", i)
		ings["ns/"+name] = &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)}}
		keys = append(keys, "ns/"+name)
	}
	lookup := func(key string) *networkingv1.Ingress { return ings[key] }
	// Leading, with no writer running: write stands in for it, writing
	// what is queued.
	r := &EventReporter{loaded: true, wake: make(chan struct{}, 1)}
	written := 0
	write := func() {
		for _, p := range r.pending {
			if !r.reported.has(p.uid, *p.key) {
				r.reported.add(p.uid, *p.key, r.seen)
				written++
			}
		}
		r.pending = r.pending[:0]
	}
	// The last Ingress comes and goes; the others stay.
	models := []*render.Model{{Served: keys[:n]}, {Served: keys}}
	i := 0
	report := func() {
		i++
		r.report(lookup, models[i%2])
		write()
	}
	report()
	report()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const reports = 20
	for range reports {
		report()
	}
	runtime.ReadMemStats(&after)
	if perReport := (after.TotalAlloc - before.TotalAlloc) / reports; perReport > 8<<10 {
		t.Errorf("a report of %d served Ingresses allocated %d bytes", n, perReport)
	}
	// Every Ingress once, and the one that comes back each time it does
	// (forgotten while not served).
	if want := n + 1 + reports/2; written != want {
		t.Errorf("%d Served Events written, want %d", written, want)
	}
	if len(r.reported.served) != len(models[i%2].Served) {
		t.Errorf("%d served, %d remembered as told", len(models[i%2].Served), len(r.reported.served))
	}
	// A served Ingress re-created (a new UID) is told again; the old UID
	// is forgotten. The renderer gives the new object a key of its own
	// (render.Model.Served): an equal string, not the same one.
	old := ings[keys[7]]
	ings[keys[7]] = &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: old.Name, UID: "uid-again"}}
	again := slices.Clone(models[i%2].Served)
	again[7] = strings.Clone(again[7])
	r.report(lookup, &render.Model{Served: again})
	if len(r.pending) != 1 || r.pending[0].object(lookup) != ings[keys[7]] {
		t.Fatalf("after a re-created Ingress: %d queued", len(r.pending))
	}
	if _, ok := r.reported.served[old.UID]; ok {
		t.Error("the re-created Ingress's old UID is still remembered")
	}
}

// A report looks up only the served Ingresses whose key is not the very
// string of the last report's list (render.Model.Served): the others are
// the same Ingresses, whose UIDs it found then. What it tells is what
// looking every one up tells.
func TestEventReportLooksUpOnlyNewKeys(t *testing.T) {
	const n = 1000
	ings := map[string]*networkingv1.Ingress{}
	var keys []string
	for i := range n {
		name := fmt.Sprintf("ing%05d", i)
		ings["ns/"+name] = &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)}}
		keys = append(keys, "ns/"+name)
	}
	lookups := 0
	lookup := func(key string) *networkingv1.Ingress { lookups++; return ings[key] }
	r := &EventReporter{loaded: true, wake: make(chan struct{}, 1)}
	write := func() {
		for _, p := range r.pending {
			r.reported.add(p.uid, *p.key, r.seen)
		}
		r.pending = r.pending[:0]
	}
	r.report(lookup, &render.Model{Served: keys})
	write()
	if lookups != n {
		t.Fatalf("first report: %d lookups, want %d", lookups, n)
	}
	// One Ingress more in the middle, one gone, one re-created (its new
	// key an equal string, not the same): three lookups.
	ings["ns/new"] = &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "new", UID: "uid-new"}}
	ings[keys[500]] = &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ing00500", UID: "uid-again"}}
	next := slices.Concat(keys[:300], []string{"ns/new"}, keys[300:700], keys[701:])
	next[501] = strings.Clone(next[501])
	lookups = 0
	r.report(lookup, &render.Model{Served: next})
	if lookups != 2 {
		t.Errorf("second report: %d lookups, want 2 (the new Ingress and the re-created one)", lookups)
	}
	var queued []string
	for _, p := range r.pending {
		queued = append(queued, string(p.uid))
	}
	slices.Sort(queued)
	if !slices.Equal(queued, []string{"uid-again", "uid-new"}) {
		t.Errorf("queued %v, want the new and the re-created Ingress", queued)
	}
	write()
	if _, ok := r.reported.served["uid-ing00700"]; ok || len(r.reported.served) != len(next) {
		t.Errorf("%d remembered as told (the one gone among them: %v), want the %d served", len(r.reported.served), ok, len(next))
	}
	// Not written yet (the API away, or the pace of EventsPerSecond):
	// queued again by name and UID, looked up only when written.
	delete(r.reported.served, "uid-ing00010")
	lookups = 0
	r.report(lookup, &render.Model{Served: slices.Clone(next)})
	if lookups != 0 || len(r.pending) != 1 || r.pending[0].name != keys[10] || r.pending[0].uid != "uid-ing00010" {
		t.Fatalf("an Event not written yet: %d lookups, %d queued, want it alone and no lookup", lookups, len(r.pending))
	}
	if got := r.pending[0].object(lookup); got != ings[keys[10]] || lookups != 1 {
		t.Errorf("the queued Event's Ingress: %v after %d lookups", got, lookups)
	}
	// Re-created before its Event's turn: not written about the new one,
	// which the next report tells of.
	ings[keys[10]] = &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ing00010", UID: "uid-other"}}
	if got := r.pending[0].object(lookup); got != nil {
		t.Errorf("a queued Event's Ingress re-created: written about %s", got.UID)
	}
}

// A report queues the Events of the Ingresses it finds served without
// keeping their objects: the start's status writes replace every Ingress
// in the informers' store while the first Served Events wait their turn
// (a quarter hour at 50k), and a queue holding the objects the report
// found kept a second copy of each until the next pass.
func TestEventQueueLetsGoOfReplacedObjects(t *testing.T) {
	const n = 500
	ings := map[string]*networkingv1.Ingress{}
	var keys []string
	first := make([]weak.Pointer[networkingv1.Ingress], n)
	for i := range n {
		name := fmt.Sprintf("ing%05d", i)
		ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)}}
		ings["ns/"+name] = ing
		keys = append(keys, "ns/"+name)
		first[i] = weak.Make(ing)
	}
	lookup := func(key string) *networkingv1.Ingress { return ings[key] }
	r := &EventReporter{loaded: true, wake: make(chan struct{}, 1)}
	r.report(lookup, &render.Model{Served: keys})
	if len(r.pending) != n {
		t.Fatalf("%d Events queued, want %d", len(r.pending), n)
	}
	// A status written on each: the store holds a new object of the
	// same UID.
	for _, k := range keys {
		next := ings[k].DeepCopy()
		next.ResourceVersion = "2"
		ings[k] = next
	}
	if alive := aliveAfterGC(first); alive != 0 {
		t.Errorf("%d of the %d Ingress objects the report found are still kept by the queue", alive, n)
	}
	// Written about the object the store holds when its turn comes.
	if got := r.pending[0].object(lookup); got != ings[keys[0]] {
		t.Errorf("the first queued Event is about %v, want the store's object", got)
	}
}
