package render

import (
	"fmt"
	"slices"
)

// What an Ingress refers to is declared once, by refs; index and unindex
// both walk that declaration, each kind of reference with its pair of
// operations side by side in indexRef and unindexRef. A new kind of
// reference is a refKind, a case in refs, and a case in each of the two.

// refKind is a kind of thing a served Ingress refers to, with the engine
// index that records who refers to it.
type refKind uint8

const (
	// refCanary: the Ingress is a canary (canaries).
	refCanary refKind = iota
	// refService: a Service, namespace/name, its backends or canary
	// backends use (svcUsers).
	refService
	// refCanaryKey: the route key of a canary's path (canaryKeys).
	refCanaryKey
	// refDefault: a spec.defaultBackend (defaultUsers).
	refDefault
	// refRoute: a path's route key, claimed by age (routeUsers).
	refRoute
	// refSettings: a Service its backend annotations apply to
	// (settingsUsers).
	refSettings
	// refSecret: a Secret, namespace/name: a TLS entry's, the
	// backend-ca-secret, the auth-basic-secret (secretUsers).
	refSecret
	// refSNI: a host of a TLS entry, claimed by age (sniUsers).
	refSNI
	// refHost: a host of a rule's path (hostUsers), and refWeakHost one
	// of a weak path (weakUsers): whether a weak path is used depends on
	// who has rules for its host.
	refHost
	refWeakHost
	// refPassthrough: a host the Ingress passes through (passHosts):
	// every Ingress with paths or TLS entries for the host depends on
	// who owns it (claimer.hostOwner).
	refPassthrough
)

// ref is one reference of an Ingress.
type ref struct {
	kind refKind
	// key is the Service (namespace/name) of a canary or of refSettings,
	// or the SNI host.
	key string
	// name is a Service or Secret in the Ingress's namespace (objKey
	// makes the key only where an index is written, as the build does).
	name string
	// route is the route key of refRoute and refCanaryKey.
	route routeKey
	path  *parsedPath // refRoute
	tls   *parsedTLS  // refSNI
}

// refs appends to out what a served Ingress refers to, in the order the
// indexes take it in (a path's place among the same Ingress's paths of one
// key, and a TLS entry's among its entries of one host, follow it).
func (p *parsedIngress) refs(out []ref) []ref {
	if p.canary() {
		// A canary claims no route and no default backend: it only
		// needs to be evaluated again when its Services change, or an
		// Ingress with a path of its route keys is evaluated.
		out = append(out, ref{kind: refCanary})
		for _, svc := range p.services {
			out = append(out, ref{kind: refService, key: svc})
		}
		for i := range p.paths {
			if pp := &p.paths[i]; pp.problem == nil {
				out = append(out, ref{kind: refCanaryKey, route: routeKey{pp.match, pp.key}})
			}
		}
	} else {
		if d := p.ann.defaultService; d != nil {
			// custom-http-errors reads its ports (errorBackend).
			out = append(out, ref{kind: refService, name: d.Service.Name})
		}
		if d := p.defaultBackend; d != nil {
			out = append(out, ref{kind: refDefault})
			if d.problem == nil {
				out = append(out, ref{kind: refService, name: d.ref.Name})
			}
		}
		last := [2]string{}
		for i := range p.paths {
			pp := &p.paths[i]
			if pp.problem != nil {
				continue
			}
			if w := min(pp.weak, 1); pp.host != "" && pp.host != last[w] {
				// Once per run of paths of one host (the indexes count).
				last[w] = pp.host
				out = append(out, ref{kind: refHost + refKind(w), key: pp.host})
			}
			if pp.passthrough {
				out = append(out, ref{kind: refPassthrough, key: pp.host})
			}
			out = append(out, ref{kind: refRoute, route: routeKey{pp.match, pp.key}, path: pp})
			if pp.backend.problem == nil {
				out = append(out, ref{kind: refService, name: pp.backend.ref.Name})
			}
		}
	}
	if ann := p.ann; len(ann.backendKeys) > 0 {
		for _, svc := range p.services {
			out = append(out, ref{kind: refSettings, key: svc})
		}
		if ann.backend.CASecret != "" {
			out = append(out, ref{kind: refSecret, name: ann.backend.CASecret})
		}
	}
	if ea := p.ann.route.ExtAuth; ea != nil && !ea.ThroughHost && !p.canary() {
		// The auth service; one found through the host is looked up by
		// HAProxy per request, in the routing maps.
		out = append(out, ref{kind: refService, name: ea.Service})
	}
	if s := p.ann.route.AuthSecret; s != "" {
		out = append(out, ref{kind: refSecret, name: s})
	}
	for i := range p.tls {
		pt := &p.tls[i]
		if pt.skip {
			continue
		}
		out = append(out, ref{kind: refSecret, name: pt.secretName})
		for _, h := range pt.hosts {
			out = append(out, ref{kind: refSNI, key: h, tls: pt})
		}
	}
	return out
}

// objKey is the namespace/name of a refService's or refSecret's object,
// for an Ingress in namespace ns.
func (r *ref) objKey(ns string) string {
	if r.name != "" {
		return ns + "/" + r.name
	}
	return r.key
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
	g.dirtyCanaryKeys(e)
	if g.bulk {
		g.served = append(g.served, e)
	} else {
		i, _ := slices.BinarySearchFunc(g.served, e, byAge)
		g.served = slices.Insert(g.served, i, e)
	}
	g.refBuf = e.p.refs(g.refBuf[:0])
	for _, r := range g.refBuf {
		g.indexRef(e, r)
	}
	clear(g.refBuf) // keeps no parsed Ingress alive
}

// unindex takes a gone Ingress out of the indexes.
func (g *engine) unindex(e *ingEntry) {
	g.dirty[e] = true
	if !e.served {
		return
	}
	g.served = slices.DeleteFunc(g.served, func(x *ingEntry) bool { return x == e })
	g.servedKeys = nil
	g.dirtyCanaryKeys(e)
	g.refBuf = e.p.refs(g.refBuf[:0])
	for _, r := range g.refBuf {
		g.unindexRef(e, r)
	}
	clear(g.refBuf)
}

// byAge orders entries as the full build visits their Ingresses.
func byAge(x, y *ingEntry) int { return older(x.obj, y.obj) }

// indexRef records that e refers to r, making dirty those whose result
// this can change (who else claims the same route key, SNI host or
// default backend).
func (g *engine) indexRef(e *ingEntry, r ref) {
	switch r.kind {
	case refCanary:
		g.canaries[e] = true
	case refService:
		addMember(g.svcUsers, r.objKey(e.obj.Namespace), e)
	case refSecret:
		addMember(g.secretUsers, r.objKey(e.obj.Namespace), e)
	case refCanaryKey:
		if g.canaryKeys[r.route] == nil {
			g.canaryKeys[r.route] = map[*ingEntry]bool{}
		}
		g.canaryKeys[r.route][e] = true
	case refDefault:
		g.dirtyAll(g.defaultUsers)
		i, _ := slices.BinarySearchFunc(g.defaultUsers, e, byAge)
		g.defaultUsers = slices.Insert(g.defaultUsers, i, e)
	case refRoute:
		list := g.routeUsers[r.route]
		g.dirtyPaths(list)
		// Weak paths after every rule's path (byWeakAge).
		j, _ := slices.BinarySearchFunc(list, pathUse{e: e, pp: r.path}, byWeakAge)
		// After this Ingress's earlier paths with the same key.
		for j < len(list) && list[j].e == e {
			j++
		}
		g.routeUsers[r.route] = slices.Insert(list, j, pathUse{e: e, pp: r.path, claimant: r.path.backend.problem == nil})
	case refSettings:
		g.noteSettings(r.key)
		list := g.settingsUsers[r.key]
		i, _ := slices.BinarySearchFunc(list, e, byAge)
		g.settingsUsers[r.key] = slices.Insert(list, i, e)
	case refSNI:
		list := g.sniUsers[r.key]
		g.dirtyTLS(list)
		j, _ := slices.BinarySearchFunc(list, e, func(u tlsUse, e *ingEntry) int { return older(u.e.obj, e.obj) })
		for j < len(list) && list[j].e == e {
			j++
		}
		g.sniUsers[r.key] = slices.Insert(list, j, tlsUse{e: e, pt: r.tls})
	case refHost, refWeakHost:
		g.countHost(r.kind, r.key, e, 1)
	case refPassthrough:
		g.countPassthrough(r.key, 1)
	default:
		panic(fmt.Sprintf("render: reference kind %d not indexed", r.kind))
	}
}

// unindexRef undoes indexRef(e, r), making dirty those left claiming what
// e claimed.
func (g *engine) unindexRef(e *ingEntry, r ref) {
	switch r.kind {
	case refCanary:
		delete(g.canaries, e)
	case refService:
		removeMember(g.svcUsers, r.objKey(e.obj.Namespace), e)
	case refSecret:
		removeMember(g.secretUsers, r.objKey(e.obj.Namespace), e)
	case refCanaryKey:
		if delete(g.canaryKeys[r.route], e); len(g.canaryKeys[r.route]) == 0 {
			delete(g.canaryKeys, r.route)
		}
	case refDefault:
		g.defaultUsers = slices.DeleteFunc(g.defaultUsers, func(x *ingEntry) bool { return x == e })
		g.dirtyAll(g.defaultUsers)
	case refRoute:
		list := slices.DeleteFunc(g.routeUsers[r.route], func(u pathUse) bool { return u.e == e })
		g.dirtyPaths(list)
		setOrDelete(g.routeUsers, r.route, list)
	case refSettings:
		g.noteSettings(r.key)
		setOrDelete(g.settingsUsers, r.key, slices.DeleteFunc(g.settingsUsers[r.key], func(x *ingEntry) bool { return x == e }))
	case refSNI:
		list := slices.DeleteFunc(g.sniUsers[r.key], func(u tlsUse) bool { return u.e == e })
		g.dirtyTLS(list)
		setOrDelete(g.sniUsers, r.key, list)
	case refHost, refWeakHost:
		g.countHost(r.kind, r.key, e, -1)
	case refPassthrough:
		g.countPassthrough(r.key, -1)
	default:
		panic(fmt.Sprintf("render: reference kind %d not unindexed", r.kind))
	}
}

// setOrDelete stores list under k, or deletes k when list is empty.
func setOrDelete[K comparable, V any](m map[K][]V, k K, list []V) {
	if len(list) == 0 {
		delete(m, k)
	} else {
		m[k] = list
	}
}

// dirtyCanaryKeys makes dirty the canaries with a path of one of the route
// keys of e, a non-canary Ingress: a canary's backend carries the route
// policy of the key's owner, so it depends on who owns the key (e indexed
// or unindexed) and on the owner's auth Secret. Not on the owner being
// evaluated again for another reason: that changes nothing of its policy,
// and would reach a tenant's canaries from another tenant's change.
func (g *engine) dirtyCanaryKeys(e *ingEntry) {
	if len(g.canaryKeys) == 0 || e.p.invalid != nil || e.p.canary() {
		return
	}
	for i := range e.p.paths {
		pp := &e.p.paths[i]
		for c := range g.canaryKeys[routeKey{pp.match, pp.key}] {
			g.dirty[c] = true
		}
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
