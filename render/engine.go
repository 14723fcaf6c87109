package render

import (
	"bytes"
	"cmp"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
)

// engine builds models incrementally. It keeps, between builds, every
// Ingress with what it contributed to the model (routes, backends, TLS
// entries, problems), and indexes of who uses what: the Ingresses that
// name each route key, SNI host, Service and Secret, and those with a
// spec.defaultBackend. A build finds the objects that changed (a new
// object is a new pointer: informers and the manifest reader never modify
// an object they handed out) and evaluates again only the Ingresses that
// depend on them: the changed ones, those that share a route key, an SNI
// host or the default backend with one (conflicts are settled by age),
// and those that use a changed Service, EndpointSlice or Secret. The
// evaluation is the full build's own code (builder.ingress); only the
// conflict state comes from the indexes instead of a walk over all older
// Ingresses (engineClaims).
//
// What stays linear in the cluster is cheap: finding the changed objects
// by pointer, and copying the sorted routes or backends when they change
// (earlier models share the old slices, which are never modified).
type engine struct {
	b     *builder // persistent: classes, services, slices, secrets, backends
	ctrl  string   // controller name the state was built for
	last  *Model
	gen   uint64
	dirty map[*ingEntry]bool
	// bulk: many Ingresses are new (the first build): the sorted lists
	// are made once at the end instead of kept sorted one by one.
	bulk    bool
	scratch *evalScratch

	// synced are the object lists the last build took in: a list
	// Inputs.Unchanged names that is also the same slice is not taken in
	// again (at 10k Ingresses, walking it costs milliseconds per pass).
	synced   Inputs
	ings     map[*networkingv1.Ingress]*ingEntry
	served   []*ingEntry // by age
	problems []*ingEntry // entries with problems, by namespace/name

	svcSeen    map[*corev1.Service]uint64
	sliceSeen  map[*discoveryv1.EndpointSlice]uint64
	secretSeen map[*corev1.Secret]uint64
	// slicesOf are the EndpointSlices of each Service (namespace/name).
	slicesOf map[string]map[*discoveryv1.EndpointSlice]bool

	routeUsers   map[routeKey][]pathUse
	sniUsers     map[string][]tlsUse
	defaultUsers []*ingEntry // served, with a spec.defaultBackend, by age
	svcUsers     map[string]map[*ingEntry]bool
	secretUsers  map[string]map[*ingEntry]bool
	// backendsOf are the backends made for each Service.
	backendsOf map[string]map[string]bool
	// settingsUsers are the served Ingresses with backend annotations
	// naming each Service, by age: the first one's apply. settingsBefore
	// is, for each Service whose list this build changed, who decided
	// before: only a change of that makes the Service's backends again
	// (an Ingress updated in place, its status written back, stays).
	settingsUsers  map[string][]*ingEntry
	settingsBefore map[string]settingsOwner

	// canaries are the served canary Ingresses; canaryRoutes is the
	// last routes with their canaries attached, made from canaryBase
	// and canaryPaths (reused while neither changes).
	canaries map[*ingEntry]bool
	// canaryKeys are the canary Ingresses with a path of each route key:
	// a canary's backend carries its primary's route policy, so it is
	// evaluated again whenever an Ingress with a path of that key is.
	canaryKeys     map[routeKey]map[*ingEntry]bool
	canaryBase     []*Route
	canaryPaths    []canaryPath
	canaryRoutes   []*Route
	canaryProblems []Problem
	// authCut are the backends the namespaces' parse budget left without
	// users, by original (authBudget).
	authCut map[*Backend]*Backend

	routes []*Route // of every served Ingress, sorted
	refs   map[string]int
	unused map[string]bool // forgotten in this build, still in names
	names  []string        // backends with refs, sorted
	bes    []*Backend      // the backends of names
	// besShared: bes is in a model (copy it before a change);
	// servedKeys is Model.Served (nil: to be made again).
	besShared  bool
	servedKeys []string
	servedUIDs []types.UID // of servedKeys
	servedFrom []*ingEntry // the served list servedKeys was made from
	// certList and hostList are Model.Certs and TLSHosts (nil: to be
	// made again).
	certList []Certificate
	hostList []string
	certs    map[string]*Certificate
	certDirt map[string]bool
}

// ingEntry is one Ingress and what its last evaluation gave.
type ingEntry struct {
	obj    *networkingv1.Ingress
	p      *parsedIngress
	seen   uint64
	served bool
	// Result of the last evaluation.
	routes   []*Route
	problems []Problem
	dflt     *Origin
	dfltBE   string
	backends []string
	certs    map[string]*Certificate // partial: this Ingress's part
	canaries []canaryPath
}

type pathUse struct {
	e  *ingEntry
	pp *parsedPath
	// claimant: the path takes its key when nothing older has it (its
	// backend reference is valid in itself).
	claimant bool
}

type tlsUse struct {
	e  *ingEntry
	pt *parsedTLS
}

// older orders Ingresses as the full build visits them.
func older(a, b *networkingv1.Ingress) int {
	return cmp.Or(
		a.CreationTimestamp.Time.Compare(b.CreationTimestamp.Time),
		cmp.Compare(a.Namespace, b.Namespace),
		cmp.Compare(a.Name, b.Name),
	)
}

// byRouteOrder sorts routes as Model.Routes is sorted (routeOrder).
func byRouteOrder(x, y *Route) int { return strings.Compare(x.order, y.order) }

func byName(a, b *ingEntry) int {
	return cmp.Or(cmp.Compare(a.obj.Namespace, b.obj.Namespace), cmp.Compare(a.obj.Name, b.obj.Name))
}

// reset forgets everything: the next build evaluates every Ingress.
func (g *engine) reset(opts Options) {
	*g = engine{
		b: &builder{
			opts: opts, classes: map[string]bool{},
			services: map[string]*corev1.Service{}, slices: map[string][]*discoveryv1.EndpointSlice{},
			secrets: map[string]*corev1.Secret{}, backends: map[string]*Backend{},
			sliceProblems: map[string][]Problem{}, certCache: map[*corev1.Secret]certEntry{},
		},
		ctrl:        opts.ControllerName,
		ings:        map[*networkingv1.Ingress]*ingEntry{},
		svcSeen:     map[*corev1.Service]uint64{},
		sliceSeen:   map[*discoveryv1.EndpointSlice]uint64{},
		secretSeen:  map[*corev1.Secret]uint64{},
		slicesOf:    map[string]map[*discoveryv1.EndpointSlice]bool{},
		routeUsers:  map[routeKey][]pathUse{},
		canaries:    map[*ingEntry]bool{},
		canaryKeys:  map[routeKey]map[*ingEntry]bool{},
		authCut:     map[*Backend]*Backend{},
		unused:      map[string]bool{},
		sniUsers:    map[string][]tlsUse{},
		svcUsers:    map[string]map[*ingEntry]bool{},
		secretUsers: map[string]map[*ingEntry]bool{},
		backendsOf:  map[string]map[string]bool{},

		settingsUsers:  map[string][]*ingEntry{},
		settingsBefore: map[string]settingsOwner{},
		refs:           map[string]int{},
		certs:          map[string]*Certificate{},
		certDirt:       map[string]bool{},
	}
}

// classesOf returns the IngressClasses of the controller and whether one
// is the default.
func classesOf(in []*networkingv1.IngressClass, ctrl string) (map[string]bool, bool) {
	classes, dflt := map[string]bool{}, false
	for _, c := range in {
		if c.Spec.Controller != ctrl {
			continue
		}
		classes[c.Name] = true
		if c.Annotations[DefaultClassAnnotation] == "true" {
			dflt = true
		}
	}
	return classes, dflt
}

func (g *engine) build(in Inputs, opts Options) *Model {
	if opts.ControllerName == "" {
		opts.ControllerName = DefaultControllerName
	}
	classes, dfltClass := classesOf(in.IngressClasses, opts.ControllerName)
	// Which Ingresses are served depends on the classes: start over.
	if g.b == nil || g.ctrl != opts.ControllerName || g.b.opts.AnnotationsCompat != opts.AnnotationsCompat || !maps.Equal(classes, g.b.classes) || dfltClass != g.b.defaultC {
		g.reset(opts)
		g.b.classes, g.b.defaultC = classes, dfltClass
	}
	b := g.b
	b.opts = opts
	if opts.Previous != g.last {
		g.rebase()
	}
	g.gen++
	g.dirty = map[*ingEntry]bool{}

	changedSvcs, changedSecrets := map[string]bool{}, map[string]bool{}
	if !in.Unchanged.Has(ServicesKind|EndpointSlicesKind) || !sameSlice(in.Services, g.synced.Services) || !sameSlice(in.EndpointSlices, g.synced.EndpointSlices) {
		changedSvcs = g.syncServices(in.Services, in.EndpointSlices)
	}
	if !in.Unchanged.Has(SecretsKind) || !sameSlice(in.Secrets, g.synced.Secrets) {
		changedSecrets = g.syncSecrets(in.Secrets)
	}
	if !in.Unchanged.Has(IngressesKind) || !sameSlice(in.Ingresses, g.synced.Ingresses) {
		if d := in.IngressDelta; d != nil && sameSlice(d.Since, g.synced.Ingresses) {
			g.applyIngressDelta(d)
		} else {
			g.syncIngresses(in.Ingresses)
		}
	} else {
		g.bulk = false
	}
	g.synced = Inputs{Ingresses: in.Ingresses, Services: in.Services, EndpointSlices: in.EndpointSlices, Secrets: in.Secrets}
	// Backends are made again when the Ingress deciding a Service's
	// backend annotations changes, or the CA Secret they name does.
	for svc, before := range g.settingsBefore {
		if g.settingsOwnerOf(svc) != before {
			changedSvcs[svc] = true
		}
	}
	clear(g.settingsBefore)
	for key := range changedSecrets {
		for e := range g.secretUsers[key] {
			if ca := e.p.ann.backend.CASecret; ca != "" && e.obj.Namespace+"/"+ca == key {
				for _, svc := range e.p.services {
					changedSvcs[svc] = true
				}
			}
		}
	}
	for svc := range changedSvcs {
		// Made again when next resolved; every user of the Service is
		// evaluated again below.
		for name := range g.backendsOf[svc] {
			delete(b.backends, name)
			delete(b.sliceProblems, name)
		}
		for e := range g.svcUsers[svc] {
			g.dirty[e] = true
		}
	}
	for key := range changedSecrets {
		g.certDirt[key] = true
		for e := range g.secretUsers[key] {
			g.dirtyTLSNeighbours(e)
		}
	}

	g.dirtyCanaries()

	// Evaluate the dirty Ingresses. Each evaluation reads the indexes,
	// never another evaluation's result, so the order does not matter.
	// Every old result is forgotten first: an Ingress updated in place
	// has an old and a new entry, and the new one must not find the
	// backends the old one made for its annotations.
	var removed, added []*Route
	for e := range g.dirty {
		if !g.bulk {
			removed = append(removed, e.routes...)
		}
		g.forget(e)
	}
	for e := range g.dirty {
		if g.ings[e.obj] == e {
			g.evaluate(e)
			if !g.bulk {
				added = append(added, e.routes...)
			}
		}
	}
	g.dropUnused()
	if g.bulk {
		g.names = slices.Sorted(maps.Keys(g.refs))
		g.bes, g.besShared = make([]*Backend, len(g.names)), false
		for i, name := range g.names {
			g.bes[i] = g.b.backends[name]
		}
		g.problems = g.problems[:0]
		for _, e := range g.ings {
			if len(e.problems) > 0 {
				g.problems = append(g.problems, e)
			}
		}
		slices.SortFunc(g.problems, byName)
		// Every route again, sorted once.
		n := 0
		for _, e := range g.served {
			n += len(e.routes)
		}
		g.routes = make([]*Route, 0, n)
		for _, e := range g.served {
			g.routes = append(g.routes, e.routes...)
		}
		slices.SortFunc(g.routes, byRouteOrder)
		g.bulk = false
	} else {
		g.updateRoutes(removed, added)
	}
	return g.assemble(in.ConfigMaps)
}

// sameServedKeys lists the served Ingresses, reusing the last list when
// it has the same names: an Ingress updated in place (its status written
// back, an annotation) keeps the list, and with it what depends on its
// identity (Events, see kube.EventReporter.ReportLazy). Entries are
// compared by pointer with those the last list was made from; only the
// entries not among them are read: at 10k Ingresses, reading every
// entry's key (spread over the heap) was a tenth of a route change.
func (g *engine) sameServedKeys() []string {
	var last []string
	if g.last != nil && len(g.servedFrom) == len(g.last.Served) && len(g.servedUIDs) == len(g.last.Served) {
		last = g.last.Served
	}
	if last != nil && slices.Equal(g.servedFrom, g.served) {
		return last
	}
	keys := make([]string, len(g.served))
	uids := make([]types.UID, len(g.served))
	same := last != nil && len(last) == len(g.served)
	j := 0
	for i, e := range g.served {
		if last != nil {
			if j+1 < len(g.servedFrom) && g.servedFrom[j] != e && g.servedFrom[j+1] == e {
				j++ // the entry at j left the list, or was replaced
			}
			if j < len(g.servedFrom) && g.servedFrom[j] == e {
				keys[i], uids[i] = last[j], g.servedUIDs[j]
				j++
				same = same && keys[i] == last[i] && uids[i] == g.servedUIDs[i]
				continue
			}
		}
		// A re-created Ingress (a new UID) is a new one.
		keys[i], uids[i] = e.p.key, e.obj.UID
		same = same && keys[i] == last[i] && uids[i] == g.servedUIDs[i]
	}
	g.servedFrom = slices.Clone(g.served)
	if same {
		return last
	}
	g.servedUIDs = uids
	return keys
}

// rebase places every backend's endpoints in its slots again, against
// Options.Previous when it is not the model the last build returned (a
// pass that is retried, or HAProxy restarted from an older generation).
// Slots depend on nothing else, so no Ingress is evaluated again.
func (g *engine) rebase() {
	b := g.b
	for i, name := range g.names {
		be := b.backends[name]
		addrs := assignSlots(be.Servers, be.Slots, b.previousSlots(name))
		if slices.Equal(addrs, be.SlotAddrs) {
			continue
		}
		moved := *be
		moved.SlotAddrs = addrs
		b.backends[name] = &moved
		g.unshareBackends()
		g.bes[i] = &moved
	}
}

// syncObjects marks the objects of one kind seen in this build, returning
// those that are new and those no longer there.
func syncObjects[T comparable](seen map[T]uint64, objs []T, gen uint64) (fresh, gone []T) {
	kept := 0
	for _, o := range objs {
		if _, ok := seen[o]; ok {
			kept++
		} else {
			fresh = append(fresh, o)
		}
		seen[o] = gen
	}
	if kept == len(seen)-len(fresh) {
		return fresh, nil // every object kept was seen: none is gone
	}
	for o, g := range seen {
		if g != gen {
			delete(seen, o)
			gone = append(gone, o)
		}
	}
	return fresh, gone
}

// syncServices takes in the Services and EndpointSlices, returning the
// Services (namespace/name) that changed or whose slices did.
func (g *engine) syncServices(svcs []*corev1.Service, ess []*discoveryv1.EndpointSlice) map[string]bool {
	b, changed := g.b, map[string]bool{}
	fresh, gone := syncObjects(g.svcSeen, svcs, g.gen)
	for _, s := range fresh {
		key := s.Namespace + "/" + s.Name
		b.services[key] = s
		changed[key] = true
	}
	for _, s := range gone {
		key := s.Namespace + "/" + s.Name
		if b.services[key] == s { // not replaced by a new object
			delete(b.services, key)
		}
		changed[key] = true
	}
	freshSlices, goneSlices := syncObjects(g.sliceSeen, ess, g.gen)
	slicesChanged := map[string]bool{}
	for _, es := range freshSlices {
		if svc := es.Labels[discoveryv1.LabelServiceName]; svc != "" {
			key := es.Namespace + "/" + svc
			if g.slicesOf[key] == nil {
				g.slicesOf[key] = map[*discoveryv1.EndpointSlice]bool{}
			}
			g.slicesOf[key][es] = true
			slicesChanged[key] = true
		}
	}
	for _, es := range goneSlices {
		if svc := es.Labels[discoveryv1.LabelServiceName]; svc != "" {
			key := es.Namespace + "/" + svc
			delete(g.slicesOf[key], es)
			slicesChanged[key] = true
		}
	}
	for key := range slicesChanged {
		list := slices.Collect(maps.Keys(g.slicesOf[key]))
		if len(list) == 0 {
			delete(g.slicesOf, key)
			delete(b.slices, key)
		} else {
			slices.SortFunc(list, func(x, y *discoveryv1.EndpointSlice) int { return cmp.Compare(x.Name, y.Name) })
			b.slices[key] = list
		}
		changed[key] = true
	}
	return changed
}

// syncSecrets takes in the Secrets, returning those (namespace/name) that
// changed.
func (g *engine) syncSecrets(secrets []*corev1.Secret) map[string]bool {
	b, changed := g.b, map[string]bool{}
	fresh, gone := syncObjects(g.secretSeen, secrets, g.gen)
	for _, s := range fresh {
		key := s.Namespace + "/" + s.Name
		b.secrets[key] = s
		changed[key] = true
	}
	for _, s := range gone {
		delete(b.certCache, s)
		key := s.Namespace + "/" + s.Name
		if b.secrets[key] == s {
			delete(b.secrets, key)
		}
		changed[key] = true
	}
	return changed
}

// bulkMin is how many new Ingresses make a build rebuild its sorted lists
// at the end (a variable for tests).
var bulkMin = 64

// syncIngresses takes in the Ingresses: a new one is indexed, a gone one
// taken out of the indexes; both make what shares a key with them dirty.
func (g *engine) syncIngresses(ings []*networkingv1.Ingress) {
	var fresh []*networkingv1.Ingress
	kept := 0
	for _, ing := range ings {
		if e := g.ings[ing]; e != nil {
			e.seen = g.gen
			kept++
		} else {
			fresh = append(fresh, ing)
		}
	}
	g.bulk = len(fresh) > bulkMin
	for _, ing := range fresh {
		e := &ingEntry{obj: ing, p: parseIngress(ing, g.b.opts.AnnotationsCompat), seen: g.gen}
		g.ings[ing] = e
		g.index(e)
	}
	// Every entry kept was seen: none is gone.
	for ing, e := range g.ings {
		if kept == len(g.ings)-len(fresh) {
			break
		}
		if e.seen != g.gen {
			delete(g.ings, ing)
			g.unindex(e)
		}
	}
	if g.bulk {
		slices.SortFunc(g.served, func(x, y *ingEntry) int { return older(x.obj, y.obj) })
	}
}

// applyIngressDelta takes in the Ingresses that changed since the list
// the last build took in, as syncIngresses does for the whole list.
// New ones are indexed before gone ones are taken out, as there.
func (g *engine) applyIngressDelta(d *Delta[*networkingv1.Ingress]) {
	fresh := 0
	for _, ing := range d.Added {
		if g.ings[ing] == nil {
			fresh++
		}
	}
	g.bulk = fresh > bulkMin
	for _, ing := range d.Added {
		if g.ings[ing] == nil {
			e := &ingEntry{obj: ing, p: parseIngress(ing, g.b.opts.AnnotationsCompat), seen: g.gen}
			g.ings[ing] = e
			g.index(e)
		}
	}
	for _, ing := range d.Removed {
		if e := g.ings[ing]; e != nil {
			delete(g.ings, ing)
			g.unindex(e)
		}
	}
	if g.bulk {
		slices.SortFunc(g.served, func(x, y *ingEntry) int { return older(x.obj, y.obj) })
	}
}

// index adds a new Ingress to the indexes.
func (g *engine) index(e *ingEntry) {
	g.dirty[e] = true
	if e.p.invalid != nil {
		return
	}
	if ok, _ := g.b.ours(e.obj); !ok {
		return
	}
	e.served = true
	g.servedKeys = nil
	if g.bulk {
		g.served = append(g.served, e)
	} else {
		i, _ := slices.BinarySearchFunc(g.served, e, func(x, y *ingEntry) int { return older(x.obj, y.obj) })
		g.served = slices.Insert(g.served, i, e)
	}
	ns := e.obj.Namespace
	use := func(m map[string]map[*ingEntry]bool, key string) {
		if m[key] == nil {
			m[key] = map[*ingEntry]bool{}
		}
		m[key][e] = true
	}
	if e.p.canary() {
		// A canary claims no route and no default backend: it only
		// needs to be evaluated again when its Services change.
		g.canaries[e] = true
		for _, svc := range e.p.services {
			use(g.svcUsers, svc)
		}
		for i := range e.p.paths {
			if pp := &e.p.paths[i]; pp.problem == nil {
				k := routeKey{pp.match, pp.key}
				if g.canaryKeys[k] == nil {
					g.canaryKeys[k] = map[*ingEntry]bool{}
				}
				g.canaryKeys[k][e] = true
			}
		}
	} else if d := e.p.defaultBackend; d != nil {
		g.dirtyAll(g.defaultUsers)
		i, _ := slices.BinarySearchFunc(g.defaultUsers, e, func(x, y *ingEntry) int { return older(x.obj, y.obj) })
		g.defaultUsers = slices.Insert(g.defaultUsers, i, e)
		if d.problem == nil {
			use(g.svcUsers, ns+"/"+d.ref.Name)
		}
	}
	for i := range e.p.paths {
		pp := &e.p.paths[i]
		if pp.problem != nil || e.p.canary() {
			continue
		}
		k := routeKey{pp.match, pp.key}
		list := g.routeUsers[k]
		g.dirtyPaths(list)
		j, _ := slices.BinarySearchFunc(list, e, func(u pathUse, e *ingEntry) int { return older(u.e.obj, e.obj) })
		// After this Ingress's earlier paths with the same key.
		for j < len(list) && list[j].e == e {
			j++
		}
		g.routeUsers[k] = slices.Insert(list, j, pathUse{e: e, pp: pp, claimant: pp.backend.problem == nil})
		if pp.backend.problem == nil {
			use(g.svcUsers, ns+"/"+pp.backend.ref.Name)
		}
	}
	if ann := e.p.ann; len(ann.backendKeys) > 0 {
		for _, svc := range e.p.services {
			g.noteSettings(svc)
			list := g.settingsUsers[svc]
			i, _ := slices.BinarySearchFunc(list, e, func(x, y *ingEntry) int { return older(x.obj, y.obj) })
			g.settingsUsers[svc] = slices.Insert(list, i, e)
		}
		if ann.backend.CASecret != "" {
			use(g.secretUsers, ns+"/"+ann.backend.CASecret)
		}
	}
	if s := e.p.ann.route.AuthSecret; s != "" {
		use(g.secretUsers, ns+"/"+s)
	}
	for i := range e.p.tls {
		pt := &e.p.tls[i]
		if pt.skip {
			continue
		}
		use(g.secretUsers, ns+"/"+pt.secretName)
		for _, h := range pt.hosts {
			list := g.sniUsers[h]
			g.dirtyTLS(list)
			j, _ := slices.BinarySearchFunc(list, e, func(u tlsUse, e *ingEntry) int { return older(u.e.obj, e.obj) })
			for j < len(list) && list[j].e == e {
				j++
			}
			g.sniUsers[h] = slices.Insert(list, j, tlsUse{e: e, pt: pt})
		}
	}
}

// unindex takes a gone Ingress out of the indexes.
func (g *engine) unindex(e *ingEntry) {
	g.dirty[e] = true
	if !e.served {
		return
	}
	g.served = slices.DeleteFunc(g.served, func(x *ingEntry) bool { return x == e })
	g.servedKeys = nil
	ns := e.obj.Namespace
	unuse := func(m map[string]map[*ingEntry]bool, key string) {
		delete(m[key], e)
		if len(m[key]) == 0 {
			delete(m, key)
		}
	}
	if e.p.canary() {
		delete(g.canaries, e)
		for _, svc := range e.p.services {
			unuse(g.svcUsers, svc)
		}
		for i := range e.p.paths {
			if pp := &e.p.paths[i]; pp.problem == nil {
				k := routeKey{pp.match, pp.key}
				if delete(g.canaryKeys[k], e); len(g.canaryKeys[k]) == 0 {
					delete(g.canaryKeys, k)
				}
			}
		}
	} else if d := e.p.defaultBackend; d != nil {
		g.defaultUsers = slices.DeleteFunc(g.defaultUsers, func(x *ingEntry) bool { return x == e })
		g.dirtyAll(g.defaultUsers)
		if d.problem == nil {
			unuse(g.svcUsers, ns+"/"+d.ref.Name)
		}
	}
	for i := range e.p.paths {
		pp := &e.p.paths[i]
		if pp.problem != nil || e.p.canary() {
			continue
		}
		k := routeKey{pp.match, pp.key}
		list := slices.DeleteFunc(g.routeUsers[k], func(u pathUse) bool { return u.e == e })
		g.dirtyPaths(list)
		if len(list) == 0 {
			delete(g.routeUsers, k)
		} else {
			g.routeUsers[k] = list
		}
		if pp.backend.problem == nil {
			unuse(g.svcUsers, ns+"/"+pp.backend.ref.Name)
		}
	}
	if ann := e.p.ann; len(ann.backendKeys) > 0 {
		for _, svc := range e.p.services {
			g.noteSettings(svc)
			list := slices.DeleteFunc(g.settingsUsers[svc], func(x *ingEntry) bool { return x == e })
			if len(list) == 0 {
				delete(g.settingsUsers, svc)
			} else {
				g.settingsUsers[svc] = list
			}
		}
		if ann.backend.CASecret != "" {
			unuse(g.secretUsers, ns+"/"+ann.backend.CASecret)
		}
	}
	if s := e.p.ann.route.AuthSecret; s != "" {
		unuse(g.secretUsers, ns+"/"+s)
	}
	for i := range e.p.tls {
		pt := &e.p.tls[i]
		if pt.skip {
			continue
		}
		unuse(g.secretUsers, ns+"/"+pt.secretName)
		for _, h := range pt.hosts {
			list := slices.DeleteFunc(g.sniUsers[h], func(u tlsUse) bool { return u.e == e })
			g.dirtyTLS(list)
			if len(list) == 0 {
				delete(g.sniUsers, h)
			} else {
				g.sniUsers[h] = list
			}
		}
	}
}

// dirtyCanaries makes dirty the canaries sharing a route key with a dirty
// Ingress: which Ingress owns the key, and its route policy (its
// annotations, its auth Secret), decide the canary's backend.
func (g *engine) dirtyCanaries() {
	if len(g.canaryKeys) == 0 {
		return
	}
	var found []*ingEntry
	for e := range g.dirty {
		if e.p.invalid != nil || e.p.canary() {
			continue
		}
		for i := range e.p.paths {
			pp := &e.p.paths[i]
			for c := range g.canaryKeys[routeKey{pp.match, pp.key}] {
				found = append(found, c)
			}
		}
	}
	for _, c := range found {
		g.dirty[c] = true
	}
}

func (g *engine) dirtyAll(list []*ingEntry) {
	for _, e := range list {
		g.dirty[e] = true
	}
}

func (g *engine) dirtyPaths(list []pathUse) {
	for _, u := range list {
		g.dirty[u.e] = true
	}
}

func (g *engine) dirtyTLS(list []tlsUse) {
	for _, u := range list {
		g.dirty[u.e] = true
	}
}

// dirtyTLSNeighbours makes dirty an Ingress whose Secret changed and every
// Ingress sharing an SNI host with it: whether the Secret is valid decides
// who serves the host.
func (g *engine) dirtyTLSNeighbours(e *ingEntry) {
	g.dirty[e] = true
	for i := range e.p.tls {
		for _, h := range e.p.tls[i].hosts {
			g.dirtyTLS(g.sniUsers[h])
		}
	}
}

// dropUnused takes the backends no evaluation used again out of the
// sorted backends.
func (g *engine) dropUnused() {
	if len(g.unused) == 0 {
		return
	}
	g.unshareBackends()
	keep := 0
	for i, name := range g.names {
		if !g.unused[name] {
			g.names[keep], g.bes[keep] = name, g.bes[i]
			keep++
		}
	}
	clear(g.names[keep:])
	clear(g.bes[keep:])
	g.names, g.bes = g.names[:keep], g.bes[:keep]
	clear(g.unused)
}

func (g *engine) unshareBackends() {
	if g.besShared {
		g.bes, g.besShared = slices.Clone(g.bes), false
	}
}

// forget takes an Ingress's last result out of the model's parts.
func (g *engine) forget(e *ingEntry) {
	for _, name := range e.backends {
		if g.refs[name]--; g.refs[name] == 0 {
			delete(g.refs, name)
			if be := g.b.backends[name]; be != nil {
				svc := be.Namespace + "/" + be.Service
				if delete(g.backendsOf[svc], name); len(g.backendsOf[svc]) == 0 {
					delete(g.backendsOf, svc)
				}
			}
			// Made again if used again, never found by the new
			// evaluation; its place in names stays until every dirty
			// Ingress is evaluated (dropUnused), so that an Ingress
			// updated in place moves no other backend.
			delete(g.b.backends, name)
			delete(g.b.sliceProblems, name)
			if !g.bulk {
				g.unused[name] = true
			}
		}
	}
	for key := range e.certs {
		g.certDirt[key] = true
	}
	if len(e.problems) > 0 && !g.bulk {
		// An updated Ingress's old and new entries have the same name.
		i, _ := slices.BinarySearchFunc(g.problems, e, byName)
		for ; i < len(g.problems) && byName(g.problems[i], e) == 0; i++ {
			if g.problems[i] == e {
				g.problems = slices.Delete(g.problems, i, i+1)
				break
			}
		}
	}
	e.routes, e.problems, e.dflt, e.dfltBE, e.backends, e.certs, e.canaries = nil, nil, nil, "", nil, nil, nil
}

// evaluate runs the full build's code for one Ingress, with the conflict
// state from the indexes, and adds the result to the model's parts.
func (g *engine) evaluate(e *ingEntry) {
	b := g.b
	// The scratch maps are used again for every evaluation: a first
	// build evaluates every Ingress, and they hold a few entries each.
	if g.scratch == nil {
		g.scratch = &evalScratch{reported: map[Problem]bool{}, certs: map[string]*Certificate{},
			claims: engineClaims{g: g, routes: map[routeKey]Origin{}, hosts: map[string]string{}}}
	}
	s := g.scratch
	clear(s.reported)
	clear(s.certs)
	clear(s.claims.routes)
	clear(s.claims.hosts)
	s.model = Model{}
	s.claims.e = e
	b.m, b.reported, b.certs, b.claims = &s.model, s.reported, s.certs, &s.claims
	b.ingress(e.obj, e.p)
	e.routes, e.problems, e.dflt, e.dfltBE = s.model.Routes, s.model.Problems, s.model.DefaultOrigin, s.model.DefaultBackend
	e.canaries = s.model.canaries
	if len(s.certs) > 0 {
		e.certs = maps.Clone(s.certs)
	}
	use := func(name string) {
		if name == "" || name == UnavailableBackend || slices.Contains(e.backends, name) {
			return
		}
		e.backends = append(e.backends, name)
		be := b.backends[name]
		if g.refs[name]++; g.refs[name] > 1 {
			// Made again if its Service changed.
			if i, ok := slices.BinarySearch(g.names, name); ok && !g.bulk && g.bes[i] != be {
				g.unshareBackends()
				g.bes[i] = be
			}
		} else {
			if g.unused[name] {
				// Forgotten in this build and used again: in place.
				delete(g.unused, name)
				if i, ok := slices.BinarySearch(g.names, name); ok && g.bes[i] != be {
					g.unshareBackends()
					g.bes[i] = be
				}
			} else if !g.bulk {
				i, _ := slices.BinarySearch(g.names, name)
				g.names = slices.Insert(g.names, i, name)
				g.unshareBackends()
				g.bes = slices.Insert(g.bes, i, be)
			}
			svc := be.Namespace + "/" + be.Service
			if g.backendsOf[svc] == nil {
				g.backendsOf[svc] = map[string]bool{}
			}
			g.backendsOf[svc][name] = true
		}
	}
	for i := range e.routes {
		use(e.routes[i].Backend)
	}
	for i := range e.canaries {
		use(e.canaries[i].canary.Backend)
	}
	if e.dflt != nil {
		use(e.dfltBE)
	}
	for key := range e.certs {
		g.certDirt[key] = true
	}
	if len(e.problems) > 0 && !g.bulk {
		i, _ := slices.BinarySearchFunc(g.problems, e, byName)
		g.problems = slices.Insert(g.problems, i, e)
	}
}

// updateRoutes takes the routes of the evaluated Ingresses out of the
// sorted routes and puts their new ones in.
func (g *engine) updateRoutes(removed, added []*Route) {
	cmpOrder := byRouteOrder
	if len(removed) == len(added) {
		// Evaluated again with the same result (an endpoint change):
		// the sorted routes, shared with earlier models, stay.
		slices.SortFunc(removed, cmpOrder)
		slices.SortFunc(added, cmpOrder)
		if slices.EqualFunc(removed, added, func(x, y *Route) bool { return *x == *y }) {
			return
		}
	}
	// Earlier models share the old slice: change a copy.
	g.routes = slices.Clone(g.routes)
	if len(removed)+len(added) > 64 {
		gone := make(map[string]bool, len(removed))
		for _, r := range removed {
			gone[r.order] = true
		}
		kept := slices.DeleteFunc(g.routes, func(r *Route) bool { return gone[r.order] })
		g.routes = append(kept, added...)
		slices.SortFunc(g.routes, cmpOrder)
		return
	}
	for _, r := range removed {
		if i, ok := slices.BinarySearchFunc(g.routes, r, cmpOrder); ok {
			g.routes = slices.Delete(g.routes, i, i+1)
		}
	}
	for _, r := range added {
		i, _ := slices.BinarySearchFunc(g.routes, r, cmpOrder)
		g.routes = slices.Insert(g.routes, i, r)
	}
}

// assemble makes the model from the parts.
func (g *engine) assemble(configMaps []*corev1.ConfigMap) *Model {
	b := g.b
	m := &Model{DefaultBackend: NotFoundBackend}
	b.m, b.reported = m, map[Problem]bool{}
	b.settings(configMaps)

	var canaryProblems []Problem
	m.Routes, canaryProblems, m.canaryFree = g.withCanaries()
	if m.Routes == nil {
		m.Routes = []*Route{}
	}
	if g.servedKeys == nil {
		g.servedKeys = g.sameServedKeys()
	}
	m.Served = g.servedKeys
	for _, e := range g.defaultUsers {
		if e.dflt != nil {
			m.DefaultBackend, m.DefaultOrigin = e.dfltBE, e.dflt
			break
		}
	}

	if g.bes == nil {
		g.bes = []*Backend{}
	}
	m.Backends, g.besShared = g.bes, true
	var overBudget []Problem
	m.Backends, overBudget = authBudget(m.Backends, g.authCut)
	// In backend name order, as the full build reports them; only
	// backends whose slices have problems are in b.sliceProblems.
	var sliceProblems []Problem
	for _, name := range slices.Sorted(maps.Keys(b.sliceProblems)) {
		if g.refs[name] == 0 {
			continue
		}
		for _, p := range b.sliceProblems[name] {
			if !b.reported[p] {
				b.reported[p] = true
				sliceProblems = append(sliceProblems, p)
			}
		}
	}
	slices.SortStableFunc(sliceProblems, func(x, y Problem) int {
		return cmp.Or(cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name))
	})
	// Backend annotation problems (a CA Secret) are about an Ingress:
	// the full build lists them after that Ingress's own.
	ingressKind := slices.ContainsFunc(sliceProblems, func(p Problem) bool { return p.Kind != "EndpointSlice" })
	if !ingressKind {
		m.Problems = append(m.Problems, sliceProblems...)
	}
	for _, e := range g.problems {
		m.Problems = append(m.Problems, e.problems...)
	}
	if ingressKind {
		m.Problems = append(m.Problems, sliceProblems...)
		slices.SortStableFunc(m.Problems, func(x, y Problem) int {
			return cmp.Or(cmp.Compare(x.Kind, y.Kind), cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name))
		})
	}

	if len(canaryProblems)+len(overBudget) > 0 {
		// After each Ingress's own and backend annotation problems, as
		// the full build reports them.
		m.Problems = append(m.Problems, overBudget...)
		m.Problems = append(m.Problems, canaryProblems...)
		slices.SortStableFunc(m.Problems, func(x, y Problem) int {
			return cmp.Or(cmp.Compare(x.Kind, y.Kind), cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name))
		})
	}

	for key := range g.certDirt {
		if g.assembleCert(key) {
			g.certList, g.hostList = nil, nil
		}
	}
	clear(g.certDirt)
	if g.certList == nil {
		g.certList, g.hostList = []Certificate{}, []string{}
		for _, c := range g.certs {
			g.certList = append(g.certList, *c)
			g.hostList = append(g.hostList, c.SNI...)
		}
		slices.SortFunc(g.certList, func(x, y Certificate) int { return cmp.Compare(x.File, y.File) })
		slices.Sort(g.hostList)
	}
	if len(g.certList) > 0 {
		m.Certs = g.certList
	}
	if len(g.hostList) > 0 {
		m.TLSHosts = g.hostList
	}
	g.last = m
	return m
}

// withCanaries returns the sorted routes with the canaries of the canary
// Ingresses attached, what attaching them reported, and whether there was
// no canary path to attach. It is made again only when the routes or the
// canary paths changed.
func (g *engine) withCanaries() ([]*Route, []Problem, bool) {
	var paths []canaryPath
	for e := range g.canaries {
		paths = append(paths, e.canaries...)
	}
	if len(paths) == 0 {
		g.canaryBase, g.canaryPaths, g.canaryRoutes, g.canaryProblems = nil, nil, nil, nil
		return g.routes, nil, true
	}
	slices.SortFunc(paths, func(x, y canaryPath) int {
		return cmp.Or(older(x.ing, y.ing), strings.Compare(x.canary.Origin.Field, y.canary.Origin.Field))
	})
	if g.canaryRoutes != nil && sameSlice(g.routes, g.canaryBase) && slices.Equal(paths, g.canaryPaths) {
		return g.canaryRoutes, g.canaryProblems, false
	}
	var problems []Problem
	g.b.capture = &problems
	routes := g.b.attachCanaries(g.routes, paths)
	g.b.capture = nil
	g.canaryBase, g.canaryPaths, g.canaryRoutes, g.canaryProblems = g.routes, paths, routes, problems
	return routes, problems, false
}

// assembleCert puts a Secret's certificate together from the parts its
// users contributed, oldest first, as the full build appends them. It
// returns whether the certificate changed.
func (g *engine) assembleCert(key string) bool {
	old := g.certs[key]
	var users []*ingEntry
	for e := range g.secretUsers[key] {
		if e.certs[key] != nil {
			users = append(users, e)
		}
	}
	delete(g.certs, key)
	if len(users) == 0 {
		return old != nil
	}
	slices.SortFunc(users, func(x, y *ingEntry) int { return older(x.obj, y.obj) })
	c := *users[0].certs[key]
	c.Origins, c.SNI = nil, nil
	for _, e := range users {
		part := e.certs[key]
		c.Origins = append(c.Origins, part.Origins...)
		c.SNI = append(c.SNI, part.SNI...)
	}
	if !finishCert(&c) {
		return old != nil
	}
	g.certs[key] = &c
	return old == nil || !sameCert(old, &c)
}

func sameCert(a, b *Certificate) bool {
	return a.File == b.File && a.Namespace == b.Namespace && a.Secret == b.Secret && bytes.Equal(a.PEM, b.PEM) &&
		slices.Equal(a.SNI, b.SNI) && slices.Equal(a.Origins, b.Origins)
}

// evalScratch is what evaluate uses again from one Ingress to the next.
type evalScratch struct {
	model    Model
	reported map[Problem]bool
	certs    map[string]*Certificate
	claims   engineClaims
}

// engineClaims answers the builder's conflict questions for the Ingress
// being evaluated: an older claimant from the indexes, else one made by an
// earlier field of the same Ingress in this evaluation.
type engineClaims struct {
	g      *engine
	e      *ingEntry
	routes map[routeKey]Origin
	hosts  map[string]string
}

func (c *engineClaims) route(k routeKey, _ *parsedPath) (Origin, bool) {
	for _, u := range c.g.routeUsers[k] {
		if older(u.e.obj, c.e.obj) >= 0 {
			break
		}
		if u.claimant {
			return Origin{Namespace: u.e.obj.Namespace, Name: u.e.obj.Name, Field: u.pp.field}, true
		}
	}
	o, ok := c.routes[k]
	return o, ok
}

func (c *engineClaims) claimRoute(k routeKey, o Origin) { c.routes[k] = o }

func (c *engineClaims) routeOwner(k routeKey) *routeOwner {
	for _, u := range c.g.routeUsers[k] {
		if u.claimant {
			return &routeOwner{ing: u.e.obj, p: u.e.p}
		}
	}
	return nil
}

func (c *engineClaims) sni(host string, _ *parsedTLS) (string, bool) {
	for _, u := range c.g.sniUsers[host] {
		if older(u.e.obj, c.e.obj) >= 0 {
			break
		}
		// The older entry takes the host if its Secret gives a
		// certificate.
		key := u.e.obj.Namespace + "/" + u.pt.secretName
		if sec := c.g.b.secrets[key]; sec != nil {
			if _, err := c.g.b.certificatePEM(sec); err == nil {
				return key, true
			}
		}
	}
	s, ok := c.hosts[host]
	return s, ok
}

func (c *engineClaims) claimSNI(host, secret string) { c.hosts[host] = secret }

func (c *engineClaims) defaultBackend() *Origin {
	for _, e := range c.g.defaultUsers {
		if older(e.obj, c.e.obj) >= 0 {
			break
		}
		if e.p.defaultBackend.problem == nil {
			return &Origin{Namespace: e.obj.Namespace, Name: e.obj.Name, Field: "spec.defaultBackend"}
		}
	}
	return nil
}

func (c *engineClaims) claimDefault(*Origin) {}

// settingsOwner is who decides a Service's backend annotations, and what
// they are: what its backends and the conflict reports depend on.
type settingsOwner struct {
	namespace, name string
	settings        BackendSettings
}

func (g *engine) settingsOwnerOf(svc string) settingsOwner {
	list := g.settingsUsers[svc]
	if len(list) == 0 {
		return settingsOwner{}
	}
	e := list[0]
	return settingsOwner{e.obj.Namespace, e.obj.Name, e.p.ann.backend}
}

// noteSettings remembers who decided for svc before this build first
// changes its list.
func (g *engine) noteSettings(svc string) {
	if _, ok := g.settingsBefore[svc]; !ok {
		g.settingsBefore[svc] = g.settingsOwnerOf(svc)
	}
}

func (c *engineClaims) settings(svc string) *settingsClaim {
	list := c.g.settingsUsers[svc]
	if len(list) == 0 {
		return nil
	}
	e := list[0]
	return &settingsClaim{namespace: e.obj.Namespace, name: e.obj.Name, ann: e.p.ann}
}

// certEntry is what certificatePEM returned for a Secret.
type certEntry struct {
	pem []byte
	err error
}

// Engine builds models incrementally: Build gives the model BuildModel
// would give for the same inputs, evaluating again only the Ingresses a
// change reaches (see engine). The zero value is ready; it is not safe for
// concurrent use. haproxycfg.Incremental pairs it with the renderer's
// cache.
type Engine struct{ g engine }

// Build builds the model (in and opts as for BuildModel).
func (e *Engine) Build(in Inputs, opts Options) *Model { return e.g.build(in, opts) }

// Evaluated is how many Ingresses the last Build evaluated again: the
// changed ones and those a change reached (engine.dirty). The isolation
// test (isolation_test.go) checks with it that another tenant's objects do
// not make a change of one tenant evaluate more than the Ingresses that
// share its hosts.
func (e *Engine) Evaluated() int { return len(e.g.dirty) }

// sameSlice tells whether a and b are the same slice (not only equal).
func sameSlice[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
