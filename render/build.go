package render

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

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
	// Previous is the model HAProxy serves, if any: endpoints it has in a
	// server slot keep that slot (Backend.SlotAddrs). The output is still
	// a function of the inputs, Previous being one of them.
	Previous *Model
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
		m:        &Model{DefaultBackend: NotFoundBackend, Routes: make([]Route, 0, 2*n), Served: make([]string, 0, n)},
		classes:  map[string]bool{},
		services: make(map[string]*corev1.Service, len(in.Services)),
		slices:   make(map[string][]*discoveryv1.EndpointSlice, len(in.EndpointSlices)),
		secrets:  make(map[string]*corev1.Secret, len(in.Secrets)),
		backends: make(map[string]*Backend, len(in.Services)),
		routes:   make(map[routeKey]Origin, 2*n),
		certs:    map[string]*Certificate{},
		sniOwner: map[string]string{},
		reported: map[Problem]bool{},
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
	for _, ing := range ings {
		b.ingress(ing)
	}
	b.finish()
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
	routes   map[routeKey]Origin     // who won each host+path+match
	certs    map[string]*Certificate // by namespace/secret
	sniOwner map[string]string       // SNI host → namespace/secret of the certificate that won it
	reported map[Problem]bool
}

// previousSlots returns the slot contents the backend name has in the
// previous model (Backends are sorted by name).
func (b *builder) previousSlots(name string) []netip.AddrPort {
	prev := b.opts.Previous
	if prev == nil {
		return nil
	}
	i, ok := slices.BinarySearchFunc(prev.Backends, name, func(be Backend, n string) int { return strings.Compare(be.Name, n) })
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

func (r reporter) add(sev Severity, field string, reason Reason, format string, args ...any) {
	p := Problem{
		Severity: sev, ObjectRef: r.obj, Field: field, Reason: reason,
		Message: fmt.Sprintf(format, args...),
	}
	// An EndpointSlice is looked at once per Service port that uses it;
	// say what is wrong with it once.
	if r.b.reported[p] {
		return
	}
	r.b.reported[p] = true
	r.b.m.Problems = append(r.b.m.Problems, p)
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

// ours applies the IngressClass rules: spec.ingressClassName first, then
// the legacy annotation, then the default class.
func (b *builder) ours(ing *networkingv1.Ingress) (bool, string) {
	if n := ing.Spec.IngressClassName; n != nil {
		if b.classes[*n] {
			return true, ""
		}
		return false, fmt.Sprintf("spec.ingressClassName %q is not an IngressClass of controller %q", *n, b.opts.ControllerName)
	}
	if n, ok := ing.Annotations[LegacyClassAnnotation]; ok {
		if b.classes[n] {
			return true, ""
		}
		return false, fmt.Sprintf("annotation %s=%q is not an IngressClass of controller %q", LegacyClassAnnotation, n, b.opts.ControllerName)
	}
	if b.defaultC {
		return true, ""
	}
	return false, fmt.Sprintf("no ingress class and no default IngressClass of controller %q", b.opts.ControllerName)
}

func (b *builder) ingress(ing *networkingv1.Ingress) {
	ns, name := ing.Namespace, ing.Name
	r := b.reporter("Ingress", ns, name)
	if err := validateNamespace(ns); err != nil {
		r.warn("metadata.namespace", InvalidName, "%v; Ingress skipped", err)
		return
	}
	if err := validateObjectName(name); err != nil {
		r.warn("metadata.name", InvalidName, "%v; Ingress skipped", err)
		return
	}
	if ok, why := b.ours(ing); !ok {
		r.notice("", NotOurClass, "not served: %s", why)
		return
	}
	b.m.Served = append(b.m.Served, ns+"/"+name)

	if d := ing.Spec.DefaultBackend; d != nil {
		o := Origin{Namespace: ns, Name: name, Field: "spec.defaultBackend"}
		if b.m.DefaultOrigin != nil {
			r.warn(o.Field, Conflict,
				"ignored: the default backend of the older Ingress %s/%s is used", b.m.DefaultOrigin.Namespace, b.m.DefaultOrigin.Name)
		} else if be, _, ok := b.backend(r, o.Field, d); ok {
			b.m.DefaultBackend = be
			b.m.DefaultOrigin = &o
		}
	}

	for i, rule := range ing.Spec.Rules {
		rf := "spec.rules[" + strconv.Itoa(i) + "]"
		hk := HostAny
		if rule.Host != "" {
			if err := validateHost(rule.Host); err != nil {
				r.warn(rf+".host", InvalidHost, "%v; rule skipped", err)
				continue
			}
			hk = HostExact
			if strings.HasPrefix(rule.Host, "*.") {
				hk = HostWildcard
			}
		}
		if rule.HTTP == nil {
			continue
		}
		for j, p := range rule.HTTP.Paths {
			pf := rf + ".http.paths[" + strconv.Itoa(j) + "]"
			b.path(r, rule.Host, hk, pf, p)
		}
	}

	for i, t := range ing.Spec.TLS {
		b.tls(r, fmt.Sprintf("spec.tls[%d]", i), t)
	}
}

func (b *builder) path(r reporter, host string, hk HostKind, field string, p networkingv1.HTTPIngressPath) {
	var match MatchKind
	pt := networkingv1.PathType("")
	if p.PathType != nil {
		pt = *p.PathType
	}
	switch pt {
	case networkingv1.PathTypeExact:
		match = MatchExact
	case networkingv1.PathTypePrefix, networkingv1.PathTypeImplementationSpecific:
		match = MatchPrefix
	case "":
		r.warn(field+".pathType", InvalidPathType, "is required; path skipped")
		return
	default:
		r.warn(field+".pathType", InvalidPathType, "%q is not Exact, Prefix or ImplementationSpecific; path skipped", pt)
		return
	}
	path := p.Path
	if path == "" && match == MatchPrefix {
		// An empty path matches everything, like "/". Only reachable for
		// ImplementationSpecific: the API server requires a path otherwise.
		path = "/"
	}
	if err := validatePath(path); err != nil {
		r.warn(field+".path", InvalidPath, "%v; path skipped", err)
		return
	}
	if p.Backend.Service == nil {
		r.warn(field+".backend", UnsupportedBackend, "only service backends are supported; path skipped")
		return
	}
	// Conflicts are settled before the backend is resolved, so that a
	// path that loses creates no backend and reports nothing else.
	key := routeMapKey(host, path, match)
	k := routeKey{match, key}
	if prev, dup := b.routes[k]; dup {
		r.warn(field, Conflict,
			"host %q %s path %q is already served by %s, which is older (or as old and first by namespace/name); path skipped", displayHost(host), match, p.Path, prev)
		return
	}
	be, ref, ok := b.backend(r, field+".backend", &p.Backend)
	if !ok {
		return
	}
	route := Route{
		Host: host, HostKind: hk, Path: p.Path, Match: match, PathType: pt,
		Key:     key,
		Backend: be, Service: ref,
		Origin: Origin{Namespace: r.obj.Namespace, Name: r.obj.Name, Field: field},
	}
	b.m.Routes = append(b.m.Routes, route)
	b.routes[k] = route.Origin
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
func (b *builder) backend(r reporter, field string, ib *networkingv1.IngressBackend) (string, ServiceRef, bool) {
	ns := r.obj.Namespace
	if ib.Service == nil {
		r.warn(field, UnsupportedBackend, "only service backends are supported; skipped")
		return "", ServiceRef{}, false
	}
	s := ib.Service
	if err := validateServiceName(s.Name); err != nil {
		r.warn(field+".service.name", InvalidBackend, "%v; skipped", err)
		return "", ServiceRef{}, false
	}
	ref := ServiceRef{Namespace: ns, Name: s.Name}
	switch {
	case s.Port.Name != "" && s.Port.Number != 0:
		r.warn(field+".service.port", InvalidBackend, "set both name and number; skipped")
		return "", ref, false
	case s.Port.Name != "":
		if err := validatePortName(s.Port.Name); err != nil {
			r.warn(field+".service.port.name", InvalidBackend, "%v; skipped", err)
			return "", ref, false
		}
		ref.Port = s.Port.Name
	case s.Port.Number > 0 && s.Port.Number <= 65535:
		ref.Port = strconv.Itoa(int(s.Port.Number))
	default:
		r.warn(field+".service.port", InvalidBackend, "needs a name or a number from 1 to 65535; skipped")
		return "", ref, false
	}

	svc := b.services[ns+"/"+s.Name]
	if svc == nil {
		r.warn(field+".service.name", BackendNotFound, "Service %s/%s not found; answering 503", ns, s.Name)
		return UnavailableBackend, ref, true
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		r.warn(field+".service.name", UnsupportedBackend, "Service %s/%s is of type ExternalName, which is not supported; answering 503", ns, s.Name)
		return UnavailableBackend, ref, true
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if (s.Port.Name != "" && p.Name == s.Port.Name) || (s.Port.Name == "" && p.Port == s.Port.Number) {
			sp = p
			break
		}
	}
	if sp == nil {
		r.warn(field+".service.port", BackendPortNotFound, "Service %s/%s has no port %s; answering 503", ns, s.Name, ref.Port)
		return UnavailableBackend, ref, true
	}
	if sp.Protocol != "" && sp.Protocol != corev1.ProtocolTCP {
		r.warn(field+".service.port", UnsupportedBackend, "Service %s/%s port %s is %s, not TCP; answering 503", ns, s.Name, ref.Port, sp.Protocol)
		return UnavailableBackend, ref, true
	}

	name := ns + "_" + s.Name + "_" + strconv.Itoa(int(sp.Port))
	if _, seen := b.backends[name]; !seen {
		be := &Backend{Name: name, Namespace: ns, Service: s.Name, Port: sp.Port, PortName: sp.Name}
		be.Servers = b.endpoints(svc, sp)
		be.Slots = ServerSlots(len(be.Servers))
		be.SlotAddrs = assignSlots(be.Servers, be.Slots, b.previousSlots(name))
		b.backends[name] = be
	}
	if len(b.backends[name].Servers) == 0 {
		r.notice(field+".service", NoEndpoints, "Service %s/%s port %s has no ready endpoints; answering 503 until it has", ns, s.Name, ref.Port)
	}
	return name, ref, true
}

// endpoints returns the ready endpoints of a Service port, sorted and
// without duplicates (an endpoint can sit in two slices while they are
// rebalanced). Ports are matched by name, as kube-proxy does.
func (b *builder) endpoints(svc *corev1.Service, sp *corev1.ServicePort) []netip.AddrPort {
	var out []netip.AddrPort
	for _, es := range b.slices[svc.Namespace+"/"+svc.Name] {
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

func (b *builder) tls(r reporter, field string, t networkingv1.IngressTLS) {
	ns := r.obj.Namespace
	o := Origin{Namespace: ns, Name: r.obj.Name, Field: field}
	if t.SecretName == "" {
		r.warn(field+".secretName", InvalidSecretName, "is empty; TLS entry skipped")
		return
	}
	if err := validateObjectName(t.SecretName); err != nil {
		r.warn(field+".secretName", InvalidSecretName, "%v; TLS entry skipped", err)
		return
	}
	var hosts []string
	for i, h := range t.Hosts {
		if err := validateHost(h); err != nil {
			r.warn(fmt.Sprintf("%s.hosts[%d]", field, i), InvalidHost, "%v; host skipped", err)
			continue
		}
		hosts = append(hosts, h)
	}
	if len(t.Hosts) > 0 && len(hosts) == 0 {
		r.warn(field+".hosts", InvalidHost, "no valid host; TLS entry skipped")
		return
	}

	key := ns + "/" + t.SecretName
	c := b.certs[key]
	if c == nil {
		sec := b.secrets[key]
		if sec == nil {
			r.warn(field+".secretName", TLSSecretNotFound, "Secret %s not found; TLS entry skipped", key)
			return
		}
		data, err := certificatePEM(sec)
		if err != nil {
			r.warn(field+".secretName", TLSSecretInvalid, "Secret %s: %v; TLS entry skipped", key, err)
			return
		}
		c = &Certificate{File: "certs/" + ns + "_" + t.SecretName + ".pem", Namespace: ns, Secret: t.SecretName, PEM: data}
		b.certs[key] = c
	}
	c.Origins = append(c.Origins, o)
	if len(t.Hosts) == 0 {
		// No hosts: HAProxy selects the certificate by the names it
		// carries (crt-list line without SNI filter).
		c.SNI = append(c.SNI, "")
		return
	}
	for _, h := range hosts {
		if owner, taken := b.sniOwner[h]; taken {
			if owner != key {
				r.warn(field+".hosts", Conflict, "host %q already uses Secret %s from an older (or as old and first by namespace/name) Ingress; host skipped", h, owner)
			}
			continue
		}
		b.sniOwner[h] = key
		c.SNI = append(c.SNI, h)
	}
}

func (b *builder) finish() {
	m := b.m
	slices.SortStableFunc(m.Routes, func(x, y Route) int {
		return cmp.Or(
			cmp.Compare(x.HostKind, y.HostKind),
			cmp.Compare(x.Host, y.Host),
			cmp.Compare(x.Match, y.Match),
			// Longest first: the order HAProxy would try them in if it
			// ever scanned a map as a list.
			-cmp.Compare(len(x.Key), len(y.Key)),
			cmp.Compare(x.Key, y.Key),
		)
	})
	for _, be := range b.backends {
		m.Backends = append(m.Backends, *be)
	}
	slices.SortFunc(m.Backends, func(x, y Backend) int { return cmp.Compare(x.Name, y.Name) })

	for _, c := range b.certs {
		hostless := slices.Contains(c.SNI, "")
		sni := slices.DeleteFunc(slices.Clone(c.SNI), func(s string) bool { return s == "" })
		slices.Sort(sni)
		sni = slices.Compact(sni)
		if len(sni) == 0 && !hostless {
			continue // every host it was meant for went to an older Ingress
		}
		// A certificate named both with and without hosts gets one
		// crt-list line, filtered by the explicit hosts: one line cannot
		// both filter and not filter.
		c.SNI = sni
		m.TLSHosts = append(m.TLSHosts, sni...)
		m.Certs = append(m.Certs, *c)
	}
	slices.SortFunc(m.Certs, func(x, y Certificate) int { return cmp.Compare(x.File, y.File) })
	slices.Sort(m.TLSHosts)

	// Grouped by object; within an object, in the order of its fields.
	slices.SortStableFunc(m.Problems, func(x, y Problem) int {
		return cmp.Or(
			cmp.Compare(x.Kind, y.Kind),
			cmp.Compare(x.Namespace, y.Namespace),
			cmp.Compare(x.Name, y.Name),
		)
	})
}
