package render

import "math/bits"

// Whether a change in the source is news to a consumer of successive
// Inputs is decided in one place, here, from what the source says about
// its lists: Inputs.Unchanged (no event of that kind since the list handed
// out before) and Inputs.IngressDelta, ServiceDelta and EndpointSliceDelta
// (which objects the events added and removed). The source decides that
// from its informers' events (kube.watchedList); Taken.Take turns it into
// how much of each list a consumer reads again. The engine and the controller's input tracker
// both ask it, so a list one of them skips the other skips too.
//
// Both then find, within a list they read, the objects that are new or
// gone by pointer (an object is never modified: an update is a new
// pointer); they keep a set each because they ask different questions of
// those objects and run at the same time (the tracker on the other core
// while the engine renders):
//   - the engine (svcSeen, sliceSeen, secretSeen, ings) takes Services,
//     EndpointSlices, Secrets and Ingresses in, by namespace/name, to
//     know whose users to evaluate again; IngressClasses and the settings
//     ConfigMap it reads whole on every build (a change of classes starts
//     it over);
//   - the tracker (controller.inputTracker) names what changed, of every
//     kind, for the pass record: it pairs a gone and a new object of the
//     same name into "updated", and drops an update that changed nothing
//     (equality.Semantic), which the engine never needs to know.

// Taken is what a consumer of successive Inputs took in last: each kind's
// list. The zero value took in nothing.
type Taken struct {
	lists [numInputKinds]listID
}

// numInputKinds is how many lists Inputs has (InputKinds' bits).
const numInputKinds = 6

// Take says how much of kind's list in (one kind) a consumer that took in
// the lists t remembers must read, and remembers in's list as taken.
type Take uint8

const (
	// TakeList: read the whole list.
	TakeList Take = iota
	// TakeNothing: the list is the one taken in last and the source says
	// nothing changed in it.
	TakeNothing
	// TakeDelta: read only the kind's delta (Inputs.IngressDelta,
	// ServiceDelta, EndpointSliceDelta), which is told against the very
	// list taken in last.
	TakeDelta
)

// Take decides for one kind (see Take) and remembers in's list as taken.
func (t *Taken) Take(in Inputs, kind InputKinds) Take {
	i := bits.TrailingZeros8(uint8(kind))
	id := in.listOf(kind)
	last := t.lists[i]
	t.lists[i] = id
	if in.Unchanged.Has(kind) && id == last {
		return TakeNothing
	}
	if since, ok := in.deltaSince(kind); ok && since == last {
		return TakeDelta
	}
	return TakeList
}

// deltaSince identifies the list in's delta of kind is told against;
// false when in has none for kind.
func (in Inputs) deltaSince(kind InputKinds) (listID, bool) {
	switch {
	case kind == IngressesKind && in.IngressDelta != nil:
		return idOf(in.IngressDelta.Since), true
	case kind == ServicesKind && in.ServiceDelta != nil:
		return idOf(in.ServiceDelta.Since), true
	case kind == EndpointSlicesKind && in.EndpointSliceDelta != nil:
		return idOf(in.EndpointSliceDelta.Since), true
	}
	return listID{}, false
}

// listID identifies a list handed out by a source: its first element's
// address and its length (a slice changed in place is a new list only if
// its length changed, which is why Unchanged is needed as well).
type listID struct {
	first any
	n     int
}

func idOf[T any](list []T) listID {
	if len(list) == 0 {
		return listID{}
	}
	return listID{first: &list[0], n: len(list)}
}

// listOf identifies in's list of kind.
func (in Inputs) listOf(kind InputKinds) listID {
	switch kind {
	case IngressesKind:
		return idOf(in.Ingresses)
	case IngressClassesKind:
		return idOf(in.IngressClasses)
	case ServicesKind:
		return idOf(in.Services)
	case EndpointSlicesKind:
		return idOf(in.EndpointSlices)
	case SecretsKind:
		return idOf(in.Secrets)
	case ConfigMapsKind:
		return idOf(in.ConfigMaps)
	}
	panic("render: Taken.Take of no single kind")
}
