package render

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// NginxAnnotationPrefix starts ingress-nginx's annotations, read under
// CompatNginx.
const NginxAnnotationPrefix = "nginx.ingress.kubernetes.io/"

// Compat selects which other controller's annotations are read as well
// (--annotations-compat).
type Compat string

const (
	CompatNone  Compat = ""
	CompatNginx Compat = "nginx"
)

// ParseCompat checks an --annotations-compat value.
func ParseCompat(v string) (Compat, error) {
	switch v {
	case "", "none":
		return CompatNone, nil
	case "nginx":
		return CompatNginx, nil
	}
	return "", fmt.Errorf("%q: want nginx or none", v)
}

// nginxAnnotation is one ingress-nginx annotation: the annotation of ours
// it becomes (with its value converted from ingress-nginx's syntax), or,
// when ours is "", what it does in ingress-nginx, so that the report says
// what traffic loses.
type nginxAnnotation struct {
	name string
	ours string
	// convert turns the value into ours; "" means nothing to apply (a
	// value that asks for our default). nil: the value is the same.
	convert func(v string, ctx nginxContext) (string, error)
	// difference says how ours behaves unlike ingress-nginx, if at all.
	difference string
	// effect is, for unsupported ones, what ingress-nginx would have done.
	effect string
	// accepted (with ours "") is an annotation HAProxy's own behaviour
	// already answers, as difference says: its value is validated
	// (convert), nothing is set, and it is reported as honoured.
	accepted bool
}

// nginxContext is what a conversion may look at besides the value.
type nginxContext struct {
	namespace   string
	annotations map[string]string
}

func (c nginxContext) get(name string) string { return c.annotations[NginxAnnotationPrefix+name] }

func seconds(v string, _ nginxContext) (string, error) {
	if v == "" || len(v) > 6 || strings.Trim(v, "0123456789") != "" {
		return "", fmt.Errorf("want a whole number of seconds")
	}
	return v + "s", nil
}

// nginxBurst is ingress-nginx's default limit-burst-multiplier.
const nginxBurst = 5

// nginxSize is an NGINX size (8k, 1m, 4096); accepted annotations only
// validate it.
func nginxSize(v string, _ nginxContext) (string, error) {
	num := strings.TrimRight(v, "kKmMgG")
	if num == "" || len(v)-len(num) > 1 || len(num) > 12 || strings.Trim(num, "0123456789") != "" {
		return "", fmt.Errorf("want a size such as 8k, 1m or 4096")
	}
	return "", nil
}

// trueOrFalse validates an accepted boolean annotation.
func trueOrFalse(v string, _ nginxContext) (string, error) {
	if v != "true" && v != "false" {
		return "", fmt.Errorf("want true or false")
	}
	return "", nil
}

func onOffValue(v string, ctx nginxContext) (string, error) {
	_, err := onOff(v, ctx)
	return "", err
}

func smallCount(v string, _ nginxContext) (string, error) {
	if v == "" || len(v) > 6 || strings.Trim(v, "0123456789") != "" {
		return "", fmt.Errorf("want a whole number")
	}
	return "", nil
}

// headerToken is a header value made of letters, '-' and ','.
func headerToken(v string, _ nginxContext) (string, error) {
	if v == "" || len(v) > 64 || strings.Trim(strings.ToLower(v), "abcdefghijklmnopqrstuvwxyz-, ") != "" {
		return "", fmt.Errorf("want a Connection header value such as keep-alive or close")
	}
	return "", nil
}

// serverTimeout converts proxy-read-timeout or proxy-send-timeout: both
// become HAProxy's timeout server, inactivity in either direction, so both
// convert to the longer of the two (and, agreeing, are no conflict).
func serverTimeout(other string) func(string, nginxContext) (string, error) {
	return func(v string, ctx nginxContext) (string, error) {
		conv, err := seconds(v, ctx)
		if err != nil {
			return "", err
		}
		o := ctx.get(other)
		if longer, err := seconds(o, ctx); err == nil && secondsOf(o) > secondsOf(v) {
			return longer, nil
		}
		return conv, nil
	}
}

// secondsOf is a value seconds accepted, as a number.
func secondsOf(v string) int {
	n, _ := strconv.Atoi(v)
	return n
}

// upstreamHashBy turns ingress-nginx's hash key, one NGINX variable, into
// our balance value. A key of several variables or text is refused.
func upstreamHashBy(v string, _ nginxContext) (string, error) {
	switch v {
	case "$request_uri":
		return "uri", nil
	case "$uri":
		return "path", nil
	case "$remote_addr", "$binary_remote_addr":
		return "source", nil
	case "$host", "$http_host":
		return "header:Host", nil
	}
	for prefix, kind := range map[string]string{"$http_": "header", "$cookie_": "cookie", "$arg_": "query"} {
		if name, ok := strings.CutPrefix(v, prefix); ok && name != "" {
			if kind == "header" {
				name = strings.ReplaceAll(name, "_", "-") // NGINX's $http_x_user is X-User
			}
			return kind + ":" + name, nil
		}
	}
	return "", fmt.Errorf("%s: want one of $request_uri, $uri, $remote_addr, $host, $http_<name>, $cookie_<name>, $arg_<name>; requests are balanced round-robin", truncate(v))
}

// cookieSeconds is a cookie's life in seconds: up to MaxCookieAge, longer
// than other timeouts (ingress-nginx's own example is 172800, two days).
func cookieSeconds(v string, _ nginxContext) (string, error) {
	if v == "" || len(v) > 8 || strings.Trim(v, "0123456789") != "" {
		return "", fmt.Errorf("want a whole number of seconds")
	}
	return v + "s", nil
}

func onOff(v string, _ nginxContext) (string, error) {
	switch v {
	case "on":
		return "true", nil
	case "off":
		return "false", nil
	}
	return "", fmt.Errorf("want on or off")
}

// sameNamespaceSecret accepts "name" or "namespace/name" of the Ingress's
// own namespace: an Ingress reaches only Secrets of its namespace.
func sameNamespaceSecret(v string, ctx nginxContext) (string, error) {
	ns, name, ok := strings.Cut(v, "/")
	if !ok {
		return v, nil
	}
	if ns != ctx.namespace {
		return "", fmt.Errorf("Secret %s is in another namespace: an Ingress may only use Secrets of its own namespace (%s)", truncate(v), ctx.namespace)
	}
	return name, nil
}

// needsCanary passes a canary-* value on only when the Ingress is a canary:
// ingress-nginx reads them only with canary: "true".
func needsCanary(v string, ctx nginxContext) (string, error) {
	if ctx.get("canary") != "true" {
		return "", fmt.Errorf("%scanary is not \"true\" (ingress-nginx ignores it too)", NginxAnnotationPrefix)
	}
	return v, nil
}

const (
	effectSnippet = "raw NGINX configuration; never applied: annotations cannot add configuration text"
	// snippetDifference is how a translated snippet (snippet.go) differs.
	snippetDifference = "translated only when every directive is add_header, more_set_headers, more_clear_headers, proxy_set_header or proxy_hide_header (or client_max_body_size 0, chunked_transfer_encoding, proxy_ssl_verify off, which change nothing here); any other directive leaves the whole snippet unapplied. A header is replaced rather than added, on every response whatever its status (add_header without always adds only to 2xx and 3xx); $req_id is a random UUID"
	effectExtAuth     = "not implemented; auth-url still asks the auth service for every request, without this"
	// extAuthDifference is how auth-url and its companions differ.
	extAuthDifference = "the auth service must be a Service of the Ingress's own namespace named by cluster DNS (http://svc[.ns[.svc[.cluster.local]]][:port]/path), reached over plain HTTP, or http(s)://$host/path, the route of the request's host for that path when it is a Service's plain backend of the Ingress's namespace (asked directly, not through the load balancer); another namespace, an IP address, an outside host, https to a Service or other NGINX variables fail closed (503); the auth service gets Authorization, Cookie, X-Original-URL, X-Original-Method, X-Auth-Request-Redirect, X-Real-IP and X-Forwarded-For/-Proto/-Host, not every request header; no answer within 4 attempts (2 s for an answer, 5 s for a connection each) is a 500"
	effectWAF         = "the ModSecurity WAF is not implemented: with enable-modsecurity or enable-owasp-core-rules true the Ingress fails closed (its paths answer 503)"
	effectBuffer      = "NGINX buffering and protocol tuning: HAProxy's defaults apply, routing is unchanged"
	// streamingDifference is what NGINX's response buffering becomes.
	streamingDifference = "HAProxy streams responses (as with proxy-buffering off), holding at most one 16 kB buffer per direction: a slow client keeps its endpoint's connection until it has read the response, within timeout-server, instead of NGINX reading the response into memory or disk first"
	effectLogging       = "logging and tracing: HAProxy logs every request as configured globally"
	// effectClientCert is what every auth-tls-* annotation that requires
	// client certificates gets (nginxProtections).
	effectClientCert = "client certificate authentication is not implemented: the Ingress fails closed (its paths answer 503) unless auth-tls-verify-client is off or optional"
)

// nginxAnnotations is the one table of ingress-nginx annotations, sorted by
// name; migrate's report and the README's compatibility table come from it.
var nginxAnnotations = []nginxAnnotation{
	{name: "affinity", ours: "affinity"},
	{name: "affinity-canary-behavior", effect: "sticky canaries: a client with an affinity cookie is still split between canary and primary by the canary rules"},
	{name: "affinity-mode", accepted: true, convert: func(v string, _ nginxContext) (string, error) {
		if v != "balanced" && v != "persistent" {
			return "", fmt.Errorf("want balanced or persistent")
		}
		return "", nil
	}, difference: "HAProxy keeps a client on its endpoint while the endpoint is up (persistent): balanced's moving of some clients to endpoints that are added does not happen"},
	{name: "allowlist-source-range", ours: "allowlist-source-range", difference: "X-Forwarded-For is believed only from the proxies in the trusted-proxies setting (ingress-nginx: proxy-real-ip-cidr), one hop"},
	{name: "app-root", ours: "app-root"},
	{name: "auth-always-set-cookie", effect: effectExtAuth},
	{name: "auth-cache-duration", accepted: true, convert: nginxText, difference: "answers of the auth service are not cached: every request asks it"},
	{name: "auth-cache-key", accepted: true, convert: nginxText, difference: "answers of the auth service are not cached: every request asks it"},
	{name: "auth-method", ours: "auth-method", difference: "GET, HEAD, POST, PUT or DELETE; others fail closed (503)"},
	{name: "auth-proxy-set-headers", effect: effectExtAuth},
	{name: "auth-realm", ours: "auth-realm"},
	{name: "auth-request-redirect", effect: effectExtAuth},
	{name: "auth-response-headers", ours: "auth-response-headers", difference: "at most 32 names; framing and routing headers (Host, Content-Length, Transfer-Encoding, Connection...) fail closed (503)"},
	{name: "auth-secret", ours: "auth-basic-secret", convert: func(v string, ctx nginxContext) (string, error) {
		if t := ctx.get("auth-type"); t != "basic" {
			return "", fmt.Errorf("auth-type is %s, not basic: only basic authentication is supported", truncate(t))
		}
		if st := ctx.get("auth-secret-type"); st != "" && st != "auth-file" {
			return "", fmt.Errorf("auth-secret-type %s is not supported (want auth-file)", truncate(st))
		}
		s, err := sameNamespaceSecret(v, ctx)
		if err == nil && s == "" {
			err = fmt.Errorf("want the name of a Secret")
		}
		return s, err
	}, difference: "needs auth-type: basic; the htpasswd file (key auth) may hold bcrypt (cost up to 5), SHA-crypt (rounds up to 5000), MD5-crypt ($1$) and yescrypt (N·r up to 16384) hashes; users with Apache MD5 ($apr1$, htpasswd's default) or crypt(3) DES hashes, or costlier ones, are left out and must be re-hashed (htpasswd -nbB -C 5 USER PASSWORD); a client address with 10 failed logins in a minute gets 429"},
	{name: "auth-secret-type", ours: "auth-basic-secret", convert: func(v string, _ nginxContext) (string, error) {
		if v != "" && v != "auth-file" {
			return "", fmt.Errorf("%s: only auth-file is supported", truncate(v))
		}
		return "", nil
	}, difference: "auth-file only"},
	{name: "auth-signin", ours: "auth-signin", difference: "NGINX variables only $host, $http_host, $best_http_host, $scheme, $pass_access_scheme, $request_uri and $escaped_request_uri; others fail closed (503)"},
	{name: "auth-signin-redirect-param", ours: "auth-signin-redirect-param"},
	{name: "auth-snippet", effect: "raw NGINX configuration for external authentication; never applied: the Ingress fails closed (its paths answer 503)"},
	{name: "auth-tls-error-page", effect: effectClientCert},
	{name: "auth-tls-match-cn", effect: effectClientCert},
	{name: "auth-tls-pass-certificate-to-upstream", effect: effectClientCert},
	{name: "auth-tls-secret", effect: effectClientCert},
	{name: "auth-tls-verify-client", effect: "client certificate verification is not implemented: on makes the Ingress fail closed (its paths answer 503)"},
	{name: "auth-tls-verify-depth", effect: effectClientCert},
	{name: "auth-type", ours: "auth-basic-secret", convert: func(v string, ctx nginxContext) (string, error) {
		if v != "basic" {
			return "", fmt.Errorf("%s: only basic authentication is supported", truncate(v))
		}
		if ctx.get("auth-secret") == "" {
			return "", fmt.Errorf("basic needs auth-secret (the htpasswd Secret)")
		}
		return "", nil
	}, difference: "basic only (read with auth-secret); digest makes the Ingress fail closed (503)"},
	{name: "auth-url", ours: "auth-url", convert: nonEmpty, difference: extAuthDifference},
	{name: "backend-protocol", ours: "backend-protocol", convert: func(v string, _ nginxContext) (string, error) {
		// ingress-nginx reads the value in upper case.
		switch u := strings.ToUpper(v); u {
		case "HTTP", "HTTPS", "GRPC", "GRPCS":
			return strings.ToLower(u), nil
		}
		return "", fmt.Errorf("%s: want HTTP, HTTPS, GRPC or GRPCS (AUTO_HTTP and FCGI are not supported)", truncate(v))
	}},
	{name: "canary", ours: "canary", convert: func(v string, _ nginxContext) (string, error) {
		if v != "true" && v != "false" {
			return "", fmt.Errorf("want true or false")
		}
		return v, nil
	}, difference: "a canary takes a share only of a route an Ingress of its own namespace serves (otherwise it is reported and gets nothing); requests it takes pass the main Ingress's authentication, source ranges, rate limits, body size limit, redirects and CORS first, and its own annotations other than canary-*, load balancing, affinity, timeouts and protocol are ignored, as in ingress-nginx"},
	{name: "canary-by-cookie", ours: "canary-by-cookie", convert: needsCanary},
	{name: "canary-by-header", ours: "canary-by-header", convert: needsCanary},
	{name: "canary-by-header-pattern", effect: "canary selection by a header regular expression: requests are not sent to the canary by this header"},
	{name: "canary-by-header-value", ours: "canary-by-header-value", convert: needsCanary, difference: "letters, digits and - _ . ~ : / + = , @ only"},
	{name: "canary-weight", ours: "canary-weight", convert: needsCanary},
	{name: "canary-weight-total", ours: "canary-weight-total", convert: needsCanary},
	{name: "client-body-buffer-size", accepted: true, convert: nginxSize, difference: "request bodies are streamed to the endpoints, never written to disk"},
	{name: "configuration-snippet", ours: "headers", convert: snippetHeaders, difference: snippetDifference},
	{name: "connection-proxy-header", accepted: true, convert: headerToken, difference: "HAProxy sets the Connection header to the endpoints itself, keeping connections alive and passing upgrades"},
	{name: "cors-allow-credentials", ours: "cors-allow-credentials"},
	{name: "cors-allow-headers", ours: "cors-allow-headers"},
	{name: "cors-allow-methods", ours: "cors-allow-methods"},
	{name: "cors-allow-origin", ours: "cors-allow-origin"},
	{name: "cors-expose-headers", ours: "cors-expose-headers"},
	{name: "cors-max-age", ours: "cors-max-age"},
	{name: "custom-http-errors", ours: "custom-http-errors", difference: "only with the Ingress's own default-backend annotation (not the controller's default backend); codes 400 to 599; the page is asked for with GET / (the request's path and query in X-Original-URI) and used up to 8 KB"},
	{name: "default-backend", ours: "default-backend", difference: "not applied on a host that Ingresses of another namespace have rules for"},
	{name: "denylist-source-range", ours: "denylist-source-range"},
	{name: "enable-access-log", effect: effectLogging},
	{name: "enable-cors", ours: "cors-enable"},
	{name: "enable-modsecurity", effect: effectWAF},
	{name: "enable-opentelemetry", effect: effectLogging},
	{name: "enable-owasp-core-rules", effect: effectWAF},
	{name: "enable-rewrite-log", effect: effectLogging},
	{name: "force-ssl-redirect", ours: "ssl-redirect", convert: func(v string, _ nginxContext) (string, error) {
		switch v {
		case "true":
			return "true", nil
		case "false":
			return "", nil
		}
		return "", fmt.Errorf("want true or false")
	}},
	{name: "from-to-www-redirect", ours: "from-to-www-redirect", difference: "exact hosts only (a wildcard rule gets no redirect); the request's port is not kept"},
	{name: "http2-push-preload", effect: effectBuffer},
	{name: "limit-burst-multiplier", ours: "rate-limit-burst-multiplier", difference: "a sliding window of that many seconds (minutes for limit-rpm) holding the rate times the multiplier, where NGINX refills its bucket continuously"},
	{name: "limit-connections", ours: "rate-limit-connections", difference: "503 beyond the limit, as ingress-nginx"},
	{name: "limit-rate", effect: "response bandwidth is not limited"},
	{name: "limit-rate-after", effect: "response bandwidth is not limited"},
	{name: "limit-rpm", ours: "rate-limit-rpm", difference: "503 beyond the limit, as ingress-nginx; a burst of limit-burst-multiplier (default 5) times the rate, counted over as many minutes"},
	{name: "limit-rps", ours: "rate-limit-rps", difference: "503 beyond the limit, as ingress-nginx; a burst of limit-burst-multiplier (default 5) times the rate, counted over as many seconds"},
	{name: "limit-whitelist", effect: "listed clients are rate-limited like everyone else"},
	{name: "load-balance", ours: "balance", convert: func(v string, _ nginxContext) (string, error) {
		switch v {
		case "round_robin":
			return "roundrobin", nil
		case "ewma":
			return "leastconn", nil
		}
		return "", fmt.Errorf("%s: want round_robin or ewma", truncate(v))
	}, difference: "ewma becomes leastconn"},
	{name: "mirror-host", effect: "requests are not mirrored"},
	{name: "mirror-request-body", effect: "requests are not mirrored"},
	{name: "mirror-target", effect: "requests are not mirrored"},
	{name: "mirror-uri", effect: "requests are not mirrored"},
	{name: "modsecurity-snippet", effect: "raw ModSecurity rules; never applied: the Ingress fails closed (its paths answer 503) unless enable-modsecurity is false"},
	{name: "modsecurity-transaction-id", effect: effectWAF},
	{name: "opentelemetry-trust-incoming-span", effect: effectLogging},
	{name: "permanent-redirect", ours: "permanent-redirect"},
	{name: "permanent-redirect-code", effect: "the redirect uses 301"},
	{name: "preserve-trailing-slash", effect: "HTTPS redirects keep the path as sent (trailing slash included)"},
	{name: "proxy-body-size", ours: "body-size-limit", difference: "checked against Content-Length only: a chunked body is not counted"},
	{name: "proxy-buffer-size", accepted: true, convert: nginxSize, difference: "one buffer size for the whole load balancer (HAProxy's tune.bufsize, 16 kB): headers of a request or response must fit in it less HAProxy's rewrite reserve (1 kB), or the request gets 400 and the response 502"},
	{name: "proxy-busy-buffers-size", accepted: true, convert: nginxSize, difference: streamingDifference},
	{name: "proxy-buffering", accepted: true, convert: onOffValue, difference: streamingDifference},
	{name: "proxy-buffers-number", accepted: true, convert: smallCount, difference: streamingDifference},
	{name: "proxy-connect-timeout", ours: "timeout-connect", convert: seconds},
	{name: "proxy-cookie-domain", ours: "proxy-cookie-domain", difference: "one FROM TO pair, domains only (no regular expressions or variables)"},
	{name: "proxy-cookie-path", ours: "proxy-cookie-path", difference: "one FROM TO pair, paths only (no regular expressions or variables)"},
	{name: "proxy-http-version", accepted: true, convert: func(v string, _ nginxContext) (string, error) {
		if v != "1.1" {
			return "", fmt.Errorf("%s: HAProxy speaks HTTP/1.1 to the endpoints (or HTTP/2, backend-protocol); want 1.1", truncate(v))
		}
		return "", nil
	}, difference: "1.1 only, HAProxy's way of reaching HTTP/1 endpoints"},
	{name: "proxy-max-temp-file-size", accepted: true, convert: nginxSize, difference: "responses are never written to disk: " + streamingDifference},
	{name: "proxy-next-upstream", effect: "failed requests are not retried on another endpoint"},
	{name: "proxy-next-upstream-timeout", effect: "failed requests are not retried on another endpoint"},
	{name: "proxy-next-upstream-tries", effect: "failed requests are not retried on another endpoint"},
	{name: "proxy-read-timeout", ours: "timeout-server", convert: serverTimeout("proxy-send-timeout"), difference: "HAProxy's timeout server is inactivity in both directions, not only between two reads: with proxy-send-timeout, the longer of the two applies to both"},
	{name: "proxy-redirect-from", ours: "proxy-redirect-from", difference: "a URL or path prefix (not default, off, or variables); Refresh headers are not rewritten"},
	{name: "proxy-redirect-to", ours: "proxy-redirect-to", difference: "a URL or path (no variables)"},
	{name: "proxy-request-buffering", accepted: true, convert: onOffValue, difference: "request bodies are streamed to the endpoints as they arrive (as with off): an endpoint sees a slow upload at the client's pace; body-size-limit (proxy-body-size) still refuses a declared Content-Length over the limit"},
	{name: "proxy-send-timeout", ours: "timeout-server", convert: serverTimeout("proxy-read-timeout"), difference: "HAProxy's timeout server is inactivity in both directions: with proxy-read-timeout, the longer of the two applies to both"},
	{name: "proxy-ssl-name", ours: "backend-sni"},
	{name: "proxy-ssl-secret", ours: "backend-ca-secret", convert: sameNamespaceSecret, difference: "only ca.crt is used: no client certificate is presented to the backend"},
	{name: "proxy-ssl-server-name", effect: "SNI is sent when proxy-ssl-name (backend-sni) is set"},
	{name: "proxy-ssl-verify", ours: "backend-verify", convert: onOff},
	{name: "rewrite-target", ours: "rewrite-target", difference: "the whole path becomes the target, as NGINX's rewrite does; with groups ($1) the Ingress's paths are regular expressions (use-regex), without them its paths keep their pathType (ingress-nginx makes the host's paths regular expressions for any rewrite-target)"},
	{name: "satisfy", effect: "auth and allowlist combine as both required"},
	{name: "server-alias", ours: "server-alias", difference: "host names only (no regular expressions); an alias that any Ingress has rules for is not taken"},
	{name: "server-snippet", ours: "headers", convert: snippetHeaders, difference: snippetDifference + "; a server-snippet's headers apply to this Ingress's paths, not to other Ingresses of the host"},
	{name: "service-upstream", ours: "service-upstream"},
	{name: "session-cookie-change-on-failure", ours: "session-cookie-change-on-failure", difference: "an endpoint that cannot be reached (connection refused or timed out) counts as failed; one that answers with an error does not"},
	{name: "session-cookie-conditional-samesite-none", accepted: true, convert: trueOrFalse, difference: "SameSite=None is sent to every browser: the old ones that rejected it (Chrome 51 to 66, Safari on iOS 12 and macOS 10.14, out of support since 2021) are not told apart by their User-Agent"},
	{name: "session-cookie-domain", ours: "session-cookie-domain"},
	{name: "session-cookie-expires", ours: "session-cookie-max-age", convert: func(v string, ctx nginxContext) (string, error) {
		if ctx.get("session-cookie-max-age") != "" {
			return "", nil // max-age sets the life; browsers prefer Max-Age to Expires
		}
		return cookieSeconds(v, ctx)
	}, difference: "sent as Max-Age, the same life (a browser prefers Max-Age when both are set, as ingress-nginx sends them)"},
	{name: "session-cookie-hash", accepted: true, convert: func(v string, _ nginxContext) (string, error) {
		if v != "md5" && v != "sha1" && v != "index" {
			return "", fmt.Errorf("%s: want md5, sha1 or index", truncate(v))
		}
		return "", nil
	},
		difference: "obsolete in ingress-nginx, accepted and ignored: the cookie's value names the endpoint"},
	{name: "session-cookie-max-age", ours: "session-cookie-max-age", convert: cookieSeconds},
	{name: "session-cookie-name", ours: "session-cookie-name"},
	{name: "session-cookie-path", ours: "session-cookie-path"},
	{name: "session-cookie-samesite", ours: "session-cookie-samesite"},
	{name: "session-cookie-secure", ours: "session-cookie-secure"},
	{name: "ssl-ciphers", effect: "ciphers come from the global ssl-ciphers setting"},
	{name: "ssl-passthrough", ours: "ssl-passthrough", difference: "needs the path \"/\" on exact hosts the Ingress owns; ingress-nginx's --enable-ssl-passthrough flag is not needed"},
	{name: "ssl-prefer-server-ciphers", effect: "ciphers come from the global settings"},
	{name: "ssl-redirect", ours: "ssl-redirect", convert: func(v string, _ nginxContext) (string, error) {
		switch v {
		case "false":
			return "false", nil
		case "true":
			return "", nil // the default: redirect where the host has TLS
		}
		return "", fmt.Errorf("want true or false")
	}},
	{name: "stream-snippet", effect: effectSnippet},
	{name: "temporal-redirect", ours: "temporal-redirect"},
	{name: "upstream-hash-by", ours: "balance", convert: upstreamHashBy,
		difference: "one variable: $request_uri, $uri, $remote_addr, $host, $http_<name>, $cookie_<name> or $arg_<name>, hashed consistently"},
	{name: "upstream-hash-by-subset", accepted: true, convert: trueOrFalse, difference: "with upstream-hash-by, the requests of one key go to one endpoint (consistent hashing over every endpoint), not spread at random over a subset of endpoints"},
	{name: "upstream-hash-by-subset-size", accepted: true, convert: smallCount, difference: "no subsets: see upstream-hash-by-subset"},
	{name: "upstream-vhost", ours: "upstream-vhost", difference: "a host name or address; of NGINX's variables only $service_name, $namespace and $service_port"},
	{name: "use-regex", ours: "use-regex", difference: "an expression must be RE2 syntax (as ingress-nginx requires) and bounded in cost; a host's paths follow only in the namespace of its oldest Ingress, and other namespaces' expressions are tried after that host's other paths"},
	{name: "whitelist-source-range", ours: "allowlist-source-range", difference: "X-Forwarded-For is believed only from the proxies in the trusted-proxies setting (ingress-nginx: proxy-real-ip-cidr), one hop"},
	{name: "x-forwarded-prefix", ours: "x-forwarded-prefix", difference: "true sends the path that matched, where ingress-nginx sends the word true; any other value must be an absolute path"},
}

// notNginx are names found on real Ingresses under ingress-nginx's prefix
// that ingress-nginx does not read (ConfigMap keys, other controllers'
// annotations, removed ones): they do nothing there, nor here, and are
// reported so.
var notNginx = map[string]string{
	"hsts":                    "a ConfigMap key of ingress-nginx, not an annotation",
	"hsts-include-subdomains": "a ConfigMap key of ingress-nginx, not an annotation",
	"proxy-set-headers":       "a ConfigMap key of ingress-nginx, not an annotation",
	"ssl-protocols":           "a ConfigMap key of ingress-nginx, not an annotation",
	"rate-limit":              "not an ingress-nginx annotation (limit-rps and limit-rpm are)",
	"rate-limit-window":       "not an ingress-nginx annotation (limit-rps and limit-rpm are)",
	"websocket-services":      "NGINX Inc.'s controller's annotation (nginx.org/), not ingress-nginx's: WebSockets pass on every route in both",
	"websocket-connections":   "not an ingress-nginx annotation",
	"secure-backends":         "removed from ingress-nginx in 0.21 (backend-protocol: HTTPS replaced it)",
}

func init() {
	for name, why := range notNginx {
		nginxAnnotations = append(nginxAnnotations, nginxAnnotation{name: name, accepted: true, convert: anyText,
			difference: why + "; ingress-nginx ignores it, and so does haproxy-sidecar"})
	}
	slices.SortFunc(nginxAnnotations, func(a, b nginxAnnotation) int { return strings.Compare(a.name, b.name) })
}

// anyText accepts printable text of a sensible length: the value of an
// annotation nothing reads.
func anyText(v string, _ nginxContext) (string, error) { return "", checkText(v, 1024) }

func findNginx(name string) *nginxAnnotation {
	i, ok := slices.BinarySearchFunc(nginxAnnotations, name, func(a nginxAnnotation, n string) int { return strings.Compare(a.name, n) })
	if !ok {
		return nil
	}
	return &nginxAnnotations[i]
}

// NginxAnnotation is one row of the compatibility table.
type NginxAnnotation struct {
	Name string
	// Ours is the haproxy-sidecar.io annotation it becomes; "" when it is
	// not supported, or when Accepted: HAProxy's own behaviour answers it.
	Ours       string
	Difference string
	Effect     string
	Accepted   bool
}

// NginxAnnotations lists the ingress-nginx annotations the compatibility
// table knows, sorted by name.
func NginxAnnotations() []NginxAnnotation {
	out := make([]NginxAnnotation, len(nginxAnnotations))
	for i, n := range nginxAnnotations {
		out[i] = NginxAnnotation{n.name, n.ours, n.difference, n.effect, n.accepted}
	}
	return out
}

func hasAnnotations(ann map[string]string) bool {
	for k := range ann {
		if strings.HasPrefix(k, AnnotationPrefix) || strings.HasPrefix(k, NginxAnnotationPrefix) {
			return true
		}
	}
	return false
}

// noAnnotations is what an Ingress without annotations of either prefix
// says.
var noAnnotations = &parsedAnnotations{}

// annotationValue is the value an annotation of ours gets, and where from.
type annotationValue struct {
	value string
	key   string // the annotation that gave it
	nginx bool
}

// parseAnnotations reads an Ingress's annotations (ours, and ingress-nginx's
// under CompatNginx). Every problem names the annotation; a bad value is
// ignored, never the route.
func parseAnnotations(ns string, ann map[string]string, compat Compat) *parsedAnnotations {
	if !hasAnnotations(ann) {
		// Most Ingresses: one shared value, never modified.
		return noAnnotations
	}
	a := &parsedAnnotations{}
	var values map[string]annotationValue
	type keyed struct {
		key string
		p   *localProblem
	}
	var problems []keyed
	report := func(key string, p *localProblem) { problems = append(problems, keyed{key, p}) }
	var nginxKeys []string
	for key, v := range ann {
		if name, ok := strings.CutPrefix(key, AnnotationPrefix); ok {
			if findAnnotation(name) == nil {
				report(key, warning(annotationField(key), UnknownAnnotation, "%s is not an annotation of haproxy-sidecar (see the README's annotation table); ignored", truncate(key)))
				continue
			}
			if values == nil {
				values = map[string]annotationValue{}
			}
			values[name] = annotationValue{value: v, key: key}
		} else if strings.HasPrefix(key, NginxAnnotationPrefix) {
			nginxKeys = append(nginxKeys, key)
		}
	}
	// Two ingress-nginx names for one of ours (whitelist- and
	// allowlist-source-range): the first by name is read, the other
	// reported.
	type synonym struct{ key, winner, ours string }
	var losers []synonym
	if compat == CompatNginx {
		slices.Sort(nginxKeys)
		ctx := nginxContext{namespace: ns, annotations: ann}
		for _, key := range nginxKeys {
			v := ann[key]
			if why := unimplementedProtection(strings.TrimPrefix(key, NginxAnnotationPrefix), v, ctx); why != "" {
				report(key, warning(annotationField(key), UnsupportedProtection,
					"%s is not implemented by haproxy-sidecar: every request to the Ingress's paths is answered 503 instead of being served without it", why))
				a.route.Closed = append(a.route.Closed, key)
				continue
			}
			n := findNginx(strings.TrimPrefix(key, NginxAnnotationPrefix))
			switch {
			case n == nil:
				report(key, warning(annotationField(key), UnsupportedAnnotation, "not supported (unknown to haproxy-sidecar's compatibility table); ignored"))
			case n.ours == "" && n.accepted:
				if n.convert != nil {
					if _, err := n.convert(v, ctx); err != nil {
						report(key, warning(annotationField(key), InvalidAnnotation, "value %s: %v; annotation ignored", truncate(v), err))
					}
				}
			case n.ours == "":
				report(key, warning(annotationField(key), UnsupportedAnnotation, "not supported, ignored: %s", n.effect))
			default:
				if prev, set := values[n.ours]; set && !prev.nginx {
					report(key, notice(annotationField(key), AnnotationOverridden, "ignored: %s%s is set and wins", AnnotationPrefix, n.ours))
					continue
				}
				conv := v
				if n.convert != nil {
					var err error
					if conv, err = n.convert(v, ctx); err != nil {
						var u untranslatable
						if errors.As(err, &u) {
							report(key, warning(annotationField(key), UnsupportedAnnotation, "not supported, ignored: %v; no part of the snippet is applied (annotations cannot add configuration text)", err))
							continue
						}
						if restrictsAccess(n.ours) && !(n.ours == "auth-basic-secret" && ctx.get("auth-type") == "") {
							// ingress-nginx denies such a location too; only
							// auth-secret without auth-type is no request for
							// authentication there.
							report(key, warning(annotationField(key), InvalidAnnotation, "value %s: %v; %s", truncate(v), err, closedMessage))
							a.route.Closed = append(a.route.Closed, key)
							continue
						}
						report(key, warning(annotationField(key), InvalidAnnotation, "value %s: %v; annotation ignored", truncate(v), err))
						continue
					}
				}
				if conv == "" {
					continue
				}
				if values == nil {
					values = map[string]annotationValue{}
				}
				if prev, set := values[n.ours]; set && n.ours == "headers" {
					// configuration-snippet and server-snippet: both
					// snippets' rules, the server's first.
					first, second := prev.value, conv
					if strings.HasSuffix(key, "/server-snippet") {
						first, second = conv, prev.value
					}
					values[n.ours] = annotationValue{value: first + "\n" + second, key: prev.key, nginx: true}
					continue
				}
				if prev, set := values[n.ours]; set {
					if prev.value != conv {
						losers = append(losers, synonym{key, prev.key, n.ours})
					}
					continue // two names agreeing are no conflict
				}
				values[n.ours] = annotationValue{value: conv, key: key, nginx: true}
			}
		}
	}
	if compat != CompatNginx && len(nginxKeys) > 0 {
		report("", &localProblem{sev: Notice, field: "metadata.annotations", Reason: UnsupportedAnnotation,
			msg: fmt.Sprintf("%d %s annotations ignored: --annotations-compat nginx is not set", len(nginxKeys), strings.TrimSuffix(NginxAnnotationPrefix, "/"))})
	}
	nginxRate := false
	for i := range annotations {
		an := &annotations[i]
		av, ok := values[an.name]
		if !ok {
			continue
		}
		if err := an.apply(av.value, a); err != nil {
			shown := av.value
			if av.nginx {
				shown = ann[av.key]
			}
			if restrictsAccess(an.name) {
				report(av.key, warning(annotationField(av.key), InvalidAnnotation, "value %s: %v; %s", truncate(shown), err, closedMessage))
				a.route.Closed = append(a.route.Closed, av.key)
				continue
			}
			report(av.key, warning(annotationField(av.key), InvalidAnnotation, "value %s: %v; annotation ignored", truncate(shown), err))
			continue
		}
		if a.keys == nil {
			a.keys = map[string]string{}
		}
		a.keys[an.name] = av.key
		if an.scope == BackendScope {
			a.backendKeys = append(a.backendKeys, av.key)
		}
		if av.nginx {
			switch an.name {
			case "rewrite-target":
				a.route.RewriteWholePath = true
			case "rate-limit-rps", "rate-limit-rpm", "rate-limit-connections":
				a.route.RateLimitStatus = 503
				// ingress-nginx's limit_req burst: 5 times the rate
				// unless limit-burst-multiplier says otherwise.
				nginxRate = nginxRate || an.name != "rate-limit-connections"
			}
		}
	}
	for _, l := range losers {
		msg := "ignored: " + l.winner + " is set too and wins"
		if _, applied := a.keys[l.ours]; !applied {
			msg = "ignored: " + l.winner + " is set too and is the one read; its value is invalid, so neither applies"
		}
		report(l.key, notice(annotationField(l.key), AnnotationOverridden, "%s", msg))
	}
	if a.corsEnabled {
		a.route.CORS = cors(a)
	}
	if a.hstsEnabled {
		a.route.HSTS = hsts(a)
	}
	locationRewrite(a, report)
	if nginxRate && a.route.RateLimitBurst == 0 {
		a.route.RateLimitBurst = nginxBurst
	}
	if (a.route.RateLimitRPS > 0 || a.route.RateLimitRPM > 0 || a.route.RateLimitConnections > 0) && a.route.RateLimitStatus == 0 {
		a.route.RateLimitStatus = 429
	}
	a.route.Canary = canaryRule(a, values, report)
	finishExtAuth(ns, a, values, report)
	regexAnnotations(a, report)
	finishPassthrough(a, report)
	slices.Sort(a.route.Closed)
	a.route.Closed = slices.Compact(a.route.Closed)
	if a.backend.Verify == True && a.backend.CASecret == "" {
		key := values["backend-verify"].key
		report(key, warning(annotationField(key), InvalidAnnotation, "true needs backend-ca-secret (the CA to verify against); the backend's certificate is not verified"))
		a.backend.Verify = Unset
	}
	slices.SortStableFunc(problems, func(x, y keyed) int { return cmp.Compare(x.key, y.key) })
	for _, p := range problems {
		a.problems = append(a.problems, p.p)
	}
	a.cors, a.hsts = nil, nil
	return a
}

// canaryRule finishes the canary annotations: any of them makes the
// Ingress a canary unless canary is false, even when their values are
// invalid: a canary whose rule is ignored gets no requests, where an
// Ingress taken for a primary would take the route over.
func canaryRule(a *parsedAnnotations, values map[string]annotationValue, report func(string, *localProblem)) *CanaryRule {
	var keys []string
	for name, av := range values {
		if strings.HasPrefix(name, "canary-") {
			keys = append(keys, av.key)
		}
	}
	slices.Sort(keys)
	if a.canaryOn == False {
		for _, key := range keys {
			report(key, notice(annotationField(key), InvalidAnnotation, "ignored: %s is false", values["canary"].key))
		}
		return nil
	}
	if a.canaryOn != True && len(keys) == 0 {
		return nil
	}
	rule := a.canary
	if rule.WeightTotal == 0 {
		rule.WeightTotal = 100
	}
	if rule.HeaderValue != "" && rule.Header == "" {
		key := values["canary-by-header-value"].key
		report(key, warning(annotationField(key), InvalidAnnotation, "needs canary-by-header (the header to compare); ignored"))
		rule.HeaderValue = ""
	}
	if rule.Weight > rule.WeightTotal {
		key := values["canary-weight"].key
		report(key, warning(annotationField(key), InvalidAnnotation, "value %d is more than canary-weight-total (%d); ignored, the canary gets no share by weight", rule.Weight, rule.WeightTotal))
		rule.Weight = 0
	}
	return &rule
}

func notice(field string, reason Reason, format string, args ...any) *localProblem {
	return &localProblem{sev: Notice, field: field, Reason: reason, msg: fmt.Sprintf(format, args...)}
}

// annotationField names an annotation as a field of the Ingress.
func annotationField(key string) string {
	return dataField("metadata.annotations", key)
}

// closedMessage ends the problem of an access restriction that cannot be
// applied.
const closedMessage = "it restricts who may reach the paths, so every request to them is answered 503 until it is fixed (fails closed)"

// nginxProtection is an ingress-nginx annotation that restricts who may
// reach a route and that the sidecar does not implement. Under
// --annotations-compat nginx an Ingress carrying one fails closed: its
// paths answer 503 (RoutePolicy.Closed), never served open.
type nginxProtection struct {
	name string
	// what it does, for problems and the README.
	what string
	// when says for which values it restricts; nil: any value.
	when func(v string, ctx nginxContext) bool
	// values describes when, for the README.
	values string
}

// nginxProtections is the list of such annotations, sorted by name. An
// annotation that only tunes one of these (auth-method, auth-cache-key,
// auth-tls-verify-depth...) is not listed: the one it tunes closes the
// route.
var nginxProtections = []nginxProtection{
	{name: "auth-snippet", what: "external authentication configured by an NGINX snippet (auth-snippet)", values: "any value"},
	{name: "auth-tls-error-page", what: "client certificate authentication (auth-tls-error-page)", values: clientCertValues, when: clientCertRequired},
	{name: "auth-tls-match-cn", what: "client certificate authentication by common name (auth-tls-match-cn)", values: clientCertValues, when: clientCertRequired},
	{name: "auth-tls-pass-certificate-to-upstream", what: "client certificate authentication (auth-tls-pass-certificate-to-upstream)", values: clientCertValues, when: clientCertRequired},
	{name: "auth-tls-secret", what: "client certificate authentication (auth-tls-secret)", values: clientCertValues, when: clientCertRequired},
	{name: "auth-tls-verify-client", what: "client certificate verification (auth-tls-verify-client)", values: "on",
		when: func(v string, _ nginxContext) bool { return v == "on" }},
	{name: "auth-tls-verify-depth", what: "client certificate authentication (auth-tls-verify-depth)", values: clientCertValues, when: clientCertRequired},
	{name: "auth-type", what: "digest authentication (auth-type: digest)", values: "digest",
		when: func(v string, _ nginxContext) bool { return v == "digest" }},
	{name: "enable-modsecurity", what: "the ModSecurity WAF (enable-modsecurity)", values: "true",
		when: func(v string, _ nginxContext) bool { return v == "true" }},
	{name: "enable-owasp-core-rules", what: "the OWASP core rules of ModSecurity (enable-owasp-core-rules)", values: "true",
		when: func(v string, _ nginxContext) bool { return v == "true" }},
	{name: "modsecurity-snippet", what: "ModSecurity rules (modsecurity-snippet)", values: "any value, unless enable-modsecurity is false",
		when: func(_ string, ctx nginxContext) bool { return ctx.get("enable-modsecurity") != "false" }},
}

// clientCertRequired: an auth-tls-* annotation asks for client
// certificates unless auth-tls-verify-client says they are optional.
func clientCertRequired(_ string, ctx nginxContext) bool {
	vc := ctx.get("auth-tls-verify-client")
	return vc != "off" && vc != "optional" && vc != "optional_no_ca"
}

const clientCertValues = "any value, unless auth-tls-verify-client is off, optional or optional_no_ca"

// unimplementedProtection returns what an ingress-nginx annotation with
// this value would protect the route with, "" when it is not a protection
// the sidecar lacks.
func unimplementedProtection(name, v string, ctx nginxContext) string {
	i, ok := slices.BinarySearchFunc(nginxProtections, name, func(p nginxProtection, n string) int { return strings.Compare(p.name, n) })
	if !ok {
		return ""
	}
	p := &nginxProtections[i]
	if p.when != nil && !p.when(v, ctx) {
		return ""
	}
	return p.what
}

// NginxProtection is one row of README's fail-closed list.
type NginxProtection struct {
	Name, What, Values string
}

// NginxProtections lists the ingress-nginx annotations that make an
// Ingress fail closed under --annotations-compat nginx, sorted by name.
func NginxProtections() []NginxProtection {
	out := make([]NginxProtection, len(nginxProtections))
	for i, p := range nginxProtections {
		out[i] = NginxProtection{p.name, p.what, p.values}
	}
	return out
}
