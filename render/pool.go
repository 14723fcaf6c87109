package render

import (
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/lists"
)

// Spare backends: HAProxy cannot add a backend while it runs, so a new
// Service used to mean a reload. Routes name their backend in a map value,
// and a backend's servers change through the runtime API: a backend
// declared ahead, with empty server slots, can become a new Service's
// backend without a reload. Options.SpareBackends asks for such a pool.
//
// The rules, all on the model (the planner then sees map entries and slot
// addresses change, and nothing else):
//   - A Service port's backend goes to the pool only when it is new to
//     HAProxy (Options.Previous has no backend of that name) and plain:
//     nothing but its Service and endpoints sets it apart from an empty
//     spare (no backend or route annotations, not an ExternalName, at
//     most SpareSlots endpoints: see plainBackend), and only routes
//     without a canary name it (no default backend, auth service, error
//     page, regular expression or passthrough host refers to it by name).
//     Its routes then map to the spare's name; explain, dump and the
//     section's comment name the Service.
//   - It keeps its spare while it stays plain. When it is removed, its
//     spare is emptied at run time. When it stops being plain (an
//     annotation, more endpoints than the spare has slots), it gets its
//     own backend, which is a reload.
//   - Only spares that were free in Options.Previous are given out: a
//     spare emptied in a pass is given to another Service in a later pass
//     at the earliest, after the emptied one's routes left HAProxy's maps.
//   - The pool's size changes only when a reload happens anyway: when a
//     new plain backend finds no free spare, it keeps its own name (a new
//     backend: a reload) and the pool doubles (by MaxSpareBackends at
//     most) in the same configuration.
//
// Without Options.Previous (the first build) no backend is in the pool
// and SpareBackends spares are declared; a model without any backend
// declares none.

// SpareSlots is a spare backend's number of server slots: what a
// Service's own backend with up to MinServerSlots endpoints has, so that
// a Service served from the pool needs a reload to grow exactly when its
// own backend would.
const SpareSlots = MinServerSlots

// MaxSpareBackends bounds Options.SpareBackends and each growth of the
// pool: a spare costs HAProxy a backend and SpareSlots servers.
const MaxSpareBackends = 4096

// maxSpares bounds the pool as a whole: SpareName's five digits keep
// name order index order (Model.Backends is sorted by name).
const maxSpares = 100000

// sparePrefix begins every spare backend's name; no Service port's backend
// begins with "_".
const sparePrefix = "_spare_"

// SpareName is the name of spare backend i; zero-padded, so that name
// order is index order.
func SpareName(i int) string { return fmt.Sprintf("%s%05d", sparePrefix, i) }

// plainBackend reports whether be differs from an empty spare only in the
// Service port it serves and its endpoints: then the spare's section,
// with be's endpoints in its slots, is exactly be's own.
func plainBackend(be *Backend) bool {
	if be.Spare || be.Service == "" || be.Slots != SpareSlots {
		return false
	}
	c := *be
	c.Name, c.Namespace, c.Service, c.Port, c.PortName, c.Servers, c.SlotAddrs = "", "", "", 0, "", nil, nil
	return reflect.DeepEqual(c, Backend{Slots: SpareSlots})
}

// spareMemo keeps what the last pool pass made, so that a build where
// nothing in the pool changed hands out the same backends, routes and
// lists (the section cache and the planner compare pointers first).
type spareMemo struct {
	routesIn, routesOut     []*Route
	backendsIn, backendsOut []*Backend
	spares                  []*Backend
	// assigned is the last assignment: backend name → spare index.
	assigned map[string]int
	// made are the spares made for a Service port's backend, by spare
	// index: reused while that backend is the same object.
	made map[int]spareMade
}

type spareMade struct {
	from, spare *Backend
}

// applySpares puts new plain backends into the pool (see above). memo is
// nil in the full build.
func applySpares(m *Model, opts Options, memo *spareMemo) {
	if opts.SpareBackends <= 0 {
		dropMemo(memo)
		return
	}
	prev := prevSpares(opts.Previous)
	if len(prev) == 0 && len(m.Backends) == 0 {
		// A configuration without any backend declares none: it is
		// the bootstrap configuration (run --init, an empty cluster),
		// whose bytes run compares whatever its flags; the first
		// backend comes with a reload, which declares them.
		dropMemo(memo)
		return
	}
	n := len(prev)
	if n == 0 {
		n = opts.SpareBackends
	}

	// Names some other way than by a canary-free route: never pooled.
	named := map[string]bool{m.DefaultBackend: true}
	for _, be := range m.Backends {
		if be.ExtAuthBackend != "" {
			named[be.ExtAuthBackend] = true
		}
		if be.ErrorBackend != "" {
			named[be.ErrorBackend] = true
		}
	}
	if !m.canaryFree || len(m.Regex) > 0 || len(m.Passthrough) > 0 {
		for _, r := range m.Routes {
			if r.Canary != nil {
				named[r.Backend], named[r.Canary.Backend] = true, true
			}
			if r.Match == MatchRegex || r.Passthrough {
				named[r.Backend] = true
			}
		}
	}

	// What the previous model had: each spare's Service port backend.
	owner := make([]string, n) // spare index → backend name, "" free
	heldBy := map[string]int{} // backend name → spare index
	for i, be := range prev {
		if be.OwnName != "" {
			owner[i], heldBy[be.OwnName] = be.OwnName, i
		}
	}
	assigned := map[string]int{}
	for name, i := range heldBy {
		if be := backendNamed(m.Backends, name); be != nil && plainBackend(be) && !named[name] {
			assigned[name] = i
		}
	}
	if len(prev) > 0 {
		// Free in the previous model: neither held then nor now.
		next := 0
		for _, be := range newBackends(m.Backends, opts.Previous.Backends) {
			if _, held := heldBy[be.Name]; held || !plainBackend(be) || named[be.Name] {
				continue
			}
			for next < len(prev) && owner[next] != "" {
				next++
			}
			if next == len(prev) {
				// Out of spares: this one and the rest keep their
				// own names, a reload, which declares twice the
				// spares.
				n = min(len(prev)+min(len(prev), MaxSpareBackends), maxSpares)
				break
			}
			assigned[be.Name] = next
			next++
		}
	}

	// The backends given spares, by their index in m.Backends: found by
	// name, never by walking every backend.
	at := make([]int, 0, len(assigned))
	for name := range assigned {
		i, _ := slices.BinarySearchFunc(m.Backends, name, func(b *Backend, n string) int { return strings.Compare(b.Name, n) })
		at = append(at, i)
	}
	slices.Sort(at)

	spares := make([]*Backend, n)
	for _, k := range at {
		be := m.Backends[k]
		i := assigned[be.Name]
		if memo != nil {
			if mk, ok := memo.made[i]; ok && mk.from == be && i < len(prev) && prev[i] == mk.spare {
				spares[i] = mk.spare
				continue
			}
		}
		var was []netip.AddrPort
		if i < len(prev) && prev[i].OwnName == be.Name {
			was = prev[i].SlotAddrs
		}
		s := *be
		s.Name, s.Spare, s.OwnName = SpareName(i), true, be.Name
		s.SlotAddrs = assignSlots(be.Servers, SpareSlots, was)
		spares[i] = &s
	}
	for i := range spares {
		switch {
		case spares[i] != nil:
		case i < len(prev) && prev[i].OwnName == "":
			spares[i] = prev[i]
		case memo != nil && i < len(memo.spares) && memo.spares[i].OwnName == "":
			spares[i] = memo.spares[i]
		default:
			spares[i] = &Backend{Name: SpareName(i), Spare: true, Slots: SpareSlots, SlotAddrs: make([]netip.AddrPort, SpareSlots)}
		}
	}

	in, inRoutes := m.Backends, m.Routes
	switch {
	case memo != nil && lists.Same(memo.backendsIn, in) && slices.Equal(memo.spares, spares):
		m.Backends = memo.backendsOut
	default:
		m.Backends = withSpares(in, spares, at)
	}
	switch {
	case len(assigned) == 0:
	case memo != nil && lists.Same(memo.routesIn, inRoutes) && maps.Equal(memo.assigned, assigned):
		m.Routes = memo.routesOut
	default:
		m.Routes = routesToSpares(inRoutes, assigned, memo)
	}
	if memo != nil {
		memo.backendsIn, memo.backendsOut, memo.routesIn, memo.routesOut, memo.spares = in, m.Backends, inRoutes, m.Routes, spares
		memo.assigned = assigned
		memo.made = make(map[int]spareMade, len(assigned))
		for _, k := range at {
			i := assigned[in[k].Name]
			memo.made[i] = spareMade{from: in[k], spare: spares[i]}
		}
	}
}

// backendNamed is the backend of bes (sorted by name) named name, or nil.
func backendNamed(bes []*Backend, name string) *Backend {
	i, ok := slices.BinarySearchFunc(bes, name, func(b *Backend, n string) int { return strings.Compare(b.Name, n) })
	if !ok {
		return nil
	}
	return bes[i]
}

// newBackends are the backends of bes whose name prev (both sorted by
// name) has not. Backends that did not change are the same objects in
// both: those are passed over without reading their names.
func newBackends(bes, prev []*Backend) []*Backend {
	var out []*Backend
	j := 0
	for _, be := range bes {
		if j < len(prev) && prev[j] == be {
			j++
			continue
		}
		for j < len(prev) && prev[j].Name < be.Name {
			j++
		}
		if j < len(prev) && prev[j].Name == be.Name {
			j++
			continue
		}
		out = append(out, be)
	}
	return out
}

// prevSpares are the spare backends of the served model, by index.
func prevSpares(prev *Model) []*Backend {
	if prev == nil {
		return nil
	}
	at, _ := slices.BinarySearchFunc(prev.Backends, sparePrefix, func(b *Backend, p string) int { return strings.Compare(b.Name, p) })
	var out []*Backend
	for _, be := range prev.Backends[at:] {
		if !be.Spare {
			break
		}
		out = append(out, be)
	}
	return out
}

// withSpares is backends (sorted by name) without those at the indexes
// given spares (sorted), with the spares in name order among them: whole
// runs of backends are copied, none is read.
func withSpares(backends, spares []*Backend, given []int) []*Backend {
	out := make([]*Backend, 0, len(backends)-len(given)+len(spares))
	insert, _ := slices.BinarySearchFunc(backends, sparePrefix, func(b *Backend, p string) int { return strings.Compare(b.Name, p) })
	from := 0
	for _, cut := range append(slices.Clone(given), len(backends)) {
		if from <= insert && insert <= cut {
			out = append(out, backends[from:insert]...)
			out = append(out, spares...)
			from = insert
		}
		out = append(out, backends[from:cut]...)
		from = cut + 1
	}
	return out
}

// dropMemo drops what memo keeps: it is only for the build right after
// the one that made it.
func dropMemo(memo *spareMemo) {
	if memo != nil {
		*memo = spareMemo{}
	}
}

// routesToSpares is routes with every route to an assigned backend
// replaced by a copy naming its spare. Routes that were there before are
// taken from the memo's output by walking both sorted lists by pointer: a
// route is never changed, so it names the backend it named then. One
// that was not in a spare stays out of them: its backend was one of the
// model HAProxy serves (the memo is the last build's, which the engine
// drops when HAProxy serves another: rebase), and only backends that
// model lacks are given spares. One that was in a spare stays in it
// unless its backend's spare changed; only those routes are read, for
// their backend's name. A new Service thus no longer reads every route
// (at 10k Ingresses, a third of its render went to looking each up).
func routesToSpares(routes []*Route, assigned map[string]int, memo *spareMemo) []*Route {
	// Never nil, as the full build's (an empty list is not a nil one to
	// the models' comparison).
	out := make([]*Route, len(routes))
	copy(out, routes)
	rewrite := func(j int, r *Route) {
		i, ok := assigned[r.Backend]
		if !ok {
			return
		}
		c := *r
		c.Backend = SpareName(i)
		out[j] = &c
	}
	changed, few := changedAssignments(memo, assigned)
	if !few {
		for j, r := range routes {
			rewrite(j, r)
		}
		return out
	}
	was, wasOut := memo.routesIn, memo.routesOut
	k := 0
	for j, r := range routes {
		for k < len(was) && was[k] != r && was[k].order != "" && r.order != "" && was[k].order < r.order {
			k++
		}
		if k < len(was) && was[k] == r {
			o := wasOut[k]
			k++
			if o == r || len(changed) == 0 || !slices.Contains(changed, r.Backend) {
				out[j] = o
				continue
			}
		}
		rewrite(j, r)
	}
	return out
}

// maxChangedAssignments is how many backends whose spare changed
// routesToSpares compares each route's backend with, one by one, before
// it looks every route up in the assignment instead.
const maxChangedAssignments = 8

// changedAssignments lists the backends whose spare in assigned is not
// the one in memo's assignment (given one, another one, or none any
// more); few is false when there is no memo to compare with or more than
// maxChangedAssignments changed.
func changedAssignments(memo *spareMemo, assigned map[string]int) (changed []string, few bool) {
	if memo == nil || memo.routesIn == nil {
		return nil, false
	}
	for name, i := range assigned {
		if was, ok := memo.assigned[name]; !ok || was != i {
			changed = append(changed, name)
		}
	}
	for name := range memo.assigned {
		if _, ok := assigned[name]; !ok {
			changed = append(changed, name)
		}
	}
	return changed, len(changed) <= maxChangedAssignments
}
