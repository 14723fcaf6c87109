package haproxycfg

import (
	"bytes"
	"fmt"
	mathrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// routeMap writes the route map of one match kind from scratch.
func routeMap(routes []*render.Route, match render.MatchKind) []byte {
	var of []*render.Route
	for _, r := range routes {
		if r.Match == match {
			of = append(of, r)
		}
	}
	return writeRouteMap(nil, of).whole()
}

// spliceRoutes are the routes of n Ingresses "ing-<i>" for host
// h<i>.test, path "/" (Exact for even i, Prefix for odd), to Service
// "b<backend>", as the builder makes them: [backend][i].
func spliceRoutes(t *testing.T, n, backends int) [][]*render.Route {
	cls := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "haproxy"},
		Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}
	out := make([][]*render.Route, backends)
	for b := range backends {
		svc := "b" + strconv.Itoa(b)
		in := render.Inputs{IngressClasses: []*networkingv1.IngressClass{cls},
			Services: []*corev1.Service{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: svc},
				Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}}}
		for i := range n {
			pt := networkingv1.PathTypeExact
			if i%2 == 1 {
				pt = networkingv1.PathTypePrefix
			}
			className := "haproxy"
			in.Ingresses = append(in.Ingresses, &networkingv1.Ingress{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ing-" + strconv.Itoa(i)},
				Spec: networkingv1.IngressSpec{IngressClassName: &className, Rules: []networkingv1.IngressRule{{
					Host: fmt.Sprintf("h%04d.test", i),
					IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
						Path: "/", PathType: &pt,
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}}},
					}}}},
				}}},
			})
		}
		m := render.BuildModel(in, render.Options{})
		out[b] = make([]*render.Route, n)
		for _, r := range m.Routes {
			i, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(r.Host, "h"), ".test"))
			if err != nil || out[b][i] != nil {
				t.Fatalf("unexpected route %+v", r)
			}
			out[b][i] = r
		}
		for i, r := range out[b] {
			if r == nil {
				t.Fatalf("no route for ing-%d to %s: %v", i, svc, m.Problems)
			}
		}
	}
	return out
}

// A route map written from the previous one (keeping the chunks of
// unchanged routes) is the file written from scratch, for random
// insertions, deletions and changes, with chunks small enough that most
// changes cross their bounds and with the default; written again from the
// same routes, it is the previous one.
func TestWriteRouteMapSplices(t *testing.T) {
	for _, rows := range []int{3, routeChunkRows} {
		t.Run("chunk="+strconv.Itoa(rows), func(t *testing.T) {
			defer func(was int) { routeChunkRows = was }(routeChunkRows)
			routeChunkRows = rows
			testWriteRouteMapSplices(t)
		})
	}
}

func testWriteRouteMapSplices(t *testing.T) {
	r := mathrand.New(mathrand.NewPCG(3, 9))
	built := spliceRoutes(t, 400, 3)
	present := map[int]int{} // route → backend
	var prev [2]*routeMapText
	var split *routeSplit
	var spare []render.MatchKind       // as renderMaps passes it: the kinds of the split before
	made := map[[2]int]*render.Route{} // routes kept from step to step, as the engine keeps them
	for step := range 300 {
		for range 1 + r.IntN(8) {
			i := r.IntN(400)
			switch r.IntN(3) {
			case 0:
				delete(present, i)
			default:
				present[i] = r.IntN(3)
			}
		}
		var routes []*render.Route
		for i := range 400 {
			if b, ok := present[i]; ok {
				// Half the time a route that did not change is the
				// same pointer; else a new one with the same lines.
				k := [2]int{i, b}
				if made[k] == nil || r.IntN(2) == 0 {
					rt := *built[b][i]
					made[k] = &rt
				}
				routes = append(routes, made[k])
			}
		}
		slices.SortFunc(routes, func(x, y *render.Route) int { return strings.Compare(x.Order(), y.Order()) })
		var byMatch [2][]*render.Route
		next, exact, prefix := splitRoutes(split, routes, spare)
		if split != nil {
			spare = split.kinds
		}
		split, byMatch[render.MatchExact], byMatch[render.MatchPrefix] = next, exact, prefix
		if len(byMatch[render.MatchExact])+len(byMatch[render.MatchPrefix]) != len(routes) {
			t.Fatalf("step %d: split %d routes into %d and %d", step, len(routes), len(byMatch[render.MatchExact]), len(byMatch[render.MatchPrefix]))
		}
		for _, match := range []render.MatchKind{render.MatchExact, render.MatchPrefix} {
			for _, x := range byMatch[match] {
				if x.Match != match {
					t.Fatalf("step %d: split put %s route %s into %s", step, x.Match, x.Key, match)
				}
			}
			got := writeRouteMap(prev[match], byMatch[match])
			if want := routeMap(routes, match); !bytes.Equal(got.whole(), want) {
				t.Fatalf("step %d %s: spliced map\n%s\nwant\n%s", step, match, got.whole(), want)
			}
			n := 0
			for _, c := range got.chunkList() {
				if len(c.rows) == 0 || len(c.rows) > routeChunkRows {
					t.Fatalf("step %d %s: a chunk of %d routes", step, match, len(c.rows))
				}
				n += len(c.rows)
			}
			if n != len(byMatch[match]) {
				t.Fatalf("step %d %s: %d routes in chunks, want %d", step, match, n, len(byMatch[match]))
			}
			if again := writeRouteMap(got, byMatch[match]); again != got {
				t.Fatalf("step %d %s: written again from the same routes, not the same file", step, match)
			}
			prev[match] = got
		}
	}
}
