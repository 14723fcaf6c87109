package render

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
)

// AnnotationPrefix starts every annotation this controller reads on an
// Ingress.
const AnnotationPrefix = "haproxy-sidecar.io/"

// Scope says where an annotation acts.
type Scope int

const (
	// RouteScope annotations act on the paths of the Ingress that
	// carries them: each such Ingress gets its own HAProxy backend per
	// Service port (RoutePolicy).
	RouteScope Scope = iota
	// BackendScope annotations act on the Service's backend, which every
	// Ingress naming the Service shares: the oldest Ingress that sets any
	// of them decides all of them (BackendSettings), and a younger one
	// that asks for other values is reported.
	BackendScope
)

func (s Scope) String() string {
	if s == BackendScope {
		return "backend"
	}
	return "route"
}

// Tri is a boolean annotation that may be unset.
type Tri int8

const (
	Unset Tri = iota
	True
	False
)

// RoutePolicy is what an Ingress's route annotations ask for, parsed and
// validated: every string in it is safe to quote into the configuration.
// The zero value asks for nothing.
type RoutePolicy struct {
	SSLRedirect     Tri
	SSLRedirectCode int // 0: 308
	AllowSources    []netip.Prefix
	DenySources     []netip.Prefix
	// RewriteTarget replaces the matched path prefix; with
	// RewriteWholePath (ingress-nginx semantics without capture groups)
	// it replaces the whole path.
	RewriteTarget    string
	RewriteWholePath bool
	// XForwardedPrefix is sent to the endpoints as X-Forwarded-Prefix
	// (replacing a client's); with XForwardedPrefixMatched the value is
	// the Ingress path that matched the request instead.
	XForwardedPrefix        string
	XForwardedPrefixMatched bool
	AppRoot                 string
	// UpstreamVhost replaces the Host header the endpoints get.
	UpstreamVhost string
	// LocationRewrite, CookiePathRewrite and CookieDomainRewrite put
	// right the Location headers and cookies of the endpoints' answers
	// (rewrites.go).
	LocationRewrite, CookiePathRewrite, CookieDomainRewrite *Rewrite
	// Redirect sends every request elsewhere (permanent- or
	// temporal-redirect): RedirectCode 301 or 302.
	Redirect     string
	RedirectCode int
	// Rate limits per client address; RateLimitStatus is 429 (ours) or
	// 503 (ingress-nginx's default).
	RateLimitRPS         int
	RateLimitRPM         int
	RateLimitConnections int
	// RateLimitBurst (> 1) lets a client send that many times the rate
	// at once: the requests are counted over as many seconds (minutes for
	// RateLimitRPM), up to the rate times RateLimitBurst, so a burst is
	// allowed and the long-run rate holds (ingress-nginx's burst, which
	// defaults to 5 under its names).
	RateLimitBurst  int
	RateLimitStatus int
	// AuthSecret is the htpasswd Secret (same namespace); Users are read
	// from it when the model is built.
	AuthSecret string
	AuthRealm  string
	CORS       *CORSPolicy
	HSTS       *HSTSPolicy
	// BodySizeLimit in bytes; 0 means none.
	BodySizeLimit int64
	// ErrorCodes are custom-http-errors: an endpoint's response with one
	// of these statuses is replaced by the default-backend Service's
	// answer (errorpages.go), sorted.
	ErrorCodes []int
	// Canary makes the Ingress a canary: its paths serve none of their
	// own, they take a share of the requests of the Ingress that serves
	// the same host and path (the primary), as the rule says.
	Canary *CanaryRule
	// ExtAuth asks an auth service first (auth-url, extauth.go).
	ExtAuth *ExtAuthPolicy
	// Headers set or remove request and response headers (headers.go),
	// in the annotation's order.
	Headers []HeaderRule
	// Passthrough (ssl-passthrough) sends the TLS connections whose SNI
	// names a host of the Ingress's rules to its Service's endpoints
	// without terminating them (passthrough.go); nothing else of the
	// route policy applies then.
	Passthrough bool
	// Closed lists the annotations (whole keys, sorted) that ask to
	// restrict who reaches the paths in a way that cannot be applied: an
	// ingress-nginx protection the sidecar does not implement, or an
	// access restriction with an invalid value. Every request is then
	// answered 503: a restriction is never dropped silently.
	Closed []string
}

// CanaryRule says which requests of a primary route go to the canary, in
// ingress-nginx's order: the header, then the cookie, then the weight.
type CanaryRule struct {
	// Header "always" sends a request to the canary, "never" keeps it on
	// the primary; with HeaderValue, only that exact value sends it to
	// the canary and any other value falls through to the next rule.
	Header, HeaderValue string
	// Cookie "always" or "never", as Header.
	Cookie string
	// Weight of WeightTotal requests go to the canary (the rest of them
	// after the header and cookie rules).
	Weight, WeightTotal int
}

// CORSPolicy answers preflight requests in HAProxy and adds the CORS
// headers to responses.
type CORSPolicy struct {
	// AllowOrigins is ["*"] or a list of origins (scheme://host[:port]).
	AllowOrigins     []string
	AllowMethods     string
	AllowHeaders     string
	AllowCredentials bool
	MaxAge           int // seconds
	// ExposeHeaders are the response headers a page's script may read
	// (Access-Control-Expose-Headers); "" sends none.
	ExposeHeaders string
}

// HSTSPolicy adds Strict-Transport-Security to HTTPS responses.
type HSTSPolicy struct {
	MaxAge            int // seconds
	IncludeSubdomains bool
}

// IsZero reports whether the policy asks for nothing.
func (p *RoutePolicy) IsZero() bool {
	return p.SSLRedirect == Unset && p.SSLRedirectCode == 0 && len(p.AllowSources) == 0 && len(p.DenySources) == 0 &&
		p.RewriteTarget == "" && p.XForwardedPrefix == "" && !p.XForwardedPrefixMatched && p.AppRoot == "" && p.UpstreamVhost == "" && p.LocationRewrite == nil && p.CookiePathRewrite == nil && p.CookieDomainRewrite == nil && p.Redirect == "" && p.RateLimitRPS == 0 && p.RateLimitRPM == 0 &&
		p.RateLimitConnections == 0 && p.AuthSecret == "" && p.CORS == nil && p.HSTS == nil && p.BodySizeLimit == 0 &&
		p.Canary == nil && p.ExtAuth == nil && len(p.Closed) == 0 && len(p.ErrorCodes) == 0 && len(p.Headers) == 0 && !p.Passthrough
}

// restrictsAccess reports whether an annotation of ours decides who may
// reach the paths: an invalid value of one fails closed (RoutePolicy.Closed)
// instead of being ignored, as ingress-nginx denies a location whose
// authentication annotations are broken.
func restrictsAccess(name string) bool {
	switch name {
	case "auth-basic-secret", "allowlist-source-range", "denylist-source-range",
		"auth-url", "auth-signin", "auth-signin-redirect-param", "auth-method", "auth-response-headers":
		return true
	}
	return false
}

// BackendSettings are what backend annotations ask for, parsed. The zero
// value is HAProxy's defaults (and the global timeouts).
type BackendSettings struct {
	// Balance is the algorithm: roundrobin, leastconn, random, or a hash
	// of source, uri, path, or (with BalanceKey) header, cookie or query.
	Balance        string
	BalanceKey     string
	TimeoutConnect time.Duration
	TimeoutServer  time.Duration
	TimeoutQueue   time.Duration
	TimeoutTunnel  time.Duration
	MaxConnServer  int
	// HealthCheckPath set turns on active HTTP checks every
	// HealthCheckInterval (default 2s).
	HealthCheckPath     string
	HealthCheckInterval time.Duration
	// Protocol is http (""), h2c, https, h2, grpc or grpcs.
	Protocol string
	// CASecret (same namespace, key ca.crt) verifies the backend's
	// certificate; SNI is sent in the handshake.
	CASecret string
	SNI      string
	Verify   Tri
	// Affinity "cookie" pins a client to a server with CookieName.
	// CookieMaxAge is its life, in the browser (Max-Age) and in HAProxy
	// (maxlife). CookieSecure unset adds Secure to cookies set over
	// HTTPS only, as ingress-nginx does; CookiePath and CookieDomain are
	// the cookie's attributes, CookieSameSite Strict, Lax or None.
	Affinity       string
	CookieName     string
	CookieMaxAge   time.Duration
	CookieSecure   Tri
	CookiePath     string
	CookieDomain   string
	CookieSameSite string
	// CookieChangeOnFailure sends a client whose endpoint cannot be
	// reached to another one, with a new cookie (option redispatch).
	CookieChangeOnFailure bool
	// ServiceUpstream sends requests to the Service's cluster IP (one
	// server) instead of its endpoints: kube-proxy or a service mesh
	// balances them.
	ServiceUpstream bool
}

// TLS reports whether the backend is reached over TLS.
func (s *BackendSettings) TLS() bool {
	return s.Protocol == "https" || s.Protocol == "h2" || s.Protocol == "grpcs"
}

// annotation is one entry of the annotation table: its name after
// AnnotationPrefix, where it acts, what it accepts, and the parser that
// stores its typed value.
type annotation struct {
	name    string
	scope   Scope
	syntax  string // what values are allowed, for problems and the README
	dflt    string // the documented default
	doc     string // what it does
	haproxy string // what it becomes in HAProxy, for migrate and the README
	apply   func(v string, a *parsedAnnotations) error
}

// parsedAnnotations is what an Ingress's annotations say, validated on
// their own (parseIngress).
type parsedAnnotations struct {
	route   RoutePolicy
	backend BackendSettings
	// backendKeys are the backend annotations that were set, for the
	// conflict report.
	backendKeys []string
	// keys are the annotations that set each of ours (its name without
	// prefix), for problems found later (a missing Secret).
	keys     map[string]string
	problems []*localProblem
	// cors and hsts collect their annotations; they apply only when
	// cors-enable or hsts is true.
	cors                     *CORSPolicy
	hsts                     *HSTSPolicy
	corsEnabled, hstsEnabled bool
	// canary collects the canary annotations; canaryOn is the canary
	// annotation itself (the others imply true).
	canary   CanaryRule
	canaryOn Tri
	// redirectFrom and redirectTo become LocationRewrite together.
	redirectFrom, redirectTo string
	// defaultService and aliases are default-backend and server-alias
	// (hostroutes.go: they become paths, not route policy).
	defaultService *networkingv1.IngressBackend
	aliases        []string
	wwwRedirect    bool
	// useRegex: the paths are regular expressions (use-regex, or
	// ingress-nginx's rewrite-target with groups).
	useRegex Tri
	// passthroughClosed lists the access restrictions (keys) of an
	// Ingress with ssl-passthrough, which cannot apply them: its paths
	// are skipped (passthrough.go).
	passthroughClosed string
}

const (
	allowedBool      = "true or false"
	allowedDuration  = "a duration such as 5s, 100ms, 1m or 1h30m (or a number of milliseconds), from 1ms to 24h"
	allowedCookieAge = "a duration such as 30m, 48h or 7d (or a number of milliseconds), from 1s to 400d"
)

// annotations is the one table of haproxy-sidecar.io annotations, sorted
// by name. Adding one is adding a line here, a field in RoutePolicy or
// BackendSettings, and its use in the template or haproxycfg's policyRules.
var annotations = []annotation{
	{"affinity", BackendScope, "cookie", "none", "pins each client to one endpoint with a cookie HAProxy inserts", "cookie <name> insert indirect nocache httponly; server ... cookie <slot>",
		func(v string, a *parsedAnnotations) error {
			if v != "cookie" {
				return fmt.Errorf("want cookie")
			}
			a.backend.Affinity = v
			return nil
		}},
	{"allowlist-source-range", RouteScope, "comma-separated CIDRs or addresses (at most 1000)", "all clients", "answers 403 to clients outside the ranges", "acl src_allowed src <ranges>; http-request deny deny_status 403 unless src_allowed",
		func(v string, a *parsedAnnotations) error {
			p, err := parseCIDRList(v)
			a.route.AllowSources = p
			return err
		}},
	{"app-root", RouteScope, "an absolute path (one leading '/', never '//')", "none", "redirects requests for / to this path (302)", "http-request redirect location <path> code 302 if { path / }",
		func(v string, a *parsedAnnotations) error {
			if err := validateAnnotationPath(v); err != nil {
				return err
			}
			a.route.AppRoot = v
			return nil
		}},
	{"auth-basic-secret", RouteScope, "the name of a Secret in the Ingress's namespace holding an htpasswd file under key auth: bcrypt (cost up to 5), SHA-crypt (rounds up to 5000), MD5-crypt or yescrypt (N·r up to 16384) hashes", "none", "answers 401 with a Basic challenge unless the request has a valid user and password; a client address with 10 failed logins within a minute gets 429, without its password being checked, until it has had fewer than 10 in the last minute", "userlist with the users within the limits; stick-table ... store gpc0_rate(60s); http-request deny deny_status 429 if auth_sent { sc_gpc0_rate(0) ge 10 }; http-request set-var(txn.auth) http_auth(<userlist>) if auth_sent; http-request sc-inc-gpc0(0) if auth_sent !{ var(txn.auth) -m bool }; http-request auth realm <realm> unless { var(txn.auth) -m bool }",
		func(v string, a *parsedAnnotations) error {
			if err := validateObjectName(v); err != nil {
				return err
			}
			a.route.AuthSecret = v
			return nil
		}},
	{"auth-method", RouteScope, "GET, HEAD, POST, PUT or DELETE (needs auth-url)", "GET", "the method of the request to the auth service (sent without a body)", "http-request lua.haproxy_sidecar_extauth <backend> <host> <path> <method> ...", parseAuthMethod},
	{"auth-realm", RouteScope, "printable text without '\"' or '\\', at most 128 characters", "Authentication Required", "the realm of the Basic challenge", "http-request auth realm <realm>",
		func(v string, a *parsedAnnotations) error {
			if err := checkText(v, 128); err != nil {
				return err
			}
			// HAProxy writes the realm as it is between the double quotes
			// of WWW-Authenticate: Basic realm="...".
			if strings.ContainsAny(v, `"\`) {
				return fmt.Errorf("want printable text without '\"' or '\\' (the realm is written unescaped into the WWW-Authenticate header's quoted string)")
			}
			a.route.AuthRealm = v
			return nil
		}},
	{"auth-response-headers", RouteScope, "comma-separated header names (at most 32; not Host, Content-Length, Transfer-Encoding, Connection or other framing headers; needs auth-url)", "none", "the auth service's response headers copied onto the request the endpoints get; a client's own headers of these names are removed first", "http-request lua.haproxy_sidecar_extauth ... <headers> ... (the script's req_del_header, req_add_header)", parseAuthResponseHeaders},
	{"auth-signin", RouteScope, "an absolute http or https URL or a path; may hold $host, $http_host, $best_http_host, $scheme, $pass_access_scheme, $request_uri, $escaped_request_uri (needs auth-url)", "none", "a 401 from the auth service becomes a 302 to this URL, with the original URL in the auth-signin-redirect-param parameter unless the URL already has it", "http-request redirect location %[var(txn.extauth_location)] code 302", parseAuthSignin},
	{"auth-signin-redirect-param", RouteScope, "a query parameter name: letters, digits, '-', '_' and '.' (needs auth-signin)", "rd", "the parameter of the sign-in URL that carries the original URL", "http-request lua.haproxy_sidecar_extauth ... <param> ...", parseAuthRedirectParam},
	{"auth-url", RouteScope, "http://<service>[.<namespace>[.svc[.cluster.local]]][:port][/path] naming a Service of the Ingress's own namespace and one of its ports (default 80), or http(s)://$host/path: the route of the request's host for that path, a Service's plain backend of the Ingress's namespace", "none", "asks the auth service before a request reaches the endpoints: a 2xx lets it through, 401 (with the service's WWW-Authenticate) and 403 are answered as they are, anything else, or no answer (HAProxy's client makes at most 4 attempts, each waiting 2 s for an answer or 5 s for a connection), gets 500", "lua-load extauth.lua; http-request lua.haproxy_sidecar_extauth <backend> ...; http-request deny deny_status 500 unless { var(txn.extauth) -m str ok }", parseAuthURL},
	{"backend-ca-secret", BackendScope, "the name of a Secret in the Ingress's namespace with a PEM CA bundle under ca.crt", "none", "verifies the backend's certificate against this CA (sets backend-verify's default to true)", "server ... ssl verify required ca-file <written file>",
		func(v string, a *parsedAnnotations) error {
			if err := validateObjectName(v); err != nil {
				return err
			}
			a.backend.CASecret = v
			return nil
		}},
	{"backend-protocol", BackendScope, "http, h2c, https, h2, grpc or grpcs", "http", "the protocol spoken to the endpoints", "server ... [ssl] [alpn h2 | proto h2]",
		func(v string, a *parsedAnnotations) error {
			if !slices.Contains([]string{"http", "h2c", "https", "h2", "grpc", "grpcs"}, v) {
				return fmt.Errorf("want http, h2c, https, h2, grpc or grpcs")
			}
			if v != "http" {
				a.backend.Protocol = v
			}
			return nil
		}},
	{"backend-sni", BackendScope, "a DNS name", "none", "the SNI name sent to TLS backends", "server ... sni str(<name>)",
		func(v string, a *parsedAnnotations) error {
			if err := validateHost(v); err != nil || strings.HasPrefix(v, "*") {
				return fmt.Errorf("want a DNS name")
			}
			a.backend.SNI = v
			return nil
		}},
	{"backend-verify", BackendScope, allowedBool, "true when backend-ca-secret is set, else false", "whether the backend's certificate is verified (true needs backend-ca-secret)", "server ... verify required|none",
		func(v string, a *parsedAnnotations) error { return setTri(v, &a.backend.Verify) }},
	{"balance", BackendScope, "roundrobin, leastconn, random, or a hash of: source, uri, path, header:<name>, cookie:<name>, query:<name>", "roundrobin", "the load-balancing algorithm; the hashes are consistent (an endpoint coming or going moves only its own share of the keys)", "balance <algorithm>; hash-type consistent",
		func(v string, a *parsedAnnotations) error {
			if slices.Contains([]string{"roundrobin", "leastconn", "random", "source", "uri", "path"}, v) {
				a.backend.Balance = v
				return nil
			}
			kind, key, ok := strings.Cut(v, ":")
			if !ok || !slices.Contains([]string{"header", "cookie", "query"}, kind) || key == "" || len(key) > 64 ||
				strings.Trim(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != "" {
				return fmt.Errorf("want roundrobin, leastconn, random, source, uri, path, or header:, cookie: or query: and a name of letters, digits, '-', '_' or '.'")
			}
			a.backend.Balance, a.backend.BalanceKey = kind, key
			return nil
		}},
	{"body-size-limit", RouteScope, "a size in bytes, or with k, m, g or t (1k = 1024), up to 1t; 0 for none", "none", "answers 413 to requests whose Content-Length is larger (a chunked body is not counted)", "http-request deny deny_status 413 if { req.hdr_val(content-length) gt <n> }",
		func(v string, a *parsedAnnotations) error {
			n, err := parseSize(v)
			a.route.BodySizeLimit = n
			return err
		}},
	{"canary", RouteScope, allowedBool, "false (true when another canary annotation is set)", "makes this Ingress a canary of the Ingress serving the same host and path: its paths take a share of that Ingress's requests instead of routes of their own", "route map value <primary>~<canary>; http-request set-var(txn.backend) lines in the frontend pick one",
		func(v string, a *parsedAnnotations) error { return setTri(v, &a.canaryOn) }},
	{"canary-by-cookie", RouteScope, canaryNameSyntax, "none", "a request with this cookie set to always goes to the canary, never to the primary; other values fall through to canary-weight", "http-request set-var(txn.backend) if { req.cook(<name>) -m str always }",
		func(v string, a *parsedAnnotations) error { return setCanaryName(v, &a.canary.Cookie) }},
	{"canary-by-header", RouteScope, canaryNameSyntax, "none", "a request with this header set to always goes to the canary, never to the primary; other values fall through to the cookie and the weight", "http-request set-var(txn.backend) if { req.hdr(<name>) -m str always }",
		func(v string, a *parsedAnnotations) error { return setCanaryName(v, &a.canary.Header) }},
	{"canary-by-header-value", RouteScope, canaryValueSyntax + " (needs canary-by-header)", "always", "the header value that sends a request to the canary instead of always; any other value falls through", "http-request set-var(txn.backend) if { req.hdr(<name>) -m str <value> }",
		func(v string, a *parsedAnnotations) error {
			if v == "" || len(v) > 128 || strings.Trim(v, canaryValueChars) != "" {
				return fmt.Errorf("want %s", canaryValueSyntax)
			}
			a.canary.HeaderValue = v
			return nil
		}},
	{"canary-weight", RouteScope, "a whole number from 0 to canary-weight-total", "0", "the share of requests (of canary-weight-total) the canary gets, after the header and cookie rules", "http-request set-var(txn.backend) if { rand(<total>) -m int lt <weight> }",
		func(v string, a *parsedAnnotations) error {
			n, err := parseCount(v, 0, maxCanaryTotal)
			a.canary.Weight = n
			return err
		}},
	{"canary-weight-total", RouteScope, "a whole number from 1 to 1000000", "100", "what canary-weight is a share of", "rand(<total>)",
		func(v string, a *parsedAnnotations) error {
			n, err := parseCount(v, 1, maxCanaryTotal)
			a.canary.WeightTotal = n
			return err
		}},
	{"cors-allow-credentials", RouteScope, allowedBool, "true", "Access-Control-Allow-Credentials", "http-response set-header",
		func(v string, a *parsedAnnotations) error {
			var t Tri
			err := setTri(v, &t)
			cors(a).AllowCredentials = t != False
			return err
		}},
	{"cors-allow-headers", RouteScope, "comma-separated header names", "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization", "Access-Control-Allow-Headers", "http-request return hdr / http-response set-header",
		func(v string, a *parsedAnnotations) error {
			s, err := parseTokenList(v, "header names")
			if err == nil {
				cors(a).AllowHeaders = s
			}
			return err
		}},
	{"cors-allow-methods", RouteScope, "comma-separated methods", "GET, PUT, POST, DELETE, PATCH, OPTIONS", "Access-Control-Allow-Methods", "http-request return hdr / http-response set-header",
		func(v string, a *parsedAnnotations) error {
			s, err := parseTokenList(v, "methods")
			if err == nil {
				cors(a).AllowMethods = s
			}
			return err
		}},
	{"cors-allow-origin", RouteScope, "* or comma-separated origins (https://example.com[:port])", "*", "the origins allowed; a request's Origin is echoed back when it is in the list", "http-response set-header Access-Control-Allow-Origin",
		func(v string, a *parsedAnnotations) error {
			o, err := parseOrigins(v)
			if err == nil {
				cors(a).AllowOrigins = o
			}
			return err
		}},
	{"cors-enable", RouteScope, allowedBool, "false", "answers CORS preflight requests (OPTIONS with Origin) in HAProxy with 204 and adds the CORS headers to responses", "http-request return status 204 hdr Access-Control-Allow-...; http-response set-header",
		func(v string, a *parsedAnnotations) error {
			var t Tri
			err := setTri(v, &t)
			if t == True {
				cors(a)
			}
			a.corsEnabled = t == True
			return err
		}},
	{"cors-expose-headers", RouteScope, "comma-separated header names", "none", "Access-Control-Expose-Headers on responses to cross-origin requests", "http-response set-header",
		func(v string, a *parsedAnnotations) error {
			s, err := parseTokenList(v, "header names")
			if err == nil {
				cors(a).ExposeHeaders = s
			}
			return err
		}},
	{"cors-max-age", RouteScope, "seconds, 0 to 31536000", "1728000", "Access-Control-Max-Age", "http-request return hdr",
		func(v string, a *parsedAnnotations) error {
			n, err := parseDecimal(v, 0, 31536000, "seconds")
			if err == nil {
				cors(a).MaxAge = n
			}
			return err
		}},
	{"custom-http-errors", RouteScope, "comma-separated HTTP status codes from 400 to 599 (at most 20); needs default-backend", "none", "an endpoint's response with one of these statuses is replaced by what the default-backend Service answers to a GET / with the headers X-Code, X-Format, X-Original-URI, X-Namespace, X-Ingress-Name, X-Service-Name, X-Service-Port and X-Request-ID (its body up to 8 KB and its Content-Type, the status kept); the endpoint's own response when that Service does not answer within 2 s", "http-response lua.haproxy_sidecar_errorpage <backend> <namespace> <ingress> <service> <port> if { status <codes> } (lua/errorpages.lua: core.httpclient, txn:done)",
		func(v string, a *parsedAnnotations) error {
			c, err := parseErrorCodes(v)
			a.route.ErrorCodes = c
			return err
		}},
	{"default-backend", RouteScope, "the name of a Service in the Ingress's namespace, with :port (a number or a port name); without one, the Service's first port", "none", "requests to the hosts of the Ingress's rules that none of their paths match go to this Service (under the Ingress's route annotations), not to the controller's default; not on a host that an Ingress of another namespace has rules for", "a Prefix route <host>/ to the Service in maps/prefix.map, which every longer path of the host wins over",
		func(v string, a *parsedAnnotations) error {
			d, err := parseDefaultService(v)
			if err == nil {
				a.defaultService = &d
			}
			return err
		}},
	{"denylist-source-range", RouteScope, "comma-separated CIDRs or addresses (at most 1000)", "none", "answers 403 to clients inside the ranges", "acl src_denied src <ranges>; http-request deny deny_status 403 if src_denied",
		func(v string, a *parsedAnnotations) error {
			p, err := parseCIDRList(v)
			a.route.DenySources = p
			return err
		}},
	{"from-to-www-redirect", RouteScope, allowedBool, "false", "redirects (308) requests for www.<host> to <host>, or for <host> to www.<host> when the rule's host starts with www., keeping scheme, path and query; not when an Ingress has rules for the host redirected from", "a Prefix route <other host>/ to a backend with http-request redirect prefix <scheme>://<host> code 308",
		func(v string, a *parsedAnnotations) error {
			var t Tri
			err := setTri(v, &t)
			a.wwwRedirect = t == True
			return err
		}},
	{"headers", RouteScope, "lines of request|response Name: value (at most 32; an empty value removes the header; values may hold $host, $scheme, $remote_addr, $req_id, $request_uri (requests only), $service_name, $namespace, $service_port)", "none", "sets or removes headers on the request the endpoints get and on every response the client gets (HAProxy's own answers too), replacing any header of the name; framing headers (Content-Length, Transfer-Encoding, Connection...) and the request's Host cannot be set", "http-request set-header/del-header, http-after-response set-header/del-header",
		func(v string, a *parsedAnnotations) error {
			rules, err := parseHeaderRules(v)
			if err != nil {
				return err
			}
			a.route.Headers = rules
			return nil
		}},
	{"health-check-interval", BackendScope, allowedDuration, "2s", "how often active checks run", "server ... check inter <interval>",
		func(v string, a *parsedAnnotations) error {
			d, err := parseTimeout(v)
			a.backend.HealthCheckInterval = d
			return err
		}},
	{"health-check-path", BackendScope, "an absolute path (one leading '/', never '//')", "none (EndpointSlice readiness only)", "turns on active HTTP checks of every endpoint (GET path, 2xx or 3xx is healthy) on top of EndpointSlice readiness", "option httpchk GET <path>; server ... check",
		func(v string, a *parsedAnnotations) error {
			if err := validateAnnotationPath(v); err != nil {
				return err
			}
			a.backend.HealthCheckPath = v
			return nil
		}},
	{"hsts", RouteScope, allowedBool, "false", "adds Strict-Transport-Security to HTTPS responses", "http-response set-header Strict-Transport-Security ... if { ssl_fc }",
		func(v string, a *parsedAnnotations) error {
			var t Tri
			err := setTri(v, &t)
			a.hstsEnabled = t == True
			return err
		}},
	{"hsts-include-subdomains", RouteScope, allowedBool, "true", "adds includeSubDomains", "",
		func(v string, a *parsedAnnotations) error {
			var t Tri
			err := setTri(v, &t)
			hsts(a).IncludeSubdomains = t != False
			return err
		}},
	{"hsts-max-age", RouteScope, "seconds, 0 to 63072000", "31536000", "max-age of the header", "",
		func(v string, a *parsedAnnotations) error {
			n, err := parseDecimal(v, 0, 63072000, "seconds")
			if err == nil {
				hsts(a).MaxAge = n
			}
			return err
		}},
	{"maxconn-server", BackendScope, "1 to 1000000", "none", "the most concurrent connections each endpoint gets; more wait in the queue (timeout-queue)", "server ... maxconn <n>",
		func(v string, a *parsedAnnotations) error {
			n, err := parseDecimal(v, 1, 1_000_000, "a connection limit")
			a.backend.MaxConnServer = n
			return err
		}},
	{"permanent-redirect", RouteScope, "an absolute http or https URL", "none", "answers every request with a 301 to this URL", "http-request redirect location <url> code 301",
		func(v string, a *parsedAnnotations) error { return setRedirect(v, 301, a) }},
	{"proxy-cookie-domain", RouteScope, "FROM TO: two DNS domains separated by a space, or off", "off", "rewrites the Domain attribute of cookies the endpoints set: FROM (with or without a leading '.') becomes TO", "http-response replace-header Set-Cookie",
		func(v string, a *parsedAnnotations) error {
			r, err := parsePair(v, validateCookieDomain)
			a.route.CookieDomainRewrite = r
			return err
		}},
	{"proxy-cookie-path", RouteScope, "FROM TO: two absolute paths separated by a space, or off", "off", "rewrites the Path attribute of cookies the endpoints set: a path starting with FROM starts with TO instead", "http-response replace-header Set-Cookie",
		func(v string, a *parsedAnnotations) error {
			r, err := parsePair(v, cookiePath)
			a.route.CookiePathRewrite = r
			return err
		}},
	{"proxy-redirect-from", RouteScope, "an absolute http or https URL, or an absolute path (with proxy-redirect-to)", "none", "Location headers from the endpoints that start with this value start with proxy-redirect-to's instead", "http-response replace-header Location",
		func(v string, a *parsedAnnotations) (err error) {
			a.redirectFrom, err = parseLocationPrefix(v)
			return err
		}},
	{"proxy-redirect-to", RouteScope, "an absolute http or https URL, or an absolute path (with proxy-redirect-from)", "none", "what replaces proxy-redirect-from at the start of Location headers", "http-response replace-header Location",
		func(v string, a *parsedAnnotations) (err error) {
			a.redirectTo, err = parseLocationPrefix(v)
			return err
		}},
	{"rate-limit-burst-multiplier", RouteScope, "1 to 100", "1 (no burst)", "rate-limit-rps and rate-limit-rpm allow a burst of this many times the rate: requests are counted over this many seconds (minutes), up to the rate times this", "stick-table ... store http_req_rate(<n>s); http-request deny ... if { sc_http_req_rate(0) gt <rate × n> }",
		func(v string, a *parsedAnnotations) error {
			n, err := parseDecimal(v, 1, 100, "a burst multiplier")
			a.route.RateLimitBurst = n
			return err
		}},
	{"rate-limit-connections", RouteScope, "1 to 1000000", "none", "the most concurrent connections per client address; 429 beyond", "stick-table ... store conn_cur; http-request deny deny_status 429",
		func(v string, a *parsedAnnotations) error {
			n, err := parseDecimal(v, 1, 1_000_000, "a connection limit")
			a.route.RateLimitConnections = n
			return err
		}},
	{"rate-limit-rpm", RouteScope, "1 to 1000000", "none", "the most requests per minute per client address, over a sliding minute; 429 beyond (refused requests are not counted)", "stick-table ... store gpc1_rate(60s); http-request deny deny_status 429 if { sc_gpc1_rate(0) ge <n> }; http-request sc-inc-gpc1(0)",
		func(v string, a *parsedAnnotations) error {
			n, err := parseDecimal(v, 1, 1_000_000, "requests per minute")
			a.route.RateLimitRPM = n
			return err
		}},
	{"rate-limit-rps", RouteScope, "1 to 1000000", "none", "the most requests per second per client address; 429 beyond", "stick-table ... store http_req_rate(1s); http-request deny deny_status 429",
		func(v string, a *parsedAnnotations) error {
			n, err := parseDecimal(v, 1, 1_000_000, "requests per second")
			a.route.RateLimitRPS = n
			return err
		}},
	{"rewrite-target", RouteScope, "an absolute path (one leading '/', never '//')", "none", "replaces the matched path prefix with this path before the request goes to the endpoints; with use-regex the whole path, $1 to $9 naming the expression's groups", "http-request replace-path",
		func(v string, a *parsedAnnotations) error {
			if err := validateAnnotationPath(v); err != nil {
				return err
			}
			a.route.RewriteTarget = v
			return nil
		}},
	{"server-alias", RouteScope, "comma-separated host names (exact or *.wildcard), at most 100", "none", "serves these hosts with the same paths, Services and route annotations as the Ingress's rules that have a host; an alias host that any Ingress has rules for is not taken", "routes <alias><path> in the route maps, beside the rules' own",
		func(v string, a *parsedAnnotations) error {
			h, err := parseAliases(v)
			a.aliases = h
			return err
		}},
	{"service-upstream", BackendScope, allowedBool, "false", "true: requests go to the Service's cluster IP and port (one server) instead of its endpoints, for kube-proxy or a service mesh to balance; a headless Service keeps its endpoints", "server s1 <cluster IP>:<port>",
		func(v string, a *parsedAnnotations) error {
			var t Tri
			err := setTri(v, &t)
			a.backend.ServiceUpstream = t == True
			return err
		}},
	{"session-cookie-change-on-failure", BackendScope, allowedBool, "false", "true: a request whose endpoint (named by the affinity cookie) cannot be reached is sent to another one on HAProxy's last retry, and the client gets that endpoint's cookie; false: it is retried on the same endpoint only", "option redispatch",
		func(v string, a *parsedAnnotations) error {
			var t Tri
			err := setTri(v, &t)
			a.backend.CookieChangeOnFailure = t == True
			return err
		}},
	{"session-cookie-domain", BackendScope, "a DNS domain, optionally with a leading '.'", "the request's host", "the affinity cookie's Domain attribute", "cookie ... domain <domain>",
		func(v string, a *parsedAnnotations) error {
			if err := validateCookieDomain(v); err != nil {
				return err
			}
			a.backend.CookieDomain = v
			return nil
		}},
	{"session-cookie-max-age", BackendScope, allowedCookieAge, "a session cookie", "how long the affinity cookie lives: the browser keeps it that long (Max-Age) and HAProxy ignores it after that", "cookie ... maxlife <seconds> attr Max-Age=<seconds>",
		func(v string, a *parsedAnnotations) error {
			d, err := parseCookieAge(v)
			a.backend.CookieMaxAge = d
			return err
		}},
	{"session-cookie-name", BackendScope, "1 to 64 letters, digits, '-' or '_'", "INGRESSCOOKIE", "the affinity cookie's name", "cookie <name>",
		func(v string, a *parsedAnnotations) error {
			if v == "" || len(v) > 64 || strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
				return fmt.Errorf("want 1 to 64 letters, digits, '-' or '_'")
			}
			a.backend.CookieName = v
			return nil
		}},
	{"session-cookie-path", BackendScope, "an absolute path (one leading '/', never '//'), without ';'", "/", "the affinity cookie's Path attribute", "cookie ... attr Path=<path>",
		func(v string, a *parsedAnnotations) error {
			if err := validateAnnotationPath(v); err != nil {
				return err
			}
			if strings.Contains(v, ";") {
				// It would end the attribute and start another.
				return fmt.Errorf("%s: a cookie path must not contain ';'", truncate(v))
			}
			a.backend.CookiePath = v
			return nil
		}},
	{"session-cookie-samesite", BackendScope, "Strict, Lax or None", "none", "the affinity cookie's SameSite attribute (browsers keep a SameSite=None cookie only with Secure)", "cookie ... attr SameSite=<value>",
		func(v string, a *parsedAnnotations) error {
			for _, s := range []string{"Strict", "Lax", "None"} {
				if strings.EqualFold(v, s) {
					a.backend.CookieSameSite = s
					return nil
				}
			}
			return fmt.Errorf("want Strict, Lax or None")
		}},
	{"session-cookie-secure", BackendScope, allowedBool, "Secure on cookies set over HTTPS", "true: the affinity cookie always has the Secure attribute; false: never", "cookie ... secure",
		func(v string, a *parsedAnnotations) error { return setTri(v, &a.backend.CookieSecure) }},
	{"ssl-passthrough", RouteScope, allowedBool, "false", "true: HTTPS connections whose SNI names a host of the Ingress's rules go to its Service's endpoints unterminated (the endpoints present their own certificate); each rule needs an exact host, owned by this Ingress (no older Ingress has paths for it), and only the path \"/\" (Prefix or ImplementationSpecific); HTTP annotations, TLS entries for those hosts and spec.defaultBackend do not apply, and an access restriction fails closed; plain-HTTP requests to the host are redirected to HTTPS", "a TCP frontend on the HTTPS port: tcp-request inspect-delay 5s; use_backend by req.ssl_sni in maps/passthrough.map; every other connection to the TLS-terminating frontend over an internal socket with send-proxy-v2 / accept-proxy",
		func(v string, a *parsedAnnotations) error {
			var t Tri
			err := setTri(v, &t)
			a.route.Passthrough = t == True
			return err
		}},
	{"ssl-redirect", RouteScope, allowedBool, "true where the host has a TLS entry", "true sends plain-HTTP requests to HTTPS even when the host has no TLS entry (the default certificate answers); false never redirects", "http-request redirect location https://... code <ssl-redirect-code>",
		func(v string, a *parsedAnnotations) error { return setTri(v, &a.route.SSLRedirect) }},
	{"ssl-redirect-code", RouteScope, "301, 302, 307 or 308", "308", "the status of the HTTPS redirect", "",
		func(v string, a *parsedAnnotations) error {
			n, err := strconv.Atoi(v)
			if err != nil || (n != 301 && n != 302 && n != 307 && n != 308) || strconv.Itoa(n) != v {
				return fmt.Errorf("want 301, 302, 307 or 308")
			}
			a.route.SSLRedirectCode = n
			return nil
		}},
	{"temporal-redirect", RouteScope, "an absolute http or https URL", "none", "answers every request with a 302 to this URL", "http-request redirect location <url> code 302",
		func(v string, a *parsedAnnotations) error { return setRedirect(v, 302, a) }},
	{"timeout-connect", BackendScope, allowedDuration, "the timeout-connect setting", "time to connect to an endpoint", "timeout connect",
		func(v string, a *parsedAnnotations) error {
			d, err := parseTimeout(v)
			a.backend.TimeoutConnect = d
			return err
		}},
	{"timeout-queue", BackendScope, allowedDuration, "the timeout-queue setting", "time a request waits for a free endpoint (maxconn-server)", "timeout queue",
		func(v string, a *parsedAnnotations) error {
			d, err := parseTimeout(v)
			a.backend.TimeoutQueue = d
			return err
		}},
	{"timeout-server", BackendScope, allowedDuration, "the timeout-server setting", "inactivity time allowed to the endpoint while it answers", "timeout server",
		func(v string, a *parsedAnnotations) error {
			d, err := parseTimeout(v)
			a.backend.TimeoutServer = d
			return err
		}},
	{"timeout-tunnel", BackendScope, allowedDuration, "the timeout-tunnel setting", "inactivity time of WebSocket and other upgraded connections", "timeout tunnel",
		func(v string, a *parsedAnnotations) error {
			d, err := parseTimeout(v)
			a.backend.TimeoutTunnel = d
			return err
		}},
	{"upstream-vhost", RouteScope, "a host name or address, with an optional :port; $service_name, $namespace and $service_port stand for the path's Service", "the request's Host", "the Host header the endpoints get (the client's is replaced; routing has used it already)", "http-request set-header Host <host>",
		func(v string, a *parsedAnnotations) error {
			if err := validateHostPort(VhostFor(v, "service", "namespace", "80")); err != nil {
				return err
			}
			a.route.UpstreamVhost = v
			return nil
		}},
	{"use-regex", RouteScope, allowedBool, "false", "true: the Ingress's paths are case-insensitive regular expressions (RE2 syntax, bounded in cost) matched from the start of the path, and every path of the host's owner namespace follows, as ingress-nginx does; rewrite-target may then name their groups $1 to $9", "map_reg (maps/regex.map)",
		func(v string, a *parsedAnnotations) error { return setTri(v, &a.useRegex) }},
	{"x-forwarded-prefix", RouteScope, "true, false, or an absolute path (one leading '/', never '//')", "false", "sends X-Forwarded-Prefix to the endpoints, replacing any the client sent: true sends the Ingress path that matched the request (a Prefix path without its trailing '/'; '/' for '/'), a path sends that path", "http-request set-header X-Forwarded-Prefix <path>",
		func(v string, a *parsedAnnotations) error {
			switch v {
			case "true":
				a.route.XForwardedPrefixMatched = true
				return nil
			case "false":
				return nil
			}
			if err := validateAnnotationPath(v); err != nil {
				return fmt.Errorf("want true, false or an absolute path: %w", err)
			}
			a.route.XForwardedPrefix = v
			return nil
		}},
}

// Annotation describes one annotation, for the README table and migrate.
type Annotation struct {
	Name, Scope, Syntax, Default, Doc, HAProxy string
}

// Annotations lists the haproxy-sidecar.io annotations, sorted by name
// (without the prefix).
func Annotations() []Annotation {
	out := make([]Annotation, len(annotations))
	for i, a := range annotations {
		out[i] = Annotation{a.name, a.scope.String(), a.syntax, a.dflt, a.doc, a.haproxy}
	}
	return out
}

func findAnnotation(name string) *annotation {
	i, ok := slices.BinarySearchFunc(annotations, name, func(a annotation, n string) int { return strings.Compare(a.name, n) })
	if !ok {
		return nil
	}
	return &annotations[i]
}

func cors(a *parsedAnnotations) *CORSPolicy {
	if a.cors == nil {
		a.cors = &CORSPolicy{AllowOrigins: []string{"*"}, AllowMethods: "GET, PUT, POST, DELETE, PATCH, OPTIONS",
			AllowHeaders:     "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization",
			AllowCredentials: true, MaxAge: 1728000}
	}
	return a.cors
}

func hsts(a *parsedAnnotations) *HSTSPolicy {
	if a.hsts == nil {
		a.hsts = &HSTSPolicy{MaxAge: 31536000, IncludeSubdomains: true}
	}
	return a.hsts
}

// AnnotationSecrets lists the Secrets (namespace/name) an Ingress's
// annotations name, ours and ingress-nginx's, so that a source watches
// them: only valid names of the Ingress's own namespace.
func AnnotationSecrets(ing *networkingv1.Ingress) []string {
	var out []string
	for _, key := range []string{
		AnnotationPrefix + "auth-basic-secret", AnnotationPrefix + "backend-ca-secret",
		NginxAnnotationPrefix + "auth-secret", NginxAnnotationPrefix + "proxy-ssl-secret",
	} {
		v, ok := ing.Annotations[key]
		if !ok {
			continue
		}
		if ns, name, cut := strings.Cut(v, "/"); cut {
			if ns != ing.Namespace {
				continue
			}
			v = name
		}
		if validateObjectName(v) == nil && !slices.Contains(out, ing.Namespace+"/"+v) {
			out = append(out, ing.Namespace+"/"+v)
		}
	}
	return out
}
