package render_test

import (
	"bufio"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// sha512crypt is "secret" hashed with SHA-crypt ($6$, `openssl passwd -6
// -salt saltsalt secret`).
const sha512crypt = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1"

func htpasswdSecret(t *testing.T, name string) *corev1.Secret {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("s3cret"), 4)
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Data: map[string][]byte{"auth": []byte("# users\nalice:" + string(h) + "\nbob:" + sha512crypt + "\n")}}
}

func basic(user, pass string) map[string]string {
	req, _ := http.NewRequest("GET", "http://x/", nil)
	req.SetBasicAuth(user, pass)
	return map[string]string{"Authorization": req.Header.Get("Authorization")}
}

// annCases is the table of effects, each proven by requests.
func annCases(t *testing.T) []annCase {
	return []annCase{
		{name: "plain Ingress", check: func(t *testing.T, c *annClient, _ bool) {
			c.expect(t, annReq{}, 200, "")
		}},
		{name: "ssl-redirect false keeps plain HTTP on a TLS host", tls: true,
			ours: map[string]string{"ssl-redirect": "false"}, nginx: map[string]string{"ssl-redirect": "false"},
			check: func(t *testing.T, c *annClient, _ bool) {
				c.expect(t, annReq{path: "/x"}, 200, "")
			}},
		{name: "ssl-redirect true on a host without TLS, with its code",
			ours: map[string]string{"ssl-redirect": "true", "ssl-redirect-code": "301"}, nginx: map[string]string{"force-ssl-redirect": "true"},
			check: func(t *testing.T, c *annClient, nginx bool) {
				code := 301
				if nginx {
					code = 308
				}
				c.expect(t, annReq{path: "/a?b=1"}, code, "https://"+c.host+"/a?b=1")
				c.expect(t, annReq{path: "/a", https: true}, 200, "")
			}},
		{name: "TLS host with annotations still redirects by default", tls: true,
			ours: map[string]string{"hsts": "true", "hsts-max-age": "600", "hsts-include-subdomains": "false"},
			check: func(t *testing.T, c *annClient, _ bool) {
				c.expect(t, annReq{path: "/p"}, 308, "https://"+c.host+"/p")
				resp := c.expect(t, annReq{path: "/p", https: true}, 200, "")
				if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=600" {
					t.Errorf("HSTS %q, want max-age=600", got)
				}
			}},
		{name: "allowlist-source-range", ours: map[string]string{"allowlist-source-range": "10.0.0.0/8, 192.168.0.1"},
			nginx: map[string]string{"whitelist-source-range": "10.0.0.0/8, 192.168.0.1"},
			check: func(t *testing.T, c *annClient, _ bool) { c.expect(t, annReq{}, 403, "") }},
		{name: "allowlist-source-range admitting loopback", ours: map[string]string{"allowlist-source-range": "10.0.0.0/8,127.0.0.0/8"},
			nginx: map[string]string{"whitelist-source-range": "10.0.0.0/8,127.0.0.0/8"},
			check: func(t *testing.T, c *annClient, _ bool) { c.expect(t, annReq{}, 200, "") }},
		{name: "denylist-source-range", ours: map[string]string{"denylist-source-range": "127.0.0.1"},
			nginx: map[string]string{"denylist-source-range": "127.0.0.1"},
			check: func(t *testing.T, c *annClient, _ bool) { c.expect(t, annReq{}, 403, "") }},
		{name: "app-root", ours: map[string]string{"app-root": "/app"}, nginx: map[string]string{"app-root": "/app"},
			check: func(t *testing.T, c *annClient, _ bool) {
				c.expect(t, annReq{path: "/"}, 302, "/app")
				c.expect(t, annReq{path: "/app"}, 200, "")
			}},
		{name: "permanent-redirect", ours: map[string]string{"permanent-redirect": "https://new.example/landing?from=old"},
			nginx: map[string]string{"permanent-redirect": "https://new.example/landing?from=old"},
			check: func(t *testing.T, c *annClient, _ bool) {
				c.expect(t, annReq{path: "/anything"}, 301, "https://new.example/landing?from=old")
			}},
		{name: "temporal-redirect", ours: map[string]string{"temporal-redirect": "https://new.example/%41"},
			nginx: map[string]string{"temporal-redirect": "https://new.example/%41"},
			check: func(t *testing.T, c *annClient, _ bool) {
				c.expect(t, annReq{path: "/"}, 302, "https://new.example/%41")
			}},
		{name: "rewrite-target", path: "/api", ours: map[string]string{"rewrite-target": "/v2"},
			nginx: map[string]string{"rewrite-target": "/v2"},
			check: func(t *testing.T, c *annClient, nginx bool) {
				resp := c.expect(t, annReq{path: "/api/users?id=1"}, 200, "")
				want := "/v2/users?id=1"
				if nginx { // the whole path becomes the target
					want = "/v2?id=1"
				}
				if got := resp.Header.Get("X-Seen-Path"); got != want {
					t.Errorf("backend saw %q, want %q", got, want)
				}
				resp = c.expect(t, annReq{path: "/api"}, 200, "")
				if got := resp.Header.Get("X-Seen-Path"); got != "/v2" {
					t.Errorf("backend saw %q, want /v2", got)
				}
			}},
		{name: "use-regex with rewrite-target groups", path: "/something(/|$)(.*)", ours: map[string]string{"use-regex": "true", "rewrite-target": "/$2"},
			nginx: map[string]string{"use-regex": "true", "rewrite-target": "/$2"},
			check: func(t *testing.T, c *annClient, _ bool) {
				// ingress-nginx's docs/examples/rewrite.
				for path, want := range map[string]string{"/something": "/", "/something/": "/", "/something/new?q=1": "/new?q=1", "/SomeThing/a/b": "/a/b"} {
					if got := c.expect(t, annReq{path: path}, 200, "").Header.Get("X-Seen-Path"); got != want {
						t.Errorf("%s: backend saw %q, want %q", path, got, want)
					}
				}
				c.expect(t, annReq{path: "/somethingelse"}, 404, "")
			}},
		{name: "rewrite-target groups (ingress-nginx: use-regex implied)", path: "/api/v1/(.*)", ours: map[string]string{"use-regex": "true", "rewrite-target": "/v2/$1"},
			nginx: map[string]string{"rewrite-target": "/v2/$1"},
			check: func(t *testing.T, c *annClient, _ bool) {
				for path, want := range map[string]string{"/api/v1/users": "/v2/users", "/API/V1/x?y": "/v2/x?y"} {
					if got := c.expect(t, annReq{path: path}, 200, "").Header.Get("X-Seen-Path"); got != want {
						t.Errorf("%s: backend saw %q, want %q", path, got, want)
					}
				}
				c.expect(t, annReq{path: "/api/v2/x"}, 404, "")
			}},
		{name: "use-regex", path: "/foo/[0-9]+", ours: map[string]string{"use-regex": "true"}, nginx: map[string]string{"use-regex": "true"},
			check: func(t *testing.T, c *annClient, _ bool) {
				if got := c.expect(t, annReq{path: "/FOO/123/x"}, 200, "").Header.Get("X-Seen-Path"); got != "/FOO/123/x" {
					t.Errorf("backend saw %q, want the path unchanged", got)
				}
				c.expect(t, annReq{path: "/foo/x"}, 404, "")
			}},
		{name: "rewrite-target to /", path: "/api/", ours: map[string]string{"rewrite-target": "/"},
			check: func(t *testing.T, c *annClient, _ bool) {
				for path, want := range map[string]string{"/api/users": "/users", "/api": "/", "/api/": "/"} {
					resp := c.expect(t, annReq{path: path}, 200, "")
					if got := resp.Header.Get("X-Seen-Path"); got != want {
						t.Errorf("%s: backend saw %q, want %q", path, got, want)
					}
				}
			}},
		{name: "x-forwarded-prefix with rewrite-target", path: "/api/", ours: map[string]string{"x-forwarded-prefix": "true", "rewrite-target": "/"},
			nginx: map[string]string{"x-forwarded-prefix": "true", "rewrite-target": "/"},
			check: func(t *testing.T, c *annClient, nginx bool) {
				spoof := map[string]string{"X-Forwarded-Prefix": "/spoofed"}
				for path, want := range map[string]string{"/api/users": "/users", "/api": "/"} {
					resp := c.expect(t, annReq{path: path, header: spoof}, 200, "")
					if got := resp.Header.Get("X-Seen-Prefix"); got != "/api" {
						t.Errorf("%s: backend got X-Forwarded-Prefix %q, want /api (the client's replaced)", path, got)
					}
					if nginx { // ingress-nginx's rewrite-target: the whole path
						want = "/"
					}
					if got := resp.Header.Get("X-Seen-Path"); got != want {
						t.Errorf("%s: backend saw %q, want %q", path, got, want)
					}
				}
			}},
		{name: "x-forwarded-prefix as a path", ours: map[string]string{"x-forwarded-prefix": "/shop%20v2"},
			nginx: map[string]string{"x-forwarded-prefix": "/shop%20v2"},
			check: func(t *testing.T, c *annClient, _ bool) {
				resp := c.expect(t, annReq{path: "/x", header: map[string]string{"X-Forwarded-Prefix": "/spoofed"}}, 200, "")
				if got := resp.Header.Get("X-Seen-Prefix"); got != "/shop%20v2" {
					t.Errorf("backend got X-Forwarded-Prefix %q, want /shop%%20v2", got)
				}
				if got := resp.Header.Get("X-Seen-Path"); got != "/x" {
					t.Errorf("backend saw %q, want /x", got)
				}
			}},
		{name: "x-forwarded-prefix not a path", ours: map[string]string{"x-forwarded-prefix": "shop"},
			nginx: map[string]string{"x-forwarded-prefix": "shop"}, problems: []render.Reason{render.InvalidAnnotation},
			check: func(t *testing.T, c *annClient, _ bool) {
				resp := c.expect(t, annReq{path: "/x"}, 200, "")
				if got := resp.Header.Get("X-Seen-Prefix"); got != "" {
					t.Errorf("backend got X-Forwarded-Prefix %q for an invalid annotation, want none", got)
				}
			}},
		{name: "rate-limit-rps with a burst", ours: map[string]string{"rate-limit-rps": "5", "rate-limit-burst-multiplier": "3"},
			nginx: map[string]string{"limit-rps": "5"}, // ingress-nginx's default burst: 5 times
			check: func(t *testing.T, c *annClient, nginx bool) {
				want, burst := 429, 15
				if nginx {
					want, burst = 503, 25
				}
				codes := map[int]int{}
				for range 30 {
					codes[c.do(t, annReq{}).StatusCode]++
				}
				// Counted over 3 (5) seconds: a period boundary crossed
				// while sending lets at most 2 more through.
				if codes[200] < burst || codes[200] > burst+2 || codes[200]+codes[want] != 30 {
					t.Errorf("30 requests at once: %v, want %d (at most %d) 200 and the rest %d", codes, burst, burst+2, want)
				}
			}},
		{name: "rate-limit-rps", ours: map[string]string{"rate-limit-rps": "5"}, nginx: map[string]string{"limit-rps": "5", "limit-burst-multiplier": "1"},
			check: func(t *testing.T, c *annClient, nginx bool) {
				want := 429
				if nginx {
					want = 503
				}
				codes := map[int]int{}
				for range 20 {
					codes[c.do(t, annReq{}).StatusCode]++
				}
				if codes[200] < 5 || codes[200] > 7 || codes[want] < 13 {
					t.Errorf("20 requests at once: %v, want 5 (at most 7 across a second boundary) 200 and the rest %d", codes, want)
				}
			}},
		{name: "rate-limit-rpm", ours: map[string]string{"rate-limit-rpm": "5"}, nginx: map[string]string{"limit-rpm": "5", "limit-burst-multiplier": "1"},
			check: func(t *testing.T, c *annClient, nginx bool) {
				want := 429
				if nginx {
					want = 503
				}
				codes := map[int]int{}
				for range 12 {
					codes[c.do(t, annReq{}).StatusCode]++
				}
				// A sliding minute: refused requests are not counted, so
				// the allowance is 5 however long the refusals go on.
				if codes[200] != 5 || codes[want] != 7 {
					t.Errorf("12 requests within a minute: %v, want 5 200 and 7 %d", codes, want)
				}
			}},
		{name: "upstream-vhost", ours: map[string]string{"upstream-vhost": "internal.example:8080"}, nginx: map[string]string{"upstream-vhost": "internal.example:8080"},
			check: func(t *testing.T, c *annClient, _ bool) {
				resp := c.expect(t, annReq{path: "/v"}, 200, "")
				if got := resp.Header.Get("X-Seen-Host"); got != "internal.example:8080" {
					t.Errorf("backend saw Host %q, want internal.example:8080", got)
				}
			}},
		{name: "upstream-vhost naming the path's Service", ours: map[string]string{"upstream-vhost": "$service_name.$namespace.svc:$service_port"},
			nginx: map[string]string{"upstream-vhost": "$service_name.$namespace.svc:$service_port"},
			check: func(t *testing.T, c *annClient, _ bool) {
				resp := c.expect(t, annReq{path: "/v"}, 200, "")
				if got := resp.Header.Get("X-Seen-Host"); !regexp.MustCompile(`^s[0-9]+\.default\.svc:80$`).MatchString(got) {
					t.Errorf("backend saw Host %q, want <its Service>.default.svc:80", got)
				}
			}},
		{name: "upstream-vhost with an NGINX variable", ours: map[string]string{"upstream-vhost": "$host"}, nginx: map[string]string{"upstream-vhost": "$host"},
			problems: []render.Reason{render.InvalidAnnotation},
			check: func(t *testing.T, c *annClient, _ bool) {
				resp := c.expect(t, annReq{path: "/v"}, 200, "")
				if got := resp.Header.Get("X-Seen-Host"); got != c.host {
					t.Errorf("backend saw Host %q, want the request's %s", got, c.host)
				}
			}},
		{name: "headers set and removed on requests and responses",
			ours: map[string]string{"headers": strings.Join([]string{
				"request X-Test-User: alice",
				"request X-Test-Svc: $service_name.$namespace:$service_port",
				"request X-Test-Host: $host $scheme",
				"request Origin:",
				"# a comment",
				"response X-Frame-Options: SAMEORIGIN",
				"response Content-Security-Policy: default-src 'self'; img-src data: https:; \"50%\" $ 5",
				"response L5d-Remote-Ip:",
				"response X-Req-Id: $req_id",
			}, "\n"), "body-size-limit": "10"},
			nginx: map[string]string{"configuration-snippet": `proxy_set_header X-Test-User "alice";
proxy_set_header X-Test-Svc $service_name.$namespace:$service_port;
proxy_set_header X-Test-Host "$host $scheme";
proxy_set_header Origin "";
add_header X-Frame-Options "SAMEORIGIN" always; # security headers
more_set_headers "Content-Security-Policy: default-src 'self'; img-src data: https:; \"50%\" $ 5";
chunked_transfer_encoding off;
`, "proxy-body-size": "10", "server-snippet": "proxy_hide_header l5d-remote-ip;\nmore_set_headers 'X-Req-Id: $req_id';\nclient_max_body_size 0;"},
			check: func(t *testing.T, c *annClient, _ bool) {
				resp := c.expect(t, annReq{path: "/headers", header: map[string]string{"X-Test-User": "mallory", "Origin": "https://evil.example"}}, 200, "")
				for name, want := range map[string]string{"X-Seen-X-Test-User": "alice", "X-Seen-X-Test-Host": c.host + " http", "X-Frame-Options": "SAMEORIGIN",
					"Content-Security-Policy": `default-src 'self'; img-src data: https:; "50%" $ 5`} {
					if got := resp.Header.Values(name); len(got) != 1 || got[0] != want {
						t.Errorf("%s: %q, want %q alone", name, got, want)
					}
				}
				if got := resp.Header.Get("X-Seen-X-Test-Svc"); !regexp.MustCompile(`^s[0-9]+\.default:80$`).MatchString(got) {
					t.Errorf("the endpoint saw X-Test-Svc %q, want <its Service>.default:80", got)
				}
				for _, name := range []string{"X-Seen-Origin", "L5d-Remote-Ip"} {
					if got := resp.Header.Values(name); len(got) != 0 {
						t.Errorf("%s: %q, want it removed", name, got)
					}
				}
				if got := resp.Header.Get("X-Req-Id"); !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$`).MatchString(got) {
					t.Errorf("X-Req-Id %q, want a random UUID", got)
				}
				// HAProxy's own answers get the response rules too.
				resp = c.expect(t, annReq{method: "POST", path: "/headers", body: strings.Repeat("x", 100)}, 413, "")
				if got := resp.Header.Get("X-Frame-Options"); got != "SAMEORIGIN" {
					t.Errorf("HAProxy's own 413: X-Frame-Options %q, want SAMEORIGIN", got)
				}
			}},
		{name: "a snippet with another NGINX directive is not applied at all", problems: []render.Reason{render.UnsupportedAnnotation},
			nginx: map[string]string{"configuration-snippet": "add_header X-Frame-Options DENY;\nrewrite ^/(.*)$ /other/$1 break;\n"},
			check: func(t *testing.T, c *annClient, _ bool) {
				resp := c.expect(t, annReq{path: "/headers"}, 200, "")
				if got := resp.Header.Get("X-Frame-Options"); got != "ALLOWALL" {
					t.Errorf("X-Frame-Options %q, want the endpoint's ALLOWALL: no part of the snippet applies", got)
				}
			}},
		{name: "Location and cookies of the answers rewritten",
			ours: map[string]string{"proxy-redirect-from": "http://app.internal:8080/app/", "proxy-redirect-to": "https://shop.example/",
				"proxy-cookie-path": "/app/ /", "proxy-cookie-domain": "app.internal shop.example"},
			nginx: map[string]string{"proxy-redirect-from": "http://app.internal:8080/app/", "proxy-redirect-to": "https://shop.example/",
				"proxy-cookie-path": "/app/ /", "proxy-cookie-domain": "app.internal shop.example"},
			check: func(t *testing.T, c *annClient, _ bool) {
				resp := c.expect(t, annReq{path: "/moved"}, 302, "https://shop.example/page?x=1")
				want := []string{"s=1; Path=/x; Domain=shop.example; HttpOnly", "t=2; Path=/other; Domain=elsewhere.example"}
				if got := resp.Header.Values("Set-Cookie"); !slices.Equal(got, want) {
					t.Errorf("cookies %q, want %q", got, want)
				}
			}},
		{name: "proxy-redirect-from without -to", problems: []render.Reason{render.InvalidAnnotation},
			ours:  map[string]string{"proxy-redirect-from": "http://app.internal:8080/app/"},
			nginx: map[string]string{"proxy-redirect-from": "http://app.internal:8080/app/"},
			check: func(t *testing.T, c *annClient, _ bool) {
				c.expect(t, annReq{path: "/moved"}, 302, "http://app.internal:8080/app/page?x=1")
			}},
		{name: "rate-limit-connections", ours: map[string]string{"rate-limit-connections": "1"}, nginx: map[string]string{"limit-connections": "1"},
			check: func(t *testing.T, c *annClient, nginx bool) {
				want := 429
				if nginx {
					want = 503
				}
				wait := c.startSlow(t)
				c.expect(t, annReq{}, want, "")
				wait()
				// HAProxy stops counting the slow connection once it
				// has closed it, just after the client got its answer.
				deadline := time.Now().Add(2 * time.Second)
				for c.do(t, annReq{}).StatusCode != 200 {
					if time.Now().After(deadline) {
						t.Errorf("still limited 2s after the other connection ended")
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			}},
		{name: "auth-basic-secret", ours: map[string]string{"auth-basic-secret": "users", "auth-realm": `Team A's #1`},
			nginx:  map[string]string{"auth-type": "basic", "auth-secret": "users", "auth-realm": `Team A's #1`},
			secret: htpasswdSecret(t, "users"),
			check: func(t *testing.T, c *annClient, _ bool) {
				resp := c.expect(t, annReq{}, 401, "")
				if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="Team A's #1"` {
					t.Errorf("WWW-Authenticate %q", got)
				}
				c.expect(t, annReq{header: basic("alice", "wrong")}, 401, "")
				c.expect(t, annReq{header: basic("alice", "s3cret")}, 200, "")
				c.expect(t, annReq{header: basic("bob", "secret")}, 200, "")
			}},
		{name: "auth-basic-secret missing fails closed", ours: map[string]string{"auth-basic-secret": "nobody"},
			check: func(t *testing.T, c *annClient, _ bool) {
				c.expect(t, annReq{header: basic("alice", "s3cret")}, 401, "")
			}},
		{name: "CORS", ours: map[string]string{"cors-enable": "true", "cors-allow-origin": "https://app.example, https://b.example:8443",
			"cors-allow-methods": "GET, POST", "cors-allow-headers": "X-Token", "cors-max-age": "60", "cors-allow-credentials": "false",
			"cors-expose-headers": "X-Total,X-Page"},
			nginx: map[string]string{"enable-cors": "true", "cors-allow-origin": "https://app.example, https://b.example:8443",
				"cors-allow-methods": "GET, POST", "cors-allow-headers": "X-Token", "cors-max-age": "60", "cors-allow-credentials": "false",
				"cors-expose-headers": "X-Total,X-Page"},
			check: func(t *testing.T, c *annClient, _ bool) {
				pre := map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
				resp := c.expect(t, annReq{method: "OPTIONS", header: pre}, 204, "")
				for h, want := range map[string]string{"Access-Control-Allow-Origin": "https://app.example", "Access-Control-Allow-Methods": "GET, POST",
					"Access-Control-Allow-Headers": "X-Token", "Access-Control-Max-Age": "60", "Access-Control-Allow-Credentials": ""} {
					if got := resp.Header.Get(h); got != want {
						t.Errorf("preflight %s: %q, want %q", h, got, want)
					}
				}
				resp = c.expect(t, annReq{header: map[string]string{"Origin": "https://b.example:8443"}}, 200, "")
				if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://b.example:8443" {
					t.Errorf("response Access-Control-Allow-Origin %q", got)
				}
				if got := resp.Header.Get("Access-Control-Expose-Headers"); got != "X-Total, X-Page" {
					t.Errorf("response Access-Control-Expose-Headers %q, want X-Total, X-Page", got)
				}
				resp = c.expect(t, annReq{header: map[string]string{"Origin": "https://evil.example"}}, 200, "")
				if got := resp.Header.Get("Access-Control-Allow-Origin") + resp.Header.Get("Access-Control-Expose-Headers"); got != "" {
					t.Errorf("other origin got CORS headers %q", got)
				}
			}},
		{name: "body-size-limit", ours: map[string]string{"body-size-limit": "1k"}, nginx: map[string]string{"proxy-body-size": "1k"},
			check: func(t *testing.T, c *annClient, _ bool) {
				c.expect(t, annReq{method: "POST", body: strings.Repeat("x", 1024)}, 200, "")
				c.expect(t, annReq{method: "POST", body: strings.Repeat("x", 1025)}, 413, "")
			}},
		{name: "affinity cookie", ours: map[string]string{"affinity": "cookie", "session-cookie-name": "stick", "session-cookie-max-age": "1h"},
			nginx: map[string]string{"affinity": "cookie", "session-cookie-name": "stick", "session-cookie-max-age": "3600"},
			check: func(t *testing.T, c *annClient, _ bool) {
				resp := c.expect(t, annReq{}, 200, "")
				var cookie string
				for _, ck := range resp.Cookies() {
					if ck.Name == "stick" {
						cookie = ck.Name + "=" + ck.Value
					}
				}
				if cookie == "" {
					t.Fatalf("no stick cookie: %v", resp.Header["Set-Cookie"])
				}
				first := resp.Header.Get("X-Endpoint")
				for range 6 {
					if got := c.expect(t, annReq{header: map[string]string{"Cookie": cookie}}, 200, "").Header.Get("X-Endpoint"); got != first {
						t.Errorf("with the cookie: endpoint %s, want %s", got, first)
					}
				}
			}},
		{name: "session cookie attributes", tls: true,
			ours: map[string]string{"ssl-redirect": "false", "affinity": "cookie", "session-cookie-name": "sid", "session-cookie-max-age": "48h",
				"session-cookie-path": "/app", "session-cookie-domain": ".example.test", "session-cookie-samesite": "lax"},
			nginx: map[string]string{"ssl-redirect": "false", "affinity": "cookie", "session-cookie-name": "sid", "session-cookie-max-age": "172800",
				"session-cookie-path": "/app", "session-cookie-domain": ".example.test", "session-cookie-samesite": "Lax", "session-cookie-hash": "sha1"},
			check: func(t *testing.T, c *annClient, _ bool) {
				for _, https := range []bool{false, true} {
					ck := affinityCookie(t, c.expect(t, annReq{https: https}, 200, ""), "sid")
					// Secure only over HTTPS, as ingress-nginx sets it.
					if ck.MaxAge != 172800 || ck.Path != "/app" || strings.TrimPrefix(ck.Domain, ".") != "example.test" || ck.SameSite != http.SameSiteLaxMode ||
						!ck.HttpOnly || ck.Secure != https {
						t.Errorf("https %v: cookie %q: want Max-Age=172800, Path=/app, Domain=.example.test, SameSite=Lax, HttpOnly, Secure %v",
							https, ck.Raw, https)
					}
				}
			}},
		{name: "session cookie always Secure, its life from expires", problems: []render.Reason{render.InvalidAnnotation},
			ours:  map[string]string{"affinity": "cookie", "session-cookie-max-age": "1h", "session-cookie-secure": "true", "session-cookie-samesite": "None", "session-cookie-domain": "bad..domain"},
			nginx: map[string]string{"affinity": "cookie", "session-cookie-expires": "3600", "session-cookie-secure": "true", "session-cookie-samesite": "None", "session-cookie-domain": "bad..domain"},
			check: func(t *testing.T, c *annClient, _ bool) {
				ck := affinityCookie(t, c.expect(t, annReq{}, 200, ""), "INGRESSCOOKIE")
				if ck.MaxAge != 3600 || !ck.Secure || ck.SameSite != http.SameSiteNoneMode || ck.Domain != "" || ck.Path != "/" {
					t.Errorf("cookie %q: want Max-Age=3600, Secure, SameSite=None, no Domain (the invalid one ignored), Path=/", ck.Raw)
				}
			}},
		{name: "session cookie never Secure", tls: true,
			ours:  map[string]string{"ssl-redirect": "false", "affinity": "cookie", "session-cookie-secure": "false"},
			nginx: map[string]string{"ssl-redirect": "false", "affinity": "cookie", "session-cookie-secure": "false"},
			check: func(t *testing.T, c *annClient, _ bool) {
				ck := affinityCookie(t, c.expect(t, annReq{https: true}, 200, ""), "INGRESSCOOKIE")
				if ck.Secure || ck.MaxAge != 0 {
					t.Errorf("cookie %q over HTTPS: want no Secure and no Max-Age", ck.Raw)
				}
			}},
		{name: "balance source", ours: map[string]string{"balance": "source"}, nginx: map[string]string{"upstream-hash-by": "$remote_addr"},
			check: func(t *testing.T, c *annClient, _ bool) {
				first := c.expect(t, annReq{}, 200, "").Header.Get("X-Endpoint")
				for range 6 {
					if got := c.expect(t, annReq{}, 200, "").Header.Get("X-Endpoint"); got != first {
						t.Errorf("balance source: endpoint %s, want %s", got, first)
					}
				}
			}},
		{name: "balance leastconn", ours: map[string]string{"balance": "leastconn"}, nginx: map[string]string{"load-balance": "ewma"},
			check: func(t *testing.T, c *annClient, _ bool) {
				// One endpoint is busy with a slow request: every other
				// request goes to the idle one (round robin would send
				// half of them to the busy one).
				// The requests share one keep-alive connection: HAProxy
				// reads the next only after the previous stream ended
				// and left its server's count. On new connections, a
				// second thread can pick a server while the first has
				// not yet let go of the idle one, and find a tie.
				wait := c.startSlow(t)
				seen := map[string]int{}
				for _, endpoint := range c.endpointsOnOneConn(t, 4) {
					seen[endpoint]++
				}
				busy := wait()
				if len(seen) != 1 || seen[busy] != 0 {
					t.Errorf("with %s busy, 4 requests went to %v; want all to the other endpoint", busy, seen)
				}
			}},
		{name: "balance by header", ours: map[string]string{"balance": "header:X-User"}, nginx: map[string]string{"upstream-hash-by": "$http_x_user"},
			check: func(t *testing.T, c *annClient, _ bool) {
				sameEndpointPerKey(t, c, func(k string) annReq { return annReq{header: map[string]string{"X-User": k}} })
			}},
		{name: "balance by cookie", ours: map[string]string{"balance": "cookie:uid"}, nginx: map[string]string{"upstream-hash-by": "$cookie_uid"},
			check: func(t *testing.T, c *annClient, _ bool) {
				sameEndpointPerKey(t, c, func(k string) annReq { return annReq{header: map[string]string{"Cookie": "a=b; uid=" + k}} })
			}},
		{name: "balance by query parameter", ours: map[string]string{"balance": "query:uid"}, nginx: map[string]string{"upstream-hash-by": "$arg_uid"},
			check: func(t *testing.T, c *annClient, _ bool) {
				sameEndpointPerKey(t, c, func(k string) annReq { return annReq{path: "/x?a=1&uid=" + k} })
			}},
		{name: "balance by path", ours: map[string]string{"balance": "path"}, nginx: map[string]string{"upstream-hash-by": "$uri"},
			check: func(t *testing.T, c *annClient, _ bool) {
				// The query string is not part of the key.
				sameEndpointPerKey(t, c, func(k string) annReq { return annReq{path: "/" + k + "?r=" + strconv.Itoa(rand.IntN(1000))} })
			}},
		{name: "balance uri", ours: map[string]string{"balance": "uri"}, nginx: map[string]string{"upstream-hash-by": "$request_uri"},
			check: func(t *testing.T, c *annClient, _ bool) {
				byPath, all := map[string]string{}, map[string]bool{}
				for i := range 16 {
					path := "/p" + strconv.Itoa(i)
					for range 2 {
						got := c.expect(t, annReq{path: path}, 200, "").Header.Get("X-Endpoint")
						if prev, ok := byPath[path]; ok && prev != got {
							t.Errorf("%s went to %s, then to %s", path, prev, got)
						}
						byPath[path], all[got] = got, true
					}
				}
				if len(all) != 2 {
					t.Errorf("16 paths reached %v, want both endpoints", all)
				}
			}},
		{name: "backend certificate verified against backend-sni", backendTLS: true,
			ours:  map[string]string{"backend-protocol": "https", "backend-ca-secret": "backend-ca", "backend-sni": "other.internal"},
			nginx: map[string]string{"backend-protocol": "HTTPS", "proxy-ssl-secret": "default/backend-ca", "proxy-ssl-name": "other.internal", "proxy-ssl-verify": "on"},
			check: func(t *testing.T, c *annClient, _ bool) {
				// The endpoints' certificate names backend.internal.
				c.expect(t, annReq{}, 503, "")
			}},
		{name: "backend-verify false", backendTLS: true,
			ours:  map[string]string{"backend-protocol": "https", "backend-ca-secret": "backend-ca", "backend-sni": "other.internal", "backend-verify": "false"},
			nginx: map[string]string{"backend-protocol": "HTTPS", "proxy-ssl-secret": "default/backend-ca", "proxy-ssl-name": "other.internal", "proxy-ssl-verify": "off"},
			check: func(t *testing.T, c *annClient, _ bool) {
				c.expect(t, annReq{}, 200, "")
			}},
		{name: "session-cookie-max-age ends the affinity", ours: map[string]string{"affinity": "cookie", "session-cookie-max-age": "1s"},
			nginx: map[string]string{"affinity": "cookie", "session-cookie-max-age": "1"},
			check: func(t *testing.T, c *annClient, _ bool) {
				t.Parallel() // it waits out the cookie's life
				resp := c.expect(t, annReq{}, 200, "")
				var cookie string
				for _, ck := range resp.Cookies() {
					cookie = ck.Name + "=" + ck.Value
				}
				if cookie == "" {
					t.Fatalf("no affinity cookie: %v", resp.Header["Set-Cookie"])
				}
				// Within its life the cookie is kept; past it HAProxy
				// ignores it and sets a new one.
				if sc := c.expect(t, annReq{header: map[string]string{"Cookie": cookie}}, 200, "").Header.Get("Set-Cookie"); sc != "" {
					t.Errorf("a fresh cookie got a new one: %s", sc)
				}
				// HAProxy keeps cookie dates in 4-second units.
				time.Sleep(5500 * time.Millisecond)
				if sc := c.expect(t, annReq{header: map[string]string{"Cookie": cookie}}, 200, "").Header.Get("Set-Cookie"); sc == "" {
					t.Errorf("a cookie past session-cookie-max-age was still taken")
				}
			}},
		{name: "round robin without annotations",
			check: func(t *testing.T, c *annClient, _ bool) {
				seen := map[string]bool{}
				for range 4 {
					seen[c.expect(t, annReq{}, 200, "").Header.Get("X-Endpoint")] = true
				}
				if len(seen) != 2 {
					t.Errorf("round robin reached %v, want both endpoints", seen)
				}
			}},
		{name: "timeout-server", ours: map[string]string{"timeout-server": "500ms"}, nginx: map[string]string{"proxy-read-timeout": "1"},
			check: func(t *testing.T, c *annClient, _ bool) {
				c.expect(t, annReq{path: "/slow"}, 504, "")
			}},
		{name: "maxconn-server with timeout-queue", ours: map[string]string{"maxconn-server": "1", "timeout-queue": "200ms", "balance": "source"},
			check: func(t *testing.T, c *annClient, _ bool) {
				wait := c.startSlow(t)
				// The same endpoint (balance source) is busy: the
				// request waits in the queue and times out.
				c.expect(t, annReq{}, 503, "")
				wait()
			}},
		{name: "health-check-path", ours: map[string]string{"health-check-path": "/healthz", "health-check-interval": "100ms"},
			check: func(t *testing.T, c *annClient, _ bool) {
				c.echoes[0].healthy.Store(false)
				defer c.echoes[0].healthy.Store(true)
				time.Sleep(1500 * time.Millisecond) // three failed checks at 100ms, and some margin
				for range 6 {
					if got := c.expect(t, annReq{}, 200, "").Header.Get("X-Endpoint"); got != c.echoes[1].name {
						t.Errorf("with endpoint %s failing its checks: answered by %s", c.echoes[0].name, got)
					}
				}
			}},
		{name: "backend-protocol https with a CA and SNI", backendTLS: true,
			ours:  map[string]string{"backend-protocol": "https", "backend-ca-secret": "backend-ca", "backend-sni": "backend.internal"},
			nginx: map[string]string{"backend-protocol": "HTTPS", "proxy-ssl-secret": "default/backend-ca", "proxy-ssl-name": "backend.internal", "proxy-ssl-verify": "on"},
			check: func(t *testing.T, c *annClient, _ bool) {
				c.expect(t, annReq{}, 200, "")
			}},
		{name: "canary-weight splits the requests", canary: true,
			ours: map[string]string{"canary-weight": "30"}, nginx: map[string]string{"canary": "true", "canary-weight": "30"},
			check: func(t *testing.T, c *annClient, _ bool) {
				// 400 draws at 30%: 120 expected, sd 9.2; the bounds are
				// five sd away.
				if got := c.canaryShare(t, 400, nil); got < 74 || got > 166 {
					t.Errorf("canary answered %d of 400 requests, want about 120 (30%%)", got)
				}
			}},
		{name: "canary-weight of canary-weight-total", canary: true,
			ours:  map[string]string{"canary-weight": "1", "canary-weight-total": "4"},
			nginx: map[string]string{"canary": "true", "canary-weight": "1", "canary-weight-total": "4"},
			check: func(t *testing.T, c *annClient, _ bool) {
				if got := c.canaryShare(t, 400, nil); got < 57 || got > 143 { // 100 expected, sd 8.7
					t.Errorf("canary answered %d of 400 requests, want about 100 (1 of 4)", got)
				}
			}},
		{name: "canary-by-header always and never, else the weight", canary: true,
			ours:  map[string]string{"canary-by-header": "X-Canary", "canary-weight": "50"},
			nginx: map[string]string{"canary": "true", "canary-by-header": "X-Canary", "canary-weight": "50"},
			check: func(t *testing.T, c *annClient, _ bool) {
				if got := c.canaryShare(t, 10, map[string]string{"X-Canary": "always"}); got != 10 {
					t.Errorf("X-Canary: always: %d of 10 to the canary, want all", got)
				}
				if got := c.canaryShare(t, 10, map[string]string{"X-Canary": "never"}); got != 0 {
					t.Errorf("X-Canary: never: %d of 10 to the canary, want none", got)
				}
				if got := c.canaryShare(t, 60, map[string]string{"X-Canary": "maybe"}); got == 0 || got == 60 {
					t.Errorf("X-Canary: maybe: %d of 60 to the canary, want the weight's share", got)
				}
			}},
		{name: "canary-by-header-value", canary: true,
			ours:  map[string]string{"canary-by-header": "X-Env", "canary-by-header-value": "beta"},
			nginx: map[string]string{"canary": "true", "canary-by-header": "X-Env", "canary-by-header-value": "beta"},
			check: func(t *testing.T, c *annClient, _ bool) {
				if got := c.canaryShare(t, 10, map[string]string{"X-Env": "beta"}); got != 10 {
					t.Errorf("X-Env: beta: %d of 10 to the canary, want all", got)
				}
				for _, v := range []string{"always", "Beta", ""} {
					if got := c.canaryShare(t, 10, map[string]string{"X-Env": v}); got != 0 {
						t.Errorf("X-Env: %q: %d of 10 to the canary, want none", v, got)
					}
				}
			}},
		{name: "canary-by-cookie", canary: true,
			ours: map[string]string{"canary-by-cookie": "beta", "canary-weight": "100"}, nginx: map[string]string{"canary": "true", "canary-by-cookie": "beta"},
			check: func(t *testing.T, c *annClient, nginx bool) {
				if got := c.canaryShare(t, 10, map[string]string{"Cookie": "a=1; beta=always"}); got != 10 {
					t.Errorf("beta=always: %d of 10 to the canary, want all", got)
				}
				if got := c.canaryShare(t, 10, map[string]string{"Cookie": "beta=never"}); got != 0 {
					t.Errorf("beta=never: %d of 10 to the canary, want none", got)
				}
				want := 10 // weight 100: everyone else
				if nginx {
					want = 0 // no weight
				}
				if got := c.canaryShare(t, 10, nil); got != want {
					t.Errorf("without the cookie: %d of 10 to the canary, want %d", got, want)
				}
			}},
		// A canary's requests pass the primary's request policy first, as
		// ingress-nginx applies the main Ingress's annotations to them.
		{name: "canary-by-header under the primary's auth-basic-secret", canary: true,
			primary: map[string]string{"auth-basic-secret": "users-canary"}, primaryNginx: map[string]string{"auth-type": "basic", "auth-secret": "users-canary"},
			ours: map[string]string{"canary-by-header": "X-C"}, nginx: map[string]string{"canary": "true", "canary-by-header": "X-C"},
			secret: htpasswdSecret(t, "users-canary"),
			check: func(t *testing.T, c *annClient, _ bool) {
				c.expect(t, annReq{header: map[string]string{"X-C": "always"}}, 401, "")
				c.expect(t, annReq{header: map[string]string{"X-C": "always", "Authorization": basic("alice", "wrong")["Authorization"]}}, 401, "")
				creds := basic("alice", "s3cret")
				if got := c.canaryShare(t, 5, map[string]string{"X-C": "always", "Authorization": creds["Authorization"]}); got != 5 {
					t.Errorf("X-C: always with valid credentials: %d of 5 to the canary, want all", got)
				}
				if got := c.canaryShare(t, 5, creds); got != 0 {
					t.Errorf("valid credentials without X-C: %d of 5 to the canary, want none", got)
				}
			}},
		{name: "canary-by-cookie under the primary's allowlist", canary: true,
			primary: map[string]string{"allowlist-source-range": "10.0.0.0/8"}, primaryNginx: map[string]string{"whitelist-source-range": "10.0.0.0/8"},
			ours: map[string]string{"canary-by-cookie": "beta"}, nginx: map[string]string{"canary": "true", "canary-by-cookie": "beta"},
			check: func(t *testing.T, c *annClient, _ bool) {
				c.expect(t, annReq{header: map[string]string{"Cookie": "beta=always"}}, 403, "")
				c.expect(t, annReq{}, 403, "")
			}},
		{name: "canary-weight under the primary's allowlist", canary: true,
			primary: map[string]string{"allowlist-source-range": "10.0.0.0/8"}, primaryNginx: map[string]string{"whitelist-source-range": "10.0.0.0/8"},
			ours: map[string]string{"canary-weight": "50"}, nginx: map[string]string{"canary": "true", "canary-weight": "50"},
			check: func(t *testing.T, c *annClient, _ bool) {
				for i := range 100 {
					if resp := c.do(t, annReq{}); resp.StatusCode != 403 {
						t.Fatalf("anonymous request %d from outside the allowlist: %d from %q, want 403", i, resp.StatusCode, resp.Header.Get("X-Endpoint"))
					}
				}
			}},
		{name: "a canary's own route annotations are ignored", canary: true,
			ours:     map[string]string{"canary-by-header": "X-C", "denylist-source-range": "127.0.0.1"},
			nginx:    map[string]string{"canary": "true", "canary-by-header": "X-C", "denylist-source-range": "127.0.0.1"},
			problems: []render.Reason{render.CanaryAnnotationIgnored},
			check: func(t *testing.T, c *annClient, _ bool) {
				if got := c.canaryShare(t, 5, map[string]string{"X-C": "always"}); got != 5 {
					t.Errorf("X-C: always: %d of 5 to the canary, want all (its own denylist does not apply)", got)
				}
			}},
		// An access restriction that cannot be applied fails closed: an
		// invalid value of ours, an ingress-nginx protection not
		// implemented, an auth-url this sidecar does not reach (an
		// outside host, over https).
		{name: "an access restriction that cannot be applied fails closed",
			ours:     map[string]string{"allowlist-source-range": "everyone"},
			nginx:    map[string]string{"auth-url": "https://auth.example/check", "auth-signin": "https://login.example/", "auth-snippet": "return 200;"},
			problems: []render.Reason{render.InvalidAnnotation, render.UnsupportedProtection},
			check: func(t *testing.T, c *annClient, _ bool) {
				c.expect(t, annReq{}, 503, "")
				c.expect(t, annReq{path: "/x", header: basic("alice", "s3cret")}, 503, "")
			}},
		{name: "client certificates and a WAF fail closed",
			ours:     map[string]string{"denylist-source-range": "10.0.0.1, fe80::1%eth0"},
			nginx:    map[string]string{"auth-tls-secret": "default/backend-ca", "enable-modsecurity": "true"},
			problems: []render.Reason{render.InvalidAnnotation, render.UnsupportedProtection},
			check: func(t *testing.T, c *annClient, _ bool) {
				c.expect(t, annReq{}, 503, "")
			}},
		{name: "app-root with two leading slashes is refused",
			ours: map[string]string{"app-root": "//evil.example"}, nginx: map[string]string{"app-root": "//evil.example"},
			problems: []render.Reason{render.InvalidAnnotation},
			check: func(t *testing.T, c *annClient, _ bool) {
				c.expect(t, annReq{}, 200, "")
			}},
		{name: "timeout-connect", blackhole: true,
			ours: map[string]string{"timeout-connect": "200ms"}, nginx: map[string]string{"proxy-connect-timeout": "1"},
			check: func(t *testing.T, c *annClient, nginx bool) {
				t.Parallel() // seconds of waiting
				// HAProxy tries 4 times (retries 3), waiting the
				// shorter of timeout connect and 1s between tries; the
				// default 5s would take over 20s.
				limit := 3 * time.Second
				if nginx {
					limit = 7 * time.Second
				}
				start := time.Now()
				c.expect(t, annReq{}, 503, "")
				if d := time.Since(start); d > limit {
					t.Errorf("503 after %v, want within %v", d, limit)
				}
			}},
		{name: "timeout-tunnel", ours: map[string]string{"timeout-tunnel": "300ms"},
			check: func(t *testing.T, c *annClient, _ bool) {
				conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(c.httpPort))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				io.WriteString(conn, "GET /upgrade HTTP/1.1\r\nHost: "+c.host+"\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(conn)
				resp, err := http.ReadResponse(br, nil)
				if err != nil || resp.StatusCode != 101 {
					t.Fatalf("upgrade: %v %v", hStatus(resp), err)
				}
				start := time.Now()
				// Idle: HAProxy closes the tunnel after timeout-tunnel
				// (the default is 1h).
				if _, err := br.ReadByte(); err != io.EOF {
					t.Fatalf("idle tunnel: read %v, want EOF", err)
				}
				if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
					t.Errorf("idle tunnel closed after %v, want about 300ms", d)
				}
			}},
		{name: "backend-protocol h2c", ours: map[string]string{"backend-protocol": "h2c"},
			check: func(t *testing.T, c *annClient, _ bool) {
				if got := c.expect(t, annReq{}, 200, "").Header.Get("X-Proto"); got != "HTTP/2.0" {
					t.Errorf("the endpoint saw %s, want HTTP/2.0", got)
				}
			}},
		{name: "backend-protocol h2 over TLS", backendTLS: true,
			ours: map[string]string{"backend-protocol": "h2", "backend-ca-secret": "backend-ca", "backend-sni": "backend.internal"},
			check: func(t *testing.T, c *annClient, _ bool) {
				if got := c.expect(t, annReq{}, 200, "").Header.Get("X-Proto"); got != "HTTP/2.0" {
					t.Errorf("the endpoint saw %s, want HTTP/2.0", got)
				}
			}},
		{name: "backend-protocol grpc", tls: true, ours: map[string]string{"backend-protocol": "grpc"}, nginx: map[string]string{"backend-protocol": "GRPC"},
			check: func(t *testing.T, c *annClient, _ bool) {
				resp := c.doH2(t, "/grpc")
				if resp.StatusCode != 200 || resp.ProtoMajor != 2 || resp.Header.Get("X-Proto") != "HTTP/2.0" || resp.Trailer.Get("Grpc-Status") != "0" {
					t.Errorf("gRPC call: %d over %s, the endpoint saw %q, trailers %v; want 200 over HTTP/2 both ways with grpc-status 0 in the trailers",
						resp.StatusCode, resp.Proto, resp.Header.Get("X-Proto"), resp.Trailer)
				}
			}},
		{name: "backend-protocol grpcs", tls: true, backendTLS: true,
			ours:  map[string]string{"backend-protocol": "grpcs", "backend-ca-secret": "backend-ca", "backend-sni": "backend.internal"},
			nginx: map[string]string{"backend-protocol": "GRPCS", "proxy-ssl-secret": "default/backend-ca", "proxy-ssl-name": "backend.internal", "proxy-ssl-verify": "on"},
			check: func(t *testing.T, c *annClient, _ bool) {
				resp := c.doH2(t, "/grpc")
				if resp.StatusCode != 200 || resp.Header.Get("X-Proto") != "HTTP/2.0" || resp.Trailer.Get("Grpc-Status") != "0" {
					t.Errorf("gRPC call over TLS: %d, the endpoint saw %q, trailers %v", resp.StatusCode, resp.Header.Get("X-Proto"), resp.Trailer)
				}
			}},
		{name: "bad value is reported and ignored", ours: map[string]string{"balance": "fastest", "rate-limit-rps": "-1"},
			nginx: map[string]string{"load-balance": "fastest", "limit-rps": "lots"},
			check: func(t *testing.T, c *annClient, _ bool) {
				c.expect(t, annReq{}, 200, "")
			}},
	}
}

// affinityCookie is the response's cookie of that name, as a browser
// reads its Set-Cookie header.
func affinityCookie(t *testing.T, resp *http.Response, name string) *http.Cookie {
	t.Helper()
	for _, ck := range resp.Cookies() {
		if ck.Name == name {
			return ck
		}
	}
	t.Fatalf("no %s cookie: %v", name, resp.Header["Set-Cookie"])
	return nil
}

// sameEndpointPerKey sends 16 keys twice each: a key always reaches the
// same endpoint, and the keys reach both.
func sameEndpointPerKey(t *testing.T, c *annClient, req func(key string) annReq) {
	t.Helper()
	byKey, all := map[string]string{}, map[string]bool{}
	for i := range 16 {
		key := "k" + strconv.Itoa(i)
		for range 2 {
			got := c.expect(t, req(key), 200, "").Header.Get("X-Endpoint")
			if prev, ok := byKey[key]; ok && prev != got {
				t.Errorf("key %s went to %s, then to %s", key, prev, got)
			}
			byKey[key], all[got] = got, true
		}
	}
	if len(all) != 2 {
		t.Errorf("16 keys reached %v, want both endpoints", all)
	}
}
