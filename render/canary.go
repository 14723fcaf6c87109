package render

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
)

// Canaries. A canary Ingress (RoutePolicy.Canary) claims no route: each of
// its paths waits as a canaryPath for the route of the same host, path and
// match that another Ingress serves (the primary), and is put on it once
// every Ingress has been visited (attachCanaries), so that neither
// Ingress's age nor the order of visits matters. The route's map value
// becomes "<primary>~<canary>" and the frontend, after routing, turns it
// into one of the two backends with the rule's conditions (haproxycfg.CanaryGroups):
// a few string comparisons per canary, only on requests to such a route
// deciding anything.

// canaryPath is one path of a canary Ingress.
type canaryPath struct {
	order      string // the route's routeOrder
	host, path string
	match      MatchKind
	ing        *networkingv1.Ingress
	canary     Canary
}

// canaryPath records a path of the canary Ingress being visited. Its
// backend is made now, like any path's, but with the route policy of the
// primary: requests the canary takes pass the primary's authentication,
// source ranges, rate limits, body size limit, redirects and CORS
// answers first, as ingress-nginx applies the main Ingress's annotations
// to canary traffic. Its backend is then the one the primary would have
// for the canary's Service (variantName with the primary's name). A path
// whose route is served from another namespace, or by no Ingress, gets
// no backend: attachCanaries reports it.
func (b *builder) canaryPath(r reporter, pp *parsedPath, ing *networkingv1.Ingress) {
	if pp.backend.problem != nil {
		r.local(pp.backend.problem)
		return
	}
	c := canaryPath{
		order: pp.order, host: pp.host, path: pp.path, match: pp.match, ing: ing,
		canary: Canary{Service: pp.backend.ref, Origin: Origin{Namespace: ing.Namespace, Name: ing.Name, Field: pp.field}, Rule: b.cur.ann.route.Canary},
	}
	if o := b.claims.routeOwner(routeKey{pp.match, pp.key}); o != nil && o.ing.Namespace == ing.Namespace && !o.p.ann.route.Passthrough {
		own := b.cur
		b.cur = b.primaryPolicy(o)
		c.canary.Backend, c.canary.Service, _ = b.backend(r, &pp.backend)
		b.cur = own
	}
	b.m.canaries = append(b.m.canaries, c)
}

// primaryPolicy is the route policy of a canary's primary, read without
// reporting: what is wrong with the primary is reported on the primary.
func (b *builder) primaryPolicy(o *routeOwner) *ingressPolicy {
	var discard []Problem
	saved := b.capture
	b.capture = &discard
	defer func() { b.capture = saved }()
	return b.policyOf(b.reporter("Ingress", o.ing.Namespace, o.ing.Name), o.p)
}

// ignoredOnCanary reports the route annotations of a canary Ingress other
// than its canary rules: they do not apply, since the requests the canary
// takes follow the primary's route policy. Backend annotations are the
// Service's and apply as on any Ingress.
func ignoredOnCanary(r reporter, a *parsedAnnotations) {
	for _, an := range annotations {
		key, set := a.keys[an.name]
		if !set || an.scope != RouteScope || an.name == "canary" || strings.HasPrefix(an.name, "canary-") {
			continue
		}
		r.warn(annotationField(key), CanaryAnnotationIgnored,
			"ignored on a canary Ingress: requests the canary takes follow the route annotations of the Ingress it is a canary of (its primary), as with ingress-nginx; only backend annotations and the canary rules of a canary apply")
	}
}

// attachCanaries puts each canary path on its route: routes (sorted) are
// copied when any route gets a canary, never changed. Two canaries on one
// route: the older Ingress's is used.
func (b *builder) attachCanaries(routes []*Route, canaries []canaryPath) []*Route {
	if len(canaries) == 0 {
		return routes
	}
	canaries = slices.Clone(canaries)
	slices.SortStableFunc(canaries, func(x, y canaryPath) int {
		return cmp.Or(strings.Compare(x.order, y.order), older(x.ing, y.ing))
	})
	out, copied := routes, false
	for i := range canaries {
		c := &canaries[i]
		r := b.reporter("Ingress", c.ing.Namespace, c.ing.Name)
		j, found := slices.BinarySearchFunc(routes, c.order, func(r *Route, order string) int { return strings.Compare(r.order, order) })
		if !found {
			r.warn(c.canary.Origin.Field, CanaryWithoutPrimary,
				"canary path not served: no other Ingress serves host %q %s path %q, so there is no route to take a share of", displayHost(c.host), c.match, c.path)
			continue
		}
		if out[j].Passthrough {
			r.warn(c.canary.Origin.Field, PassthroughUnsupported,
				"canary path not served: host %q is passed through unterminated (ssl-passthrough) by %s, so there are no requests to take a share of", displayHost(c.host), out[j].Origin)
			continue
		}
		if o := out[j].Origin; o.Namespace != c.ing.Namespace || c.canary.Backend == "" {
			r.warn(c.canary.Origin.Field, CanaryOtherNamespace,
				"canary path not served: host %q %s path %q is served by %s of another namespace; a canary takes a share only of a route its own namespace serves", displayHost(c.host), c.match, c.path, o)
			continue
		}
		if first := out[j].Canary; first != nil {
			r.warn(c.canary.Origin.Field, Conflict,
				"host %q %s path %q already has the canary %s, which is older (or as old and first by namespace/name); canary path skipped", displayHost(c.host), c.match, c.path, first.Origin)
			continue
		}
		if !copied {
			out, copied = slices.Clone(routes), true
		}
		cc := c.canary
		withCanary := *out[j]
		withCanary.Canary = &cc
		out[j] = b.newRoute(withCanary)
	}
	return out
}

// TakesAll reports whether the canary takes every request of its route:
// a weight of the whole total and no header or cookie rule that could
// keep a request on the primary.
func (r *CanaryRule) TakesAll() bool {
	return r.Weight > 0 && r.Weight >= r.WeightTotal && r.Header == "" && r.Cookie == ""
}

// Describe says in words which requests the rule sends to the canary,
// exactly: "all requests", "30 of 100 requests at random", or the header
// and cookie rules first and then the share of the remaining requests.
func (r *CanaryRule) Describe() string {
	var parts []string
	if r.Header != "" {
		if r.HeaderValue != "" {
			parts = append(parts, "requests with header "+r.Header+": "+r.HeaderValue)
		} else {
			parts = append(parts, "requests with header "+r.Header+": always (never keeps them on the primary)")
		}
	}
	if r.Cookie != "" {
		parts = append(parts, "requests with cookie "+r.Cookie+"=always (never keeps them on the primary)")
	}
	rest := ""
	if len(parts) > 0 {
		rest = "of the remaining "
	}
	switch {
	case r.Weight > 0 && r.Weight >= r.WeightTotal && rest == "":
		parts = append(parts, "all requests")
	case r.Weight > 0 && r.Weight >= r.WeightTotal:
		parts = append(parts, "all the remaining requests")
	case r.Weight > 0:
		parts = append(parts, strconv.Itoa(r.Weight)+" of "+strconv.Itoa(r.WeightTotal)+" "+rest+"requests at random")
	}
	if len(parts) == 0 {
		return "no requests (no canary rule and no weight)"
	}
	return strings.Join(parts, ", then ")
}

// Leaves says which requests stay on the primary, for explain.
func (r *CanaryRule) Leaves() string {
	switch {
	case r.TakesAll():
		return "the route's backend below gets none"
	case r.Weight > 0 && r.Weight >= r.WeightTotal:
		return "only requests the header or cookie says never for stay on the route's backend below"
	case r.Weight > 0 && r.Header == "" && r.Cookie == "":
		return "the other " + strconv.Itoa(r.WeightTotal-r.Weight) + " of " + strconv.Itoa(r.WeightTotal) + " stay on the route's backend below"
	}
	return "the rest stays on the route's backend below"
}
