package render

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// A backend is plain only when nothing but its Service port and endpoints
// sets it apart from an empty spare: every other field of Backend, set,
// keeps it out of the pool (a new field is then covered without a change
// here).
func TestPlainBackend(t *testing.T) {
	base := Backend{Name: "a_web_80", Namespace: "a", Service: "web", Port: 80, PortName: "http",
		Servers: []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:80")}, Slots: SpareSlots,
		SlotAddrs: []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:80"), {}, {}, {}}}
	if !plainBackend(&base) {
		t.Fatal("a Service port's backend with one endpoint is not plain")
	}
	identity := map[string]bool{"Name": true, "Namespace": true, "Service": true, "Port": true, "PortName": true, "Servers": true, "SlotAddrs": true}
	typ := reflect.TypeOf(base)
	for i := range typ.NumField() {
		f := typ.Field(i)
		if identity[f.Name] {
			continue
		}
		b := base
		v := reflect.ValueOf(&b).Elem().Field(i)
		switch v.Kind() {
		case reflect.String:
			v.SetString("x")
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Int, reflect.Int32:
			v.SetInt(v.Int() + 1)
		case reflect.Pointer:
			v.Set(reflect.New(f.Type.Elem()))
		case reflect.Slice:
			v.Set(reflect.MakeSlice(f.Type, 1, 1))
		case reflect.Struct:
			// BackendSettings: one field set.
			sv := v.Field(0)
			switch sv.Kind() {
			case reflect.String:
				sv.SetString("x")
			default:
				t.Fatalf("field %s: teach the test %s", f.Name, sv.Kind())
			}
		default:
			t.Fatalf("field %s: teach the test its kind %s", f.Name, v.Kind())
		}
		if plainBackend(&b) {
			t.Errorf("a backend with %s set is plain: a spare would serve it without what that field renders", f.Name)
		}
	}
}

// spareWorld is a cluster whose Services each have one Ingress (host
// <name>.test) and endpoints, built again and again against the model it
// last built, as run does.
type spareWorld struct {
	t     *testing.T
	in    Inputs
	prev  *Model
	spare int
	age   int
}

func (w *spareWorld) add(ns, name string, endpoints int, annotations map[string]string) {
	w.age++
	w.in.Services = append(w.in.Services, service(ns, name, corev1.ServicePort{Name: "http", Port: 80}))
	var addrs []string
	for i := range endpoints {
		addrs = append(addrs, fmt.Sprintf("10.%d.0.%d", w.age, i+1))
	}
	w.in.EndpointSlices = append(w.in.EndpointSlices, slice(ns, name, name+"-1", "http", 8080, addrs...))
	ing := ingress(ns, name, w.age, name+".test", pathSpec{"Prefix", "/", name, "http"})
	ing.Annotations = annotations
	w.in.Ingresses = append(w.in.Ingresses, ing)
}

func (w *spareWorld) remove(ns, name string) {
	w.in.Services = slices.DeleteFunc(slices.Clone(w.in.Services), func(s *corev1.Service) bool { return s.Namespace == ns && s.Name == name })
	w.in.Ingresses = slices.DeleteFunc(slices.Clone(w.in.Ingresses), func(i *networkingv1.Ingress) bool { return i.Namespace == ns && i.Name == name })
}

func (w *spareWorld) build() *Model {
	m := BuildModel(w.in, Options{SpareBackends: w.spare, Previous: w.prev})
	w.prev = m
	return m
}

// where says which backend serves namespace/name's Service, and from
// which backend the route map sends its host there.
func where(t *testing.T, m *Model, ns, name string) string {
	t.Helper()
	own := backendName(ns, name, 80)
	var route string
	for _, r := range m.Routes {
		if r.Host == name+".test" {
			route = r.Backend
		}
	}
	be := backendNamed(m.Backends, route)
	switch {
	case be == nil:
		t.Fatalf("%s/%s: route to %q, no such backend", ns, name, route)
	case route == own && !be.Spare:
		return "own"
	case be.Spare && be.OwnName == own && be.Namespace == ns && be.Service == name:
		return route
	}
	t.Fatalf("%s/%s: route to %s holding %+v", ns, name, route, be)
	return ""
}

func spareCount(m *Model) (all, free int) {
	for _, be := range m.Backends {
		if be.Spare {
			all++
			if be.OwnName == "" {
				free++
			}
		}
	}
	return all, free
}

func TestSpareBackendRules(t *testing.T) {
	w := &spareWorld{t: t, spare: 2}
	w.in.IngressClasses = []*networkingv1.IngressClass{ourClass(true)}
	w.add("a", "first", 1, nil)
	m := w.build()
	// The first build (no previous model): everything its own, the pool
	// declared empty.
	if got := where(t, m, "a", "first"); got != "own" {
		t.Errorf("first build: a/first in %s", got)
	}
	if all, free := spareCount(m); all != 2 || free != 2 {
		t.Errorf("first build: %d spares, %d free; want 2, 2", all, free)
	}

	w.add("b", "web", 3, nil)
	m = w.build()
	if got := where(t, m, "b", "web"); got != SpareName(0) {
		t.Errorf("a new plain Service in %s, want %s", got, SpareName(0))
	}
	be := backendNamed(m.Backends, SpareName(0))
	if len(be.Servers) != 3 || be.Slots != SpareSlots || be.SlotAddrs[0] != be.Servers[0] {
		t.Errorf("spare 0: servers %v, slots %d %v", be.Servers, be.Slots, be.SlotAddrs)
	}
	if backendNamed(m.Backends, "b_web_80") != nil {
		t.Error("b/web has its own backend beside its spare")
	}
	first := where(t, m, "a", "first")

	// Endpoints moving keep their slots, as in an own backend.
	w.in.EndpointSlices = slices.Clone(w.in.EndpointSlices)
	w.in.EndpointSlices[1] = slice("b", "web", "web-1", "http", 8080, "10.2.0.3", "10.2.0.9")
	m = w.build()
	be = backendNamed(m.Backends, SpareName(0))
	if be.SlotAddrs[2] != netip.MustParseAddrPort("10.2.0.3:8080") || be.SlotAddrs[0] != netip.MustParseAddrPort("10.2.0.9:8080") {
		t.Errorf("spare 0's slots after a move: %v", be.SlotAddrs)
	}

	// Removed: the spare is emptied, and not given out in the same build.
	w.remove("b", "web")
	w.add("c", "api", 1, nil)
	m = w.build()
	if be := backendNamed(m.Backends, SpareName(0)); be.OwnName != "" || be.Service != "" || slices.ContainsFunc(be.SlotAddrs, netip.AddrPort.IsValid) {
		t.Errorf("spare 0 after its Service left: %+v", be)
	}
	if got := where(t, m, "c", "api"); got != SpareName(1) {
		t.Errorf("a Service new in the build that emptied spare 0 is in %s, want %s", got, SpareName(1))
	}

	// An annotation: its own backend (a reload), its spare emptied.
	w.in.Ingresses = slices.Clone(w.in.Ingresses)
	for i, ing := range w.in.Ingresses {
		if ing.Namespace == "c" {
			c := ing.DeepCopy()
			c.Annotations = map[string]string{AnnotationPrefix + "balance": "leastconn"}
			w.in.Ingresses[i] = c
		}
	}
	m = w.build()
	if got := where(t, m, "c", "api"); got != "own" {
		t.Errorf("a Service with a backend annotation in %s", got)
	}
	if _, free := spareCount(m); free != 2 {
		t.Errorf("%d spares free, want 2", free)
	}

	// Too many endpoints for a spare: its own backend.
	w.add("d", "big", SpareSlots+1, nil)
	m = w.build()
	if got := where(t, m, "d", "big"); got != "own" {
		t.Errorf("a Service with %d endpoints in %s", SpareSlots+1, got)
	}

	// Out of spares: the third new one keeps its own name, and the pool
	// doubles; the two before it keep their spares.
	for _, n := range []string{"e1", "e2", "e3"} {
		w.add(n, "app-"+n, 1, nil)
	}
	m = w.build()
	got := []string{where(t, m, "e1", "app-e1"), where(t, m, "e2", "app-e2"), where(t, m, "e3", "app-e3")}
	if want := []string{SpareName(0), SpareName(1), "own"}; !slices.Equal(got, want) {
		t.Errorf("three new Services with two spares: %v, want %v", got, want)
	}
	if all, free := spareCount(m); all != 4 || free != 2 {
		t.Errorf("after running out: %d spares, %d free; want 4, 2", all, free)
	}
	if where(t, m, "a", "first") != first {
		t.Error("a/first moved")
	}
	names := make([]string, len(m.Backends))
	for i, be := range m.Backends {
		names[i] = be.Name
	}
	if !slices.IsSorted(names) {
		t.Errorf("backends not in name order: %v", names)
	}
}

// A backend named otherwise than by a route (the default backend, an auth
// service, a canary's) is never given a spare: its name is in lines the
// runtime API cannot change.
func TestSpareBackendsNotForNamedBackends(t *testing.T) {
	w := &spareWorld{spare: 4}
	w.in.IngressClasses = []*networkingv1.IngressClass{ourClass(true)}
	w.add("a", "first", 1, nil)
	w.build()
	w.add("a", "auth", 1, nil)
	w.add("a", "app", 1, map[string]string{AnnotationPrefix + "auth-url": "http://auth.a.svc.cluster.local:80/check"})
	w.add("b", "stable", 1, nil)
	w.add("b", "next", 1, map[string]string{AnnotationPrefix + "canary": "true", AnnotationPrefix + "canary-weight": "10"})
	w.in.Ingresses[len(w.in.Ingresses)-1].Spec.Rules[0].Host = "stable.test"
	m := w.build()
	for _, be := range m.Backends {
		if be.Spare && be.OwnName != "" && be.OwnName != "a_first_80" {
			t.Errorf("%s holds %s, which is named by more than a route", be.Name, be.OwnName)
		}
	}
	if !slices.ContainsFunc(m.Backends, func(be *Backend) bool { return be.Name == "a_auth_80" }) {
		var names []string
		for _, be := range m.Backends {
			names = append(names, be.Name)
		}
		t.Errorf("no own backend for the auth service: %s", strings.Join(names, " "))
	}
}

// routesToSpares reuses the memo's output for a route it saw before:
// one not in a spare stays out (its backend is one HAProxy declares), one
// in a spare stays in it unless its backend's spare changed or went. A
// new route is looked up; without the memo (the engine drops it when
// HAProxy serves another model than the last build's), or with many
// changes, every route is.
func TestRoutesToSparesReusesTheMemo(t *testing.T) {
	ra := &Route{Backend: "ns_a_80", order: "1"}
	rb := &Route{Backend: "ns_b_80", order: "2"}
	rc := &Route{Backend: "ns_c_80", order: "3"}
	memo := &spareMemo{}
	step := func(routes []*Route, assigned map[string]int) []*Route {
		out := routesToSpares(routes, assigned, memo)
		memo.routesIn, memo.routesOut, memo.assigned = routes, out, assigned
		return out
	}
	backends := func(out []*Route) []string {
		var names []string
		for _, r := range out {
			names = append(names, r.Backend)
		}
		return names
	}

	first := step([]*Route{ra, rc}, map[string]int{"ns_a_80": 0})
	if got, want := backends(first), []string{SpareName(0), "ns_c_80"}; !slices.Equal(got, want) {
		t.Fatalf("first: %v, want %v", got, want)
	}
	// A new route to a backend newly given a spare is rewritten; the
	// others are the memo's.
	second := step([]*Route{ra, rb, rc}, map[string]int{"ns_a_80": 0, "ns_b_80": 1})
	if got, want := backends(second), []string{SpareName(0), SpareName(1), "ns_c_80"}; !slices.Equal(got, want) {
		t.Fatalf("a new Service given a spare: %v, want %v", got, want)
	}
	if second[0] != first[0] || second[2] != rc {
		t.Errorf("routes whose backend's spare did not change were not taken from the memo")
	}
	// ns_a_80 loses its spare, ns_b_80 gets another one.
	third := step([]*Route{ra, rb, rc}, map[string]int{"ns_b_80": 2})
	if got, want := backends(third), []string{"ns_a_80", SpareName(2), "ns_c_80"}; !slices.Equal(got, want) || third[0] != ra {
		t.Errorf("a spare freed and one moved: %v, want %v", got, want)
	}
	// Without the memo, a route seen before whose backend needs a spare
	// now (HAProxy put back on a model that lacks it) is looked up.
	dropMemo(memo)
	if got, want := backends(step([]*Route{ra, rb, rc}, map[string]int{"ns_b_80": 2, "ns_c_80": 3})), []string{"ns_a_80", SpareName(2), SpareName(3)}; !slices.Equal(got, want) {
		t.Errorf("without the memo: %v, want %v", got, want)
	}
	// More changes than are compared one by one: every route looked up.
	many := map[string]int{"ns_c_80": 3}
	for i := range maxChangedAssignments + 1 {
		many[fmt.Sprintf("ns_x%d_80", i)] = 4 + i
	}
	if got, want := backends(step([]*Route{ra, rb, rc}, many)), []string{"ns_a_80", "ns_b_80", SpareName(3)}; !slices.Equal(got, want) {
		t.Errorf("many changes: %v, want %v", got, want)
	}
}
