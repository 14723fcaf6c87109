package render

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/lists"
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
	// spares is what the last build's pool pass made (applySpares).
	spares spareMemo

	// taken are the object lists the last build took in: a list
	// Inputs.Unchanged names that is also the same slice is not taken in
	// again (at 10k Ingresses, walking it costs milliseconds per pass).
	// Taken.Take decides, for the controller's input tracker too.
	taken    Taken
	ings     map[*networkingv1.Ingress]*ingEntry
	served   []*ingEntry // by age
	problems []*ingEntry // entries with problems, by namespace/name

	svcSeen    map[*corev1.Service]uint64
	sliceSeen  map[*discoveryv1.EndpointSlice]uint64
	secretSeen map[*corev1.Secret]uint64
	// slicesOf are the EndpointSlices of each Service (namespace/name).
	slicesOf map[string]memberSet[*discoveryv1.EndpointSlice]

	routeUsers   map[routeKey][]pathUse
	sniUsers     map[string][]tlsUse
	defaultUsers []*ingEntry // served, with a spec.defaultBackend, by age
	svcUsers     map[string]memberSet[*ingEntry]
	secretUsers  map[string]memberSet[*ingEntry]

	// hostUsers and weakUsers count, per host, the rule paths and the
	// weak paths of each Ingress (hostroutes.go); made when first used.
	hostUsers, weakUsers map[string]hostUse
	// passHosts counts the passthrough paths of each host (refPassthrough);
	// passRoutes the passthrough routes among routes.
	passHosts  map[string]int
	passRoutes int
	// passOwnerWas: the owners of passed-through hosts before this
	// build changed their rule paths (notePassOwner).
	passOwnerWas map[string]passOwner
	// defaultBE is the --default-backend-service backend of the last
	// model (useDefaultService), kept while it does not change.
	defaultBE *Backend
	// tcpBE are the TCP services' backends of the last model
	// (useTCPServices), by name, kept while they do not change.
	tcpBE map[string]*Backend

	// backendsOf are the backends made for each Service.
	backendsOf map[string]memberSet[string]
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
	// refBuf is where index and unindex list an Ingress's references
	// (refs), reused so that taking an Ingress in allocates nothing more.
	refBuf []ref
	// authCut are the backends the namespaces' parse budget left without
	// users, by original (authBudget).
	authCut map[*Backend]*Backend

	routes []*Route // of every served Ingress, sorted
	// regexHosts counts the regular-expression routes of each host (by
	// hostOrderPrefix), so that assemble reads only those hosts' routes.
	regexHosts map[string]int
	refs       map[string]int
	unused     map[string]bool // forgotten in this build, still in names
	names      []string        // backends with refs, sorted
	bes        []*Backend      // the backends of names
	// besShared: bes is in a model (copy it before a change);
	// servedKeys is Model.Served (nil: to be made again).
	besShared  bool
	servedKeys []string
	servedUIDs []types.UID // of servedKeys
	servedFrom []*ingEntry // the served list servedKeys was made from
	// spareUIDs and spareFrom are the buffers servedUIDs and servedFrom
	// were in before: sameServedKeys makes the next lists in them. Both
	// are the engine's own; allocated afresh, they were a fifth of what
	// a new Ingress's pass allocated at 50k (1.2 MB), and each pass's
	// garbage is paid for when the collector runs during a later pass.
	spareUIDs []types.UID
	spareFrom []*ingEntry
	// certList and hostList are Model.Certs and TLSHosts (nil: to be
	// made again).
	certList []Certificate
	hostList []string
	certs    map[string]*Certificate
	certDirt map[string]bool
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
		slicesOf:    map[string]memberSet[*discoveryv1.EndpointSlice]{},
		routeUsers:  map[routeKey][]pathUse{},
		canaries:    map[*ingEntry]bool{},
		canaryKeys:  map[routeKey]map[*ingEntry]bool{},
		authCut:     map[*Backend]*Backend{},
		unused:      map[string]bool{},
		sniUsers:    map[string][]tlsUse{},
		svcUsers:    map[string]memberSet[*ingEntry]{},
		secretUsers: map[string]memberSet[*ingEntry]{},
		backendsOf:  map[string]memberSet[string]{},

		settingsUsers:  map[string][]*ingEntry{},
		settingsBefore: map[string]settingsOwner{},
		refs:           map[string]int{},
		certs:          map[string]*Certificate{},
		certDirt:       map[string]bool{},
		regexHosts:     map[string]int{},
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
	// Services and their EndpointSlices are taken in together.
	if svcs, eps := g.taken.Take(in, ServicesKind), g.taken.Take(in, EndpointSlicesKind); svcs != TakeNothing || eps != TakeNothing {
		changedSvcs = g.syncServices(in, svcs, eps)
	}
	if g.taken.Take(in, SecretsKind) != TakeNothing {
		changedSecrets = g.syncSecrets(in.Secrets)
	}
	switch g.taken.Take(in, IngressesKind) {
	case TakeDelta:
		g.applyIngressDelta(in.IngressDelta)
	case TakeList:
		g.syncIngresses(in.Ingresses)
	case TakeNothing:
		g.bulk = false
	}
	g.dirtyPassOwners()
	// Backends are made again when the Ingress deciding a Service's
	// backend annotations changes, or the CA Secret they name does.
	for svc, before := range g.settingsBefore {
		if g.settingsOwnerOf(svc) != before {
			changedSvcs[svc] = true
		}
	}
	clear(g.settingsBefore)
	for key := range changedSecrets {
		for e := range g.secretUsers[key].all {
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
		for name := range g.backendsOf[svc].all {
			delete(b.backends, name)
			delete(b.sliceProblems, name)
		}
		for e := range g.svcUsers[svc].all {
			g.dirty[e] = true
		}
	}
	for key := range changedSecrets {
		g.certDirt[key] = true
		for e := range g.secretUsers[key].all {
			g.dirtyTLSNeighbours(e)
			if a := e.p.ann.route.AuthSecret; a != "" && e.obj.Namespace+"/"+a == key {
				g.dirtyCanaryKeys(e)
			}
		}
	}

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
		clear(g.regexHosts)
		g.countRegex(g.routes, 1)
		g.passRoutes = countPassthroughRoutes(g.routes)
		g.bulk = false
	} else if g.updateRoutes(removed, added) {
		g.shareRoutes(removed, added)
	}
	return g.assemble(in.ConfigMaps)
}

// sameServedKeys lists the served Ingresses, reusing the last list when
// it has the same names: an Ingress updated in place (its status written
// back, an annotation) keeps the list, and with it what depends on its
// identity (Events, see kube.EventReporter.ReportLazy). Entries are
// compared by pointer with those the last list was made from; only the
// entries not among them are read: at 10k Ingresses, reading every
// entry's key (spread over the heap) was a tenth of a route change. The
// new list is made only at the first entry that differs from the last
// one's: an Ingress evaluated again that stays served (a changed path,
// an annotation) made one, the size of the cluster, to throw away.
func (g *engine) sameServedKeys() []string {
	var last []string
	if g.last != nil && len(g.servedFrom) == len(g.last.Served) && len(g.servedUIDs) == len(g.last.Served) {
		last = g.last.Served
	}
	if last != nil && slices.Equal(g.servedFrom, g.served) {
		return last
	}
	// keys stays nil while every entry so far is last's.
	var keys []string
	uids := lists.Resized(g.spareUIDs, len(g.served)) // every entry is set below
	same := last != nil && len(last) == len(g.served)
	set := func(i int, key string, uid types.UID) {
		uids[i] = uid
		if keys == nil {
			if same && key == last[i] && uid == g.servedUIDs[i] {
				return
			}
			keys = make([]string, len(g.served))
			if same {
				copy(keys, last[:i])
			}
			same = false
		}
		keys[i] = key
	}
	j := 0
	for i, e := range g.served {
		if last != nil {
			if j+1 < len(g.servedFrom) && g.servedFrom[j] != e && g.servedFrom[j+1] == e {
				j++ // the entry at j left the list, or was replaced
			}
			if j < len(g.servedFrom) && g.servedFrom[j] == e {
				set(i, last[j], g.servedUIDs[j])
				j++
				continue
			}
		}
		// A re-created Ingress (a new UID) is a new one.
		set(i, e.p.key, e.obj.UID)
	}
	from := append(g.spareFrom[:0], g.served...)
	g.spareFrom, g.servedFrom = g.servedFrom, from
	clear(g.spareFrom) // keeps no removed Ingress alive
	if same {
		g.spareUIDs = uids
		return last
	}
	if keys == nil {
		keys = []string{} // none served (and some were, or no list was made)
	}
	g.spareUIDs, g.servedUIDs = g.servedUIDs, uids
	return keys
}

// rebase places every backend's endpoints in its slots again, against
// Options.Previous when it is not the model the last build returned (a
// pass that is retried, or HAProxy restarted from an older generation).
// Slots depend on nothing else, so no Ingress is evaluated again. The
// spare pool's memo goes: against another model a route seen before may
// name a backend that needs a spare now (routesToSpares).
func (g *engine) rebase() {
	dropMemo(&g.spares)
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

// applyDelta marks the objects of one kind a delta adds as seen in this
// build and forgets those it removes, returning both as syncObjects does
// for a whole list: an object taken in is in seen, whatever its build.
func applyDelta[T comparable](seen map[T]uint64, d *Delta[T], gen uint64) (fresh, gone []T) {
	for _, o := range d.Removed {
		if _, ok := seen[o]; ok {
			delete(seen, o)
			gone = append(gone, o)
		}
	}
	for _, o := range d.Added {
		if _, ok := seen[o]; !ok {
			seen[o] = gen
			fresh = append(fresh, o)
		}
	}
	return fresh, gone
}

// takeObjects is syncObjects or applyDelta, as take (Taken.Take) says.
func takeObjects[T comparable](seen map[T]uint64, take Take, list []T, d *Delta[T], gen uint64) (fresh, gone []T) {
	switch take {
	case TakeList:
		return syncObjects(seen, list, gen)
	case TakeDelta:
		return applyDelta(seen, d, gen)
	}
	return nil, nil
}

// syncServices takes in the Services and EndpointSlices (the lists, their
// deltas or nothing, as svcs and eps say), returning the Services
// (namespace/name) that changed or whose slices did.
func (g *engine) syncServices(in Inputs, svcs, eps Take) map[string]bool {
	b, changed := g.b, map[string]bool{}
	fresh, gone := takeObjects(g.svcSeen, svcs, in.Services, in.ServiceDelta, g.gen)
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
	freshSlices, goneSlices := takeObjects(g.sliceSeen, eps, in.EndpointSlices, in.EndpointSliceDelta, g.gen)
	slicesChanged := map[string]bool{}
	for _, es := range freshSlices {
		if svc := es.Labels[discoveryv1.LabelServiceName]; svc != "" {
			key := es.Namespace + "/" + svc
			addMember(g.slicesOf, key, es)
			slicesChanged[key] = true
		}
	}
	for _, es := range goneSlices {
		if svc := es.Labels[discoveryv1.LabelServiceName]; svc != "" {
			key := es.Namespace + "/" + svc
			removeMember(g.slicesOf, key, es)
			slicesChanged[key] = true
		}
	}
	for key := range slicesChanged {
		list := slices.Collect(g.slicesOf[key].all)
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
		slices.SortFunc(g.served, byAge)
	}
}

// moveUnchanged gives the entry of each Ingress of d.Removed whose new
// object in d.Added is the same to the engine (SameIngress) to that new
// object, and returns the old objects it did that for. Both lists are in
// namespace/name order. Writing an Ingress's status, as the sidecar does
// for every Ingress it starts serving, changes nothing the engine reads:
// parsing it again, indexing and evaluating it, made the same routes
// again (a start with --publish-service wrote 10k statuses at 10k
// Ingresses, and each came back as an update).
func (g *engine) moveUnchanged(d *Delta[*networkingv1.Ingress]) map[*networkingv1.Ingress]bool {
	var moved map[*networkingv1.Ingress]bool
	i := 0
	for _, ing := range d.Added {
		key := ing.Namespace + "/" + ing.Name
		for i < len(d.Removed) && d.Removed[i].Namespace+"/"+d.Removed[i].Name < key {
			i++
		}
		if i == len(d.Removed) {
			break
		}
		old := d.Removed[i]
		e := g.ings[old]
		if e == nil || g.ings[ing] != nil || !SameIngress(old, ing) {
			continue
		}
		delete(g.ings, old)
		e.obj, e.seen = ing, g.gen
		g.ings[ing] = e
		if moved == nil {
			moved = map[*networkingv1.Ingress]bool{}
		}
		moved[old] = true
	}
	return moved
}

// SameIngress reports whether the renderer reads the same of a and b: the
// name, UID and creation time, the annotations and the spec. Not the
// status, labels or resource version.
func SameIngress(a, b *networkingv1.Ingress) bool {
	return a.Namespace == b.Namespace && a.Name == b.Name && a.UID == b.UID &&
		a.CreationTimestamp.Equal(&b.CreationTimestamp) && maps.Equal(a.Annotations, b.Annotations) &&
		equality.Semantic.DeepEqual(a.Spec, b.Spec)
}

// applyIngressDelta takes in the Ingresses that changed since the list
// the last build took in, as syncIngresses does for the whole list.
// New ones are indexed before gone ones are taken out, as there.
func (g *engine) applyIngressDelta(d *Delta[*networkingv1.Ingress]) {
	moved := g.moveUnchanged(d)
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
		if moved[ing] {
			continue
		}
		if e := g.ings[ing]; e != nil {
			delete(g.ings, ing)
			g.unindex(e)
		}
	}
	if g.bulk {
		slices.SortFunc(g.served, byAge)
	}
}
