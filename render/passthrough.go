package render

import (
	networkingv1 "k8s.io/api/networking/v1"
	"slices"
	"strings"
)

// TLS passthrough (the ssl-passthrough annotation): HTTPS connections whose
// SNI names a host of the Ingress's rules go to its Service's endpoints
// without being terminated. HAProxy sees a TLS stream, not requests, so:
//
//   - a passthrough Ingress's rules need an exact host (the SNI name) and
//     only the path "/" (Prefix or ImplementationSpecific); other paths,
//     HTTP annotations, TLS entries for its hosts and spec.defaultBackend
//     are reported (PassthroughUnsupported) and not used; an access
//     restriction (allowlist, auth, an ingress-nginx protection) fails
//     closed: its paths are skipped;
//   - a host is passed through only by its owner: the oldest served
//     Ingress with rule paths for it (claimer.hostOwner). A passthrough
//     Ingress that is not the owner gets a Conflict and is not served on
//     that host; while it is the owner, every younger Ingress's paths and
//     TLS entries for the host are reported and skipped, so the host is
//     one tenant's whole;
//   - the route stays in Model.Routes (Route.Passthrough) so that
//     conflicts, the incremental engine and explain treat it as any
//     route; haproxycfg leaves it out of the HTTP route maps and writes
//     it into the SNI map of a TCP frontend (Model.Passthrough).

// PassthroughMapFile is the map from SNI host to the backend its TLS
// connections pass through to, relative to the configuration directory.
const PassthroughMapFile = "maps/passthrough.map"

// PassthroughInspectDelay bounds how long the HTTPS port waits for a
// client's TLS ClientHello to read its SNI name; a client sending
// nothing in that time goes to the TLS-terminating frontend, which fails
// its handshake as before.
const PassthroughInspectDelay = "5s"

// finishPassthrough keeps only ssl-passthrough of an Ingress asking for
// it, reporting every other annotation it had: none can act on a stream
// HAProxy does not decrypt. Access restrictions fail closed
// (passthroughClosed).
func finishPassthrough(a *parsedAnnotations, report func(string, *localProblem)) {
	if !a.route.Passthrough {
		return
	}
	closed := slices.Clone(a.route.Closed)
	for name, key := range a.keys {
		if name == "ssl-passthrough" {
			continue
		}
		if restrictsAccess(name) {
			closed = append(closed, key)
			report(key, warning(annotationField(key), PassthroughUnsupported,
				"cannot be applied with ssl-passthrough (HAProxy does not decrypt the connections); the Ingress's paths are not served rather than served without it"))
			continue
		}
		report(key, warning(annotationField(key), PassthroughUnsupported,
			"ignored with ssl-passthrough: HAProxy does not decrypt the connections, so it cannot act on their requests"))
	}
	if a.route.Canary != nil {
		report("", warning("metadata.annotations", PassthroughUnsupported, "the canary annotations are ignored with ssl-passthrough"))
	}
	slices.Sort(closed)
	key := a.keys["ssl-passthrough"]
	a.route = RoutePolicy{Passthrough: true}
	a.backend, a.backendKeys = BackendSettings{}, nil
	a.defaultService, a.aliases, a.wwwRedirect, a.useRegex = nil, nil, false, Unset
	a.keys = map[string]string{"ssl-passthrough": key}
	a.passthroughClosed = strings.Join(slices.Compact(closed), ", ")
}

// passthroughPaths checks the paths, TLS entries and default backend of
// a passthrough Ingress (see the top of this file).
func (p *parsedIngress) passthroughPaths() {
	hosts := map[string]bool{}
	for i := range p.paths {
		pp := &p.paths[i]
		if pp.problem != nil {
			continue
		}
		switch {
		case p.ann.passthroughClosed != "":
			pp.problem = warning(pp.field, PassthroughUnsupported, "not served: %s cannot be applied to connections passed through unterminated (ssl-passthrough); path skipped", p.ann.passthroughClosed)
		case pp.hk != HostExact:
			pp.problem = warning(pp.field, PassthroughUnsupported, "ssl-passthrough needs a rule with an exact host, the SNI name connections are routed by; path skipped")
		case pp.match != MatchPrefix || pp.key != routeMapKey(pp.host, "/", MatchPrefix):
			pp.problem = warning(pp.field, PassthroughUnsupported, "ssl-passthrough passes whole connections: only the path \"/\" (Prefix or ImplementationSpecific) is served; path skipped")
		default:
			pp.passthrough = true
			hosts[pp.host] = true
		}
	}
	for i := range p.tls {
		pt := &p.tls[i]
		if pt.skip {
			continue
		}
		kept := pt.hosts[:0:0]
		for _, h := range pt.hosts {
			if hosts[h] {
				pt.problems = append(pt.problems, warning(pt.field+".hosts", PassthroughUnsupported,
					"host %q is passed through unterminated (ssl-passthrough): its endpoints present their own certificate; host skipped", h))
				continue
			}
			kept = append(kept, h)
		}
		if pt.hosts = kept; len(kept) == 0 && !pt.hostless {
			pt.skip = true
		}
	}
	if p.defaultBackend != nil {
		p.ann.problems = append(p.ann.problems, warning("spec.defaultBackend", PassthroughUnsupported, "ignored with ssl-passthrough: a default backend serves requests, and passed-through connections are not read as requests"))
		p.defaultBackend = nil
	}
}

// passthroughHost reports whether the Ingress passes host through.
func (p *parsedIngress) passthroughHost(host string) bool {
	if p.invalid != nil || !p.ann.route.Passthrough {
		return false
	}
	for i := range p.paths {
		if pp := &p.paths[i]; pp.passthrough && pp.problem == nil && pp.host == host {
			return true
		}
	}
	return false
}

// passthroughBlocked reports (and says why) that a path is not used
// because of a passthrough host: a passthrough path of an Ingress that
// does not own its host, or any path of another Ingress on a host its
// owner passes through.
func (b *builder) passthroughBlocked(r reporter, pp *parsedPath) bool {
	if pp.host == "" {
		return false
	}
	o := b.claims.hostOwner(pp.host)
	if o == nil {
		return false
	}
	self := o.ing.Namespace == r.obj.Namespace && o.ing.Name == r.obj.Name
	switch {
	case pp.passthrough && !self:
		r.warn(pp.field, Conflict, "ssl-passthrough not applied to host %q: the older Ingress %s/%s has paths for it, and only a host's owner (its oldest Ingress) passes it through; path skipped", pp.host, o.ing.Namespace, o.ing.Name)
		return true
	case !pp.passthrough && !self && o.p.passthroughHost(pp.host):
		r.warn(pp.field, Conflict, "host %q is passed through unterminated (ssl-passthrough) by the older Ingress %s/%s, which owns it; path skipped", pp.host, o.ing.Namespace, o.ing.Name)
		return true
	}
	return false
}

// passthroughTLSBlocked reports a TLS host of another Ingress than the
// passthrough Ingress owning it: such connections never reach the
// certificate.
func (b *builder) passthroughTLSBlocked(r reporter, field, host string) bool {
	o := b.claims.hostOwner(host)
	if o == nil || (o.ing.Namespace == r.obj.Namespace && o.ing.Name == r.obj.Name) || !o.p.passthroughHost(host) {
		return false
	}
	r.notice(field, Conflict, "host %q is passed through unterminated (ssl-passthrough) by Ingress %s/%s, which owns it; not used for it", host, o.ing.Namespace, o.ing.Name)
	return true
}

// passthroughRoutes are the passthrough routes of routes (sorted), nil
// when there are none.
func passthroughRoutes(routes []*Route) []*Route {
	var out []*Route
	for _, r := range routes {
		if r.Passthrough {
			out = append(out, r)
		}
	}
	return out
}

// hostOwnersOf finds, for a full build with a passthrough Ingress, the
// owner of each host: the oldest served Ingress, not a canary, with a
// rule's path for it (what the engine's hostUsers count). ings are sorted
// by age.
func (b *builder) hostOwnersOf(ings []*networkingv1.Ingress, parsed []*parsedIngress) map[string]*routeOwner {
	out := map[string]*routeOwner{}
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
			if pp.problem != nil || pp.weak != notWeak || pp.host == "" {
				continue
			}
			if out[pp.host] == nil {
				out[pp.host] = &routeOwner{ing: ing, p: p}
			}
		}
	}
	return out
}

// countPassthrough adds d to the passthrough paths of host, making dirty
// every Ingress with paths or TLS entries for it: a passthrough Ingress
// coming or going changes what they get there.
func (g *engine) countPassthrough(host string, d int) {
	if g.passHosts == nil {
		g.passHosts = map[string]int{}
	}
	if g.passHosts[host] += d; g.passHosts[host] <= 0 {
		delete(g.passHosts, host)
	}
	g.dirtyHost(host)
}

// passOwner is what the other Ingresses of a passed-through host read of
// its owner (passthroughBlocked, passthroughTLSBlocked): who it is and
// whether it passes the host through. The zero value: no owner.
type passOwner struct {
	namespace, name string
	passes          bool
}

func (c *engineClaims) passOwnerOf(host string) passOwner {
	o := c.hostOwner(host)
	if o == nil {
		return passOwner{}
	}
	return passOwner{o.ing.Namespace, o.ing.Name, o.p.passthroughHost(host)}
}

// notePassOwner keeps, before the first change this build makes to the
// rule paths of a passed-through host, who owned it; dirtyPassOwners
// then makes the host's Ingresses dirty only if that changed. Making
// them dirty at every change would let a tenant's passthrough Ingress on
// another tenant's host make each of that tenant's changes there
// evaluate every Ingress of the host again (the isolation test).
func (g *engine) notePassOwner(host string) {
	if g.passHosts[host] == 0 {
		return
	}
	if _, ok := g.passOwnerWas[host]; ok {
		return
	}
	if g.passOwnerWas == nil {
		g.passOwnerWas = map[string]passOwner{}
	}
	g.passOwnerWas[host] = (&engineClaims{g: g}).passOwnerOf(host)
}

// dirtyPassOwners makes dirty the Ingresses of each host noted by
// notePassOwner whose owner changed; called once the Ingresses are
// taken in, before they are evaluated.
func (g *engine) dirtyPassOwners() {
	c := &engineClaims{g: g}
	for host, was := range g.passOwnerWas {
		if c.passOwnerOf(host) != was {
			g.dirtyHost(host)
		}
	}
	clear(g.passOwnerWas)
}

// dirtyHost makes dirty the Ingresses with rule paths or TLS entries for
// host.
func (g *engine) dirtyHost(host string) {
	g.hostUsers[host].each(func(u *ingEntry) bool { g.dirty[u] = true; return true })
	g.dirtyTLS(g.sniUsers[host])
}

// passthroughBlocks says whether passthroughBlocked keeps u's path from
// being used, so that it claims no route key, as in the full build.
func (c *engineClaims) passthroughBlocks(u pathUse) bool {
	if u.pp.host == "" {
		return false
	}
	o := c.hostOwner(u.pp.host)
	return o != nil && !sameIngress(o.ing, u.e.obj) && (u.pp.passthrough || o.p.passthroughHost(u.pp.host))
}

func sameIngress(a, b *networkingv1.Ingress) bool {
	return a.Namespace == b.Namespace && a.Name == b.Name
}

// hostOwner is claimer.hostOwner from the engine's indexes: only hosts
// that a passthrough Ingress has are looked at.
func (c *engineClaims) hostOwner(host string) *routeOwner {
	if c.g.passHosts[host] == 0 {
		return nil
	}
	var owner *ingEntry
	c.g.hostUsers[host].each(func(u *ingEntry) bool {
		if owner == nil || older(u.obj, owner.obj) < 0 {
			owner = u
		}
		return true
	})
	if owner == nil {
		return nil
	}
	return &routeOwner{ing: owner.obj, p: owner.p}
}

// countPassthroughRoutes counts the passthrough routes of routes.
func countPassthroughRoutes(routes []*Route) int {
	n := 0
	for _, r := range routes {
		if r.Passthrough {
			n++
		}
	}
	return n
}

// TLSMapHosts are the hosts of the TLS hosts map (TLSHostsMapFile), whose
// plain-HTTP requests are redirected to HTTPS: TLSHosts, and the
// passed-through hosts.
func (m *Model) TLSMapHosts() []string {
	if len(m.Passthrough) == 0 {
		return m.TLSHosts
	}
	hosts := slices.Clone(m.TLSHosts)
	for _, r := range m.Passthrough {
		hosts = append(hosts, r.Host)
	}
	slices.Sort(hosts)
	return slices.Compact(hosts)
}
