package render

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// An Ingress with route annotations gets its own HAProxy backend for each
// Service port it uses, named variantName(base, ingress): the rules its
// annotations ask for run in that backend, after routing picked it, so a
// request pays only for its own route's rules and the frontend stays the
// same for every Ingress. Backend annotations (BackendSettings) belong to
// the Service: its plain backend and every per-Ingress one get the same.

// variantName is the backend of a Service port for one Ingress's routes.
// ':' appears in no Service port backend name.
func variantName(base, ingress string) string { return base + ":" + ingress }

// ingressPolicy is the route policy of the Ingress being visited, with
// what it needs from other objects.
type ingressPolicy struct {
	ingress string
	ann     *parsedAnnotations
	users   []HTPasswdUser
	// rewrite are the paths rewrite-target replaces.
	rewrite []RewritePath
}

// policyOf returns the route policy of an Ingress, nil when it has none.
func (b *builder) policyOf(r reporter, p *parsedIngress) *ingressPolicy {
	rp := &p.ann.route
	if rp.IsZero() {
		return nil
	}
	ip := &ingressPolicy{ingress: r.obj.Name, ann: p.ann}
	if rp.AuthSecret != "" {
		field := annotationField(p.ann.keys["auth-basic-secret"])
		ip.users = b.authUsers(r, field, r.obj.Namespace, rp.AuthSecret, authBackends(p))
	}
	if rp.RewriteTarget != "" && !rp.RewriteWholePath {
		ip.rewrite = rewriteFor(p)
	}
	return ip
}

// RewritePath is one of an Ingress's paths, as rewrite-target matches it.
type RewritePath struct {
	Path  string // trailing slashes removed for prefixes
	Exact bool
}

// rewriteFor lists an Ingress's valid paths, Exact ones first, then
// prefixes longest first (the order routing prefers), so that the prefix
// replaced is the one that routed the request.
func rewriteFor(p *parsedIngress) []RewritePath {
	var out []RewritePath
	for i := range p.paths {
		pp := &p.paths[i]
		if pp.problem != nil {
			continue
		}
		if pp.match == MatchExact {
			out = append(out, RewritePath{Path: pp.path, Exact: true})
		} else {
			out = append(out, RewritePath{Path: strings.TrimRight(pp.path, "/")})
		}
	}
	slices.SortFunc(out, func(x, y RewritePath) int {
		if x.Exact != y.Exact {
			if x.Exact {
				return -1
			}
			return 1
		}
		return cmpLenThenText(y.Path, x.Path)
	})
	return slices.Compact(out)
}

func cmpLenThenText(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// backendSettings applies a Service's backend annotations to one of its
// backends, reading the CA Secret they name.
func (b *builder) backendSettings(be *Backend, o *settingsClaim) {
	be.Settings = o.ann.backend
	s := &be.Settings
	if s.CASecret == "" {
		return
	}
	r := b.reporter("Ingress", o.namespace, o.name)
	field := annotationField(o.ann.keys["backend-ca-secret"])
	key := o.namespace + "/" + s.CASecret
	sec := b.secrets[key]
	if sec == nil {
		r.warn(field, AnnotationSecretNotFound, "Secret %s not found; Service %s/%s answers 503 until it exists", key, be.Namespace, be.Service)
		be.Broken = true
		return
	}
	data, err := caPEM(sec)
	if err != nil {
		r.warn(field, AnnotationSecretInvalid, "Secret %s: %v; Service %s/%s answers 503 until it is fixed", key, err, be.Namespace, be.Service)
		be.Broken = true
		return
	}
	be.CA = &CAFile{File: "certs/ca_" + o.namespace + "_" + s.CASecret + ".pem", Namespace: o.namespace, Secret: s.CASecret, PEM: data}
}

// CAFile is a backend-ca-secret's bundle, written like a certificate.
type CAFile struct {
	File              string
	Namespace, Secret string
	// PEM holds only re-encoded CERTIFICATE blocks.
	PEM []byte
}

// caPEM reads the certificates under ca.crt, re-encoded: nothing else of
// the Secret reaches the file.
func caPEM(sec *corev1.Secret) ([]byte, error) {
	rest := sec.Data["ca.crt"]
	if len(rest) == 0 {
		return nil, fmt.Errorf("no ca.crt")
	}
	out, n, err := reencodeCertificates(rest, func(_ int, _ *x509.Certificate, err error) error {
		if err != nil {
			return fmt.Errorf("a certificate in ca.crt does not parse")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("no certificate in ca.crt")
	}
	return out, nil
}

// samePolicy is true when two backends get the same annotation output.
func samePolicy(a, b *Backend) bool {
	if a.Settings != b.Settings || a.Ingress != b.Ingress || a.Broken != b.Broken {
		return false
	}
	if (a.CA == nil) != (b.CA == nil) || (a.CA != nil && (a.CA.File != b.CA.File || !bytes.Equal(a.CA.PEM, b.CA.PEM))) {
		return false
	}
	if a.Policy != b.Policy && !reflect.DeepEqual(a.Policy, b.Policy) {
		return false
	}
	return slices.Equal(a.Users, b.Users) && slices.Equal(a.RewritePaths, b.RewritePaths)
}

// haproxyTime writes a duration in HAProxy's time format.
func haproxyTime(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// cidrChunk is how many ranges one acl line holds.
const cidrChunk = 64

// policyData fills in what the "backend" template prints for a Service's
// backend annotations and, on a per-Ingress backend, the route policy.
// Every line is built from typed values and the quoting functions.
func policyData(be *Backend, bd *BackendData) {
	s := &be.Settings
	bd.Balance = "roundrobin"
	if s.Balance != "" {
		bd.Balance = s.Balance
	}
	d := func(format string, args ...any) { bd.Directives = append(bd.Directives, fmt.Sprintf(format, args...)) }
	if s.TimeoutConnect > 0 {
		d("timeout connect %s", haproxyTime(s.TimeoutConnect))
	}
	if s.TimeoutServer > 0 {
		d("timeout server %s", haproxyTime(s.TimeoutServer))
	}
	if s.TimeoutQueue > 0 {
		d("timeout queue %s", haproxyTime(s.TimeoutQueue))
	}
	if s.TimeoutTunnel > 0 {
		d("timeout tunnel %s", haproxyTime(s.TimeoutTunnel))
	}
	var opts strings.Builder
	if s.HealthCheckPath != "" {
		d("option httpchk GET %s", mustQuoteArg(s.HealthCheckPath))
		inter := s.HealthCheckInterval
		if inter == 0 {
			inter = 2 * time.Second
		}
		opts.WriteString(" check inter " + haproxyTime(inter))
	}
	if s.MaxConnServer > 0 {
		opts.WriteString(" maxconn " + strconv.Itoa(s.MaxConnServer))
	}
	switch s.Protocol {
	case "h2c", "grpc":
		opts.WriteString(" proto h2")
	case "https", "h2", "grpcs":
		opts.WriteString(" ssl")
		if be.CA != nil && s.Verify != False {
			opts.WriteString(" verify required ca-file " + mustQuoteArg(be.CA.File))
		} else {
			opts.WriteString(" verify none")
		}
		if s.SNI != "" {
			opts.WriteString(" sni " + mustQuoteArg("str("+s.SNI+")"))
		}
		if s.Protocol != "https" {
			opts.WriteString(" alpn h2")
		}
	}
	if s.Affinity == "cookie" {
		name := s.CookieName
		if name == "" {
			name = "INGRESSCOOKIE"
		}
		line := "cookie " + name + " insert indirect nocache httponly"
		if s.CookieMaxAge > 0 {
			// In whole seconds, HAProxy's unit for maxlife (rounded up).
			line += " maxlife " + strconv.FormatInt(int64((s.CookieMaxAge+time.Second-1)/time.Second), 10)
		}
		d("%s", line)
		bd.Cookie = true
	}
	bd.ServerOptions = opts.String()
	if be.Broken {
		d("# The backend's CA Secret is missing or invalid (see the problems): no request is sent without verification.")
		d("http-request deny deny_status 503")
	}
	if be.Policy != nil {
		policyRules(be, bd)
	}
}

// policyRules writes a per-Ingress backend's route policy, in the order
// requests meet it: HTTPS redirect, source ranges, rate limits,
// authentication, body size, redirects, CORS preflight, rewrite, then the
// response headers.
func policyRules(be *Backend, bd *BackendData) {
	p := be.Policy
	d := func(format string, args ...any) { bd.Directives = append(bd.Directives, fmt.Sprintf(format, args...)) }
	if len(p.Closed) > 0 {
		// Nothing else: no redirect, no hash computed, no request
		// reaches the endpoints.
		d("# An access restriction of the Ingress cannot be applied (see its problems): it fails closed.")
		d("http-request deny deny_status 503")
		return
	}
	code := p.SSLRedirectCode
	if code == 0 {
		code = 308
	}
	switch p.SSLRedirect {
	case Unset:
		d("http-request redirect location %%[var(txn.https)] code %d if !{ ssl_fc } { var(txn.tls) -m found }", code)
	case True:
		d("http-request redirect location %%[var(txn.https)] code %d if !{ ssl_fc }", code)
	}
	if len(p.AllowSources) > 0 || len(p.DenySources) > 0 || p.RateLimitRPS > 0 || p.RateLimitConnections > 0 || p.AuthSecret != "" {
		// txn.client is the frontend's (trusted-proxies); a template
		// that does not set it gets the connection's address.
		d("http-request set-var(txn.client) src unless { var(txn.client) -m found }")
	}
	for i := 0; i < len(p.AllowSources); i += cidrChunk {
		d("acl src_allowed var(txn.client) -m ip %s", joinPrefixes(p.AllowSources[i:min(i+cidrChunk, len(p.AllowSources))]))
	}
	if len(p.AllowSources) > 0 {
		d("http-request deny deny_status 403 unless src_allowed")
	}
	for i := 0; i < len(p.DenySources); i += cidrChunk {
		d("acl src_denied var(txn.client) -m ip %s", joinPrefixes(p.DenySources[i:min(i+cidrChunk, len(p.DenySources))]))
	}
	if len(p.DenySources) > 0 {
		d("http-request deny deny_status 403 if src_denied")
	}
	rateLimited := p.RateLimitRPS > 0 || p.RateLimitConnections > 0
	if rateLimited || p.AuthSecret != "" {
		// One table per backend (HAProxy allows one), tracked once,
		// holds what the rate limits and the authentication failure
		// limit count per client address.
		var store []string
		expire := "30s"
		if rateLimited {
			store = append(store, "http_req_rate(1s)", "conn_cur")
		}
		if p.AuthSecret != "" {
			store = append(store, "gpc0_rate("+haproxyTime(AuthFailureWindow)+")")
			expire = haproxyTime(AuthFailureWindow)
		}
		d("stick-table type ipv6 size 100k expire %s store %s", expire, strings.Join(store, ","))
		d("http-request track-sc0 var(txn.client)")
	}
	if p.RateLimitRPS > 0 {
		d("http-request deny deny_status %d if { sc_http_req_rate(0) gt %d }", p.RateLimitStatus, p.RateLimitRPS)
	}
	if p.RateLimitConnections > 0 {
		d("http-request deny deny_status %d if { sc_conn_cur(0) gt %d }", p.RateLimitStatus, p.RateLimitConnections)
	}
	if p.AuthSecret != "" {
		authRules(be, bd, d)
	}
	if p.BodySizeLimit > 0 {
		d("http-request deny deny_status 413 if { req.hdr_val(content-length) gt %d }", p.BodySizeLimit)
	}
	if p.Redirect != "" {
		d("http-request redirect location %s code %d", mustQuoteLogFormat(p.Redirect), p.RedirectCode)
	}
	if p.AppRoot != "" {
		d("http-request redirect location %s code 302 if { path / }", mustQuoteLogFormat(p.AppRoot))
	}
	if c := p.CORS; c != nil {
		origin := "'*'"
		if len(c.AllowOrigins) != 1 || c.AllowOrigins[0] != "*" {
			quoted := make([]string, len(c.AllowOrigins))
			for i, o := range c.AllowOrigins {
				quoted[i] = mustQuoteArg(o)
			}
			d("acl cors_origin req.hdr(origin) -m str %s", strings.Join(quoted, " "))
			d("http-request set-var(txn.cors_origin) req.hdr(origin) if cors_origin")
			origin = "%[var(txn.cors_origin)]"
		} else {
			d("acl cors_origin req.hdr(origin) -m found")
			d("http-request set-var(txn.cors_origin) str(*) if cors_origin")
		}
		hdrs := " hdr Access-Control-Allow-Origin " + origin +
			" hdr Access-Control-Allow-Methods " + mustQuoteLogFormat(c.AllowMethods) +
			" hdr Access-Control-Allow-Headers " + mustQuoteLogFormat(c.AllowHeaders) +
			" hdr Access-Control-Max-Age " + strconv.Itoa(c.MaxAge)
		if c.AllowCredentials {
			hdrs += " hdr Access-Control-Allow-Credentials true"
		}
		d("http-request return status 204%s if METH_OPTIONS cors_origin { req.hdr(access-control-request-method) -m found }", hdrs)
		d("http-response set-header Access-Control-Allow-Origin %%[var(txn.cors_origin)] if { var(txn.cors_origin) -m found }")
		if c.AllowCredentials {
			d("http-response set-header Access-Control-Allow-Credentials true if { var(txn.cors_origin) -m found }")
		}
	}
	if p.RewriteTarget != "" {
		if p.RewriteWholePath {
			d("http-request set-path %s", mustQuoteLogFormat(p.RewriteTarget))
		}
		target := strings.TrimRight(p.RewriteTarget, "/")
		for i, rp := range be.RewritePaths {
			// The first path that matches is the one replaced; txn.rw
			// remembers which, so a rewritten path is not matched again.
			re, repl := "^"+regexp.QuoteMeta(rp.Path)+"$", p.RewriteTarget
			switch {
			case rp.Exact:
			case target == "":
				re, repl = "^"+regexp.QuoteMeta(rp.Path)+"/?(.*)$", `/\1`
			default:
				re, repl = "^"+regexp.QuoteMeta(rp.Path)+"(/.*)?$", target+`\1`
			}
			d("http-request set-var(txn.rw) int(%d) if !{ var(txn.rw) -m found } { path -m reg %s }", i, mustQuoteArg(re))
			d("http-request replace-path %s %s if { var(txn.rw) -m int %d }", mustQuoteArg(re), mustQuoteLogFormat(repl), i)
		}
	}
	if h := p.HSTS; h != nil {
		v := "max-age=" + strconv.Itoa(h.MaxAge)
		if h.IncludeSubdomains {
			v += "; includeSubDomains"
		}
		d("http-response set-header Strict-Transport-Security %s if { ssl_fc }", mustQuoteLogFormat(v))
	}
}

func joinPrefixes(ps []netip.Prefix) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, " ")
}

// CAFiles are the backend CA bundles the backends use, by file name (the
// backends of one Service share theirs).
func (m *Model) CAFiles() []CAFile {
	var out []CAFile
	for i := range m.Backends {
		if c := m.Backends[i].CA; c != nil {
			out = append(out, *c)
		}
	}
	slices.SortFunc(out, func(x, y CAFile) int { return strings.Compare(x.File, y.File) })
	return slices.CompactFunc(out, func(x, y CAFile) bool { return x.File == y.File })
}
