package render_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	networkingv1 "k8s.io/api/networking/v1"
)

// regexRule is a frontend line of regular-expression routing: only the
// fixed lines of the template, never object text (that is in the map).
var regexRule = regexp.MustCompile(`^http-request set-var\(txn\.(rxhost|rxwild|backend)\) ` +
	`(var\(txn\.(host|wild)\),map_str\(maps/regex-hosts\.map\)( unless \{ var\(txn\.backend\) -m found \})?` +
	`|str\([0-3]\),concat\(,txn\.(host|wild)\),concat\(,txn\.path\),map_reg\(maps/regex\.map\) if \{ var\(txn\.rx(host|wild)\) -m found \}( !\{ var\(txn\.backend\) -m found \})?` +
	`|str\([45]\),concat\(,txn\.path\),map_reg\(maps/regex\.map\) unless \{ var\(txn\.backend\) -m found \})$`)

// routingRule: a frontend line that annotations add (canary rules, and
// regular-expression routing).
func routingRule(d string) bool { return canaryRule.MatchString(d) || regexRule.MatchString(d) }

// TestRegexRouting routes testdata/regex through HAProxy 2.6 and 3.0 (and
// explain): the cases of ingress-nginx's docs/user-guide/
// ingress-path-matching.md and docs/examples/rewrite, with this
// project's tenancy rules and documented differences.
func TestRegexRouting(t *testing.T) {
	svc := func(ns, name string) string { return "svc:" + ns + "/" + name }
	d := func(name string) string { return svc("default", name) }
	runRouting(t, "regex", []request{
		// "Path Priority": longest expression first, every path of the
		// host a case-insensitive expression from the start of the path.
		{host: "test.com", path: "/foo/bar/1", want: d("service3")},
		{host: "test.com", path: "/foo/bar", want: d("service1")},
		{host: "test.com", path: "/FOO/BAR", want: d("service1")},
		{host: "test.com", path: "/foo/barbaz", want: d("service1")},
		// Difference: "/foo/bar/" lost its conflict with "/foo/bar" (the
		// same Prefix path) before the host became regular expressions.
		{host: "test.com", path: "/foo/bar/", want: d("service1")},
		{host: "test.com", path: "/other", want: "status:404"},
		// "Warning": the longer expression wins over an exact text.
		{host: "test3.com", path: "/foo/bar/bar", want: d("test-b")},
		{host: "test3.com", path: "/foo/bar/Ab1", want: d("test-b")},
		{host: "test3.com", path: "/foo/bar/ab", want: "status:404"},
		// docs/examples/rewrite: /something(/|$)(.*)
		{host: "rewrite.bar.com", path: "/something", want: d("http-svc")},
		{host: "rewrite.bar.com", path: "/something/new?q=1", want: d("http-svc")},
		{host: "rewrite.bar.com", path: "/somethingelse", want: "status:404"},
		// Tenancy: the younger namespace's expressions come after the
		// older namespace's path, and only take what it leaves.
		{host: "shared.com", path: "/api/x", want: svc("team-a", "a-api")},
		{host: "shared.com", path: "/api", want: svc("team-a", "a-api")},
		{host: "shared.com", path: "/API/x", want: svc("team-b", "b-api")},
		{host: "shared.com", path: "/other", want: svc("team-b", "b-all")},
		// The older namespace's expression comes before a younger one's
		// Exact path.
		{host: "owned.com", path: "/c/x", want: svc("team-c", "c-all")},
		{host: "owned.com", path: "/C/y", want: svc("team-c", "c-all")},
		{host: "owned.com", path: "/d/1", want: svc("team-d", "d-d")},
		// A wildcard host, and rules without host (anchored with $).
		{host: "a.wild.com", path: "/w/123", want: d("wild-num")},
		{host: "a.wild.com", path: "/W/9/x", want: d("wild-num")},
		{host: "a.wild.com", path: "/w/x", want: "status:404"},
		{host: "x.example", path: "/any/word", want: d("any-word")},
		{host: "test.com", path: "/any/word/", want: d("any-word")},
		{host: "x.example", path: "/any/word/x", want: "status:404"},
		// Never another host's expression.
		{host: "test3.com", path: "/something", want: "status:404"},
		{host: "rewrite.bar.com.evil", path: "/something", want: "status:404"},
		{host: "other.com", path: "/c/x", want: "status:404"},
		// HAProxy-special characters in an accepted expression match as
		// themselves.
		{host: "bad.com", path: "/ok/$'", want: d("bad")},
		{host: "bad.com", path: "/ok/x", want: "status:404"},
		// rewrite-target's group without use-regex: ignored, route served.
		{host: "nogroups.com", path: "/x", want: d("bad")},
	})
}

// isoRegexMode says whether an Ingress's paths are regular expressions
// under the annotation mode (how the annotations combine is
// TestAnnotationEffects' and the README tables' business).
func isoRegexMode(ing *networkingv1.Ingress, compat render.Compat) bool {
	return render.RegexModeOf(ing, compat)
}

// regexScore is 1 when the path, as a regular expression, matches reqPath
// as HAProxy matches it; 0 otherwise (or when it is not one).
func regexScore(p networkingv1.HTTPIngressPath, reqPath string) int {
	path := p.Path
	if path == "" {
		path = "/"
	}
	re, err := regexp.Compile(`(?i)^(?:` + path + `)`)
	if err != nil || !re.MatchString(reqPath) {
		return 0
	}
	return 1
}

// hostileRegexPaths are regular-expression paths a tenant may try:
// catastrophic backtracking, huge expressions, and HAProxy's special
// characters. Each is refused with InvalidRegex or reaches HAProxy as an
// escaped expression of bounded cost.
func hostileRegexPaths() []string {
	paths := []string{
		// Exponential or polynomial backtracking in PCRE.
		`/(a+)+$`, `/(a*)*b`, `/(a|aa)+$`, `/(a|a)*c`, `/(.*a){12}`, `/(x+x+)+y`,
		`/(.*)(.*)(.*)x`, `/(.*)(.*)x`, `/([0-9]+)(.*)x`, `/(\w+\s?)+$`,
		`/a?a?a?a?a?a?a?a?a?aaaaaaaaa`, `/(?:ab|cd|ef){1,50}`, `/(ab|cd|ef)(ab|cd|ef)(ab|cd|ef)(ab|cd|ef)(ab|cd|ef)(ab|cd|ef)`,
		// Huge.
		"/" + strings.Repeat("a", render.MaxRegexLength), `/[a-z]{1000}`, `/(a{100}){100}`,
		"/" + strings.Repeat("(", 500) + strings.Repeat(")", 500), "/" + strings.Repeat("(a)", 300),
		// Beyond RE2, or not a path.
		`/(a)\1`, `/(?=x)`, `/(?<!x)y`, `/a++`, `/(?>a)`, `/\p{Greek}+`, `^/x`, `x`, "/a\nb", "/é",
		// HAProxy's special characters, accepted as themselves.
		`/ok/[%$'"#]+`, `/q/[{}]+`, `/e/\$\{HOME\}`, `/p/%\[env\(HOME\)\]`, `/w/\x20+`, `/l/lua-load`,
		// Accepted: one repetition that backtracks, the others possessive.
		`/lin/(.*)x`, `/seg/[^/]+/[^/]+/(.*)x`, `/api/v[0-9]+/(.*)`, `/something(/|$)(.*)`,
	}
	for _, v := range hostileValues() {
		paths = append(paths, "/"+v)
	}
	return paths
}

// TestHostileRegex gives tenant A every hostile expression on its host
// and floods that host with the longest adversarial paths HAProxy takes,
// while tenant B's plain host must keep answering: p99 within 100 ms (the
// bound TestUserlistFlood holds for password hashes), on 2.6 and 3.0.
func TestHostileRegex(t *testing.T) {
	paths := hostileRegexPaths()
	// Twenty expressions of one repetition each, all tried by every request
	// to their host (none matches the flood), and two with possessive
	// repetitions before it.
	floodPaths := []string{`/seg/[^/]+/[^/]+/(.*)x`, `/api/v[0-9]+/(.*)x`}
	for k := range 20 {
		floodPaths = append(floodPaths, fmt.Sprintf(floodLin, k))
	}
	in := render.Inputs{IngressClasses: []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: "haproxy"},
		Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}}}
	aPort, bPort := startEcho(t, "tenant-a/a"), startEcho(t, "tenant-b/b")
	in.Services = append(in.Services, regexService("tenant-a", "a"), regexService("tenant-b", "b"))
	in.EndpointSlices = append(in.EndpointSlices, regexSlice("tenant-a", "a", aPort), regexSlice("tenant-b", "b", bPort))
	regex := map[string]string{render.AnnotationPrefix + "use-regex": "true"}
	// The corpus on a.test; the accepted expressions the flood aims at
	// alone on x2.test (an expression of the corpus that matches
	// everything would answer the flood before them).
	in.Ingresses = append(in.Ingresses, regexIngress("tenant-a", "a", "a", "a.test", regex, paths...),
		regexIngress("tenant-a", "a2", "a", "x2.test", regex, floodPaths...),
		regexIngress("tenant-b", "b", "b", "b.test", nil, "/"))
	httpPort := freePort(t)
	m, out, _ := renderInputs(t, in, haproxycfg.Config{HTTPBind: "127.0.0.1:" + strconv.Itoa(httpPort), HTTPSBind: "127.0.0.1:" + strconv.Itoa(freePort(t))}, nil)

	refused := map[string]bool{}
	for _, p := range m.Problems {
		if p.Namespace == "tenant-a" && p.Reason == render.InvalidRegex {
			refused[p.Field] = true
		}
	}
	accepted := map[string]bool{}
	for _, h := range m.Regex {
		if h.Host != "a.test" {
			continue
		}
		for _, rr := range h.First {
			accepted[rr.Route.Origin.Field] = true
		}
	}
	for i, p := range paths {
		field := "spec.rules[0].http.paths[" + strconv.Itoa(i) + "]"
		if refused[field+".path"] == accepted[field] {
			t.Errorf("%q: refused %v, accepted %v: want exactly one", p, refused[field+".path"], accepted[field])
		}
	}
	for _, want := range []string{`/(a+)+$`, `/(.*)(.*)x`, `/([0-9]+)(.*)x`, `/(a)\1`, `/a?a?a?a?a?a?a?a?a?aaaaaaaaa`, "/" + strings.Repeat("a", render.MaxRegexLength)} {
		if i := slices.Index(paths, want); !refused["spec.rules[0].http.paths["+strconv.Itoa(i)+"].path"] {
			t.Errorf("%q was not refused", want)
		}
	}
	for _, want := range []string{`/ok/[%$'"#]+`, `/lin/(.*)x`, `/seg/[^/]+/[^/]+/(.*)x`, `/something(/|$)(.*)`} {
		if i := slices.Index(paths, want); !accepted["spec.rules[0].http.paths["+strconv.Itoa(i)+"]"] {
			t.Errorf("%q was not accepted", want)
		}
	}
	// The map's keys hold nothing HAProxy's map or config parsers read.
	safe := regexp.MustCompile(`^\^[0-9][A-Za-z0-9.\\*-]*(\(\?=/\))?\(\?:[A-Za-z0-9/\\()?:*+{},|\[\]^=!-]*\) [A-Za-z0-9_.:-]+$`)
	for _, line := range strings.Split(string(out.Get(render.RegexMapFile)), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") && !safe.MatchString(line) {
			t.Errorf("regex map line %q has characters HAProxy could read", line)
		}
	}
	dir := t.TempDir()
	writeFiles(t, dir, out)

	// The adversarial paths: long runs of what the accepted expressions
	// repeat, without the character that must follow them. PCRE2
	// backtracks only when that character is somewhere in what it
	// matches: the flooded host has it (x2.test). Runs of 2 to 4 kB cost
	// most: HAProxy's PCRE2 JIT stack overflows on longer ones, which
	// then fail at once (measured: "(.*)(.*)x" 14 ms at 4 kB, under 1 ms
	// at 8 kB).
	// Each request's path is new (a counter in it): HAProxy caches the
	// result of a lookup by its input (tune.pattern.cache-size).
	var attack []func(n int) string
	for _, s := range []string{"a", "1", "/", "x/", "a/1/"} {
		run := strings.Repeat(s, (2000+1000*len(attack)%3000)/len(s))
		for _, prefix := range []string{"/lin/", "/seg/", "/api/v"} {
			attack = append(attack, func(n int) string { return prefix + strconv.Itoa(n) + run })
		}
	}
	for version, bin := range testenv.HAProxies(t) {
		t.Run("haproxy-"+version, func(t *testing.T) {
			startHAProxy(t, bin, filepath.Join(dir, haproxycfg.ConfigFile), httpPort)
			c := newClient(httpPort, 0)
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			var floods atomic.Int64
			aLat := make([][]time.Duration, 8)
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; ctx.Err() == nil; i += 8 {
						start := time.Now()
						if regexGet(httpPort, "x2.test", attack[i%len(attack)](i)) > 0 {
							floods.Add(1)
							aLat[w] = append(aLat[w], time.Since(start))
						}
					}
				}()
			}
			time.Sleep(500 * time.Millisecond)
			var lat []time.Duration
			for ctx.Err() == nil && len(lat) < 2000 {
				start := time.Now()
				if got, _ := c.do(t, request{host: "b.test", path: "/x"}); got != "svc:tenant-b/b" {
					t.Fatalf("tenant B: %s", got)
				}
				lat = append(lat, time.Since(start))
			}
			cancel()
			wg.Wait()
			slices.Sort(lat)
			p99 := lat[len(lat)*99/100]
			t.Logf("%d adversarial requests to A, %d to B: B's p99 %v", floods.Load(), len(lat), p99)
			if p99 > 100*time.Millisecond {
				t.Errorf("tenant B's p99 %v while A's expressions are flooded, want within 100ms", p99)
			}
			// What one request to A's expressions may cost HAProxy: a
			// request that takes the thread longer slows whoever shares it.
			all := slices.Concat(aLat...)
			slices.Sort(all)
			if len(all) > 0 {
				if aP99 := all[len(all)*99/100]; aP99 > 100*time.Millisecond {
					t.Errorf("tenant A's adversarial requests: p99 %v, want within 100ms", aP99)
				} else {
					t.Logf("tenant A's adversarial requests: p99 %v", aP99)
				}
			}
			if floods.Load() < 100 {
				t.Errorf("only %d adversarial requests answered", floods.Load())
			}
		})
	}
}

// floodLin is the shape of TestHostileRegex's flooded expressions.
const floodLin = `/lin/(.*)x%d`

// regexGet sends one GET and returns the status, 0 on error.
func regexGet(port int, host, path string) int {
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+strconv.Itoa(port)+path, nil)
	req.Host = host
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func regexService(ns, name string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
}

func regexSlice(ns, name string, port int) *discoveryv1.EndpointSlice {
	p, pname, ready := int32(port), "http", true
	return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: &pname, Port: &p}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}}}
}

func regexIngress(ns, name, svc, host string, ann map[string]string, paths ...string) *networkingv1.Ingress {
	cls := "haproxy"
	pt := networkingv1.PathTypeImplementationSpecific
	var hp []networkingv1.HTTPIngressPath
	for _, p := range paths {
		hp = append(hp, networkingv1.HTTPIngressPath{Path: p, PathType: &pt, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
			Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}}}})
	}
	return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: ann, CreationTimestamp: metav1.NewTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))},
		Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: host,
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: hp}}}}}}
}

// BenchmarkRegexRequests measures what a request costs HAProxy at 10k
// Ingresses, with and without 100 hosts of regular expressions
// (syntheticRegex): to a host without any (one more tree lookup), and to
// a host with them (map_reg over those hosts' lines). Every endpoint is
// one local echo server; requests go one after another on one
// keep-alive connection.
func BenchmarkRegexRequests(b *testing.B) {
	tmpl, err := templates.Load("")
	if err != nil {
		b.Fatal(err)
	}
	echo := startEcho(b, "echo")
	for _, c := range []struct {
		name string
		in   render.Inputs
	}{{"plain", syntheticInputs(10000)}, {"regex100", syntheticRegex(10000)}} {
		for i, es := range c.in.EndpointSlices {
			es = es.DeepCopy()
			p := int32(echo)
			es.Ports[0].Port = &p
			for j := range es.Endpoints {
				es.Endpoints[j].Addresses = []string{"127.0.0.1"}
			}
			c.in.EndpointSlices[i] = es
		}
		port := testenv.FreePort(b)
		m := render.BuildModel(c.in, render.Options{})
		out, err := haproxycfg.Render(m, haproxycfg.Config{Template: tmpl, HTTPBind: "127.0.0.1:" + strconv.Itoa(port), HTTPSBind: "127.0.0.1:" + strconv.Itoa(testenv.FreePort(b))})
		if err != nil {
			b.Fatal(err)
		}
		dir := b.TempDir()
		writeFiles(b, dir, out)
		for version, bin := range testenv.HAProxies(b) {
			b.Run(c.name+"/haproxy-"+version, func(b *testing.B) {
				startHAProxy(b, bin, filepath.Join(dir, haproxycfg.ConfigFile), port)
				cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
				for _, target := range []struct{ name, host, path string }{
					{"plain-host", "app9998.example.com", "/healthz"},
					{"regex-host", "app9903.example.com", "/api/v1/users"},
				} {
					b.Run(target.name, func(b *testing.B) {
						req, _ := http.NewRequest("GET", "http://127.0.0.1:"+strconv.Itoa(port)+target.path, nil)
						req.Host = target.host
						for b.Loop() {
							resp, err := cl.Do(req)
							if err != nil {
								b.Fatal(err)
							}
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							if resp.StatusCode != 200 {
								b.Fatalf("%s%s: %d", target.host, target.path, resp.StatusCode)
							}
						}
					})
				}
			})
		}
	}
}
