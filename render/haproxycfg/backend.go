package haproxycfg

import (
	"bytes"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// A backend's lines beyond its servers: the backend annotations of its
// Service (policyData) and, on a per-Ingress backend, the route policy
// (policyRules) with its Basic authentication (authRules). The model
// (render.Backend: Settings, Policy, Users, CA) says what; this file says
// how HAProxy is told.

// samePolicy is true when two backends get the same annotation output.
func samePolicy(a, b *render.Backend) bool {
	if a.Settings != b.Settings || a.Ingress != b.Ingress || a.Broken != b.Broken {
		return false
	}
	if (a.CA == nil) != (b.CA == nil) || (a.CA != nil && (a.CA.File != b.CA.File || !bytes.Equal(a.CA.PEM, b.CA.PEM))) {
		return false
	}
	if a.Policy != b.Policy && !reflect.DeepEqual(a.Policy, b.Policy) {
		return false
	}
	// Every Backend field the section's lines come from: a field missing
	// here lets the section cache serve a stale section.
	return slices.Equal(a.Users, b.Users) && slices.Equal(a.RewritePaths, b.RewritePaths) && a.ExtAuthBackend == b.ExtAuthBackend &&
		a.ErrorBackend == b.ErrorBackend && a.RedirectHost == b.RedirectHost && a.TCP == b.TCP && a.SendProxy == b.SendProxy &&
		a.ExternalName == b.ExternalName && a.ExternalPort == b.ExternalPort && a.ExternalRefused == b.ExternalRefused
}

// haproxyTime writes a duration in HAProxy's time format.
func haproxyTime(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// cidrChunk is how many ranges one acl line holds. HAProxy reads at most
// 64 words on a line (MAX_LINE_ARGS) and fails the whole configuration on
// a longer one ("too many words"), so the acl's own words must fit beside
// the ranges: "acl src_allowed var(txn.client) -m ip" is five.
const cidrChunk = 50

// policyData fills in what the "backend" template prints for a Service's
// backend annotations and, on a per-Ingress backend, the route policy.
// Every line is built from typed values and the quoting functions.
func policyData(be *render.Backend, bd *BackendData) {
	s := &be.Settings
	d := func(format string, args ...any) { bd.Directives = append(bd.Directives, fmt.Sprintf(format, args...)) }
	bd.Balance = "roundrobin"
	switch s.Balance {
	case "":
	case "roundrobin", "leastconn", "random":
		bd.Balance = s.Balance
	default:
		bd.Balance = hashBalance(s.Balance, s.BalanceKey)
		// Consistent, as ingress-nginx's upstream-hash-by: an endpoint
		// coming or going (a slot filled or emptied at run time) moves
		// only the keys it had.
		d("hash-type consistent")
	}
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
		if be.CA != nil && s.Verify != render.False {
			opts.WriteString(" verify required ca-file " + mustQuoteArg(be.CA.File))
		} else {
			opts.WriteString(" verify none")
		}
		if sni := s.SNI; sni != "" || be.Resolves() {
			// An ExternalName's TLS server is named by its name unless
			// backend-sni says otherwise: what the name's certificate
			// carries, and what a shared HTTPS front end selects by.
			if sni == "" {
				sni = be.ExternalName
			}
			opts.WriteString(" sni " + mustQuoteArg("str("+sni+")"))
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
		if s.CookieSecure == render.True {
			line += " secure"
		}
		if s.CookieDomain != "" {
			line += " domain " + mustQuoteArg(s.CookieDomain)
		}
		if s.CookieMaxAge > 0 {
			// In whole seconds, HAProxy's unit for maxlife (rounded up);
			// the browser keeps the cookie as long (Max-Age).
			secs := strconv.FormatInt(int64((s.CookieMaxAge+time.Second-1)/time.Second), 10)
			line += " maxlife " + secs + " attr " + mustQuoteArg("Max-Age="+secs)
		}
		if s.CookiePath != "" {
			// HAProxy writes "path=/" first: the last Path a browser
			// reads is the one it keeps (RFC 6265, 5.3).
			line += " attr " + mustQuoteArg("Path="+s.CookiePath)
		}
		if s.CookieSameSite != "" {
			line += " attr " + mustQuoteArg("SameSite="+s.CookieSameSite)
		}
		d("%s", line)
		if s.CookieChangeOnFailure {
			d("option redispatch")
		}
		if s.CookieSecure == render.Unset {
			// As ingress-nginx: Secure on a cookie set over HTTPS. After
			// the response: HAProxy inserts the cookie after the
			// http-response rules.
			d("http-after-response replace-header Set-Cookie %s %s if { ssl_fc }",
				mustQuoteArg("^("+regexp.QuoteMeta(name)+"=.*)$"), mustQuoteLogFormat(`\1; Secure`))
		}
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
// authentication, body size, redirects, CORS preflight, X-Forwarded-Prefix,
// rewrite, then the response headers.
func policyRules(be *render.Backend, bd *BackendData) {
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
	case render.Unset:
		d("http-request redirect location %%[var(txn.https)] code %d if !{ ssl_fc } { var(txn.tls) -m found }", code)
	case render.True:
		d("http-request redirect location %%[var(txn.https)] code %d if !{ ssl_fc }", code)
	}
	if len(p.AllowSources) > 0 || len(p.DenySources) > 0 || p.RateLimitRPS > 0 || p.RateLimitRPM > 0 || p.RateLimitConnections > 0 || p.AuthSecret != "" {
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
	rateLimited := p.RateLimitRPS > 0 || p.RateLimitRPM > 0 || p.RateLimitConnections > 0
	if rateLimited || p.AuthSecret != "" {
		// One table per backend (HAProxy allows one), tracked once,
		// holds what the rate limits and the authentication failure
		// limit count per client address.
		var store []string
		// A burst multiplier counts over that many seconds (minutes),
		// up to the rate times it; entries live at least as long as
		// the longest period they count.
		burst := max(p.RateLimitBurst, 1)
		expire := 30 * time.Second
		if rateLimited {
			store = append(store, "http_req_rate("+haproxyTime(time.Duration(burst)*time.Second)+")", "conn_cur")
			expire = max(expire, time.Duration(burst)*time.Second)
		}
		if p.RateLimitRPM > 0 {
			store = append(store, "gpc1_rate("+haproxyTime(time.Duration(burst)*time.Minute)+")")
			expire = max(expire, time.Duration(burst)*time.Minute)
		}
		if p.AuthSecret != "" {
			store = append(store, "gpc0_rate("+haproxyTime(AuthFailureWindow)+")")
			expire = max(expire, AuthFailureWindow, time.Minute)
		}
		d("stick-table type ipv6 size 100k expire %s store %s", haproxyTime(expire), strings.Join(store, ","))
		d("http-request track-sc0 var(txn.client)")
	}
	if p.RateLimitRPS > 0 {
		d("http-request deny deny_status %d if { sc_http_req_rate(0) gt %d }", p.RateLimitStatus, p.RateLimitRPS*max(p.RateLimitBurst, 1))
	}
	if p.RateLimitRPM > 0 {
		// Checked before the request is counted: refused requests do
		// not use up the next minute's allowance.
		d("http-request deny deny_status %d if { sc_gpc1_rate(0) ge %d }", p.RateLimitStatus, p.RateLimitRPM*max(p.RateLimitBurst, 1))
		d("http-request sc-inc-gpc1(0)")
	}
	if p.RateLimitConnections > 0 {
		d("http-request deny deny_status %d if { sc_conn_cur(0) gt %d }", p.RateLimitStatus, p.RateLimitConnections)
	}
	if p.AuthSecret != "" {
		authRules(be, bd, d)
	}
	if p.ExtAuth != nil {
		extAuthRules(be, d)
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
		if c.ExposeHeaders != "" {
			d("http-response set-header Access-Control-Expose-Headers %s if { var(txn.cors_origin) -m found }", mustQuoteLogFormat(c.ExposeHeaders))
		}
	}
	if p.UpstreamVhost != "" {
		d("http-request set-header Host %s", mustQuoteLogFormat(render.VhostFor(p.UpstreamVhost, be.Service, be.Namespace, strconv.Itoa(int(be.Port)))))
	}
	// X-Forwarded-Prefix before the rewrite, which changes the path it
	// matches.
	if p.XForwardedPrefix != "" {
		d("http-request set-header X-Forwarded-Prefix %s", mustQuoteLogFormat(p.XForwardedPrefix))
	}
	if p.XForwardedPrefixMatched {
		d("http-request del-header X-Forwarded-Prefix")
		for i, rp := range be.RewritePaths {
			if rp.Regex != "" {
				continue // no prefix to send: see README (regular-expression paths)
			}
			re := "^" + regexp.QuoteMeta(rp.Path) + "$"
			if !rp.Exact {
				re = "^" + regexp.QuoteMeta(rp.Path) + "(/.*)?$"
			}
			prefix := rp.Path
			if prefix == "" {
				prefix = "/"
			}
			// As rewrite-target: the first path that matches is the one
			// the request was routed by.
			d("http-request set-var(txn.xfp) int(%d) if !{ var(txn.xfp) -m found } { path -m reg %s }", i, mustQuoteArg(re))
			d("http-request set-header X-Forwarded-Prefix %s if { var(txn.xfp) -m int %d }", mustQuoteLogFormat(prefix), i)
		}
	}
	if p.RewriteTarget != "" {
		regex := len(be.RewritePaths) > 0 && be.RewritePaths[0].Regex != ""
		if p.RewriteWholePath && !regex {
			d("http-request set-path %s", mustQuoteLogFormat(p.RewriteTarget))
		}
		target := strings.TrimRight(p.RewriteTarget, "/")
		for i, rp := range be.RewritePaths {
			// The first path that matches is the one replaced; txn.rw
			// remembers which, so a rewritten path is not matched again.
			re, repl := "^"+regexp.QuoteMeta(rp.Path)+"$", p.RewriteTarget
			switch {
			case rp.Regex != "":
				// The whole path becomes the target, groups substituted
				// (NGINX's rewrite; render.RegexHost for the expression).
				re, repl = "^(?:"+rp.Regex+")", render.RegexReplacement(p.RewriteTarget)
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
	responseRewrites(p, d)
	if h := p.HSTS; h != nil {
		v := "max-age=" + strconv.Itoa(h.MaxAge)
		if h.IncludeSubdomains {
			v += "; includeSubDomains"
		}
		d("http-response set-header Strict-Transport-Security %s if { ssl_fc }", mustQuoteLogFormat(v))
	}
	headerRules(p.Headers, be, d)
}

// headerRules writes the headers annotation's rules last, so that they
// win over the lines above: request rules before the request leaves,
// response rules as http-after-response, which also acts on HAProxy's own
// answers (a 503, a deny), as more_set_headers does.
func headerRules(rules []render.HeaderRule, be *render.Backend, d func(string, ...any)) {
	for _, r := range rules {
		rule := "http-request"
		if r.Response {
			rule = "http-after-response"
		}
		if r.Value == "" {
			d("%s del-header %s", rule, mustQuoteArg(r.Name))
			continue
		}
		d("%s set-header %s %s", rule, mustQuoteArg(r.Name), headerValue(r.Value, be))
	}
}

// headerValue writes a rule's value as a log-format string: text quoted,
// each variable as the sample that gives it (the Service's own, as text).
func headerValue(v string, be *render.Backend) string {
	var b strings.Builder
	for _, part := range render.HeaderValueParts(v) {
		switch part.Variable {
		case "":
			b.WriteString(mustQuoteLogFormat(part.Text))
		case "$host":
			b.WriteString("%[var(txn.host)]")
		case "$remote_addr":
			b.WriteString("%[var(txn.client)]")
		case "$scheme":
			b.WriteString("%[ssl_fc,iif(https,http)]")
		case "$req_id":
			b.WriteString("%[uuid]")
		case "$request_uri":
			b.WriteString("%[pathq]")
		default:
			b.WriteString(mustQuoteLogFormat(render.VhostFor(part.Variable, be.Service, be.Namespace, strconv.Itoa(int(be.Port)))))
		}
	}
	return b.String()
}

func joinPrefixes(ps []netip.Prefix) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, " ")
}

// caFiles are the backend CA bundles the backends use, by file name (the
// backends of one Service share theirs).
func caFiles(m *render.Model) []render.CAFile {
	var out []render.CAFile
	for i := range m.Backends {
		if c := m.Backends[i].CA; c != nil {
			out = append(out, *c)
		}
	}
	slices.SortFunc(out, func(x, y render.CAFile) int { return strings.Compare(x.File, y.File) })
	return slices.CompactFunc(out, func(x, y render.CAFile) bool { return x.File == y.File })
}

// The failure limit: a client address (txn.client) that sent
// AuthMaxFailures wrong credentials to a route within AuthFailureWindow is
// answered 429, without a hash being computed, until its rate of failures
// falls below the limit again. Each address can thus make a route compute
// at most that many failing hashes per window.
const (
	AuthMaxFailures   = 10
	AuthFailureWindow = 60 * time.Second
)

// authRules writes a per-Ingress backend's Basic authentication: its
// userlist, the failure limit, and the challenge. http_auth() is evaluated
// once, into txn.auth (an ACL using it would compute the hash each time it
// is used), and only for a request that carries an Authorization header:
// a browser's first request, without one, gets the challenge and counts
// as no failure. Needs the stick table policyRules declares (gpc0_rate).
func authRules(be *render.Backend, bd *BackendData, d func(string, ...any)) {
	p := be.Policy
	realm := p.AuthRealm
	if realm == "" {
		realm = "Authentication Required"
	}
	ul := userlistName(be.Name)
	bd.Userlist = &UserlistData{Name: ul}
	for _, u := range be.Users {
		bd.Userlist.Users = append(bd.Userlist.Users, UserData{Name: mustQuoteArg(u.Name), Hash: mustQuoteArg(u.Hash)})
	}
	d("acl auth_sent req.hdr(authorization) -m found")
	d("http-request deny deny_status 429 if auth_sent { sc_gpc0_rate(0) ge %d }", AuthMaxFailures)
	d("http-request set-var(txn.auth) http_auth(%s) if auth_sent", ul)
	d("http-request sc-inc-gpc0(0) if auth_sent !{ var(txn.auth) -m bool }")
	d("http-request auth realm %s unless { var(txn.auth) -m bool }", mustQuoteArg(realm))
}

// userlistName is the userlist of a per-Ingress backend.
func userlistName(backend string) string { return "auth_" + strings.ReplaceAll(backend, ":", "_") }

// hashBalance is the balance line of a hashing algorithm (the balance
// annotation, validated: key holds only name characters).
func hashBalance(kind, key string) string {
	switch kind {
	case "path":
		return "uri path-only"
	case "header":
		return "hdr(" + key + ")"
	case "cookie":
		return "hash req.cook(" + key + ")"
	case "query":
		return "url_param " + key
	}
	return kind // source, uri
}

// responseRewrites puts right the Location headers and cookies of the
// endpoints' answers (proxy-redirect-*, proxy-cookie-*). The expressions
// are built from validated values, every one of them quoted.
func responseRewrites(p *render.RoutePolicy, d func(string, ...any)) {
	if r := p.LocationRewrite; r != nil {
		d("http-response replace-header Location %s %s", mustQuoteArg("^"+regexp.QuoteMeta(r.From)+"(.*)$"), mustQuoteLogFormat(r.To+`\1`))
	}
	if r := p.CookiePathRewrite; r != nil {
		re := `(?i)^(.*;[ \t]*path=)` + regexp.QuoteMeta(r.From) + `([^;]*)(.*)$`
		d("http-response replace-header Set-Cookie %s %s", mustQuoteArg(re), mustQuoteLogFormat(`\1`+r.To+`\2\3`))
	}
	if r := p.CookieDomainRewrite; r != nil {
		re := `(?i)^(.*;[ \t]*domain=)\.?` + regexp.QuoteMeta(strings.TrimPrefix(r.From, ".")) + `([ \t]*(;.*)?)$`
		d("http-response replace-header Set-Cookie %s %s", mustQuoteArg(re), mustQuoteLogFormat(`\1`+r.To+`\2`))
	}
}
