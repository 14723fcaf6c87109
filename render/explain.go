package render

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Request is what HAProxy's frontend looks at to route a request.
type Request struct {
	HTTPS bool
	// Host is the Host header as sent: any case, maybe with a port. Over
	// HTTPS it is also the SNI name (without the port).
	Host string
	// Path is the path as sent, without the query string; Query is the
	// raw query string, used only in a redirect's Location.
	Path  string
	Query string
}

// ParseRequestURL reads a request from a URL as a user would type it:
// "https://shop.example.com/cart?x=1"; a URL without a scheme is HTTP.
func ParseRequestURL(s string) (Request, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return Request{}, fmt.Errorf("%q is not a URL: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return Request{}, fmt.Errorf("%q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return Request{}, fmt.Errorf("%q has no host", s)
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return Request{HTTPS: u.Scheme == "https", Host: u.Host, Path: path, Query: u.RawQuery}, nil
}

func (r Request) String() string {
	scheme := "http"
	if r.HTTPS {
		scheme = "https"
	}
	s := scheme + "://" + r.Host + r.Path
	if r.Query != "" {
		s += "?" + r.Query
	}
	return s
}

// Lookup is one map lookup the frontend makes, in order.
type Lookup struct {
	Map string // ExactMapFile, PrefixMapFile, RegexMapFile or TLSHostsMapFile
	Key string // what is looked up
	// Found is the map entry that matched (for the prefix map, the longest
	// entry the key begins with), "" if none.
	Found string
}

// Answer is what HAProxy does with a request.
type Answer int

const (
	// AnswerServers: one of Servers answers.
	AnswerServers Answer = iota
	// AnswerRedirect: 308 to Location (plain HTTP to a TLS host).
	AnswerRedirect
	// AnswerUnavailable: 503, the backend has no server.
	AnswerUnavailable
	// AnswerNotFound: 404, no rule matches and no default backend.
	AnswerNotFound
)

// Explanation says which rule serves a request and why, following the
// frontend's steps in the order the template runs them.
type Explanation struct {
	Request Request
	// Host is the Host header as HAProxy keys it (no port, lower case);
	// Wildcard the same with its first label replaced by "*".
	Host, Wildcard string
	Lookups        []Lookup
	Answer         Answer
	// Location is the redirect target for AnswerRedirect.
	Location string
	// Route is the rule that matched; nil when the default backend serves
	// the request (DefaultOrigin says whose, nil for the built-in 404).
	Route         *Route
	DefaultOrigin *Origin
	// DefaultService is the --default-backend-service Service when it
	// serves the request.
	DefaultService *ServiceRef
	// Backend is the HAProxy backend and, unless it is one of the built-in
	// ones, the Service port it stands for.
	Backend     string
	BackendInfo *Backend
	// TLS: the certificate the handshake gets, for HTTPS requests.
	SNI string
	// Cert is nil for the default certificate (DefaultCert true).
	Cert        *Certificate
	DefaultCert bool
	CertBy      string // how it was chosen
	// RedirectCode is the status of AnswerRedirect; RedirectBy says which
	// rule redirects.
	RedirectCode int
	RedirectBy   string
	// Passthrough: the HTTPS connection's SNI name is a passed-through
	// host (ssl-passthrough): Route's endpoints get it unterminated, and
	// no certificate, host or path of HAProxy's is used.
	Passthrough bool
	// ClosedBy are the annotations that make the route fail closed
	// (RoutePolicy.Closed): every request is answered 503.
	ClosedBy []string

	tlsHost bool // the host has a TLS certificate
}

// redirects decides the HTTPS redirect of a plain-HTTP request, after
// routing as the frontend does: a per-Ingress backend follows its
// ssl-redirect annotations, any other backend redirects TLS hosts.
func (m *Model) redirects(e *Explanation) bool {
	e.RedirectCode = 308
	i, ok := slices.BinarySearchFunc(m.Backends, e.Backend, func(b *Backend, name string) int { return strings.Compare(b.Name, name) })
	if !ok || m.Backends[i].Policy == nil {
		return e.tlsHost
	}
	p := m.Backends[i].Policy
	if len(p.Closed) > 0 {
		return false // refused before any redirect
	}
	if p.SSLRedirectCode != 0 {
		e.RedirectCode = p.SSLRedirectCode
	}
	switch p.SSLRedirect {
	case True:
		return true
	case False:
		return false
	}
	return e.tlsHost
}

// Explain says what HAProxy does with r under this model. It mirrors the
// frontend in templates/haproxy.cfg.tmpl step by step; the routing tests
// check it against a real HAProxy on every request they send.
func (m *Model) Explain(r Request) Explanation {
	e := Explanation{Request: r}
	// req.hdr(host),field(1,:),lower
	host, _, _ := strings.Cut(r.Host, ":")
	e.Host = strings.ToLower(host)
	// regsub(^[^.]*[.],*.)
	e.Wildcard = e.Host
	if i := strings.IndexByte(e.Host, '.'); i >= 0 {
		e.Wildcard = "*." + e.Host[i+1:]
	}
	if r.HTTPS && len(m.Passthrough) > 0 {
		// The TCP frontend's SNI lookup, before any termination (the
		// request's host stands for the SNI name, as for certificates).
		l := Lookup{Map: PassthroughMapFile, Key: e.Host}
		for _, rt := range m.Passthrough {
			if rt.Host == e.Host {
				l.Found = e.Host
				e.Lookups = append(e.Lookups, l)
				e.SNI, e.Passthrough, e.Route, e.Backend = e.Host, true, rt, rt.Backend
				e.Answer = AnswerUnavailable
				if i, ok := slices.BinarySearchFunc(m.Backends, rt.Backend, func(b *Backend, name string) int { return strings.Compare(b.Name, name) }); ok {
					if e.BackendInfo = m.Backends[i]; len(e.BackendInfo.Servers) > 0 {
						e.Answer = AnswerServers
					}
				}
				return e
			}
		}
		e.Lookups = append(e.Lookups, l)
	}
	if r.HTTPS {
		m.explainCert(&e)
	}

	if !r.HTTPS {
		tls := ""
		tlsHosts := m.TLSMapHosts()
		for _, h := range []string{e.Host, e.Wildcard} {
			found := ""
			if _, ok := slices.BinarySearch(tlsHosts, h); ok {
				found = h
			}
			e.Lookups = append(e.Lookups, Lookup{Map: TLSHostsMapFile, Key: h, Found: found})
			if found != "" {
				tls = found
				break
			}
		}
		e.tlsHost = tls != ""
	}

	exact := map[string]int{}
	prefix := map[string]int{}
	for i, rt := range m.Routes {
		if rt.Passthrough {
			continue // in no route map: its host's HTTP requests are redirected
		}
		switch rt.Match {
		case MatchExact:
			exact[rt.Key] = i
		case MatchPrefix:
			prefix[rt.Key] = i
		}
	}
	var route *Route
	hosts := []string{e.Host, e.Wildcard, ""}
	for lvl, base := range []string{e.Host + r.Path, e.Wildcard + r.Path, r.Path} {
		rx := m.regexHostOf(HostKind(lvl), hosts[lvl])
		// The host's own paths come first, then its regular expressions
		// (RegexHost.First overrides them: on the first level after the
		// map lookups, on the others before them).
		if lvl > 0 && rx != nil {
			if route = m.explainRegex(&e, rx, false, r.Path); route != nil {
				break
			}
		}
		if i, ok := exact[base]; ok {
			e.Lookups = append(e.Lookups, Lookup{Map: ExactMapFile, Key: base, Found: base})
			route = m.Routes[i]
		} else {
			e.Lookups = append(e.Lookups, Lookup{Map: ExactMapFile, Key: base})
			// map_beg finds the longest entry the key begins with; every
			// prefix entry ends with "/", so only cuts after a "/" can match.
			key := base + "/"
			l := Lookup{Map: PrefixMapFile, Key: key}
			for j := len(key) - 1; j >= 0 && route == nil; j-- {
				if key[j] != '/' {
					continue
				}
				if i, ok := prefix[key[:j+1]]; ok {
					l.Found, route = key[:j+1], m.Routes[i]
				}
			}
			e.Lookups = append(e.Lookups, l)
		}
		if lvl == 0 && rx != nil {
			if rt := m.explainRegex(&e, rx, false, r.Path); rt != nil {
				route = rt
			}
		}
		if route == nil && rx != nil {
			route = m.explainRegex(&e, rx, true, r.Path)
		}
		if route != nil {
			break
		}
	}

	if route != nil {
		rt := route
		e.Route, e.Backend = rt, rt.Backend
		if c := rt.Canary; c != nil && c.Rule.TakesAll() {
			// The primary's backend gets none of the route's requests.
			e.Backend = c.Backend
		}
	} else {
		e.Backend, e.DefaultOrigin, e.DefaultService = m.DefaultBackend, m.DefaultOrigin, m.DefaultService
	}
	if !r.HTTPS && m.redirects(&e) {
		// The host as keyed (no port, lower case), the redirect port
		// setting, then path and query as sent.
		e.Answer = AnswerRedirect
		e.RedirectBy = "the host has a TLS certificate"
		if !e.tlsHost {
			e.RedirectBy = "the Ingress's ssl-redirect annotation"
		}
		e.Location = "https://" + e.Host
		if p := m.Settings.HTTPSRedirectPort; p != 0 && p != 443 {
			e.Location += ":" + strconv.Itoa(p)
		}
		e.Location += r.Path
		if r.Query != "" {
			e.Location += "?" + r.Query
		}
		return e
	}
	switch e.Backend {
	case NotFoundBackend:
		e.Answer = AnswerNotFound
	case UnavailableBackend:
		e.Answer = AnswerUnavailable
	default:
		i, ok := slices.BinarySearchFunc(m.Backends, e.Backend, func(b *Backend, name string) int { return strings.Compare(b.Name, name) })
		if !ok {
			e.Answer = AnswerUnavailable
			break
		}
		be := m.Backends[i]
		e.BackendInfo = be
		if len(be.Servers) == 0 && !be.Resolves() {
			e.Answer = AnswerUnavailable
		}
		if be.RedirectHost != "" {
			e.Answer, e.RedirectCode, e.RedirectBy = AnswerRedirect, 308, "the from-to-www-redirect annotation"
			e.Location = "http://" + be.RedirectHost + r.Path
			if r.HTTPS {
				e.Location = "https://" + be.RedirectHost + r.Path
			}
			if r.Query != "" {
				e.Location += "?" + r.Query
			}
		}
		// The backend's redirect rules answer before any server, in
		// haproxycfg's policyRules order (after the source ranges, rate limits and
		// authentication, which depend on the client).
		if p := be.Policy; p != nil {
			switch {
			case len(p.Closed) > 0:
				e.Answer, e.ClosedBy = AnswerUnavailable, p.Closed
			case p.Redirect != "":
				e.Answer, e.RedirectCode, e.Location = AnswerRedirect, p.RedirectCode, p.Redirect
				e.RedirectBy = "the Ingress's permanent-redirect or temporal-redirect annotation"
			case p.AppRoot != "" && r.Path == "/":
				e.Answer, e.RedirectCode, e.Location = AnswerRedirect, 302, p.AppRoot
				e.RedirectBy = "the Ingress's app-root annotation"
			}
		}
	}
	return e
}

// explainCert follows HAProxy's certificate choice: an exact SNI name,
// then a wildcard one (one label), then the default certificate. A
// crt-list line without names offers the names in its certificate.
func (m *Model) explainCert(e *Explanation) {
	e.SNI = e.Host
	type named struct {
		cert *Certificate
		by   string
	}
	exact, wild := map[string]named{}, map[string]named{}
	add := func(name string, n named) {
		t := exact
		if strings.HasPrefix(name, "*.") {
			t = wild
		}
		if _, dup := t[name]; !dup {
			t[name] = n
		}
	}
	// Names given in crt-list lines first: they are the ones the builder
	// made unique.
	for i := range m.Certs {
		c := &m.Certs[i]
		for _, h := range c.SNI {
			add(h, named{c, "SNI " + h + " (crt-list)"})
		}
	}
	for i, names := range HostlessNames(m.Certs) {
		c := &m.Certs[i]
		for _, h := range names {
			add(h, named{c, "SNI " + h + " (a name in the certificate)"})
		}
	}
	if n, ok := exact[e.SNI]; ok {
		e.Cert, e.CertBy = n.cert, n.by
		return
	}
	if n, ok := wild[e.Wildcard]; ok && e.Wildcard != e.SNI {
		e.Cert, e.CertBy = n.cert, n.by
		return
	}
	e.DefaultCert, e.CertBy = true, "no certificate names "+e.SNI
}

// certificateNames are the DNS names HAProxy indexes a certificate by: its
// subject alternative names, or its common name when it has none.
func certificateNames(data []byte) []string {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil
		}
		names := slices.Clone(c.DNSNames)
		if len(names) == 0 && c.Subject.CommonName != "" {
			names = []string{c.Subject.CommonName}
		}
		for i := range names {
			names[i] = strings.ToLower(names[i])
		}
		return names
	}
}

// String is the explanation for people, one fact per line.
func (e Explanation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", e.Request)
	if e.Passthrough {
		rt := e.Route
		fmt.Fprintf(&b, "  %s %q: found\n", PassthroughMapFile, e.SNI)
		fmt.Fprintf(&b, "  rule: %s, host %s passed through unterminated (ssl-passthrough)\n", rt.Origin, rt.Host)
		fmt.Fprintf(&b, "  service: %s/%s port %s\n", rt.Service.Namespace, rt.Service.Name, rt.Service.Port)
		if e.Answer == AnswerUnavailable {
			fmt.Fprintf(&b, "  => connection closed (backend %s): the Service, its port or its endpoints are missing\n", e.Backend)
			return b.String()
		}
		be := e.BackendInfo
		servers := make([]string, len(be.Servers))
		for i, s := range be.Servers {
			servers[i] = s.String()
		}
		fmt.Fprintf(&b, "  => the TLS connection as it is to backend %s (Service %s/%s port %d), ready endpoints (%d): %s; they present their own certificate\n",
			be.Name, be.Namespace, be.Service, be.Port, len(be.Servers), strings.Join(servers, " "))
		return b.String()
	}
	if e.Request.HTTPS {
		switch {
		case e.DefaultCert:
			fmt.Fprintf(&b, "  certificate: the default one (%s)\n", e.CertBy)
		default:
			fmt.Fprintf(&b, "  certificate: Secret %s/%s, chosen by %s\n", e.Cert.Namespace, e.Cert.Secret, e.CertBy)
			for _, o := range e.Cert.Origins {
				fmt.Fprintf(&b, "    from %s\n", o)
			}
		}
	}
	fmt.Fprintf(&b, "  host %q", e.Host)
	if e.Wildcard != e.Host {
		fmt.Fprintf(&b, ", wildcard %q", e.Wildcard)
	}
	fmt.Fprintf(&b, ", path %q\n", e.Request.Path)
	for _, l := range e.Lookups {
		if l.Found == "" {
			fmt.Fprintf(&b, "  %s %q: no match\n", l.Map, l.Key)
		} else if l.Found == l.Key {
			fmt.Fprintf(&b, "  %s %q: found\n", l.Map, l.Key)
		} else {
			fmt.Fprintf(&b, "  %s %q: found %q\n", l.Map, l.Key, l.Found)
		}
	}
	switch {
	case e.Answer == AnswerRedirect && e.BackendInfo == nil:
		fmt.Fprintf(&b, "  => %d redirect to %s (%s)\n", e.RedirectCode, e.Location, e.RedirectBy)
		return b.String()
	case e.Route != nil:
		rt := e.Route
		switch rt.Via {
		case ViaDefaultBackend:
			fmt.Fprintf(&b, "  rule: no path of host %s matches; the default-backend annotation of %s\n", rt.Host, Origin{Namespace: rt.Origin.Namespace, Name: rt.Origin.Name})
		case ViaWWWRedirect:
			fmt.Fprintf(&b, "  rule: host %s is redirected by the from-to-www-redirect annotation of %s\n", rt.Host, Origin{Namespace: rt.Origin.Namespace, Name: rt.Origin.Name})
		case ViaServerAlias:
			fmt.Fprintf(&b, "  rule: %s (host %s is a server-alias), %s path %q (pathType %s)\n", rt.Origin, rt.Host, rt.Match, rt.Path, rt.PathType)
		default:
			fmt.Fprintf(&b, "  rule: %s, host %s, %s path %q (pathType %s)\n", rt.Origin, displayHost(rt.Host), rt.Match, rt.Path, rt.PathType)
		}
		if rt.Via != ViaWWWRedirect {
			fmt.Fprintf(&b, "  service: %s/%s port %s\n", rt.Service.Namespace, rt.Service.Name, rt.Service.Port)
		}
		if c := rt.Canary; c != nil {
			fmt.Fprintf(&b, "  canary: %s, Service %s/%s port %s (backend %s), takes %s; %s\n",
				c.Origin, c.Service.Namespace, c.Service.Name, c.Service.Port, c.Backend, c.Rule.Describe(), c.Rule.Leaves())
		}
	case e.DefaultOrigin != nil:
		fmt.Fprintf(&b, "  rule: none matches; the default backend of %s\n", *e.DefaultOrigin)
	case e.DefaultService != nil:
		fmt.Fprintf(&b, "  rule: none matches; the controller's default backend (--default-backend-service) %s/%s\n", e.DefaultService.Namespace, e.DefaultService.Name)
	default:
		fmt.Fprintf(&b, "  rule: none matches, and no Ingress has spec.defaultBackend\n")
	}
	switch e.Answer {
	case AnswerRedirect:
		fmt.Fprintf(&b, "  => %d redirect to %s (%s), in backend %s\n", e.RedirectCode, e.Location, e.RedirectBy, e.Backend)
		if e.BackendInfo.RedirectHost == "" {
			fmt.Fprintf(&b, "  unless its source ranges, rate limits or authentication answer first (see `dump`)\n")
		}
	case AnswerNotFound:
		fmt.Fprintf(&b, "  => 404 from HAProxy (backend %s)\n", e.Backend)
	case AnswerUnavailable:
		why := "the Service, its port or its endpoints are missing"
		switch {
		case len(e.ClosedBy) > 0:
			why = "fails closed: " + strings.Join(e.ClosedBy, ", ") + " restricts who may reach the route and cannot be applied (see the problems)"
		case e.BackendInfo != nil && e.BackendInfo.ExternalRefused:
			why = "the ExternalName Service's spec.externalName is refused (see the problems)"
		case e.BackendInfo != nil:
			why = "the Service port has no ready endpoints"
		}
		fmt.Fprintf(&b, "  => 503 from HAProxy (backend %s): %s\n", e.Backend, why)
	default:
		be := e.BackendInfo
		if be.Resolves() {
			fmt.Fprintf(&b, "  => backend %s (ExternalName Service %s/%s port %d): HAProxy resolves %s (resolvers %s, again every %ds) and connects to port %d; 503 while the name does not resolve\n",
				be.Name, be.Namespace, be.Service, be.Port, be.ExternalName, ResolversName, ResolveEvery/1000, be.ExternalPort)
		} else {
			servers := make([]string, len(be.Servers))
			for i, s := range be.Servers {
				servers[i] = s.String()
			}
			fmt.Fprintf(&b, "  => backend %s (Service %s/%s port %d), ready endpoints (%d): %s\n",
				be.Name, be.Namespace, be.Service, be.Port, len(be.Servers), strings.Join(servers, " "))
		}
		if be.Spare {
			fmt.Fprintf(&b, "  %s is a spare backend, given to the Service without a reload; its own would be %s\n", be.Name, be.OwnName)
		}
		if be.Policy != nil {
			fmt.Fprintf(&b, "  the annotations of Ingress %s/%s apply in this backend (see `dump`); they may answer before the endpoints do\n", be.Namespace, be.Ingress)
		}
		if be.Policy != nil && be.Policy.ExtAuth != nil {
			fmt.Fprintf(&b, "  %s\n", be.Policy.ExtAuth.describe(be.Namespace, be.ExtAuthBackend))
		}
	}
	return b.String()
}
