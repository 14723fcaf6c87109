package kube

import (
	"context"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
)

// statusTracker is what the status loop keeps between its runs, so that a
// run after a pass reads only what the pass changed. Checking every
// Ingress after every pass cost, at 50k Ingresses, a set of every served
// key, a list of the informer's store, a key and a wanted status made for
// each Ingress (about 9 MB of garbage a pass, more than the pass itself
// made) and, with a publish Service, a GET of that Service.
//
// A run is incremental when the one before it left every Ingress of its
// list as wanted: it reads the Ingresses at the places of the list where
// the object is not the one checked before (the source's list keeps each
// object's place: an update replaces it there, an addition goes at the
// end, a removal moves the last one into its place), and those whose
// served state changed. A full run (the periodic one, and any after an
// error, a change of leader or of the published addresses) reads them
// all.
type statusTracker struct {
	w *StatusWriter
	// ours are the addresses published; read again by a full run only.
	ours []networkingv1.IngressLoadBalancerIngress
	// keys is the Model.Served of the last run; served is the same as a
	// set.
	keys   []string
	served map[types.NamespacedName]struct{}
	// list is the Ingress list of the last run; done says that run found
	// or made every one of them as wanted.
	list []*networkingv1.Ingress
	done bool
}

// longWrite is the number of Ingresses to write beyond which a run does
// not keep its list for the next one to compare with.
const longWrite = 256

func newStatusTracker(w *StatusWriter) *statusTracker {
	return &statusTracker{w: w, served: map[types.NamespacedName]struct{}{}}
}

// run makes the status of the Ingresses of list (the source's) as it
// should be for served (Model.Served). lookup finds an Ingress by
// namespace/name, for those whose served state changed. full reads the
// published addresses again and every Ingress.
func (t *statusTracker) run(ctx context.Context, list []*networkingv1.Ingress, served []string, lookup func(key string) *networkingv1.Ingress, full bool) (int, error) {
	w := t.w
	if !w.leading() {
		t.done = false // a new leader checks everything
		return 0, nil
	}
	if full || t.ours == nil {
		ours, err := w.Addresses(ctx)
		if err != nil {
			t.done = false
			return 0, err
		}
		t.ours, full = ours, true
	}
	flipped, all := t.servedNow(served)
	full = full || all || !t.done

	var todo []*networkingv1.Ingress
	check := func(ing *networkingv1.Ingress) {
		if statusWanted(ing.Status.LoadBalancer.Ingress, t.ours, t.isServed(ing)) {
			return
		}
		// The list is the one the last pass was handed: a status written
		// since (ours, moments ago) is in the informer's object. Decided
		// on the list's alone, a full check after a start's writes wrote
		// every status again, each a conflict and a read.
		if cur := lookup(ing.Namespace + "/" + ing.Name); cur != nil && cur != ing && cur.UID == ing.UID {
			if statusWanted(cur.Status.LoadBalancer.Ingress, t.ours, t.isServed(cur)) {
				return
			}
			ing = cur
		}
		todo = append(todo, ing)
	}
	if full {
		for _, ing := range list {
			check(ing)
		}
	} else {
		for i, ing := range list {
			if i >= len(t.list) || t.list[i] != ing {
				check(ing)
			}
		}
		for _, key := range flipped {
			// Maybe checked above already, when its object changed.
			if ing := lookup(key); ing != nil && !slices.Contains(todo, ing) {
				check(ing)
			}
		}
	}
	t.list = list
	if len(todo) == 0 {
		t.done = true
		return 0, nil
	}
	if len(todo) > longWrite {
		// Not kept through a long write (a start's, every served
		// Ingress: minutes at 50k), while the informer replaces each
		// object written: both copies of every Ingress were kept. The
		// next run checks every place, a statusWanted each.
		t.list = nil
	}
	n, err := w.write(ctx, todo, t.ours, t.isServed)
	t.done = err == nil
	return n, err
}

func (t *statusTracker) isServed(ing *networkingv1.Ingress) bool {
	_, ok := t.served[types.NamespacedName{Namespace: ing.Namespace, Name: ing.Name}]
	return ok
}

// servedNow makes the served set that of keys, returning the keys whose
// served state changed since the last run, or all when the set was made
// again. Model.Served hands a key out again as the same string while its
// Ingress stays served, in the same order, so that keys are told apart
// from the last run's by pointer, and only those added or removed are
// hashed.
func (t *statusTracker) servedNow(keys []string) (flipped []string, all bool) {
	last := t.keys
	t.keys = keys
	if last != nil && len(last) == len(keys) && (len(keys) == 0 || &last[0] == &keys[0]) {
		return nil, false // the same list
	}
	var added, removed []string
	i, j := 0, 0
	for i < len(last) && j < len(keys) {
		switch {
		case sameString(last[i], keys[j]):
			i, j = i+1, j+1
		case j+1 < len(keys) && sameString(last[i], keys[j+1]):
			added, j = append(added, keys[j]), j+1
		case i+1 < len(last) && sameString(last[i+1], keys[j]):
			removed, i = append(removed, last[i]), i+1
		default:
			removed, added, i, j = append(removed, last[i]), append(added, keys[j]), i+1, j+1
		}
		if len(added)+len(removed) > maxFlipped {
			clear(t.served)
			for _, k := range keys {
				t.served[servedName(k)] = struct{}{}
			}
			return nil, true
		}
	}
	removed, added = append(removed, last[i:]...), append(added, keys[j:]...)
	// Removed first: a key can leave and come back (an Ingress made
	// again) in one change.
	for _, k := range removed {
		delete(t.served, servedName(k))
	}
	for _, k := range added {
		t.served[servedName(k)] = struct{}{}
	}
	if len(added)+len(removed) > maxFlipped {
		return nil, true // the first run, or most of them: read them all
	}
	return append(removed, added...), false
}

// maxFlipped is how many served keys may change before the set is made
// again rather than walked: a walk that loses its way (many Ingresses
// gone and come at once) reads each key at most a few times.
const maxFlipped = 256

// servedName is the namespace and name of a Model.Served key; no copy.
func servedName(key string) types.NamespacedName {
	ns, name, _ := strings.Cut(key, "/")
	return types.NamespacedName{Namespace: ns, Name: name}
}
