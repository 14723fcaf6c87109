package render_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// tenantA is A's objects and the generator that changes them.
type tenantA struct {
	r      *rand.Rand
	fx     *isoFixture
	keys   []bKey
	born   int
	ings   map[string]*networkingv1.Ingress
	svcs   map[string]*corev1.Service
	slices map[string]*discoveryv1.EndpointSlice
	secs   map[string]*corev1.Secret
	cms    map[string]*corev1.ConfigMap
}

func newTenantA(seed uint64, fx *isoFixture) *tenantA {
	return &tenantA{r: rand.New(rand.NewPCG(seed, 21)), fx: fx, keys: fx.keys(),
		ings: map[string]*networkingv1.Ingress{}, svcs: map[string]*corev1.Service{},
		slices: map[string]*discoveryv1.EndpointSlice{}, secs: map[string]*corev1.Secret{}, cms: map[string]*corev1.ConfigMap{}}
}

func pick[T any](r *rand.Rand, list []T) T { return list[r.IntN(len(list))] }

var (
	isoIngressNames = []string{"a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "b-open", "b-auth", "b-canary"}
	isoServiceNames = []string{"a-one", "a-two", "b-web"}
	isoBackendNames = []string{"a-one", "a-two", "b-web", "b-api", "b-canary", "a-none"}
	isoSecretNames  = []string{"a-users", "b-users", "a-tls", "b-tls", "a-ca", "junk"}
	isoOtherHosts   = []string{"*.test", "a1.test", "", "B1.TEST", "b1.test.", "*.b1.test", "b1.test:80", "b1.test\nx", "xn--b1-test"}
	isoOtherPaths   = []string{"/", "/api/", "/api/v1", "/api/x", "/exact", "/exact/", "/rw/users", "/rw", "/home", "/open", "/open/x",
		"/anything", "/p", "/q", "/x", "/API", "/ap%69", "", "api", "/a b", "/..", "//", "/api/v1/x/y", "/v2"}
	isoPathTypes = []networkingv1.PathType{networkingv1.PathTypeExact, networkingv1.PathTypePrefix, networkingv1.PathTypeImplementationSpecific, "", "Regex"}
)

// step makes one to three changes to A's objects and describes them.
func (a *tenantA) step() []string {
	var what []string
	for range 1 + a.r.IntN(3) {
		what = append(what, a.change())
	}
	return what
}

func (a *tenantA) change() string {
	r := a.r
	switch x := r.IntN(100); {
	case x < 45:
		name := pick(r, isoIngressNames)
		a.ings[name] = a.ingress(name)
		return "Ingress " + name + " set"
	case x < 55:
		name := pick(r, isoIngressNames)
		delete(a.ings, name)
		return "Ingress " + name + " deleted"
	case x < 70:
		name := pick(r, isoSecretNames)
		a.secs[name] = a.secret(name)
		return "Secret " + name + " set"
	case x < 74:
		name := pick(r, isoSecretNames)
		delete(a.secs, name)
		return "Secret " + name + " deleted"
	case x < 82:
		name := pick(r, isoServiceNames)
		if r.IntN(4) == 0 {
			delete(a.svcs, name)
			return "Service " + name + " deleted"
		}
		a.svcs[name] = a.service(name)
		return "Service " + name + " set"
	case x < 92:
		label := pick(r, append(isoServiceNames, "b-api"))
		name := label + "-" + strconv.Itoa(r.IntN(2))
		if r.IntN(4) == 0 {
			delete(a.slices, name)
			return "EndpointSlice " + name + " deleted"
		}
		a.slices[name] = a.slice(name, label)
		return "EndpointSlice " + name + " set"
	case x < 93:
		// Many Ingresses at once (the engine's bulk path), most of them
		// on B's hosts: B's later changes must not slow down for them
		// beyond the Ingresses sharing their host.
		for i := range 40 {
			name := "flood-" + strconv.Itoa(i)
			a.ings[name] = a.ingress(name)
		}
		return "40 flood Ingresses set"
	case x < 94:
		for name := range a.ings {
			if strings.HasPrefix(name, "flood-") {
				delete(a.ings, name)
			}
		}
		return "flood Ingresses deleted"
	case x < 97:
		a.cms["haproxy-sidecar"] = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: isoNSA, Name: "haproxy-sidecar"},
			Data: map[string]string{"default-certificate": "tenant-b/b-tls", "trusted-proxies": "0.0.0.0/0", "timeout-server": "1ms",
				"ssl-redirect": "true", pick(r, []string{"maxconn", "log-format"}): pick(r, hostileValues())}}
		return "ConfigMap set"
	default:
		clear(a.ings)
		clear(a.svcs)
		clear(a.slices)
		clear(a.secs)
		clear(a.cms)
		return "everything deleted"
	}
}

func (a *tenantA) nextBorn() metav1.Time {
	a.born++
	return metav1.NewTime(isoBorn.Add(24*time.Hour + time.Duration(a.born)*time.Second))
}

// ingress is a new version of A's Ingress name (an update keeps its
// creation time, like the API server).
func (a *tenantA) ingress(name string) *networkingv1.Ingress {
	r := a.r
	born := a.nextBorn()
	if old := a.ings[name]; old != nil {
		born = old.CreationTimestamp
	}
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: isoNSA, Name: name, CreationTimestamp: born, Annotations: map[string]string{}}}
	switch r.IntN(10) {
	case 0: // the default class
	case 1:
		ing.Spec.IngressClassName = hPtr("other")
	case 2:
		ing.Annotations[render.LegacyClassAnnotation] = "haproxy"
	default:
		ing.Spec.IngressClassName = hPtr("haproxy")
	}
	hosts := a.fx.hosts()
	var ruleHosts []string
	for range 1 + r.IntN(3) {
		host := pick(r, hosts)
		if r.IntN(3) == 0 {
			host = pick(r, isoOtherHosts)
		}
		ruleHosts = append(ruleHosts, host)
		var paths []networkingv1.HTTPIngressPath
		for range 1 + r.IntN(3) {
			var p networkingv1.HTTPIngressPath
			same := slices.DeleteFunc(slices.Clone(a.keys), func(k bKey) bool { return k.host != host })
			if len(same) > 0 && r.IntN(2) == 0 {
				k := pick(r, same) // the very host, path and type of B
				p.Path, p.PathType = k.path, hPtr(k.pt)
			} else {
				p.Path = pick(r, isoOtherPaths)
				if r.IntN(20) == 0 {
					p.Path = pick(r, hostileValues())
				}
				if pt := pick(r, isoPathTypes); pt != "" {
					p.PathType = hPtr(pt)
				}
			}
			p.Backend = a.backend()
			paths = append(paths, p)
		}
		ing.Spec.Rules = append(ing.Spec.Rules, networkingv1.IngressRule{Host: host,
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}})
	}
	if r.IntN(7) == 0 {
		b := a.backend()
		ing.Spec.DefaultBackend = &b
	}
	if r.IntN(4) == 0 {
		for range 1 + r.IntN(2) {
			var tl networkingv1.IngressTLS
			for range r.IntN(3) {
				host := pick(r, []string{"b7.test", "a1.test", "B7.TEST", "", "*.b1.test", "b7.test."})
				if r.IntN(4) == 0 {
					host = pick(r, append(slices.Clone(hosts), "*.test"))
				}
				tl.Hosts = append(tl.Hosts, host)
			}
			tl.SecretName = pick(r, append(slices.Clone(isoSecretNames), "tenant-b/b-tls", "missing", ""))
			ing.Spec.TLS = append(ing.Spec.TLS, tl)
		}
	}
	for range r.IntN(4) {
		maps.Copy(ing.Annotations, a.annotation())
	}
	if r.IntN(3) == 0 {
		maps.Copy(ing.Annotations, pick(r, a.targeted()))
	}
	if r.IntN(4) == 0 {
		// A canary for one of B's very routes.
		k := pick(r, a.keys)
		ing.Spec.Rules = []networkingv1.IngressRule{{Host: k.host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
			Paths: []networkingv1.HTTPIngressPath{{Path: k.path, PathType: hPtr(k.pt), Backend: a.backend()}}}}}}
		maps.Copy(ing.Annotations, pick(r, a.canaries()))
	}
	return ing
}

func (a *tenantA) backend() networkingv1.IngressBackend {
	r := a.r
	s := &networkingv1.IngressServiceBackend{Name: pick(r, isoBackendNames)}
	switch r.IntN(8) {
	case 0:
		s.Port.Name = "http"
	case 1:
		s.Port.Number = 8080
	case 2:
		s.Port.Name = "Bad_Name"
	default:
		s.Port.Number = 80
	}
	return networkingv1.IngressBackend{Service: s}
}

// canaries are canary annotation sets, ours and ingress-nginx's.
func (a *tenantA) canaries() []map[string]string {
	p, n := render.AnnotationPrefix, render.NginxAnnotationPrefix
	return []map[string]string{
		{p + "canary-weight": "100"},
		{p + "canary-weight": "1", p + "canary-weight-total": "1"},
		{p + "canary-by-header": "X-Canary"},
		{p + "canary-by-header": "X-B-Canary"},
		{p + "canary-by-header": "X-Canary", p + "canary-by-header-value": "yes"},
		{p + "canary-by-cookie": "canary"},
		{p + "canary": "true", p + "canary-weight": "100", p + "auth-basic-secret": "a-users"},
		{n + "canary": "true", n + "canary-weight": "100"},
		{n + "canary": "true", n + "canary-by-header": "X-Canary", n + "canary-by-header-value": "always"},
		{n + "canary": "true", n + "canary-by-cookie": "beta"},
	}
}

// targeted are annotation sets aimed at B's protections and answers.
func (a *tenantA) targeted() []map[string]string {
	p, n := render.AnnotationPrefix, render.NginxAnnotationPrefix
	return []map[string]string{
		{p + "auth-basic-secret": "b-users"},
		{p + "auth-basic-secret": "a-users", p + "auth-realm": "B realm"},
		{p + "auth-basic-secret": "tenant-b/b-users"},
		{n + "auth-type": "basic", n + "auth-secret": "tenant-b/b-users"},
		{n + "auth-type": "basic", n + "auth-secret": "a-users", n + "auth-realm": "A"},
		{p + "ssl-redirect": "true", p + "ssl-redirect-code": "302"},
		{p + "ssl-redirect": "false"},
		{n + "force-ssl-redirect": "true"},
		// TLS passthrough of B's hosts (A is younger: never their owner),
		// and of A's own, which puts a TCP frontend before every HTTPS
		// connection of B's.
		{p + "ssl-passthrough": "true"},
		{n + "ssl-passthrough": "true"},
		{p + "ssl-passthrough": "true", p + "allowlist-source-range": "10.0.0.0/8"},
		{p + "permanent-redirect": "https://evil.example/"},
		{p + "temporal-redirect": "https://evil.example/"},
		{p + "app-root": "/evil"},
		{p + "rewrite-target": "/evil"},
		{n + "rewrite-target": "/evil/$1"},
		{p + "allowlist-source-range": "10.0.0.0/8"},
		{p + "denylist-source-range": "0.0.0.0/0"},
		{n + "whitelist-source-range": "10.0.0.0/8"},
		{p + "rate-limit-rps": "1", p + "rate-limit-connections": "1"},
		{n + "limit-rps": "1"},
		{p + "cors-enable": "true", p + "cors-allow-origin": "*", p + "cors-allow-methods": "DELETE"},
		{p + "hsts": "true", p + "hsts-max-age": "1", p + "hsts-include-subdomains": "false"},
		{p + "body-size-limit": "1"},
		{p + "backend-protocol": "https", p + "backend-ca-secret": "a-ca"},
		{p + "backend-ca-secret": "tenant-b/b-tls"},
		{p + "balance": "source", p + "affinity": "cookie", p + "session-cookie-name": "INGRESSCOOKIE"},
		{p + "health-check-path": "/healthz", p + "health-check-interval": "1ms"},
		{p + "timeout-server": "1ms", p + "timeout-connect": "1ms", p + "maxconn-server": "1", p + "timeout-queue": "1ms"},
		{p + "server-alias": "b1.test, b7.test, b9.test"},
		{n + "server-alias": "b2.test,*.b1.test"},
		{p + "from-to-www-redirect": "true"},
		{n + "default-backend": "b-web", n + "custom-http-errors": "404,503"},
		{p + "custom-http-errors": "403,404"},
		{p + "default-backend": "a-one"},
		{n + "default-backend": "b-web"},
		{p + "default-backend": "a-two:8080", p + "server-alias": "b3.test"},
		{n + "configuration-snippet": "http-request deny"},
		{n + "server-snippet": "http-request deny"},
		// Header rules act on A's own routes only, whatever they set.
		{p + "headers": "request X-Forwarded-For: 198.18.0.1\nrequest Authorization: Basic YjpiCg==\nresponse Set-Cookie: b-session=stolen; Domain=.test\nresponse Location: https://evil.example/"},
		{n + "configuration-snippet": "more_set_headers 'Strict-Transport-Security: max-age=0';\nproxy_set_header X-Real-IP 127.0.0.1;", n + "server-snippet": "add_header Access-Control-Allow-Origin *;"},
		// B's Services as an auth service: refused (another namespace),
		// or A's own Service of the same name.
		{p + "auth-url": "http://b-web.tenant-b/"},
		{p + "auth-url": "http://b-web.tenant-b.svc.cluster.local:80/check", p + "auth-response-headers": "X-B"},
		{n + "auth-url": "http://b-api.tenant-b.svc/check", n + "auth-signin": "https://b2.test/login"},
		{p + "auth-url": "http://b-web/", p + "auth-signin": "/login"},
		// Through the host: only a route of A's own namespace may answer.
		{p + "auth-url": "https://$host/", n + "auth-url": "http://$host/api/v1"},
		{n + "auth-url": "https://$host/oauth2/auth", n + "auth-signin": "https://$host/oauth2/start?rd=$escaped_request_uri"},
	}
}

// annotation is one annotation, ours or ingress-nginx's, with a valid,
// hostile, or valid-then-hostile value, and what it needs beside it.
func (a *tenantA) annotation() map[string]string {
	r := a.r
	var key string
	var spec hostileSpec
	if r.IntN(2) == 0 {
		an := pick(r, render.Annotations())
		key, spec = render.AnnotationPrefix+an.Name, oursSpec(an.Name)
	} else {
		an := pick(r, render.NginxAnnotations())
		key, spec = render.NginxAnnotationPrefix+an.Name, nginxSpec(an.Name)
	}
	out := maps.Clone(spec.with)
	if out == nil {
		out = map[string]string{}
	}
	switch r.IntN(4) {
	case 0, 1:
		out[key] = spec.valid
	case 2:
		out[key] = pick(r, hostileValues())
	default:
		out[key] = spec.valid + pick(r, hostileSuffixes())
	}
	return out
}

func (a *tenantA) service(name string) *corev1.Service {
	r := a.r
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: isoNSA, Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	switch r.IntN(8) {
	case 0:
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: "other", Port: 8080})
	case 1:
		// B's Service by its cluster names, B's pod by address, the
		// load balancer itself: refused (InvalidExternalName), 503.
		svc.Spec.Type = corev1.ServiceTypeExternalName
		svc.Spec.ExternalName = pick(r, []string{"b-web.tenant-b.svc.cluster.local", "b-web.tenant-b.svc", "b-web.tenant-b",
			"127.0.0.1", "localhost", "_http._tcp.b-web.tenant-b.svc.cluster.local"})
	case 3:
		// A name outside the cluster: resolved by HAProxy, through the
		// settings' nameserver (isoInputs), which answers nothing.
		svc.Spec.Type = corev1.ServiceTypeExternalName
		svc.Spec.ExternalName = "a-partner.example.com"
	case 2:
		svc.Spec.Ports = []corev1.ServicePort{{Name: "Bad_Name", Port: 80}}
	}
	return svc
}

// slice is an EndpointSlice of A labelled for Service label, pointing at
// A's echo servers (the one named like B's Service answers a-imposter),
// at a closed port, or at addresses the sidecar must refuse.
func (a *tenantA) slice(name, label string) *discoveryv1.EndpointSlice {
	r := a.r
	port := a.fx.aEchoes[label]
	if port == 0 {
		port = a.fx.aEchoes["a-imposter"]
	}
	if r.IntN(5) == 0 {
		port = a.fx.closed
	}
	p, pname := int32(port), "http"
	ready := r.IntN(5) != 0
	addr := "127.0.0.1"
	switch r.IntN(10) {
	case 0:
		addr = "not-an-ip"
	case 1:
		addr = "0.0.0.0"
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: isoNSA, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: label}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &p}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}
	if r.IntN(10) == 0 {
		es.Ports[0].Port = hPtr(int32(70000))
	}
	return es
}

// SHA-crypt hashes with more rounds than the default 5000: work HAProxy
// does per request and at parse time, bounded (`python3 crypt`).
const (
	isoSHA512Rounds = "$6$rounds=20000$evesalt$jY4ACWRwy4so0oK7/ThPVWK0DL0f1X1JwxLwF9aEXeAG35.gxJlFa19r3b/TB42HI96z0Wpsj6SkuOeMS2kcZ1" // "3ve"
	isoSHA256Rounds = "$5$rounds=10000$fivesalt$PWiWre/WMPjh5J9zzGwwMlty4zDKmxEenzlC3BkCwP1"                                           // "secret"
)

func (fx *isoFixture) bcryptHash(t *testing.T, cost int) string {
	if h, ok := fx.bcrypt[cost]; ok {
		return h
	}
	h, err := bcrypt.GenerateFromPassword([]byte("m4llory"), cost)
	if err != nil {
		t.Fatal(err)
	}
	fx.bcrypt[cost] = string(h)
	return string(h)
}

// secret is A's Secret name: an htpasswd file (valid, hostile or with
// costly but bounded hashes), a TLS pair (A's own certificate for B's
// hosts, a key of another certificate, garbage) or a CA bundle.
func (a *tenantA) secret(name string) *corev1.Secret {
	r := a.r
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: isoNSA, Name: name}, Data: map[string][]byte{}}
	switch r.IntN(3) {
	case 0:
		var lines []string
		for range 1 + r.IntN(4) {
			lines = append(lines, pick(r, []string{
				"mallory:" + a.fx.bcrypt[pick(r, []int{4, 5, 6, 8})],
				"alice:" + a.fx.bcrypt[4], // B's user name, A's password
				"eve:" + isoSHA512Rounds,
				"bob:" + isoSHA256Rounds,
				"bob:" + sha512crypt,
				"nocolon", ":", "user:", "user:plaintext", "user:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
				"user:$apr1$salt$hash", "# comment", "", "u ser:" + sha512crypt, "user:" + strings.Repeat("$", 5000),
				"%[env(HOME)]:" + sha512crypt, "a\rb:" + sha512crypt,
			}))
		}
		if r.IntN(4) == 0 {
			lines = append(lines, pick(r, []string{
				"slow:$2y$31$" + strings.Repeat("a", 53),
				"slow:$6$rounds=999999999$salt$" + strings.Repeat("a", 86),
			}))
		}
		s.Data["auth"] = []byte(strings.Join(lines, "\n") + "\n")
		if r.IntN(8) == 0 {
			s.Data = map[string][]byte{"htpasswd": s.Data["auth"]}
		}
	case 1:
		s.Type = corev1.SecretTypeTLS
		crt, key := a.fx.aCert[0], a.fx.aCert[1]
		if r.IntN(2) == 0 {
			crt, key = a.fx.aCert2[0], a.fx.aCert2[1]
		}
		switch r.IntN(5) {
		case 0:
			key = a.fx.aCert2[1]
			crt = a.fx.aCert[0] // a key of another certificate
		case 1:
			crt = []byte("garbage")
		}
		s.Data["tls.crt"], s.Data["tls.key"] = crt, key
	default:
		s.Data["ca.crt"] = pick(r, [][]byte{a.fx.aCert[0], []byte("garbage"), []byte(pick(r, hostileValues()))})
	}
	return s
}

// requests are requests for A's own routes (at most 8), with a wrong
// password and A's canary header and cookie.
func (a *tenantA) requests() []isoReq {
	var out []isoReq
	hdr := basic("mallory", "wrong")
	hdr["X-Canary"], hdr["Cookie"] = "always", "canary=always"
	for _, k := range slices.Sorted(maps.Keys(a.ings)) {
		for _, rule := range a.ings[k].Spec.Rules {
			if rule.Host == "" || strings.ContainsAny(rule.Host, "*:\n") {
				continue
			}
			for _, p := range rule.HTTP.Paths {
				if len(out) < 8 && strings.HasPrefix(p.Path, "/") && !strings.ContainsAny(p.Path, " \n\r\x00") && len(p.Path) < 100 {
					out = append(out, isoReq{method: "GET", host: rule.Host, sni: strings.ToLower(rule.Host), path: p.Path, header: hdr})
				}
			}
		}
	}
	return out
}

// objects lists A's objects (sorted by name, so a seed replays).
func (a *tenantA) inputs() render.Inputs {
	var in render.Inputs
	for _, k := range slices.Sorted(maps.Keys(a.ings)) {
		in.Ingresses = append(in.Ingresses, a.ings[k])
	}
	for _, k := range slices.Sorted(maps.Keys(a.svcs)) {
		in.Services = append(in.Services, a.svcs[k])
	}
	for _, k := range slices.Sorted(maps.Keys(a.slices)) {
		in.EndpointSlices = append(in.EndpointSlices, a.slices[k])
	}
	for _, k := range slices.Sorted(maps.Keys(a.secs)) {
		in.Secrets = append(in.Secrets, a.secs[k])
	}
	for _, k := range slices.Sorted(maps.Keys(a.cms)) {
		in.ConfigMaps = append(in.ConfigMaps, a.cms[k])
	}
	return in
}

// describe prints A's objects for a failure report.
func (a *tenantA) describe() string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(a.ings)) {
		ing := a.ings[k]
		cls := "<default>"
		if ing.Spec.IngressClassName != nil {
			cls = *ing.Spec.IngressClassName
		}
		fmt.Fprintf(&b, "  Ingress %s/%s class %s born %s\n", ing.Namespace, ing.Name, cls, ing.CreationTimestamp.UTC().Format(time.RFC3339))
		for _, ak := range slices.Sorted(maps.Keys(ing.Annotations)) {
			fmt.Fprintf(&b, "    annotation %s: %q\n", ak, hShort(ing.Annotations[ak]))
		}
		for _, rule := range ing.Spec.Rules {
			for _, p := range rule.HTTP.Paths {
				pt := "<nil>"
				if p.PathType != nil {
					pt = string(*p.PathType)
				}
				fmt.Fprintf(&b, "    rule host %q path %q %s -> %s:%s\n", rule.Host, hShort(p.Path), pt, p.Backend.Service.Name, portString(p.Backend.Service.Port))
			}
		}
		for _, tl := range ing.Spec.TLS {
			fmt.Fprintf(&b, "    tls hosts %q secret %q\n", tl.Hosts, tl.SecretName)
		}
		if d := ing.Spec.DefaultBackend; d != nil {
			fmt.Fprintf(&b, "    defaultBackend %s:%s\n", d.Service.Name, portString(d.Service.Port))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(a.secs)) {
		s := a.secs[k]
		fmt.Fprintf(&b, "  Secret %s type %q keys %v\n", s.Name, s.Type, slices.Sorted(maps.Keys(s.Data)))
	}
	for _, k := range slices.Sorted(maps.Keys(a.svcs)) {
		s := a.svcs[k]
		fmt.Fprintf(&b, "  Service %s type %q ports %v\n", s.Name, s.Spec.Type, s.Spec.Ports)
	}
	for _, k := range slices.Sorted(maps.Keys(a.slices)) {
		s := a.slices[k]
		fmt.Fprintf(&b, "  EndpointSlice %s for %s: %v port %d\n", s.Name, s.Labels[discoveryv1.LabelServiceName], s.Endpoints[0].Addresses, *s.Ports[0].Port)
	}
	for _, k := range slices.Sorted(maps.Keys(a.cms)) {
		fmt.Fprintf(&b, "  ConfigMap %s\n", k)
	}
	return b.String()
}

func portString(p networkingv1.ServiceBackendPort) string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(int(p.Number))
}

// pathScore is how a path of an Ingress matches a request path, in the
// order routing prefers: any Exact match before any Prefix match, then
// the longest prefix (README, How requests are routed). 0: no match.
func pathScore(p networkingv1.HTTPIngressPath, reqPath string) int {
	if p.PathType == nil {
		return 0
	}
	switch *p.PathType {
	case networkingv1.PathTypeExact:
		if p.Path == reqPath {
			return 1 << 20
		}
	case networkingv1.PathTypePrefix, networkingv1.PathTypeImplementationSpecific:
		path := p.Path
		if path == "" {
			path = "/"
		}
		if !strings.HasPrefix(path, "/") {
			return 0
		}
		trimmed := strings.TrimRight(path, "/")
		if reqPath == trimmed || strings.HasPrefix(reqPath, trimmed+"/") {
			return 1 + len(trimmed)
		}
	}
	return 0
}

// isoDocumented says whether README documents that A may change the
// answer to r, and how (the answer is then compared with that rule
// instead of B alone's):
//
//   - "route": A serves a path on B's host that matches the request more
//     closely than every path of B (an Exact path, or a longer prefix):
//     "Ingresses sharing a host merge their paths". Not a path B itself
//     serves: for those the oldest Ingress wins, and B's are older.
//     A's regular-expression paths (use-regex) count as matching when
//     they match, case-insensitively from the start of the path: they are
//     tried after every path of B's host, as README says.
//   - "tls": A's TLS entry names B's host (or a wildcard covering it) that
//     no TLS entry of B names: plain HTTP to a host with a TLS entry is
//     redirected to HTTPS (308) and SNI picks that entry's certificate
//     (README, TLS). This is a rule of the host, whoever wrote the entry.
//   - "cert": A's TLS entry lists no hosts: HAProxy picks its certificate
//     by the names the certificate carries (render/build.go), which may
//     be a host of B's without a TLS entry of B. Only the certificate of
//     B's HTTPS answers may change.
//
// B's TLS host b7.test is in neither: B's entry is older and names it.

func isoDocumented(fx *isoFixture, a *tenantA, state int, r isoReq) string {
	best := func(ings []*networkingv1.Ingress) int {
		score := 0
		for _, ing := range ings {
			if ing.Namespace == isoNSB && ing.Name == "b-canary" {
				continue
			}
			regex := isoRegexMode(ing, fx.compat)
			for _, rule := range ing.Spec.Rules {
				if rule.Host != r.sni || rule.HTTP == nil {
					continue
				}
				for _, p := range rule.HTTP.Paths {
					if regex {
						// A younger namespace's expressions are tried after
						// every path of B's on the host: one that matches
						// takes only what B leaves.
						score = max(score, regexScore(p, r.pathNoQuery))
						continue
					}
					score = max(score, pathScore(p, r.pathNoQuery))
				}
			}
		}
		return score
	}
	var aIngs []*networkingv1.Ingress
	for _, ing := range a.ings {
		if c := ing.Spec.IngressClassName; c != nil && *c == "other" {
			continue
		}
		aIngs = append(aIngs, ing)
	}
	if best(aIngs) > best(fx.b[state].Ingresses) {
		return "route"
	}
	if r.sni == "b7.test" {
		// B's own TLS entry names it, and B's is older.
		return ""
	}
	wildcard := "*." + strings.SplitN(r.sni, ".", 2)[1]
	rule := ""
	for _, ing := range aIngs {
		for _, tl := range ing.Spec.TLS {
			sec := a.secs[tl.SecretName]
			if sec == nil || sec.Data["tls.crt"] == nil {
				continue // a TLS entry without its Secret is skipped
			}
			switch {
			case slices.Contains(tl.Hosts, r.sni) || slices.Contains(tl.Hosts, wildcard):
				return "tls"
			case len(tl.Hosts) == 0 && r.sni == "b1.test" && string(sec.Data["tls.crt"]) == string(fx.aCert2[0]):
				rule = "cert" // the certificate names b1.test
			}
		}
	}
	return rule
}

// isoAllowed says whether got is what rule allows instead of base.
func isoAllowed(rule string, r isoReq, base, got isoAnswer) bool {
	switch rule {
	case "route":
		return true
	case "tls":
		if !r.https {
			return got == base || got.Status == 308 && got.Location == "https://"+r.sni+r.path
		}
		got.Cert = base.Cert
		return got == base
	case "cert":
		if r.https {
			got.Cert = base.Cert
		}
		return got == base
	}
	return got == base
}
