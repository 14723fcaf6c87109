package render

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// External authentication (auth-url and its companions): before a request
// reaches the endpoints, HAProxy asks an auth service (a Lua action with
// HAProxy's HTTP client, haproxycfg's extauth.lua). A 2xx lets it through
// with the listed response headers copied onto it, 401 and 403 are the
// client's answer (401 becomes a redirect to auth-signin when set), and
// anything else, or no answer, is a 500.
//
// Tenancy: the auth service must be a Service of the Ingress's own
// namespace, named in a cluster DNS form. It becomes an ordinary backend
// (its endpoints followed like any other Service's) and HAProxy connects
// to one of its servers, never to a name it resolves: an Ingress can make
// HAProxy talk only to what its own namespace runs. Another namespace's
// Service, an IP address or an outside host name is refused, and the
// Ingress fails closed.

// ExtAuthPolicy is what auth-url and its companions ask for, validated.
type ExtAuthPolicy struct {
	// Service and Port are the auth service, a Service of the Ingress's
	// namespace and one of its ports (by number).
	Service string
	Port    int32
	// HostPort is the URL's authority as written (the Host header the auth
	// service gets); PathQuery its path and query ("/" when empty).
	HostPort  string
	PathQuery string
	// Method is GET, HEAD, POST, PUT or DELETE (sent without a body).
	Method string
	// Signin, when set, turns a 401 into a 302 to it, with the original
	// URL in RedirectParam ("rd") unless its query already has that
	// parameter. It is an absolute http(s) URL or a path, and may hold
	// the variables of SigninVariables.
	Signin        string
	RedirectParam string
	// ResponseHeaders are the auth service's response headers copied onto
	// the request (lower case); a client's own are removed first.
	ResponseHeaders []string
	// ThroughHost: the URL's authority is $host (oauth2-proxy's usual
	// https://$host/oauth2/auth). The auth service is then whatever
	// backend of the Ingress's own namespace the load balancer routes the
	// request's host and PathQuery's path to, found per request in the
	// routing maps, and asked with the request's Host; Service is empty.
	ThroughHost bool
	// namespace is the URL's namespace ("" when it names none), checked
	// against the Ingress's by finishExtAuth.
	namespace string
}

// ExtAuthThroughHostPrefix starts the Lua action's backend argument for a
// ThroughHost auth-url: "@host:<namespace>", the namespace whose backends
// the route found may belong to.
const ExtAuthThroughHostPrefix = "@host:"

// ExtAuthTimeoutMS bounds the wait for the auth service's answer in one
// attempt of the request (the HTTP client's "timeout"). HAProxy's HTTP
// client (2.6 and 3.0) makes at most ExtAuthAttempts attempts, retrying by
// itself, and waits up to its own fixed ExtAuthConnectTimeoutMS for each
// connection: measured, a slow answer is given up after 4 × 2 s, an
// endpoint that never accepts the connection after 4 × 5 s. Neither can
// be set per request on HAProxy 2.6 (httpclient.retries and
// httpclient.timeout.connect do not exist there).
const (
	ExtAuthTimeoutMS        = 2000
	ExtAuthConnectTimeoutMS = 5000
	ExtAuthAttempts         = 4
)

// MaxAuthResponseHeaders bounds auth-response-headers.
const MaxAuthResponseHeaders = 32

// extAuthMethods are the methods HAProxy's Lua HTTP client has a call for.
var extAuthMethods = []string{"DELETE", "GET", "HEAD", "POST", "PUT"}

// forbiddenCopyHeaders frame or route the request: an auth service setting
// them on the request would change how it is read (Content-Length,
// Transfer-Encoding: request smuggling) or where it goes.
var forbiddenCopyHeaders = []string{"connection", "content-length", "expect", "host", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}

// SigninVariables are the NGINX variables an auth-signin URL may hold, as
// ingress-nginx's do ("https://$host/oauth2/start?rd=$escaped_request_uri"):
// HAProxy's Lua replaces them per request. Any other '$' is refused.
var SigninVariables = []string{"$best_http_host", "$escaped_request_uri", "$host", "$http_host", "$pass_access_scheme", "$request_uri", "$scheme"}

func extAuth(a *parsedAnnotations) *ExtAuthPolicy {
	if a.route.ExtAuth == nil {
		a.route.ExtAuth = &ExtAuthPolicy{Method: "GET", RedirectParam: "rd"}
	}
	return a.route.ExtAuth
}

// parseAuthURL reads auth-url: http://<service>[.<namespace>[.svc[.cluster.local]]][:port][/path][?query].
func parseAuthURL(v string, a *parsedAnnotations) error {
	const want = "want http://<service>[.<namespace>[.svc[.cluster.local]]][:port]/path naming a Service of the Ingress's namespace, or http(s)://$host/path"
	if rest, ok := cutAny(v, "http://$host", "https://$host"); ok {
		return parseAuthThroughHost(rest, a)
	}
	if strings.Contains(v, "$") {
		return fmt.Errorf("NGINX variables are not supported: %s", want)
	}
	if err := validateRedirectURL(v); err != nil {
		return fmt.Errorf("%v: %s", err, want)
	}
	u, err := url.Parse(v)
	if err != nil {
		return fmt.Errorf("%s", want)
	}
	if u.Scheme != "http" {
		return fmt.Errorf("%s is not supported (the auth service is reached over plain HTTP inside the cluster): %s", u.Scheme, want)
	}
	if u.Fragment != "" || strings.Contains(v, "#") {
		return fmt.Errorf("a fragment is not sent: %s", want)
	}
	host := u.Hostname()
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return fmt.Errorf("an IP address is not a Service (external auth hosts are not supported): %s", want)
	}
	labels := strings.Split(host, ".")
	ns := ""
	switch {
	case len(labels) == 1:
	case len(labels) == 2, len(labels) == 3 && labels[2] == "svc", len(labels) == 5 && labels[2] == "svc" && labels[3] == "cluster" && labels[4] == "local":
		ns = labels[1]
	default:
		return fmt.Errorf("host %s is not a Service in a cluster DNS form (external auth hosts are not supported): %s", truncate(host), want)
	}
	if err := validateServiceName(labels[0]); err != nil {
		return fmt.Errorf("service %v: %s", err, want)
	}
	if ns != "" && validateObjectName(ns) != nil {
		return fmt.Errorf("namespace %s: %s", truncate(ns), want)
	}
	port := 80
	if p := u.Port(); p != "" {
		if port, err = parseDecimal(p, 1, 65535, "a port"); err != nil {
			return fmt.Errorf("port %s: %s", truncate(p), want)
		}
	}
	pq := u.EscapedPath()
	if pq == "" {
		pq = "/"
	}
	if u.RawQuery != "" || u.ForceQuery {
		pq += "?" + u.RawQuery
	}
	if err := validateAnnotationPath(strings.SplitN(pq, "?", 2)[0]); err != nil {
		return fmt.Errorf("path: %v", err)
	}
	e := extAuth(a)
	e.Service, e.Port, e.HostPort, e.PathQuery, e.namespace = labels[0], int32(port), u.Host, pq, ns
	return nil
}

// cutAny cuts the first of the prefixes v starts with.
func cutAny(v string, prefixes ...string) (string, bool) {
	for _, p := range prefixes {
		if rest, ok := strings.CutPrefix(v, p); ok {
			return rest, true
		}
	}
	return "", false
}

// parseAuthThroughHost reads what follows http(s)://$host in auth-url: a
// path and query, which the request's host completes.
func parseAuthThroughHost(rest string, a *parsedAnnotations) error {
	const want = "want http(s)://$host/path[?query] (the request's host; no port, no other variable)"
	if rest != "" && !strings.HasPrefix(rest, "/") {
		return fmt.Errorf("%s: %s", truncate(rest), want)
	}
	if strings.Contains(rest, "$") || strings.Contains(rest, "#") {
		return fmt.Errorf("variables and fragments are not supported after $host: %s", want)
	}
	if rest == "" {
		rest = "/"
	}
	u, err := url.Parse("http://example.com" + rest)
	if err != nil || validateRedirectURL("http://example.com"+rest) != nil {
		return fmt.Errorf("%s", want)
	}
	pq := u.EscapedPath()
	if u.RawQuery != "" || u.ForceQuery {
		pq += "?" + u.RawQuery
	}
	if err := validateAnnotationPath(u.EscapedPath()); err != nil {
		return fmt.Errorf("path: %v", err)
	}
	e := extAuth(a)
	e.ThroughHost, e.Service, e.Port, e.HostPort, e.PathQuery, e.namespace = true, "", 0, "$host", pq, ""
	return nil
}

// parseAuthSignin reads auth-signin: an absolute http(s) URL or a path,
// with SigninVariables allowed.
func parseAuthSignin(v string, a *parsedAnnotations) error {
	const want = "want an absolute http or https URL or a path (NGINX variables: $host, $http_host, $best_http_host, $scheme, $pass_access_scheme, $request_uri, $escaped_request_uri)"
	if strings.Contains(v, "#") {
		return fmt.Errorf("a fragment cannot carry the redirect parameter: %s", want)
	}
	// Each variable is checked as if it were a value of its kind.
	check := v
	for i := strings.IndexByte(check, '$'); i >= 0; i = strings.IndexByte(check, '$') {
		name := check[i:]
		if j := strings.IndexFunc(name[1:], func(r rune) bool {
			return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}); j >= 0 {
			name = name[:j+1]
		}
		if !slices.Contains(SigninVariables, name) {
			return fmt.Errorf("variable %s is not supported: %s", truncate(name), want)
		}
		repl := "example.com"
		switch name {
		case "$scheme", "$pass_access_scheme":
			repl = "https"
		case "$request_uri", "$escaped_request_uri":
			repl = "/x"
		}
		check = check[:i] + repl + check[i+len(name):]
	}
	if strings.HasPrefix(check, "/") {
		u, err := url.Parse(check)
		if err != nil || validateRedirectURL("https://example.com"+check) != nil || validateAnnotationPath(u.EscapedPath()) != nil {
			return fmt.Errorf("%s", want)
		}
	} else if err := validateRedirectURL(check); err != nil {
		return fmt.Errorf("%v: %s", err, want)
	}
	extAuth(a).Signin = v
	return nil
}

func parseAuthMethod(v string, a *parsedAnnotations) error {
	if !slices.Contains(extAuthMethods, v) {
		return fmt.Errorf("want one of %s", strings.Join(extAuthMethods, ", "))
	}
	extAuth(a).Method = v
	return nil
}

func parseAuthRedirectParam(v string, a *parsedAnnotations) error {
	if v == "" || len(v) > 64 || strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != "" {
		return fmt.Errorf("want a query parameter name: letters, digits, '-', '_' and '.', at most 64")
	}
	extAuth(a).RedirectParam = v
	return nil
}

// parseAuthResponseHeaders reads comma-separated header names.
func parseAuthResponseHeaders(v string, a *parsedAnnotations) error {
	list, err := parseTokenList(v, "header names")
	if err != nil {
		return err
	}
	var names []string
	for _, n := range strings.Split(list, ", ") {
		n = strings.ToLower(n)
		if slices.Contains(forbiddenCopyHeaders, n) {
			return fmt.Errorf("%s frames or routes the request and is never copied from the auth service", n)
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) > MaxAuthResponseHeaders {
		return fmt.Errorf("%d header names: want at most %d", len(names), MaxAuthResponseHeaders)
	}
	extAuth(a).ResponseHeaders = names
	return nil
}

// extAuthNames are the annotations of ours that make up ExtAuthPolicy.
var extAuthNames = []string{"auth-method", "auth-response-headers", "auth-signin", "auth-signin-redirect-param", "auth-url"}

// finishExtAuth checks what needs the Ingress's namespace or more than
// one annotation: auth-url's namespace is the Ingress's (another one
// fails closed), and the companions without auth-url are ignored.
func finishExtAuth(ns string, a *parsedAnnotations, values map[string]annotationValue, report func(string, *localProblem)) {
	e := a.route.ExtAuth
	if e == nil {
		return
	}
	if e.Service == "" && !e.ThroughHost {
		a.route.ExtAuth = nil
		for _, name := range extAuthNames {
			if av, ok := values[name]; ok && a.keys[name] != "" {
				report(av.key, notice(annotationField(av.key), InvalidAnnotation, "needs auth-url (the auth service); ignored"))
			}
		}
		return
	}
	if len(a.route.Closed) > 0 {
		// The paths answer 503 whatever the auth service says.
		a.route.ExtAuth = nil
		return
	}
	if e.namespace != "" && e.namespace != ns {
		key := values["auth-url"].key
		report(key, warning(annotationField(key), InvalidAnnotation,
			"the auth service is in namespace %s: only a Service of the Ingress's own namespace (%s) may authenticate its requests (external auth hosts are not supported); %s", truncate(e.namespace), ns, closedMessage))
		a.route.Closed = append(a.route.Closed, key)
		a.route.ExtAuth = nil
		return
	}
	e.namespace = ""
}

// extAuthBackend resolves the auth service of the Ingress being visited to
// its backend, made like any Service port's and recorded in the model
// (Model.extAuth) so that the engine keeps it. A Service that is missing,
// of another type or without the port resolves to "": every request is
// then answered 500, as when the auth service does not answer.
func (b *builder) extAuthBackend(r reporter, field string, ns string, e *ExtAuthPolicy) string {
	if e.ThroughHost {
		return ExtAuthThroughHostPrefix + ns
	}
	svc := b.services[ns+"/"+e.Service]
	var sp *corev1.ServicePort
	if svc != nil && svc.Spec.Type != corev1.ServiceTypeExternalName {
		for i := range svc.Spec.Ports {
			if p := &svc.Spec.Ports[i]; p.Port == e.Port && (p.Protocol == "" || p.Protocol == corev1.ProtocolTCP) {
				sp = p
			}
		}
	}
	if sp == nil {
		r.warn(field, BackendNotFound, "auth service %s/%s has no TCP port %d (or is missing, or of type ExternalName); requests are answered 500 until it has", ns, e.Service, e.Port)
		return ""
	}
	name := backendName(ns, e.Service, e.Port)
	cur := b.cur
	b.cur = nil // the auth service's own backend carries no route policy
	be := b.backends[name]
	if be == nil {
		// newBackend ends a capture (primaryPolicy's) when it is done:
		// what this Ingress's policy reports stays captured.
		capture := b.capture
		be = b.newBackend(name, svc, sp)
		b.capture = capture
		b.backends[name] = be
	}
	b.cur = cur
	if len(be.Servers) == 0 {
		r.notice(field, NoEndpoints, "auth service %s/%s port %d has no ready endpoints; requests are answered 500 until it has", ns, e.Service, e.Port)
	}
	b.m.extAuth = append(b.m.extAuth, name)
	return name
}

// ExtAuthArgs are the arguments of the Lua action, in order, unquoted:
// backend, Host, path and query, method, the headers to copy ("-": none),
// the sign-in URL ("-": none) and its redirect parameter.
func ExtAuthArgs(backend string, e *ExtAuthPolicy) []string {
	copyList, signin, rd := "-", "-", "-"
	if len(e.ResponseHeaders) > 0 {
		copyList = strings.Join(e.ResponseHeaders, ",")
	}
	if e.Signin != "" {
		signin = e.Signin
		// As ingress-nginx: the original URL is added unless the sign-in
		// URL carries the parameter already.
		_, query, _ := strings.Cut(e.Signin, "?")
		if q, _ := url.ParseQuery(query); !q.Has(e.RedirectParam) {
			rd = e.RedirectParam
		}
	}
	return []string{backend, e.HostPort, e.PathQuery, e.Method, copyList, signin, rd, strconv.Itoa(ExtAuthTimeoutMS)}
}

// nginxText validates a value that is accepted and not used: printable
// text, at most 256 characters.
func nginxText(v string, _ nginxContext) (string, error) {
	if v == "" {
		return "", fmt.Errorf("empty")
	}
	return "", checkText(v, 256)
}

// nonEmpty keeps a value, refusing an empty one: an empty auth-url still
// asks for authentication, so it fails closed instead of meaning none.
func nonEmpty(v string, _ nginxContext) (string, error) {
	if v == "" {
		return "", fmt.Errorf("empty: want a URL")
	}
	return v, nil
}

// describe says, for explain, who is asked first.
func (e *ExtAuthPolicy) describe(ns, backend string) string {
	if e.ThroughHost {
		return fmt.Sprintf("auth-url: every request first asks the backend of namespace %s that this load balancer routes the request's host and %s to (the request's Host sent): 2xx passes, 401 and 403 answer, anything else (no such route, another namespace's) 500", ns, e.PathQuery)
	}
	if backend == "" {
		return fmt.Sprintf("auth-url: the auth service %s/%s port %d cannot be asked (see the problems): every request is answered 500", ns, e.Service, e.Port)
	}
	return fmt.Sprintf("auth-url: every request first asks the auth service %s/%s port %d (backend %s): 2xx passes, 401 and 403 answer, anything else 500", ns, e.Service, e.Port, backend)
}
