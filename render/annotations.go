package render

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	AppRoot          string
	// Redirect sends every request elsewhere (permanent- or
	// temporal-redirect): RedirectCode 301 or 302.
	Redirect     string
	RedirectCode int
	// Rate limits per client address; RateLimitStatus is 429 (ours) or
	// 503 (ingress-nginx's default).
	RateLimitRPS         int
	RateLimitConnections int
	RateLimitStatus      int
	// AuthSecret is the htpasswd Secret (same namespace); Users are read
	// from it when the model is built.
	AuthSecret string
	AuthRealm  string
	CORS       *CORSPolicy
	HSTS       *HSTSPolicy
	// BodySizeLimit in bytes; 0 means none.
	BodySizeLimit int64
	// Canary makes the Ingress a canary: its paths serve none of their
	// own, they take a share of the requests of the Ingress that serves
	// the same host and path (the primary), as the rule says.
	Canary *CanaryRule
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
}

// HSTSPolicy adds Strict-Transport-Security to HTTPS responses.
type HSTSPolicy struct {
	MaxAge            int // seconds
	IncludeSubdomains bool
}

// IsZero reports whether the policy asks for nothing.
func (p *RoutePolicy) IsZero() bool {
	return p.SSLRedirect == Unset && p.SSLRedirectCode == 0 && len(p.AllowSources) == 0 && len(p.DenySources) == 0 &&
		p.RewriteTarget == "" && p.AppRoot == "" && p.Redirect == "" && p.RateLimitRPS == 0 &&
		p.RateLimitConnections == 0 && p.AuthSecret == "" && p.CORS == nil && p.HSTS == nil && p.BodySizeLimit == 0 &&
		p.Canary == nil && len(p.Closed) == 0
}

// restrictsAccess reports whether an annotation of ours decides who may
// reach the paths: an invalid value of one fails closed (RoutePolicy.Closed)
// instead of being ignored, as ingress-nginx denies a location whose
// authentication annotations are broken.
func restrictsAccess(name string) bool {
	switch name {
	case "auth-basic-secret", "allowlist-source-range", "denylist-source-range":
		return true
	}
	return false
}

// BackendSettings are what backend annotations ask for, parsed. The zero
// value is HAProxy's defaults (and the global timeouts).
type BackendSettings struct {
	Balance        string
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
	Affinity     string
	CookieName   string
	CookieMaxAge time.Duration
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
}

const (
	allowedBool     = "true or false"
	allowedDuration = "a duration such as 5s, 100ms, 1m or 1h30m (or a number of milliseconds), from 1ms to 24h"
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
	{"balance", BackendScope, "roundrobin, leastconn, random, source or uri", "roundrobin", "the load-balancing algorithm", "balance <algorithm>",
		func(v string, a *parsedAnnotations) error {
			if !slices.Contains([]string{"roundrobin", "leastconn", "random", "source", "uri"}, v) {
				return fmt.Errorf("want roundrobin, leastconn, random, source or uri")
			}
			a.backend.Balance = v
			return nil
		}},
	{"body-size-limit", RouteScope, "a size in bytes, or with k, m or g (1k = 1024), up to 1g; 0 for none", "none", "answers 413 to requests whose Content-Length is larger (a chunked body is not counted)", "http-request deny deny_status 413 if { req.hdr_val(content-length) gt <n> }",
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
	{"cors-max-age", RouteScope, "seconds, 0 to 31536000", "1728000", "Access-Control-Max-Age", "http-request return hdr",
		func(v string, a *parsedAnnotations) error {
			n, err := parseDecimal(v, 0, 31536000, "seconds")
			if err == nil {
				cors(a).MaxAge = n
			}
			return err
		}},
	{"denylist-source-range", RouteScope, "comma-separated CIDRs or addresses (at most 1000)", "none", "answers 403 to clients inside the ranges", "acl src_denied src <ranges>; http-request deny deny_status 403 if src_denied",
		func(v string, a *parsedAnnotations) error {
			p, err := parseCIDRList(v)
			a.route.DenySources = p
			return err
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
	{"rate-limit-connections", RouteScope, "1 to 1000000", "none", "the most concurrent connections per client address; 429 beyond", "stick-table ... store conn_cur; http-request deny deny_status 429",
		func(v string, a *parsedAnnotations) error {
			n, err := parseDecimal(v, 1, 1_000_000, "a connection limit")
			a.route.RateLimitConnections = n
			return err
		}},
	{"rate-limit-rps", RouteScope, "1 to 1000000", "none", "the most requests per second per client address; 429 beyond", "stick-table ... store http_req_rate(1s); http-request deny deny_status 429",
		func(v string, a *parsedAnnotations) error {
			n, err := parseDecimal(v, 1, 1_000_000, "requests per second")
			a.route.RateLimitRPS = n
			return err
		}},
	{"rewrite-target", RouteScope, "an absolute path (one leading '/', never '//')", "none", "replaces the matched path prefix with this path before the request goes to the endpoints", "http-request replace-path",
		func(v string, a *parsedAnnotations) error {
			if err := validateAnnotationPath(v); err != nil {
				return err
			}
			a.route.RewriteTarget = v
			return nil
		}},
	{"session-cookie-max-age", BackendScope, allowedDuration, "a session cookie", "how long the affinity cookie lives", "cookie ... maxlife",
		func(v string, a *parsedAnnotations) error {
			d, err := parseTimeout(v)
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

func setTri(v string, t *Tri) error {
	switch v {
	case "true":
		*t = True
	case "false":
		*t = False
	default:
		return fmt.Errorf("want %s", allowedBool)
	}
	return nil
}

func setRedirect(v string, code int, a *parsedAnnotations) error {
	if err := validateRedirectURL(v); err != nil {
		return err
	}
	if a.route.Redirect != "" && a.route.RedirectCode != code {
		return fmt.Errorf("permanent-redirect and temporal-redirect are both set; want one")
	}
	a.route.Redirect, a.route.RedirectCode = v, code
	return nil
}

// validateRedirectURL accepts absolute http(s) URLs with a valid host and
// only RFC 3986 characters (no quotes, spaces, backslashes or '%' other
// than percent-encodings).
func validateRedirectURL(v string) error {
	const allowed = "want an absolute http or https URL"
	if len(v) > 2048 {
		return fmt.Errorf("longer than 2048 characters: %s", allowed)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-._~!$&()*+,;=:@/?#[]", c) >= 0:
		case c == '%' && i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]):
		default:
			return fmt.Errorf("character %q at offset %d is not allowed in a URL: %s", c, i, allowed)
		}
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return fmt.Errorf("%s", allowed)
	}
	if err := validateHost(u.Hostname()); err != nil || strings.HasPrefix(u.Hostname(), "*") {
		if _, ipErr := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); ipErr != nil {
			return fmt.Errorf("host %q: %s", u.Hostname(), allowed)
		}
	}
	return nil
}

// maxCIDRs bounds a source range list.
const maxCIDRs = 1000

// parseCIDRList reads "10.0.0.0/8, 192.168.1.1" into prefixes (an address
// is a /32 or /128), masked and without duplicates, in the order given.
func parseCIDRList(v string) ([]netip.Prefix, error) {
	parts := strings.Split(v, ",")
	if len(parts) > maxCIDRs {
		return nil, fmt.Errorf("%d entries: want at most %d CIDRs", len(parts), maxCIDRs)
	}
	var out []netip.Prefix
	for _, part := range parts {
		s := strings.Trim(part, " ")
		var p netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			p, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(s); err == nil {
				if a.Zone() != "" {
					// PrefixFrom would drop the zone silently: the range
					// would not be the one written.
					return nil, fmt.Errorf("%s has an IPv6 zone (%%%s): want an address without a zone", truncate(s), a.Zone())
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil || p.Addr().Zone() != "" {
			return nil, fmt.Errorf("%s is not a CIDR or an address: want comma-separated CIDRs such as 10.0.0.0/8, 192.168.1.7", truncate(s))
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p.Addr())).Masked()
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// unmapBits is what an IPv4-mapped IPv6 prefix loses when unmapped.
func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

// parseSize reads a body size: bytes, or a number with k, m or g (powers
// of 1024, either case), up to 1g.
func parseSize(v string) (int64, error) {
	const allowed = "want a size in bytes or with k, m or g (1k = 1024), up to 1g"
	num, mult := v, int64(1)
	if n := len(v); n > 0 {
		switch v[n-1] {
		case 'k', 'K':
			num, mult = v[:n-1], 1<<10
		case 'm', 'M':
			num, mult = v[:n-1], 1<<20
		case 'g', 'G':
			num, mult = v[:n-1], 1<<30
		}
	}
	if num == "" || len(num) > 10 || strings.Trim(num, "0123456789") != "" {
		return 0, fmt.Errorf("%s is not a size: %s", truncate(v), allowed)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n*mult > 1<<30 {
		return 0, fmt.Errorf("%s is too large: %s", truncate(v), allowed)
	}
	return n * mult, nil
}

// parseTokenList reads "GET, POST" or "X-A,X-B": comma-separated HTTP
// tokens, returned joined by ", ".
func parseTokenList(v, what string) (string, error) {
	var out []string
	for _, part := range strings.Split(v, ",") {
		s := strings.Trim(part, " ")
		if s == "" || len(s) > 64 || strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
			return "", fmt.Errorf("%s is not one of the %s: want comma-separated %s (letters, digits, '-', '_')", truncate(s), what, what)
		}
		out = append(out, s)
	}
	if len(out) > 64 {
		return "", fmt.Errorf("more than 64 %s", what)
	}
	return strings.Join(out, ", "), nil
}

// parseOrigins reads "*" or comma-separated origins.
func parseOrigins(v string) ([]string, error) {
	if strings.TrimSpace(v) == "*" {
		return []string{"*"}, nil
	}
	var out []string
	for _, part := range strings.Split(v, ",") {
		s := strings.Trim(part, " ")
		scheme, rest, ok := strings.Cut(s, "://")
		host, port, hasPort := strings.Cut(rest, ":")
		bad := !ok || (scheme != "http" && scheme != "https") || validateHost(host) != nil || strings.HasPrefix(host, "*")
		if hasPort {
			if _, err := parsePort(port); err != nil {
				bad = true
			}
		}
		if bad {
			return nil, fmt.Errorf("%s is not an origin: want * or comma-separated origins such as https://example.com or http://localhost:8080", truncate(s))
		}
		out = append(out, s)
	}
	if len(out) > 100 {
		return nil, fmt.Errorf("more than 100 origins")
	}
	return out, nil
}

// checkText accepts printable text (no control characters) of at most n
// runes, valid UTF-8.
func checkText(v string, n int) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("not valid UTF-8: want printable text")
	}
	if utf8.RuneCountInString(v) > n {
		return fmt.Errorf("longer than %d characters", n)
	}
	if err := CheckArgBytes(v); err != nil {
		return fmt.Errorf("%v: want printable text", err)
	}
	return nil
}

const (
	canaryNameSyntax  = "a header or cookie name: letters, digits, '-', '_' and '.', at most 64"
	canaryValueSyntax = "letters, digits and - _ . ~ : / + = , @ (at most 128)"
	canaryValueChars  = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~:/+=,@"
	maxCanaryTotal    = 1000000
)

// setCanaryName accepts a header or cookie name that needs no quoting
// inside a sample fetch's parentheses.
func setCanaryName(v string, name *string) error {
	if v == "" || len(v) > 64 || strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != "" {
		return fmt.Errorf("want %s", canaryNameSyntax)
	}
	*name = v
	return nil
}

// parseCount reads a whole decimal number from lo to hi.
func parseCount(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi || strings.Trim(v, "0123456789") != "" {
		return 0, fmt.Errorf("want a whole number from %d to %d", lo, hi)
	}
	return n, nil
}

// truncate shows a value in a problem: quoted Go-style (so control
// characters are visible) and cut at 64 bytes.
func truncate(v string) string {
	if len(v) > 64 {
		return strconv.Quote(v[:64]) + "..."
	}
	return strconv.Quote(v)
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
