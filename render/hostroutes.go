package render

import (
	"fmt"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
)

// Host routes: the default-backend and server-alias annotations, made into
// paths of the Ingress ("weak" paths) so that routing, conflicts, explain
// and the incremental engine treat them as they treat a rule's paths:
//
//   - default-backend adds, for each host of the Ingress's rules, a Prefix
//     path "/" to the Service: HAProxy's longest-prefix lookup tries it
//     after every path of the host, so it answers exactly the requests of
//     the host no path matches (ingress-nginx's server per host).
//   - server-alias adds, for each alias, a copy of every path of the
//     Ingress's rules that have a host (and of the default-backend path).
//
// A weak path never takes a route key a rule's path has, whatever their
// ages: a rule's path is claimed first (claimer.route answers a weak path
// with the owner of its key among the rules first), and weak paths settle
// among themselves by age. Tenancy adds two rules on hosts:
//   - an alias host that any served Ingress's rule has is not taken at all
//     (AliasHostServed), as ingress-nginx ignores an alias naming an
//     existing server;
//   - from-to-www-redirect's counterpart host (www.<host>, or <host>
//     without "www.") is not taken when any Ingress has rules for it,
//     as ingress-nginx omits the redirect then;
//   - a default-backend does not apply on a host that an Ingress of
//     another namespace has rules for (DefaultBackendSharedHost): the
//     requests no path matches there are not this tenant's alone.

// backendKind is what a parsedBackend names besides a Service port.
type backendKind uint8

const (
	servicePort backendKind = iota
	// firstPort: no port given (the default-backend annotation's Service
	// name alone, as ingress-nginx takes it): the Service's first.
	firstPort
	// redirectPort: no Service; the from-to-www-redirect backend to the
	// host in ref.Name.
	redirectPort
)

// weakKind says which annotation made a parsedPath.
type weakKind uint8

const (
	notWeak weakKind = iota
	weakDefault
	weakAlias
	weakWWW
)

// blocked says whether a weak path of kind w is not used at all, given
// whether any rule has its host and whether one of another namespace
// does (see the top of this file).
func (w weakKind) blocked(anyRule, other bool) bool {
	return ((w == weakAlias || w == weakWWW) && anyRule) || (w == weakDefault && other)
}

// RouteVia says which annotation made a Route; the zero value is a rule's
// path.
type RouteVia uint8

const (
	ViaRule RouteVia = iota
	// ViaDefaultBackend: the default-backend annotation's "/" of a host.
	ViaDefaultBackend
	// ViaServerAlias: a path of the Ingress copied to a server-alias host.
	ViaServerAlias
	// ViaWWWRedirect: from-to-www-redirect's "/" of the www. or bare
	// counterpart of a host, to a redirect backend (Backend.RedirectHost).
	ViaWWWRedirect
)

func (w weakKind) via() RouteVia { return RouteVia(w) }

// maxAliases bounds server-alias: every alias copies every path.
const maxAliases = 100

// parseAliases reads server-alias: comma-separated host names.
func parseAliases(v string) ([]string, error) {
	var out []string
	for _, h := range strings.Split(v, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if err := validateHost(h); err != nil {
			return nil, err
		}
		if len(out) == maxAliases {
			return nil, fmt.Errorf("more than %d hosts", maxAliases)
		}
		out = append(out, h)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("want one or more host names")
	}
	return out, nil
}

// parseDefaultService reads default-backend: a Service name, with :port
// (a number or a port name); without one, the Service's first port.
func parseDefaultService(v string) (networkingv1.IngressBackend, error) {
	name, port, hasPort := strings.Cut(v, ":")
	if err := validateServiceName(name); err != nil {
		return networkingv1.IngressBackend{}, fmt.Errorf("Service name %w", err)
	}
	s := &networkingv1.IngressServiceBackend{Name: name}
	if hasPort {
		if n, err := strconv.Atoi(port); err == nil {
			if n < 1 || n > 65535 {
				return networkingv1.IngressBackend{}, fmt.Errorf("port %d is not from 1 to 65535", n)
			}
			s.Port.Number = int32(n)
		} else if err := validatePortName(port); err != nil {
			return networkingv1.IngressBackend{}, fmt.Errorf("port %w", err)
		} else {
			s.Port.Name = port
		}
	}
	return networkingv1.IngressBackend{Service: s}, nil
}

// addHostRoutes appends the weak paths of the default-backend and
// server-alias annotations (not on a canary, which has no routes).
func (p *parsedIngress) addHostRoutes(ns string) {
	a := p.ann
	if (a.defaultService == nil && len(a.aliases) == 0 && !a.wwwRedirect) || p.canary() {
		return
	}
	n := len(p.paths)
	if d := a.defaultService; d != nil {
		field := annotationField(a.keys["default-backend"])
		seen := map[string]bool{}
		for i := range n {
			pp := &p.paths[i]
			if pp.problem != nil || pp.host == "" || seen[pp.host] {
				continue
			}
			seen[pp.host] = true
			w := parsedPath{host: pp.host, hk: pp.hk, field: field, path: "/", match: MatchPrefix, pt: networkingv1.PathTypePrefix,
				key: routeMapKey(pp.host, "/", MatchPrefix), backend: defaultBackendRef(ns, field, d), weak: weakDefault}
			w.order = routeOrder(w.hk, w.host, w.match, w.key)
			p.paths = append(p.paths, w)
		}
	}
	defer p.addWWWRedirects(n)
	if len(a.aliases) == 0 {
		return
	}
	field := annotationField(a.keys["server-alias"])
	m := len(p.paths)
	for _, alias := range a.aliases {
		hk := HostExact
		if strings.HasPrefix(alias, "*.") {
			hk = HostWildcard
		}
		seen := map[routeKey]bool{}
		for i := range m {
			pp := &p.paths[i]
			if pp.problem != nil || pp.host == "" {
				continue
			}
			c := *pp
			c.host, c.hk, c.field, c.weak = alias, hk, field, weakAlias
			c.key = alias + pp.key[len(pp.host):]
			if k := (routeKey{c.match, c.key}); seen[k] {
				continue // the first of the Ingress's paths with this key
			} else {
				seen[k] = true
			}
			c.order = routeOrder(c.hk, c.host, c.match, c.key)
			p.paths = append(p.paths, c)
		}
	}
}

// addWWWRedirects adds, with from-to-www-redirect, a "/" path of the
// counterpart of each exact host among the first n paths (the rules'),
// to a backend that redirects to the host.
func (p *parsedIngress) addWWWRedirects(n int) {
	if !p.ann.wwwRedirect {
		return
	}
	field := annotationField(p.ann.keys["from-to-www-redirect"])
	seen := map[string]bool{}
	for i := range n {
		pp := &p.paths[i]
		if pp.problem != nil || pp.hk != HostExact || seen[pp.host] {
			continue
		}
		seen[pp.host] = true
		other, ok := strings.CutPrefix(pp.host, "www.")
		if !ok {
			other = "www." + pp.host
		}
		if validateHost(other) != nil {
			continue // "www." made it too long
		}
		w := parsedPath{host: other, hk: HostExact, field: field, path: "/", match: MatchPrefix, pt: networkingv1.PathTypePrefix,
			key: routeMapKey(other, "/", MatchPrefix), backend: parsedBackend{field: field, kind: redirectPort, ref: ServiceRef{Name: pp.host}}, weak: weakWWW}
		w.order = routeOrder(w.hk, w.host, w.match, w.key)
		p.paths = append(p.paths, w)
	}
}

// redirectBackend is the backend redirecting to host (from-to-www-redirect).
func (b *builder) redirectBackend(host string) string {
	name := "_www_" + host
	if b.backends[name] == nil {
		b.backends[name] = &Backend{Name: name, RedirectHost: host}
	}
	return name
}

// defaultBackendRef is parseBackend for the default-backend annotation's
// Service, whose port may be left out (the Service's first port).
func defaultBackendRef(ns, field string, d *networkingv1.IngressBackend) parsedBackend {
	if s := d.Service; s.Port.Name == "" && s.Port.Number == 0 {
		return parsedBackend{field: field, ref: ServiceRef{Namespace: ns, Name: s.Name}, kind: firstPort}
	}
	return parseBackend(ns, field, false, d)
}

// hasWeak reports whether the Ingress has weak paths.
func (p *parsedIngress) hasWeak() bool {
	return p.invalid == nil && len(p.paths) > 0 && p.paths[len(p.paths)-1].weak != notWeak
}

// weakBlocked reports (and says why) that the host rules keep a weak path
// from being used at all.
func (b *builder) weakBlocked(r reporter, pp *parsedPath) bool {
	anyRule, other := b.claims.hostServed(pp.host, r.obj.Namespace)
	switch {
	case pp.weak == weakWWW && anyRule:
		r.notice(pp.field, AliasHostServed, "no redirect from %q: it is a host of an Ingress's rules", pp.host)
		return true
	case pp.weak == weakAlias && anyRule:
		r.warn(pp.field, AliasHostServed, "alias host %q is a host of an Ingress's rules, which keep it; alias not used for it", pp.host)
		return true
	case pp.weak == weakDefault && other:
		r.notice(pp.field, DefaultBackendSharedHost, "not applied to host %q: Ingresses of another namespace have rules for it, so the requests none of its paths match keep going to the controller's default", pp.host)
		return true
	}
	return false
}

// weakConflict reports a weak path whose key is taken.
func weakConflict(r reporter, pp *parsedPath, prev Origin) {
	if pp.weak == weakDefault {
		if prev.Namespace == r.obj.Namespace && prev.Name == r.obj.Name {
			return // its own "/" path: nothing worth saying
		}
		r.notice(pp.field, Conflict, "not used on host %q: %s serves path \"/\" (Prefix), which every request no other path matches reaches first", pp.host, prev)
		return
	}
	if pp.weak == weakWWW {
		r.notice(pp.field, Conflict, "no redirect from %q: %s has its path \"/\"", pp.host, prev)
		return
	}
	r.warn(pp.field, Conflict, "alias host %q %s path %q is already served by %s, which is older (or as old and first by namespace/name); path skipped", pp.host, pp.match, pp.path, prev)
}

// hostClaims are, for a full build with weak paths, the rule paths' owners
// of each route key and the namespaces having rules for each host, known
// before the visit; and the weak paths' claims made so far.
type hostClaims struct {
	strong map[routeKey]Origin
	hosts  map[string][]string // host → namespaces, each once
	weak   map[routeKey]Origin
}

// hostClaimsOf finds, for a full build, who will own each route key among
// the rules' paths (what path claims: the oldest served Ingress, not a
// canary, with a path of that key whose backend reference is valid) and
// which namespaces have rules for each host. ings are sorted by age.
func (b *builder) hostClaimsOf(ings []*networkingv1.Ingress, parsed []*parsedIngress) *hostClaims {
	h := &hostClaims{strong: map[routeKey]Origin{}, hosts: map[string][]string{}, weak: map[routeKey]Origin{}}
	for i, ing := range ings {
		p := parsed[i]
		if p.invalid != nil || p.canary() {
			continue
		}
		if ok, _ := b.ours(ing); !ok {
			continue
		}
		for j := range p.paths {
			pp := &p.paths[j]
			if pp.problem != nil || pp.weak != notWeak {
				continue
			}
			if ns := h.hosts[pp.host]; pp.host != "" && !containsString(ns, ing.Namespace) {
				h.hosts[pp.host] = append(ns, ing.Namespace)
			}
			if k := (routeKey{pp.match, pp.key}); pp.backend.problem == nil {
				if _, ok := h.strong[k]; !ok {
					h.strong[k] = Origin{Namespace: ing.Namespace, Name: ing.Name, Field: pp.field}
				}
			}
		}
	}
	return h
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (h *hostClaims) route(k routeKey) (Origin, bool) {
	if o, ok := h.strong[k]; ok {
		return o, true
	}
	o, ok := h.weak[k]
	return o, ok
}

func (h *hostClaims) served(host, ns string) (anyRule, other bool) {
	if h == nil {
		return false, false
	}
	list := h.hosts[host]
	for _, x := range list {
		if x != ns {
			return true, true
		}
	}
	return len(list) > 0, false
}

// byWeakAge orders the users of a route key: rules' paths by age, then
// weak paths by age.
func byWeakAge(u, v pathUse) int {
	if uw, vw := u.pp.weak != notWeak, v.pp.weak != notWeak; uw != vw {
		if uw {
			return 1
		}
		return -1
	}
	return older(u.e.obj, v.e.obj)
}

// hostUse counts, for one host, the paths each Ingress has there. Most
// hosts have one Ingress: it is kept without a map of its own (at 10k
// Ingresses, 10k maps fewer).
type hostUse struct {
	e    *ingEntry
	n    int
	more map[*ingEntry]int
}

func (h *hostUse) add(e *ingEntry, d int) {
	switch {
	case h.e == e || (h.e == nil && d > 0):
		if h.e, h.n = e, h.n+d; h.n <= 0 {
			h.e, h.n = nil, 0
		}
	default:
		if h.more == nil {
			h.more = map[*ingEntry]int{}
		}
		if h.more[e] += d; h.more[e] <= 0 {
			delete(h.more, e)
		}
	}
}

func (h *hostUse) empty() bool { return h.e == nil && len(h.more) == 0 }

// each calls f with every Ingress counted, until f returns false.
func (h hostUse) each(f func(*ingEntry) bool) {
	if h.e != nil && !f(h.e) {
		return
	}
	for e := range h.more {
		if !f(e) {
			return
		}
	}
}

// countHost adds d to e's count of paths of host (refHost or refWeakHost),
// and makes dirty the weak paths' Ingresses of the host when its rules
// change: whether their weak paths are used depends on them.
func (g *engine) countHost(kind refKind, host string, e *ingEntry, d int) {
	idx := &g.hostUsers
	if kind == refWeakHost {
		idx = &g.weakUsers
	}
	if *idx == nil {
		*idx = map[string]hostUse{}
	}
	if kind == refHost {
		g.notePassOwner(host)
	}
	// A value, not a pointer: no allocation per host.
	h := (*idx)[host]
	if h.add(e, d); h.empty() {
		delete(*idx, host)
	} else {
		(*idx)[host] = h
	}
	if kind == refHost {
		g.weakUsers[host].each(func(u *ingEntry) bool { g.dirty[u] = true; return true })
	}
}

func (c *engineClaims) hostServed(host, ns string) (anyRule, other bool) {
	c.g.hostUsers[host].each(func(u *ingEntry) bool {
		anyRule = true
		other = u.obj.Namespace != ns
		return !other
	})
	return anyRule, other
}

// weakRoute is route for a weak path: the owner of the key among the
// rules' paths, whatever its age; else an older weak path that is used.
func (c *engineClaims) weakRoute(k routeKey) (Origin, bool) {
	for _, u := range c.g.routeUsers[k] {
		if u.pp.weak == notWeak {
			if u.claimant {
				return Origin{Namespace: u.e.obj.Namespace, Name: u.e.obj.Name, Field: u.pp.field}, true
			}
			continue
		}
		if older(u.e.obj, c.e.obj) >= 0 {
			break
		}
		if u.claimant && !u.pp.weak.blocked(c.hostServed(u.pp.host, u.e.obj.Namespace)) {
			return Origin{Namespace: u.e.obj.Namespace, Name: u.e.obj.Name, Field: u.pp.field}, true
		}
	}
	o, ok := c.routes[k]
	return o, ok
}
