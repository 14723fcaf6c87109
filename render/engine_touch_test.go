package render

import (
	"slices"
	"testing"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/lists"
)

// An Ingress updated in nothing the engine reads (its status written, as
// the sidecar does for every Ingress it serves) keeps its entry: not
// parsed, indexed or evaluated again, the model's routes the same list.
// One updated in an annotation nothing reads, or whose Service's
// endpoints moved, is evaluated again and keeps the model's routes, not
// equal copies of its own. A spec change is still a change.
func TestUnchangedIngressKeepsItsEntry(t *testing.T) {
	web := ingress("default", "web", 0, "a.example", pathSpec{"Prefix", "/", "web", 80}, pathSpec{"Exact", "/x", "web", 80})
	other := ingress("default", "other", 1, "b.example", pathSpec{"Prefix", "/", "web", 80})
	in := Inputs{
		IngressClasses: []*networkingv1.IngressClass{ourClass(true)},
		Ingresses:      []*networkingv1.Ingress{web, other},
		Services:       []*corev1.Service{service("default", "web", corev1.ServicePort{Name: "http", Port: 80})},
		EndpointSlices: []*discoveryv1.EndpointSlice{slice("default", "web", "web-1", "http", 8080, "10.0.0.1")},
	}
	var g engine
	m := g.build(in, Options{})
	if len(m.Routes) != 3 {
		t.Fatalf("%d routes, want 3", len(m.Routes))
	}
	entry := g.ings[web]

	// update replaces web with changed, as a source hands it out.
	update := func(changed *networkingv1.Ingress) *Model {
		t.Helper()
		next := in
		next.Ingresses = []*networkingv1.Ingress{changed, other}
		next.IngressDelta = &Delta[*networkingv1.Ingress]{Since: in.Ingresses, Added: []*networkingv1.Ingress{changed}, Removed: []*networkingv1.Ingress{in.Ingresses[0]}}
		next.Unchanged = ServicesKind | EndpointSlicesKind | SecretsKind | IngressClassesKind | ConfigMapsKind
		in = next
		return g.build(next, Options{Previous: m})
	}

	status := web.DeepCopy()
	status.ResourceVersion = "2"
	status.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "198.51.100.7"}}
	m2 := update(status)
	if g.ings[status] != entry || g.ings[web] != nil || entry.obj != status {
		t.Fatalf("status written: entry %p for the new object (was %p), old object still in: %v", g.ings[status], entry, g.ings[web] != nil)
	}
	if !lists.Same(m2.Routes, m.Routes) || !lists.Same(m2.Served, m.Served) {
		t.Errorf("status written: a new list of routes or served keys")
	}

	noted := status.DeepCopy()
	noted.ResourceVersion = "3"
	noted.Annotations = map[string]string{"example.com/note": "x"}
	m3 := update(noted)
	e := g.ings[noted]
	if e == nil || e == entry {
		t.Fatalf("annotation: entry %p, want a new one", e)
	}
	if !lists.Same(m3.Routes, m.Routes) {
		t.Errorf("annotation nothing reads: a new list of routes")
	}
	// Evaluated again and still served: the same served keys, as the
	// same list (the Events reporter reads nothing while it is).
	if !lists.Same(m3.Served, m.Served) {
		t.Errorf("annotation nothing reads: a new list of served keys")
	}
	for _, r := range e.routes {
		if !slices.Contains(m3.Routes, r) {
			t.Errorf("annotation nothing reads: the entry keeps route %s %s apart from the model's", r.Key, r.Backend)
		}
	}

	respec := noted.DeepCopy()
	respec.ResourceVersion = "4"
	respec.Spec.Rules[0].HTTP.Paths = respec.Spec.Rules[0].HTTP.Paths[:1]
	m4 := update(respec)
	if len(m4.Routes) != 2 || g.ings[respec] == nil || g.ings[respec] == e {
		t.Errorf("spec changed: %d routes (want 2), entry %p", len(m4.Routes), g.ings[respec])
	}
	if !lists.Same(m4.Served, m.Served) {
		t.Errorf("spec changed, still served: a new list of served keys")
	}
	// Another Ingress comes: a new list, the keys before it the same
	// strings.
	third := ingress("default", "third", 2, "c.example", pathSpec{"Prefix", "/", "web", 80})
	next := in
	next.Ingresses = []*networkingv1.Ingress{respec, other, third}
	next.IngressDelta = &Delta[*networkingv1.Ingress]{Since: in.Ingresses, Added: []*networkingv1.Ingress{third}}
	m5 := g.build(next, Options{Previous: m4})
	if lists.Same(m5.Served, m4.Served) || len(m5.Served) != 3 {
		t.Fatalf("an Ingress added: served %v, want a new list of 3", m5.Served)
	}
	for i, k := range m4.Served {
		if j := slices.Index(m5.Served, k); j < 0 || unsafe.StringData(m5.Served[j]) != unsafe.StringData(k) {
			t.Errorf("an Ingress added: key %d (%s) not handed out again as the same string", i, k)
		}
	}
}

// An Ingress evaluated again makes its backend again when it was the
// backend's only user; one equal to the backend before leaves that one in
// place, and the model's list of backends with it (a new list, and every
// backend section rendered again, for nothing changed). One that differs
// replaces it.
func TestEqualBackendMadeAgainStays(t *testing.T) {
	web := ingress("default", "web", 0, "a.example", pathSpec{"Prefix", "/", "web", 80})
	api := ingress("default", "api", 1, "b.example", pathSpec{"Prefix", "/", "api", 80})
	in := Inputs{
		IngressClasses: []*networkingv1.IngressClass{ourClass(true)},
		Ingresses:      []*networkingv1.Ingress{api, web},
		Services: []*corev1.Service{
			service("default", "api", corev1.ServicePort{Name: "http", Port: 80}),
			service("default", "web", corev1.ServicePort{Name: "http", Port: 80}),
		},
		EndpointSlices: []*discoveryv1.EndpointSlice{
			slice("default", "api", "api-1", "http", 8080, "10.0.0.2"),
			slice("default", "web", "web-1", "http", 8080, "10.0.0.1"),
		},
	}
	var g engine
	m := g.build(in, Options{})
	if len(m.Backends) != 2 {
		t.Fatalf("%d backends, want 2", len(m.Backends))
	}
	update := func(changed *networkingv1.Ingress) *Model {
		t.Helper()
		next := in
		next.Ingresses = []*networkingv1.Ingress{api, changed}
		next.IngressDelta = &Delta[*networkingv1.Ingress]{Since: in.Ingresses, Added: []*networkingv1.Ingress{changed}, Removed: []*networkingv1.Ingress{in.Ingresses[1]}}
		next.Unchanged = ServicesKind | EndpointSlicesKind | SecretsKind | IngressClassesKind | ConfigMapsKind
		in = next
		prev := m
		m = g.build(next, Options{Previous: prev})
		return prev
	}

	// Another path to the same Service port: the same backend.
	paths := web.DeepCopy()
	paths.ResourceVersion = "2"
	paths.Spec.Rules[0].HTTP.Paths[0].Path = "/v2"
	prev := update(paths)
	if !lists.Same(m.Backends, prev.Backends) {
		t.Errorf("a path changed: a new list of backends %v for the same ones", m.Backends)
	}
	if g.b.backends[m.Backends[1].Name] != prev.Backends[1] {
		t.Errorf("a path changed: the builder holds another backend than the model's")
	}

	// A backend annotation: a backend that differs, in a new list.
	slow := paths.DeepCopy()
	slow.ResourceVersion = "3"
	slow.Annotations = map[string]string{"haproxy-sidecar.io/timeout-server": "90s"}
	prev = update(slow)
	if lists.Same(m.Backends, prev.Backends) || m.Backends[1] == prev.Backends[1] || m.Backends[0] != prev.Backends[0] {
		t.Errorf("a backend annotation: backends %p %p, before %p %p; want web's replaced alone", m.Backends[0], m.Backends[1], prev.Backends[0], prev.Backends[1])
	}
	if m.Backends[1].Settings == prev.Backends[1].Settings {
		t.Errorf("a backend annotation: the settings did not change (%+v)", m.Backends[1].Settings)
	}
}
