package render

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
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
		{"the zero value claims nothing", Inputs{}, SecretsKind, TakeList},
	}
	for _, s := range steps {
		if got := tk.Take(s.in, s.kind); got != s.want {
			t.Errorf("%s: %d, want %d", s.name, got, s.want)
		}
	}
}
