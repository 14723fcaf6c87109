package render

import (
	"bytes"
	"cmp"
	"maps"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/lists"
)

// The model's parts: what the engine keeps of each evaluation and puts
// together into a Model.

// dropUnused takes the backends no evaluation used again out of the
// sorted backends.
func (g *engine) dropUnused() {
	if len(g.unused) == 0 {
		return
	}
	g.unshareBackends()
	if len(g.unused) <= dropOneByOne {
		// A few (a removed Service's): found by name (names is sorted)
		// rather than by looking every backend's name up in unused.
		for name := range g.unused {
			if i, ok := slices.BinarySearch(g.names, name); ok {
				g.names = slices.Delete(g.names, i, i+1)
				g.bes = slices.Delete(g.bes, i, i+1)
			}
		}
		clear(g.unused)
		return
	}
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

// dropOneByOne is how many unused backends dropUnused takes out one by
// one, each found by a binary search, before it walks the whole list.
const dropOneByOne = 16

// replaceBackend puts be, made again, at place i of the sorted backends,
// unless it is equal to the one there, which then stays (in the
// builder's backends too). An Ingress evaluated again makes its
// backends again when it was their only user (forget), most often the
// same: a new list of every backend, and of every backend section
// (haproxycfg), for none changed was a third of a route change's
// garbage at 10k Services.
func (g *engine) replaceBackend(i int, be *Backend) {
	if old := g.bes[i]; reflect.DeepEqual(old, be) {
		g.b.backends[g.names[i]] = old
		return
	}
	g.unshareBackends()
	g.bes[i] = be
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
				removeMember(g.backendsOf, svc, name)
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
				g.replaceBackend(i, be)
			}
		} else {
			if g.unused[name] {
				// Forgotten in this build and used again: in place.
				delete(g.unused, name)
				if i, ok := slices.BinarySearch(g.names, name); ok && g.bes[i] != be {
					g.replaceBackend(i, be)
				}
			} else if !g.bulk {
				i, _ := slices.BinarySearch(g.names, name)
				g.names = slices.Insert(g.names, i, name)
				g.unshareBackends()
				g.bes = slices.Insert(g.bes, i, be)
			}
			svc := be.Namespace + "/" + be.Service
			addMember(g.backendsOf, svc, name)
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
	for _, name := range s.model.extAuth {
		use(name)
	}
	for _, name := range s.model.extra {
		use(name)
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
// sorted routes and puts their new ones in. It reports whether the new
// ones are equal to the old, which stay (removed and added are then
// sorted alike: the k-th of each are equal).
func (g *engine) updateRoutes(removed, added []*Route) (same bool) {
	g.countRegex(removed, -1)
	g.countRegex(added, 1)
	g.passRoutes += countPassthroughRoutes(added) - countPassthroughRoutes(removed)
	cmpOrder := byRouteOrder
	if len(removed) == len(added) {
		// Evaluated again with the same result (an endpoint change):
		// the sorted routes, shared with earlier models, stay.
		slices.SortFunc(removed, cmpOrder)
		slices.SortFunc(added, cmpOrder)
		if slices.EqualFunc(removed, added, func(x, y *Route) bool { return *x == *y }) {
			return true
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
		return false
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
	return false
}

// shareRoutes gives the evaluated Ingresses the routes the models share
// (old) instead of their equal new ones (fresh, the k-th equal to the k-th
// of old): an Ingress evaluated again with the same result (its Service's
// endpoints moved, an annotation nothing reads) otherwise kept a second
// copy of its routes beside the model's.
func (g *engine) shareRoutes(old, fresh []*Route) {
	if len(fresh) == 0 {
		return
	}
	was := make(map[*Route]*Route, len(fresh))
	for k, r := range fresh {
		was[r] = old[k]
	}
	for e := range g.dirty {
		for j, r := range e.routes {
			if o, ok := was[r]; ok {
				e.routes[j] = o
			}
		}
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
	m.Regex = g.regexRouting(m.Routes)
	if g.passRoutes > 0 {
		m.Passthrough = passthroughRoutes(m.Routes)
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
	nProblems := len(m.Problems)
	g.defaultBE = b.useDefaultService(m, g.defaultBE)
	ownProblems := m.Problems[nProblems:]
	m.Problems = m.Problems[:nProblems:nProblems]
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

	if len(ownProblems) > 0 {
		// Of kind Service: sorted among the others as the full build does.
		m.Problems = append(m.Problems, ownProblems...)
		slices.SortStableFunc(m.Problems, func(x, y Problem) int {
			return cmp.Or(cmp.Compare(x.Kind, y.Kind), cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name))
		})
	}
	if g.b.opts.TCPServicesConfigMap != "" {
		// Last, as the full build adds them, then in object order.
		n := len(m.Problems)
		g.tcpBE = b.useTCPServices(m, configMaps, g.tcpBE)
		if len(m.Problems) > n {
			slices.SortStableFunc(m.Problems, func(x, y Problem) int {
				return cmp.Or(cmp.Compare(x.Kind, y.Kind), cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name))
			})
		}
	} else {
		g.tcpBE = nil
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
	applySpares(m, b.opts, &g.spares)
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
	if g.canaryRoutes != nil && lists.Same(g.routes, g.canaryBase) && slices.Equal(paths, g.canaryPaths) {
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
	for e := range g.secretUsers[key].all {
		if e.certs[key] != nil {
			users = append(users, e)
		}
	}
	delete(g.certs, key)
	if len(users) == 0 {
		return old != nil
	}
	slices.SortFunc(users, byAge)
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

func (c *engineClaims) route(k routeKey, pp *parsedPath) (Origin, bool) {
	if pp.weak != notWeak {
		return c.weakRoute(k)
	}
	for _, u := range c.g.routeUsers[k] {
		if u.pp.weak != notWeak || older(u.e.obj, c.e.obj) >= 0 {
			break
		}
		if u.claimant && !c.passthroughBlocks(u) {
			return Origin{Namespace: u.e.obj.Namespace, Name: u.e.obj.Name, Field: u.pp.field}, true
		}
	}
	o, ok := c.routes[k]
	return o, ok
}

func (c *engineClaims) claimRoute(k routeKey, _ *parsedPath, o Origin) { c.routes[k] = o }

func (c *engineClaims) routeOwner(k routeKey) *routeOwner {
	for _, u := range c.g.routeUsers[k] {
		if u.claimant && u.pp.weak == notWeak {
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

// countRegex adds n for each regular-expression route of routes to its
// host's count.
func (g *engine) countRegex(routes []*Route, n int) {
	for _, r := range routes {
		if r.Match != MatchRegex {
			continue
		}
		h := hostOrderPrefix(r.order)
		if g.regexHosts[h] += n; g.regexHosts[h] == 0 {
			delete(g.regexHosts, h)
		}
	}
}

// regexRouting is regexRouting of the hosts with regular-expression
// routes only: a model without any reads no route.
func (g *engine) regexRouting(routes []*Route) []RegexHost {
	if len(g.regexHosts) == 0 {
		return nil
	}
	hosts := make([]string, 0, len(g.regexHosts))
	for h := range g.regexHosts {
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	return regexRouting(routes, hosts)
}
