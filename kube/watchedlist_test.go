package kube

import (
	"fmt"
	mathrand "math/rand/v2"
	"slices"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/lists"
)

// For random adds, updates and deletes, each list a watchedList hands out
// holds one object per name, the latest of each, and its delta turns the
// list handed out before it into it; lists handed out are never changed.
func TestWatchedListDeltas(t *testing.T) {
	r := mathrand.New(mathrand.NewPCG(5, 11))
	l := newWatchedList[networkingv1.Ingress]()
	h := l.handler(func() {})
	want := map[string]*networkingv1.Ingress{} // what the store holds
	type handedOut struct {
		list []*networkingv1.Ingress
		copy []*networkingv1.Ingress
	}
	var handed []handedOut
	var last []*networkingv1.Ingress
	for step := range 3000 {
		name := fmt.Sprintf("ing-%d", r.IntN(40))
		obj := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: fmt.Sprint(step)}}
		old := want["ns/"+name]
		switch op := r.IntN(10); {
		case op < 4 && old == nil:
			h.OnAdd(obj, false)
			want["ns/"+name] = obj
		case op < 7 && old != nil:
			h.OnUpdate(old, obj)
			want["ns/"+name] = obj
		case op < 8 && old != nil:
			// A resync's update (the same version) changes nothing.
			h.OnUpdate(old, old)
		case old != nil:
			if r.IntN(2) == 0 {
				h.OnDelete(old)
			} else {
				h.OnDelete(cache.DeletedFinalStateUnknown{Key: "ns/" + name, Obj: old})
			}
			delete(want, "ns/"+name)
		}
		if r.IntN(5) != 0 {
			continue
		}
		list, same, delta := l.take()
		got := map[string]*networkingv1.Ingress{}
		for _, o := range list {
			if got[o.Namespace+"/"+o.Name] != nil {
				t.Fatalf("step %d: %s twice in the list", step, o.Name)
			}
			got[o.Namespace+"/"+o.Name] = o
		}
		if len(got) != len(want) {
			t.Fatalf("step %d: %d objects, want %d", step, len(got), len(want))
		}
		for k, o := range want {
			if got[k] != o {
				t.Fatalf("step %d: %s is not the latest object", step, k)
			}
		}
		switch {
		case same:
			if delta != nil || !lists.Same(list, last) {
				t.Fatalf("step %d: said to be the same list but is not, or has a delta", step)
			}
		case last == nil:
			if delta != nil {
				t.Fatalf("step %d: a delta for the first list", step)
			}
		default:
			if delta == nil || !lists.Same(delta.Since, last) {
				t.Fatalf("step %d: no delta from the last list", step)
			}
			set := map[*networkingv1.Ingress]bool{}
			for _, o := range last {
				set[o] = true
			}
			for _, o := range delta.Removed {
				if !set[o] {
					t.Fatalf("step %d: removed %s was not in the last list", step, o.Name)
				}
				delete(set, o)
			}
			for _, o := range delta.Added {
				if set[o] {
					t.Fatalf("step %d: added %s was in the last list", step, o.Name)
				}
				set[o] = true
			}
			if len(set) != len(list) {
				t.Fatalf("step %d: the delta gives %d objects, the list has %d", step, len(set), len(list))
			}
			for _, o := range list {
				if !set[o] {
					t.Fatalf("step %d: %s is in the list, not in the last list with the delta", step, o.Name)
				}
			}
		}
		handed = append(handed, handedOut{list, slices.Clone(list)})
		last = list
	}
	for i, h := range handed {
		if !slices.Equal(h.list, h.copy) {
			t.Fatalf("list %d was changed after it was handed out", i)
		}
	}
	if len(handed) < 100 {
		t.Fatalf("only %d lists handed out", len(handed))
	}
}
