package render

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// Annotations read by the model.
const (
	// LegacyClassAnnotation names the class of an Ingress written before
	// spec.ingressClassName existed.
	LegacyClassAnnotation = "kubernetes.io/ingress.class"
	// DefaultClassAnnotation marks the IngressClass used by Ingresses that
	// name none.
	DefaultClassAnnotation = "ingressclass.kubernetes.io/is-default-class"
)

// DefaultControllerName is the spec.controller of the IngressClasses served.
const DefaultControllerName = "haproxy-sidecar.io/controller"

// Options are the settings the model depends on.
type Options struct {
	// ControllerName selects the IngressClasses this controller serves.
	ControllerName string
	// SettingsConfigMap is the ConfigMap holding the global settings, as
	// "namespace/name"; empty means none (see Settings).
	SettingsConfigMap string
	// AnnotationsCompat also reads another controller's annotations
	// (--annotations-compat).
	AnnotationsCompat Compat
	// DefaultService answers requests no rule matches when no Ingress's
	// spec.defaultBackend is used (--default-backend-service); nil: the
	// built-in 404.
	DefaultService *ServiceRef
	// TCPServicesConfigMap is the ConfigMap of TCP services, as
	// "namespace/name" (--tcp-services-configmap); empty means none.
	TCPServicesConfigMap string
	// ReservedPorts are the ports of the load balancer's other listeners,
	// which no TCP service may take.
	ReservedPorts []ReservedPort
	// Previous is the model HAProxy serves, if any: endpoints it has in a
	// server slot keep that slot (Backend.SlotAddrs). The output is still
	// a function of the inputs, Previous being one of them.
	Previous *Model
	// SpareBackends is how many spare backends to declare ahead for new
	// Services (pool.go), at least; 0: none (offline render).
	SpareBackends int
}

// BuildModel validates the objects and returns the routing model. It never
// fails: anything invalid is skipped and listed in Model.Problems.
func BuildModel(in Inputs, opts Options) *Model {
	if opts.ControllerName == "" {
		opts.ControllerName = DefaultControllerName
	}
	// Maps are sized up front: growing them was a tenth of the time at
	// 10k Ingresses.
	n := len(in.Ingresses)
	b := &builder{
		opts:     opts,
		m:        &Model{DefaultBackend: NotFoundBackend, Routes: make([]*Route, 0, 2*n), Served: make([]string, 0, n)},
		classes:  map[string]bool{},
		services: make(map[string]*corev1.Service, len(in.Services)),
		slices:   make(map[string][]*discoveryv1.EndpointSlice, len(in.EndpointSlices)),
		secrets:  make(map[string]*corev1.Secret, len(in.Secrets)),
		backends: make(map[string]*Backend, len(in.Services)),
		certs:    map[string]*Certificate{},
		claims:   &foldClaims{routes: make(map[routeKey]Origin, 2*n), sniOwner: map[string]string{}, owners: map[string]*settingsClaim{}},
		reported: map[Problem]bool{},

		sliceProblems: map[string][]Problem{},
	}
	b.index(in)
	b.settings(in.ConfigMaps)

	ings := slices.Clone(in.Ingresses)
	slices.SortFunc(ings, func(x, y *networkingv1.Ingress) int {
		return cmp.Or(
			x.CreationTimestamp.Time.Compare(y.CreationTimestamp.Time),
			cmp.Compare(x.Namespace, y.Namespace),
			cmp.Compare(x.Name, y.Name),
		)
	})
	parsed := make([]*parsedIngress, len(ings))
	for i, ing := range ings {
		parsed[i] = parseIngress(ing, opts.AnnotationsCompat)
	}
	// Backend annotations are settled before any backend is made: the
	// oldest served Ingress setting them for a Service decides, even when
	// an older one without them made the backend first.
	f := b.claims.(*foldClaims)
	for i, ing := range ings {
		p := parsed[i]
		if p.invalid != nil || len(p.ann.backendKeys) == 0 {
			continue
		}
		if ok, _ := b.ours(ing); !ok {
			continue
		}
		for _, svc := range p.services {
			if f.owners[svc] == nil {
				f.owners[svc] = &settingsClaim{namespace: ing.Namespace, name: ing.Name, ann: p.ann}
			}
		}
	}
	if slices.ContainsFunc(parsed, (*parsedIngress).canary) {
		f.routeOwners = b.routeOwnersOf(ings, parsed)
	}
	if slices.ContainsFunc(parsed, func(p *parsedIngress) bool { return p.invalid == nil && p.ann.route.Passthrough }) {
		f.hostOwners = b.hostOwnersOf(ings, parsed)
	}
	if slices.ContainsFunc(parsed, (*parsedIngress).hasWeak) {
		f.hosts = b.hostClaimsOf(ings, parsed)
	}
	for i, ing := range ings {
		b.ingress(ing, parsed[i])
	}
	b.finish(in.ConfigMaps)
	return b.m
}

type routeKey struct {
	match MatchKind
	key   string
}

type builder struct {
	opts     Options
	m        *Model
	classes  map[string]bool // IngressClass name → ours
	defaultC bool            // one of our classes is the default
	services map[string]*corev1.Service
	slices   map[string][]*discoveryv1.EndpointSlice // by namespace/service
	secrets  map[string]*corev1.Secret
	backends map[string]*Backend
	certs    map[string]*Certificate // by namespace/secret
	// claims settles conflicts between Ingresses (see claimer).
	claims   claimer
	reported map[Problem]bool
	// sliceProblems are what reading the EndpointSlices of each backend
	// reported (by backend name). They are reported once the backends
	// are known, in backend name order, so that their order does not
	// depend on which Ingress used a Service first.
	sliceProblems map[string][]Problem
	// capture, when set, receives problems instead of the model.
	capture *[]Problem
	// certCache, when set, keeps certificatePEM's results by Secret
	// object (see engine).
	certCache map[*corev1.Secret]certEntry
	// cur is the route policy of the Ingress being visited, nil when
	// it has none: its backends are its own (variantName).
	cur *ingressPolicy
	// routeBlock is where newRoute puts routes.
	routeBlock []Route
}

// routeBlockSize is how many routes newRoute allocates at once: fewer
// allocations than one per route, and little kept alive by one route
// still in use in a block of replaced ones. As many as fill 8 KB, one of
// the allocator's sizes (32 routes of 240 bytes would take 8 KB and leave
// 512 bytes of it unused).
const routeBlockSize = 8192 / unsafe.Sizeof(Route{})

// newRoute returns r in memory of its own, never changed afterwards.
func (b *builder) newRoute(r Route) *Route {
	if len(b.routeBlock) == cap(b.routeBlock) {
		b.routeBlock = make([]Route, 0, routeBlockSize)
	}
	b.routeBlock = append(b.routeBlock, r)
	return &b.routeBlock[len(b.routeBlock)-1]
}

// previousSlots returns the slot contents the backend name has in the
// previous model (Backends are sorted by name).
func (b *builder) previousSlots(name string) []netip.AddrPort {
	prev := b.opts.Previous
	if prev == nil {
		return nil
	}
	i, ok := slices.BinarySearchFunc(prev.Backends, name, func(be *Backend, n string) int { return strings.Compare(be.Name, n) })
	if !ok {
		return nil
	}
	return prev.Backends[i].SlotAddrs
}

// reporter reports the problems of one object. Every problem is created
// through one, so none can name the wrong object or leave out its reason.
type reporter struct {
	b   *builder
	obj ObjectRef
}

func (b *builder) reporter(kind, namespace, name string) reporter {
	return reporter{b: b, obj: ObjectRef{Kind: kind, Namespace: namespace, Name: name}}
}

// warn reports something the user wrote that was skipped.
func (r reporter) warn(field string, reason Reason, format string, args ...any) {
	r.add(Warning, field, reason, format, args...)
}

// notice reports something ignored on purpose or only worth knowing.
func (r reporter) notice(field string, reason Reason, format string, args ...any) {
	r.add(Notice, field, reason, format, args...)
}

// local reports a problem parseIngress found.
func (r reporter) local(p *localProblem) {
	r.b.addProblem(Problem{Severity: p.sev, ObjectRef: r.obj, Field: p.field, Reason: p.Reason, Message: p.msg})
}

func (r reporter) add(sev Severity, field string, reason Reason, format string, args ...any) {
	r.b.addProblem(Problem{
		Severity: sev, ObjectRef: r.obj, Field: field, Reason: reason,
		Message: fmt.Sprintf(format, args...),
	})
}

func (b *builder) addProblem(p Problem) {
	if b.capture != nil {
		*b.capture = append(*b.capture, p)
		return
	}
	// An EndpointSlice is looked at once per Service port that uses it;
	// say what is wrong with it once.
	if b.reported[p] {
		return
	}
	b.reported[p] = true
	b.m.Problems = append(b.m.Problems, p)
}

func (b *builder) index(in Inputs) {
	for _, c := range in.IngressClasses {
		if c.Spec.Controller != b.opts.ControllerName {
			continue
		}
		b.classes[c.Name] = true
		if c.Annotations[DefaultClassAnnotation] == "true" {
			b.defaultC = true
		}
	}
	for _, s := range in.Services {
		b.services[s.Namespace+"/"+s.Name] = s
	}
	for _, s := range in.EndpointSlices {
		svc := s.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		k := s.Namespace + "/" + svc
		b.slices[k] = append(b.slices[k], s)
	}
	// Slices are visited in name order so that what is reported about
	// them does not depend on input order.
	for _, ss := range b.slices {
		slices.SortFunc(ss, func(x, y *discoveryv1.EndpointSlice) int { return cmp.Compare(x.Name, y.Name) })
	}
	for _, s := range in.Secrets {
		b.secrets[s.Namespace+"/"+s.Name] = s
	}
}

// ours applies the IngressClass rules.
func (b *builder) ours(ing *networkingv1.Ingress) (bool, string) {
	return selectedByClass(ing, b.classes, b.defaultC, b.opts.ControllerName)
}

// selectedByClass applies the IngressClass rules: spec.ingressClassName
// first, then the legacy annotation, then the default class. classes are
// the controller's IngressClasses, dflt whether one is the default; the
// string says why an Ingress is not selected.
func selectedByClass(ing *networkingv1.Ingress, classes map[string]bool, dflt bool, ctrl string) (bool, string) {
	if n := ing.Spec.IngressClassName; n != nil {
		if classes[*n] {
			return true, ""
		}
		return false, fmt.Sprintf("spec.ingressClassName %q is not an IngressClass of controller %q", *n, ctrl)
	}
	if n, ok := ing.Annotations[LegacyClassAnnotation]; ok {
		if classes[n] {
			return true, ""
		}
		return false, fmt.Sprintf("annotation %s=%q is not an IngressClass of controller %q", LegacyClassAnnotation, n, ctrl)
	}
	if dflt {
		return true, ""
	}
	return false, fmt.Sprintf("no ingress class and no default IngressClass of controller %q", ctrl)
}

// claimer settles conflicts between Ingresses: what an older Ingress (or
// an earlier field of the same one) has is not given to another. A full
// build visits Ingresses oldest first and records each claim as it is
// made (foldClaims); the incremental engine knows every claimant of a key
// in advance and answers for the Ingress it is evaluating.
type claimer interface {
	// route returns the origin of the path that serves k before pp.
	route(k routeKey, pp *parsedPath) (Origin, bool)
	claimRoute(k routeKey, pp *parsedPath, o Origin)
	// hostServed says whether a rule's path (not a weak one) of a served
	// Ingress has host, and whether one of an Ingress of another
	// namespace than ns does.
	hostServed(host, ns string) (any, other bool)
	// sni returns the Secret (namespace/name) that serves host before
	// the TLS entry pt.
	sni(host string, pt *parsedTLS) (string, bool)
	claimSNI(host, secret string)
	// defaultBackend returns the Ingress whose spec.defaultBackend is
	// used, if it comes before the one being visited.
	defaultBackend() *Origin
	claimDefault(o *Origin)
	// settings returns the Ingress whose backend annotations apply to
	// the Service (namespace/name): the oldest served one setting any.
	settings(svc string) *settingsClaim
	// routeOwner returns the Ingress whose path serves k once every
	// Ingress is visited, older or younger than the one being visited
	// (a canary's primary), nil when none does.
	routeOwner(k routeKey) *routeOwner
	// hostOwner returns the oldest served Ingress (not a canary) with a
	// rule's path for host, when some Ingress passes the host through
	// (ssl-passthrough); nil otherwise.
	hostOwner(host string) *routeOwner
}

// routeOwner is the Ingress that serves a route key.
type routeOwner struct {
	ing *networkingv1.Ingress
	p   *parsedIngress
}

// settingsClaim is the Ingress whose backend annotations a Service's
// backends get.
type settingsClaim struct {
	namespace, name string
	ann             *parsedAnnotations
}

// foldClaims are the claims made so far by a build that visits Ingresses
// oldest first.
type foldClaims struct {
	routes   map[routeKey]Origin // who won each host+path+match
	sniOwner map[string]string   // SNI host → namespace/secret of the certificate that won it
	dflt     *Origin
	owners   map[string]*settingsClaim
	// routeOwners are the route keys' final owners, known before the
	// visit (see routeOwnersOf); only made when there are canaries.
	routeOwners map[routeKey]*routeOwner
	// hosts are made when an Ingress has weak paths (hostClaims).
	hosts *hostClaims
	// hostOwners are made when an Ingress passes hosts through
	// (hostOwnersOf).
	hostOwners map[string]*routeOwner
}

func (f *foldClaims) hostOwner(host string) *routeOwner { return f.hostOwners[host] }

func (f *foldClaims) settings(svc string) *settingsClaim { return f.owners[svc] }

func (f *foldClaims) routeOwner(k routeKey) *routeOwner { return f.routeOwners[k] }

// routeOwnersOf finds, for a full build, who will serve each route key:
// the oldest served Ingress, not a canary, with a path of that key whose
// own backend reference is valid (what path claims). ings are sorted by
// age.
func (b *builder) routeOwnersOf(ings []*networkingv1.Ingress, parsed []*parsedIngress) map[routeKey]*routeOwner {
	out := map[routeKey]*routeOwner{}
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
			if pp.problem != nil || pp.backend.problem != nil || pp.weak != notWeak {
				continue
			}
			if k := (routeKey{pp.match, pp.key}); out[k] == nil {
				out[k] = &routeOwner{ing: ing, p: p}
			}
		}
	}
	return out
}

func (f *foldClaims) route(k routeKey, pp *parsedPath) (Origin, bool) {
	if pp.weak != notWeak {
		return f.hosts.route(k)
	}
	o, ok := f.routes[k]
	return o, ok
}
func (f *foldClaims) claimRoute(k routeKey, pp *parsedPath, o Origin) {
	if pp.weak != notWeak {
		f.hosts.weak[k] = o
	} else {
		f.routes[k] = o
	}
}
func (f *foldClaims) hostServed(host, ns string) (bool, bool) { return f.hosts.served(host, ns) }
func (f *foldClaims) sni(host string, _ *parsedTLS) (string, bool) {
	s, ok := f.sniOwner[host]
	return s, ok
}
func (f *foldClaims) claimSNI(host, secret string) { f.sniOwner[host] = secret }
func (f *foldClaims) defaultBackend() *Origin      { return f.dflt }
func (f *foldClaims) claimDefault(o *Origin)       { f.dflt = o }

func (b *builder) ingress(ing *networkingv1.Ingress, p *parsedIngress) {
	ns, name := ing.Namespace, ing.Name
	r := b.reporter("Ingress", ns, name)
	if p.invalid != nil {
		r.local(p.invalid)
		return
	}
	if ok, why := b.ours(ing); !ok {
		r.notice("", NotOurClass, "not served: %s", why)
		return
	}
	b.m.Served = append(b.m.Served, p.key)
	for _, lp := range p.ann.problems {
		r.local(lp)
	}
	canary := p.canary()
	if canary {
		// Only the canary rules: the rest of its route policy is the
		// primary's (canaryPath).
		b.cur = &ingressPolicy{ingress: name, ann: p.ann}
		ignoredOnCanary(r, p.ann)
	} else {
		b.cur = b.policyOf(r, p)
	}
	defer func() { b.cur = nil }()
	if len(p.ann.backendKeys) > 0 {
		for _, svc := range p.services {
			if o := b.claims.settings(svc); o != nil && (o.namespace != ns || o.name != name) && o.ann.backend != p.ann.backend {
				r.warn(annotationField(p.ann.backendKeys[0]), Conflict,
					"backend annotations ignored for Service %s: the older Ingress %s/%s sets them for every Ingress using the Service", svc, o.namespace, o.name)
			}
		}
	}

	if d := p.defaultBackend; d != nil && canary {
		r.notice("spec.defaultBackend", Conflict, "ignored: a canary Ingress shares the routes of others and has no default backend")
	} else if d != nil {
		o := Origin{Namespace: ns, Name: name, Field: "spec.defaultBackend"}
		if used := b.claims.defaultBackend(); used != nil {
			r.warn(o.Field, Conflict,
				"ignored: the default backend of the older Ingress %s/%s is used", used.Namespace, used.Name)
		} else if be, _, ok := b.backend(r, d); ok {
			b.m.DefaultBackend = be
			b.m.DefaultOrigin = &o
			b.claims.claimDefault(&o)
		}
	}
	for i := range p.paths {
		if pp := &p.paths[i]; pp.problem != nil {
			r.local(pp.problem)
		} else if canary {
			b.canaryPath(r, pp, ing)
		} else {
			b.path(r, pp)
		}
	}
	for i := range p.tls {
		b.tls(r, &p.tls[i])
	}
}

func (b *builder) path(r reporter, pp *parsedPath) {
	// Conflicts are settled before the backend is resolved, so that a
	// path that loses creates no backend and reports nothing else.
	k := routeKey{pp.match, pp.key}
	if pp.weak != notWeak && b.weakBlocked(r, pp) {
		return
	}
	if b.passthroughBlocked(r, pp) {
		return
	}
	if prev, dup := b.claims.route(k, pp); dup {
		if pp.weak != notWeak {
			weakConflict(r, pp, prev)
			return
		}
		r.warn(pp.field, Conflict,
			"host %q %s path %q is already served by %s, which is older (or as old and first by namespace/name); path skipped", displayHost(pp.host), pp.match, pp.path, prev)
		return
	}
	be, ref, ok := b.backend(r, &pp.backend)
	if !ok {
		return
	}
	route := Route{
		Host: pp.host, HostKind: pp.hk, Path: pp.path, Match: pp.match, PathType: pp.pt,
		Key:     pp.key,
		Backend: be, Service: ref,
		Origin: Origin{Namespace: r.obj.Namespace, Name: r.obj.Name, Field: pp.field},
		Via:    pp.weak.via(),
		order:  pp.order, created: pp.created,
		Passthrough: pp.passthrough,
	}
	if pp.regex != nil {
		route.Regex = pp.regex.pattern
	}
	b.m.Routes = append(b.m.Routes, b.newRoute(route))
	b.claims.claimRoute(k, pp, route.Origin)
}

func displayHost(h string) string {
	if h == "" {
		return "*"
	}
	return h
}

// routeMapKey builds the key HAProxy looks up in the exact or prefix map.
// Prefix keys end with exactly one "/" and the request side appends "/" to
// the path, so "/foo" matches "/foo", "/foo/" and "/foo/bar" but never
// "/foobar", and trailing slashes on either side do not matter.
func routeMapKey(host, path string, match MatchKind) string {
	if match == MatchExact {
		return host + path
	}
	return host + strings.TrimRight(path, "/") + "/"
}

// backend resolves an Ingress backend to the name of an HAProxy backend.
// ok is false when the reference itself is invalid and the path must be
// skipped; a reference that is valid but cannot be served yet resolves to
// UnavailableBackend so that the route answers 503.
func (b *builder) backend(r reporter, pb *parsedBackend) (string, ServiceRef, bool) {
	if pb.problem != nil {
		r.local(pb.problem)
		return "", ServiceRef{}, false
	}
	if pb.kind == redirectPort {
		return b.redirectBackend(pb.ref.Name), ServiceRef{}, true
	}
	ns, ref := pb.ref.Namespace, pb.ref
	svc := b.services[ns+"/"+ref.Name]
	if svc == nil {
		r.warn(pb.fieldName()+".service.name", BackendNotFound, "Service %s/%s not found; answering 503", ns, ref.Name)
		return UnavailableBackend, ref, true
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return b.externalBackend(r, pb, svc)
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if (pb.portNumber == 0 && (p.Name == ref.Port || pb.kind == firstPort)) || (pb.portNumber != 0 && p.Port == pb.portNumber) {
			sp = p
			break
		}
	}
	if sp == nil {
		r.warn(pb.fieldName()+".service.port", BackendPortNotFound, "Service %s/%s has no port %s; answering 503", ns, ref.Name, ref.Port)
		return UnavailableBackend, ref, true
	}
	if sp.Protocol != "" && sp.Protocol != corev1.ProtocolTCP {
		r.warn(pb.fieldName()+".service.port", UnsupportedBackend, "Service %s/%s port %s is %s, not TCP; answering 503", ns, ref.Name, ref.Port, sp.Protocol)
		return UnavailableBackend, ref, true
	}

	name := pb.name
	if pb.portNumber == 0 {
		name = backendName(ns, ref.Name, sp.Port)
	}
	if pb.kind == firstPort {
		ref.Port = strconv.Itoa(int(sp.Port))
	}
	if b.cur != nil {
		// The Ingress whose route policy runs in the backend: the
		// visited one, or a canary's primary (canaryPath).
		name = variantName(name, b.cur.ingress)
	}
	be := b.backends[name]
	if be == nil {
		be = b.newBackend(name, svc, sp)
		b.backends[name] = be
	}
	if len(be.Servers) == 0 {
		r.notice(pb.fieldName()+".service", NoEndpoints, "Service %s/%s port %s has no ready endpoints; answering 503 until it has", ns, ref.Name, ref.Port)
	}
	return name, ref, true
}

// newBackend makes the backend of a Service port, keeping the problems
// its EndpointSlices have for finish.
func (b *builder) newBackend(name string, svc *corev1.Service, sp *corev1.ServicePort) *Backend {
	var reported []Problem
	b.capture = &reported
	servers := b.readyEndpoints(b.slices[svc.Namespace+"/"+svc.Name], sp)
	b.capture = nil
	n := ServerSlots(len(servers))
	be := &Backend{Name: name, Namespace: svc.Namespace, Service: svc.Name, Port: sp.Port, PortName: sp.Name,
		Servers: servers, Slots: n, SlotAddrs: assignSlots(servers, n, b.previousSlots(name))}
	if o := b.claims.settings(svc.Namespace + "/" + svc.Name); o != nil {
		b.capture = &reported
		b.backendSettings(be, o)
		if be.Settings.ServiceUpstream {
			b.serviceUpstream(be, svc, b.previousSlots(name))
		}
		b.capture = nil
	}
	if b.cur != nil {
		be.Ingress, be.Policy, be.Users, be.RewritePaths = b.cur.ingress, &b.cur.ann.route, b.cur.users, b.cur.rewrite
		be.ExtAuthBackend, be.ErrorBackend = b.cur.authBackend, b.cur.errors
	}
	if len(reported) > 0 {
		b.sliceProblems[name] = reported
	}
	return be
}

// backendName is the HAProxy backend of a Service port.
func backendName(ns, service string, port int32) string {
	return ns + "_" + service + "_" + strconv.Itoa(int(port))
}

// readyEndpoints returns the ready endpoints of a Service port in its
// EndpointSlices, sorted and without duplicates (an endpoint can sit in two
// slices while they are rebalanced). Ports are matched by name, as
// kube-proxy does.
func (b *builder) readyEndpoints(ess []*discoveryv1.EndpointSlice, sp *corev1.ServicePort) []netip.AddrPort {
	var out []netip.AddrPort
	for _, es := range ess {
		r := b.reporter("EndpointSlice", es.Namespace, es.Name)
		if es.AddressType != discoveryv1.AddressTypeIPv4 && es.AddressType != discoveryv1.AddressTypeIPv6 {
			r.notice("addressType", UnsupportedAddressType, "%q is not supported; slice ignored", es.AddressType)
			continue
		}
		var port int32
		found := false
		for j, p := range es.Ports {
			pn := ""
			if p.Name != nil {
				pn = *p.Name
			}
			if pn == sp.Name && p.Port != nil {
				port, found = *p.Port, true
				if port <= 0 || port > 65535 {
					r.warn(fmt.Sprintf("ports[%d].port", j), InvalidPort, "%d is not a valid port; slice skipped for Service port %q", port, sp.Name)
					found = false
				}
				break
			}
		}
		if !found {
			continue
		}
		for i, ep := range es.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			if len(ep.Addresses) == 0 {
				continue
			}
			// Like kube-proxy, use the first address: the others are
			// the same endpoint and must not get extra traffic.
			ip, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil || ip.Zone() != "" {
				r.warn(fmt.Sprintf("endpoints[%d].addresses[0]", i), InvalidAddress, "%q is not an IP address; endpoint skipped", ep.Addresses[0])
				continue
			}
			if ip = ip.Unmap(); ip.Is4() != (es.AddressType == discoveryv1.AddressTypeIPv4) {
				r.warn(fmt.Sprintf("endpoints[%d].addresses[0]", i), InvalidAddress, "%q is not an %s address; endpoint skipped", ep.Addresses[0], es.AddressType)
				continue
			}
			out = append(out, netip.AddrPortFrom(ip, uint16(port)))
		}
	}
	slices.SortFunc(out, func(x, y netip.AddrPort) int { return x.Compare(y) })
	return slices.Compact(out)
}

func (b *builder) tls(r reporter, pt *parsedTLS) {
	for _, lp := range pt.problems {
		r.local(lp)
	}
	if pt.skip {
		return
	}
	ns := r.obj.Namespace
	o := Origin{Namespace: ns, Name: r.obj.Name, Field: pt.field}
	key := ns + "/" + pt.secretName
	c := b.certs[key]
	if c == nil {
		sec := b.secrets[key]
		if sec == nil {
			r.warn(pt.field+".secretName", TLSSecretNotFound, "Secret %s not found; TLS entry skipped", key)
			return
		}
		data, err := b.certificatePEM(sec)
		if err != nil {
			r.warn(pt.field+".secretName", TLSSecretInvalid, "Secret %s: %v; TLS entry skipped", key, err)
			return
		}
		c = &Certificate{File: "certs/" + ns + "_" + pt.secretName + ".pem", Namespace: ns, Secret: pt.secretName, PEM: data}
		b.certs[key] = c
	}
	c.Origins = append(c.Origins, o)
	if pt.hostless {
		// No hosts: HAProxy selects the certificate by the names it
		// carries (crt-list line without SNI filter).
		c.SNI = append(c.SNI, "")
		return
	}
	for _, h := range pt.hosts {
		if b.passthroughTLSBlocked(r, pt.field+".hosts", h) {
			continue
		}
		if owner, taken := b.claims.sni(h, pt); taken {
			if owner != key {
				r.warn(pt.field+".hosts", Conflict, "host %q already uses Secret %s from an older (or as old and first by namespace/name) Ingress; host skipped", h, owner)
			}
			continue
		}
		b.claims.claimSNI(h, key)
		c.SNI = append(c.SNI, h)
	}
}

// finishCert sorts a certificate's SNI names; false means it is not used:
// every host it was meant for went to an older Ingress.
func finishCert(c *Certificate) bool {
	hostless := slices.Contains(c.SNI, "")
	sni := slices.DeleteFunc(slices.Clone(c.SNI), func(s string) bool { return s == "" })
	slices.Sort(sni)
	sni = slices.Compact(sni)
	if len(sni) == 0 && !hostless {
		return false
	}
	// A certificate named both with and without hosts gets one crt-list
	// line, filtered by the explicit hosts: one line cannot both filter
	// and not filter.
	c.SNI = sni
	return true
}

// certificatePEM checks a TLS Secret (see certificatePEM), once per
// Secret object: parsing keys and certificates is the costliest step of a
// render with many TLS Secrets.
func (b *builder) certificatePEM(sec *corev1.Secret) ([]byte, error) {
	if b.certCache == nil {
		return certificatePEM(sec)
	}
	e, ok := b.certCache[sec]
	if !ok {
		e.pem, e.err = certificatePEM(sec)
		b.certCache[sec] = e
	}
	return e.pem, e.err
}

func (b *builder) finish(configMaps []*corev1.ConfigMap) {
	m := b.m
	// Routes are unique by match and key, so the order is total.
	slices.SortFunc(m.Routes, byRouteOrder)

	names := make([]string, 0, len(b.backends))
	for name := range b.backends {
		names = append(names, name)
	}
	slices.Sort(names)
	m.Backends = make([]*Backend, 0, len(names))
	for _, name := range names {
		m.Backends = append(m.Backends, b.backends[name])
		for _, p := range b.sliceProblems[name] {
			b.addProblem(p)
		}
	}
	var over []Problem
	m.Backends, over = authBudget(m.Backends, map[*Backend]*Backend{})
	m.Problems = append(m.Problems, over...)
	b.useDefaultService(m, nil)
	b.useTCPServices(m, configMaps, nil)
	// After every Ingress was visited: a canary's primary may be younger.
	m.canaryFree = len(m.canaries) == 0
	m.Routes = b.attachCanaries(m.Routes, m.canaries)
	m.canaries, m.extAuth, m.extra = nil, nil, nil
	m.Regex = regexRouting(m.Routes, nil)
	m.Passthrough = passthroughRoutes(m.Routes)

	for _, c := range b.certs {
		if finishCert(c) {
			m.TLSHosts = append(m.TLSHosts, c.SNI...)
			m.Certs = append(m.Certs, *c)
		}
	}
	slices.SortFunc(m.Certs, func(x, y Certificate) int { return cmp.Compare(x.File, y.File) })
	slices.Sort(m.TLSHosts)
	applySpares(m, b.opts, nil)

	// Grouped by object; within an object, in the order of its fields.
	slices.SortStableFunc(m.Problems, func(x, y Problem) int {
		return cmp.Or(
			cmp.Compare(x.Kind, y.Kind),
			cmp.Compare(x.Namespace, y.Namespace),
			cmp.Compare(x.Name, y.Name),
		)
	})
}

// serviceUpstream makes be's one server the Service's cluster IP and port
// (service-upstream): kube-proxy, or a mesh's proxy, picks the endpoint.
// A headless Service, or one whose cluster IP is not an address, keeps
// its endpoints, and says so.
func (b *builder) serviceUpstream(be *Backend, svc *corev1.Service, prev []netip.AddrPort) {
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil || ip.Zone() != "" || !ip.IsValid() {
		b.reporter("Service", svc.Namespace, svc.Name).notice("spec.clusterIP", UnsupportedBackend,
			"service-upstream needs a cluster IP, and %q is none (a headless Service); its endpoints are used", svc.Spec.ClusterIP)
		return
	}
	be.Servers = []netip.AddrPort{netip.AddrPortFrom(ip, uint16(be.Port))}
	be.Slots = ServerSlots(1)
	be.SlotAddrs = assignSlots(be.Servers, be.Slots, prev)
}
