package render

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// Taken decides how much of a list a consumer reads again, from what the
// source claims and the list the consumer took in last; a claim about
// another slice than that one is never believed.
func TestTakenDecides(t *testing.T) {
	ings := []*networkingv1.Ingress{{}, {}}
	other := []*networkingv1.Ingress{ings[0], ings[1]} // equal, another slice
	grown := append(ings[:2:2], &networkingv1.Ingress{})
	svcs := []*corev1.Service{{}}
	svcs2 := append(svcs[:1:1], &corev1.Service{})
	slices1 := []*discoveryv1.EndpointSlice{{}, {}}
	slices2 := slices1[:1:1]
	var tk Taken
	steps := []struct {
		name string
		in   Inputs
		kind InputKinds
		want Take
	}{
		{"first time", Inputs{Ingresses: ings, Unchanged: IngressesKind}, IngressesKind, TakeList},
		{"same slice, said unchanged", Inputs{Ingresses: ings, Unchanged: IngressesKind}, IngressesKind, TakeNothing},
		{"same slice, not said unchanged", Inputs{Ingresses: ings}, IngressesKind, TakeList},
		{"another slice said unchanged", Inputs{Ingresses: other, Unchanged: IngressesKind}, IngressesKind, TakeList},
		{"a delta since the slice taken last", Inputs{Ingresses: grown, IngressDelta: &Delta[*networkingv1.Ingress]{Since: other, Added: grown[2:]}}, IngressesKind, TakeDelta},
		{"a delta since another slice", Inputs{Ingresses: ings, IngressDelta: &Delta[*networkingv1.Ingress]{Since: other}}, IngressesKind, TakeList},
		{"Services: first time", Inputs{Services: svcs, Unchanged: ServicesKind}, ServicesKind, TakeList},
		{"Services: kinds are remembered apart", Inputs{Services: svcs, Ingresses: grown, Unchanged: ServicesKind}, ServicesKind, TakeNothing},
		{"Ingresses again, after Services", Inputs{Ingresses: ings, Unchanged: IngressesKind}, IngressesKind, TakeNothing},
		{"Services: a delta since the slice taken last", Inputs{Services: svcs2, ServiceDelta: &Delta[*corev1.Service]{Since: svcs, Added: svcs2[1:]}}, ServicesKind, TakeDelta},
		{"Services: an Ingress delta is not theirs", Inputs{Services: svcs, IngressDelta: &Delta[*networkingv1.Ingress]{Since: ings}}, ServicesKind, TakeList},
		{"EndpointSlices: first time", Inputs{EndpointSlices: slices1}, EndpointSlicesKind, TakeList},
		{"EndpointSlices: a delta since the slice taken last", Inputs{EndpointSlices: slices2, EndpointSliceDelta: &Delta[*discoveryv1.EndpointSlice]{Since: slices1, Removed: slices1[1:]}}, EndpointSlicesKind, TakeDelta},
		{"EndpointSlices: a delta since another slice", Inputs{EndpointSlices: slices1, EndpointSliceDelta: &Delta[*discoveryv1.EndpointSlice]{Since: slices1}}, EndpointSlicesKind, TakeList},
		{"the zero value claims nothing", Inputs{}, SecretsKind, TakeList},
	}
	for _, s := range steps {
		if got := tk.Take(s.in, s.kind); got != s.want {
			t.Errorf("%s: %d, want %d", s.name, got, s.want)
		}
	}
}
