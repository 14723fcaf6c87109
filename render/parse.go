package render

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
)

// An Ingress is validated in two steps. parseIngress does everything that
// depends on the Ingress alone (names, hosts, paths, path types, backend
// references, TLS entries), so that its result can be kept while the
// object does not change; the builder then applies it against the rest of
// the cluster (class, conflicts with older Ingresses, Services,
// endpoints, Secrets). Problems come out in the same order either way:
// the parsed form keeps them at the place of the field they are about.

// localProblem is a problem found by parseIngress, reported when the
// parsed Ingress is applied.
type localProblem struct {
	sev    Severity
	field  string
	Reason Reason
	msg    string
}

func warning(field string, reason Reason, format string, args ...any) *localProblem {
	return &localProblem{sev: Warning, field: field, Reason: reason, msg: fmt.Sprintf(format, args...)}
}

// parsedIngress is what an Ingress says, validated on its own.
type parsedIngress struct {
	// invalid: the Ingress is skipped (an invalid namespace or name).
	invalid *localProblem
	// key is "namespace/name", as Model.Served lists it.
	key            string
	defaultBackend *parsedBackend
	paths          []parsedPath
	tls            []parsedTLS
	// ann is what the annotations say; services are the Services
	// (namespace/name) the valid backend references name, sorted.
	ann      *parsedAnnotations
	services []string
}

// parsedPath is one path of a rule, or a problem with its rule or path
// that skips it.
//
// The engine keeps one for every path of the cluster: the fields of a
// byte are last, together, so that a path is 224 bytes and an Ingress's
// two paths fill a 448-byte block (they were 256 each, 512 the pair).
type parsedPath struct {
	problem *localProblem
	host    string
	field   string
	path    string // as written
	pt      networkingv1.PathType
	key     string // routeMapKey
	backend parsedBackend
	// order sorts routes (routeOrder).
	order string
	// regex is a MatchRegex path's translation; created is the
	// Ingress's creation time (Route.created).
	regex   *regexPath
	created int64
	hk      HostKind
	match   MatchKind
	// weak: made by the default-backend or server-alias annotation
	// (hostroutes.go), below every rule's path.
	weak weakKind
	// passthrough: a path of an ssl-passthrough Ingress that is served
	// (passthroughPaths).
	passthrough bool
}

// parsedBackend is a backend reference. A reference that is invalid in
// itself is reported only when it is used (a path that loses a conflict
// reports the conflict alone).
type parsedBackend struct {
	// field is the path's ("spec.rules[0].http.paths[1]") when ofPath,
	// else the backend's ("spec.defaultBackend"); see fieldName.
	field  string
	ofPath bool
	// kind is a Service port (0), the Service's first port, or the
	// from-to-www-redirect backend (hostroutes.go); in the padding after
	// ofPath, as portNumber, so that a path costs no more.
	kind backendKind
	// portNumber is 0 when the port is given by name (ref.Port); when
	// it is not, name is the HAProxy backend the reference resolves to.
	portNumber int32
	problem    *localProblem
	ref        ServiceRef
	name       string
}

// parsedTLS is one spec.tls entry.
type parsedTLS struct {
	field string
	// problems are reported first; skip: the entry is not used.
	problems   []*localProblem
	skip       bool
	secretName string
	hosts      []string // the valid ones
	hostless   bool     // no hosts listed: names from the certificate
}

func parseIngress(ing *networkingv1.Ingress, compat Compat) *parsedIngress {
	ns, name := ing.Namespace, ing.Name
	p := &parsedIngress{key: ns + "/" + name}
	if err := validateNamespace(ns); err != nil {
		p.invalid = warning("metadata.namespace", InvalidName, "%v; Ingress skipped", err)
		return p
	}
	if err := validateObjectName(name); err != nil {
		p.invalid = warning("metadata.name", InvalidName, "%v; Ingress skipped", err)
		return p
	}
	if d := ing.Spec.DefaultBackend; d != nil {
		pb := parseBackend(ns, "spec.defaultBackend", false, d)
		p.defaultBackend = &pb
	}
	n := 0
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP != nil {
			n += len(rule.HTTP.Paths)
		}
	}
	p.paths = make([]parsedPath, 0, n)
	// Annotations first: use-regex decides how the paths are read.
	p.ann = parseAnnotations(ns, ing.Annotations, compat)
	regex := p.ann.useRegex == True
	for i, rule := range ing.Spec.Rules {
		rf := "spec.rules[" + strconv.Itoa(i) + "]"
		hk := HostAny
		if rule.Host != "" {
			if err := validateHost(rule.Host); err != nil {
				p.paths = append(p.paths, parsedPath{problem: warning(rf+".host", InvalidHost, "%v; rule skipped", err)})
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
		for j, hp := range rule.HTTP.Paths {
			pf := rf + ".http.paths[" + strconv.Itoa(j) + "]"
			pp := parsePath(ns, rule.Host, hk, pf, hp, regex)
			pp.created = ing.CreationTimestamp.UnixNano()
			p.paths = append(p.paths, pp)
		}
	}
	for i, t := range ing.Spec.TLS {
		p.tls = append(p.tls, parseTLS("spec.tls["+strconv.Itoa(i)+"]", t))
	}
	if p.ann.route.Passthrough {
		p.passthroughPaths()
	}
	p.addHostRoutes(ns)
	if d := p.defaultBackend; d != nil && d.problem == nil {
		p.addService(ns, d.ref.Name)
	}
	for i := range p.paths {
		if pp := &p.paths[i]; pp.problem == nil && pp.backend.problem == nil {
			p.addService(ns, pp.backend.ref.Name)
		}
	}
	slices.Sort(p.services)
	p.services = slices.Compact(p.services)
	return p
}

// addService adds namespace/name to services unless it is the last one
// added: most paths of an Ingress name the same Service as the path
// before, whose key is then not made again. (Not a search of them all:
// an Ingress may have thousands of paths; the caller sorts and compacts.)
func (p *parsedIngress) addService(ns, name string) {
	if n := len(p.services); n > 0 {
		if s := p.services[n-1]; len(s) == len(ns)+1+len(name) && s[len(ns)+1:] == name {
			return // every entry is of namespace ns
		}
	}
	p.services = append(p.services, ns+"/"+name)
}

func parsePath(ns, host string, hk HostKind, field string, p networkingv1.HTTPIngressPath, regex bool) parsedPath {
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
		return parsedPath{problem: warning(field+".pathType", InvalidPathType, "is required; path skipped")}
	default:
		return parsedPath{problem: warning(field+".pathType", InvalidPathType, "%q is not Exact, Prefix or ImplementationSpecific; path skipped", pt)}
	}
	path := p.Path
	if path == "" && match == MatchPrefix {
		// An empty path matches everything, like "/". Only reachable for
		// ImplementationSpecific: the API server requires a path otherwise.
		path = "/"
	}
	if regex {
		return parseRegexPath(ns, host, hk, field, p, pt)
	}
	if err := validatePath(path); err != nil {
		return parsedPath{problem: warning(field+".path", InvalidPath, "%v; path skipped", err)}
	}
	if p.Backend.Service == nil {
		return parsedPath{problem: warning(field+".backend", UnsupportedBackend, "only service backends are supported; path skipped")}
	}
	pp := parsedPath{
		host: host, hk: hk, field: field, path: p.Path, match: match, pt: pt,
		key:     routeMapKey(host, path, match),
		backend: parseBackend(ns, field, true, &p.Backend),
	}
	pp.order = routeOrder(hk, host, match, pp.key)
	return pp
}

// routeOrder is a string whose byte order is the order of Model.Routes:
// host kind, host, match kind, longest key first, key.
func routeOrder(hk HostKind, host string, match MatchKind, key string) string {
	b := make([]byte, 0, 5+len(host)+len(key))
	b = append(b, byte(hk))
	b = append(b, host...)
	b = append(b, 0, byte(match))
	// len(key) is below 1<<16 (validated host and path lengths).
	inv := 0xFFFF - len(key)
	b = append(b, byte(inv>>8), byte(inv))
	b = append(b, key...)
	return string(b)
}

// fieldName is the backend's field. A path's is made when a problem names
// it, not kept: at 10k Ingresses, one string per path.
func (pb *parsedBackend) fieldName() string {
	if pb.ofPath {
		return pb.field + ".backend"
	}
	return pb.field
}

// parseBackend parses the backend of the path at field (ofPath), or the
// backend at field.
func parseBackend(ns, field string, ofPath bool, ib *networkingv1.IngressBackend) parsedBackend {
	pb := parsedBackend{field: field, ofPath: ofPath}
	field = pb.fieldName()
	if ib.Service == nil {
		pb.problem = warning(field, UnsupportedBackend, "only service backends are supported; skipped")
		return pb
	}
	s := ib.Service
	if err := validateServiceName(s.Name); err != nil {
		pb.problem = warning(field+".service.name", InvalidBackend, "%v; skipped", err)
		return pb
	}
	pb.ref = ServiceRef{Namespace: ns, Name: s.Name}
	switch {
	case s.Port.Name != "" && s.Port.Number != 0:
		pb.problem = warning(field+".service.port", InvalidBackend, "set both name and number; skipped")
	case s.Port.Name != "":
		if err := validatePortName(s.Port.Name); err != nil {
			pb.problem = warning(field+".service.port.name", InvalidBackend, "%v; skipped", err)
			return pb
		}
		pb.ref.Port = s.Port.Name
	case s.Port.Number > 0 && s.Port.Number <= 65535:
		pb.ref.Port, pb.portNumber = strconv.Itoa(int(s.Port.Number)), s.Port.Number
		pb.name = backendName(ns, s.Name, s.Port.Number)
	default:
		pb.problem = warning(field+".service.port", InvalidBackend, "needs a name or a number from 1 to 65535; skipped")
	}
	return pb
}

func parseTLS(field string, t networkingv1.IngressTLS) parsedTLS {
	pt := parsedTLS{field: field, secretName: t.SecretName, hostless: len(t.Hosts) == 0}
	if t.SecretName == "" {
		pt.problems, pt.skip = []*localProblem{warning(field+".secretName", InvalidSecretName, "is empty; TLS entry skipped")}, true
		return pt
	}
	if err := validateObjectName(t.SecretName); err != nil {
		pt.problems, pt.skip = []*localProblem{warning(field+".secretName", InvalidSecretName, "%v; TLS entry skipped", err)}, true
		return pt
	}
	for i, h := range t.Hosts {
		if err := validateHost(h); err != nil {
			pt.problems = append(pt.problems, warning(fmt.Sprintf("%s.hosts[%d]", field, i), InvalidHost, "%v; host skipped", err))
			continue
		}
		pt.hosts = append(pt.hosts, h)
	}
	if len(t.Hosts) > 0 && len(pt.hosts) == 0 {
		pt.problems, pt.skip = append(pt.problems, warning(field+".hosts", InvalidHost, "no valid host; TLS entry skipped")), true
	}
	return pt
}

// canary reports whether the Ingress is a canary (RoutePolicy.Canary).
func (p *parsedIngress) canary() bool { return p.ann != nil && p.ann.route.Canary != nil }
