package render_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

// The hostile-input corpus (issue 12): every annotation, ours and
// ingress-nginx's, gets values that try HAProxy's configuration syntax,
// its environment expansion and its sample expressions, file names that
// climb out of the config directory, and look-alike characters. Each
// value is either refused with a warning naming the Ingress and the
// annotation, or accepted in a validated form that reaches the files only
// inside single quotes, where HAProxy interprets nothing.

// hostileValues are tried as they are.
func hostileValues() []string {
	return []string{
		"\n",
		"a\nlua-load /tmp/x.lua",
		"a\rb",
		"a\x00b",
		"\x00",
		"a\tb",
		"#",
		"a #comment",
		"'",
		`"`,
		`a'b"c`,
		`\`,
		`a\'b`,
		"$HOME",
		"${HOME}",
		`"${HOME}"`,
		"%[env(HOME)]",
		"%%[env(HOME)]",
		"lua-load /tmp/x.lua",
		"}",
		"{",
		"} lua-load /tmp/x.lua {",
		strings.Repeat("A", 100<<10),
		strings.Repeat("%[env(HOME)]", 100<<10/12),
		"/app\uff0f..\uff0fetc\uff0fpasswd", // fullwidth solidus
		"\uff0fapp",
		"https://ex\u0430mple.com/", // Cyrillic а
		"ex\u0430mple.com",
		"/app\u202e", // RIGHT-TO-LEFT OVERRIDE
		"abc\u202edef",
		"\u202e",
		"../",
		"../../etc/passwd",
		"default/../../etc/passwd",
		"..",
		"",
		" ",
	}
}

// hostileSuffixes are appended to a valid value of each annotation.
func hostileSuffixes() []string {
	return []string{
		"\nlua-load /x",
		"\n    http-request deny",
		"\r\nx",
		"\x00",
		"\t#",
		" #",
		"#",
		" lua-load /tmp/x.lua",
		"'",
		`"`,
		`\`,
		"${HOME}",
		"$HOME",
		"%[env(HOME)]",
		"/%[env(HOME)]",
		"}",
		" {",
		"\u202e",
		"\uff0f..",
	}
}

// hostileSpec is a valid value of an annotation, and the annotations it
// needs beside it to have any effect (cors-max-age needs cors-enable).
type hostileSpec struct {
	valid string
	with  map[string]string
}

func oursSpec(name string) hostileSpec {
	p := render.AnnotationPrefix
	specs := map[string]hostileSpec{
		"affinity":                         {valid: "cookie"},
		"allowlist-source-range":           {valid: "10.0.0.0/8"},
		"app-root":                         {valid: "/app"},
		"auth-basic-secret":                {valid: "htpasswd"},
		"auth-realm":                       {valid: "Realm", with: map[string]string{p + "auth-basic-secret": "htpasswd"}},
		"backend-ca-secret":                {valid: "ca"},
		"backend-protocol":                 {valid: "http"},
		"backend-sni":                      {valid: "backend.example", with: map[string]string{p + "backend-protocol": "https"}},
		"backend-verify":                   {valid: "false", with: map[string]string{p + "backend-protocol": "https", p + "backend-ca-secret": "ca"}},
		"balance":                          {valid: "leastconn"},
		"body-size-limit":                  {valid: "1m"},
		"canary":                           {valid: "true"},
		"canary-by-cookie":                 {valid: "beta"},
		"canary-by-header":                 {valid: "X-Canary"},
		"canary-by-header-value":           {valid: "yes", with: map[string]string{p + "canary-by-header": "X-Canary"}},
		"canary-weight":                    {valid: "10"},
		"canary-weight-total":              {valid: "1000", with: map[string]string{p + "canary-weight": "10"}},
		"cors-allow-credentials":           {valid: "true", with: map[string]string{p + "cors-enable": "true"}},
		"cors-allow-headers":               {valid: "X-A", with: map[string]string{p + "cors-enable": "true"}},
		"cors-allow-methods":               {valid: "GET", with: map[string]string{p + "cors-enable": "true"}},
		"cors-allow-origin":                {valid: "https://ok.example", with: map[string]string{p + "cors-enable": "true"}},
		"cors-enable":                      {valid: "true"},
		"cors-max-age":                     {valid: "60", with: map[string]string{p + "cors-enable": "true"}},
		"denylist-source-range":            {valid: "10.0.0.0/8"},
		"health-check-interval":            {valid: "5s", with: map[string]string{p + "health-check-path": "/healthz"}},
		"health-check-path":                {valid: "/healthz"},
		"hsts":                             {valid: "true"},
		"hsts-include-subdomains":          {valid: "true", with: map[string]string{p + "hsts": "true"}},
		"hsts-max-age":                     {valid: "60", with: map[string]string{p + "hsts": "true"}},
		"maxconn-server":                   {valid: "10"},
		"permanent-redirect":               {valid: "https://ok.example/"},
		"rate-limit-connections":           {valid: "100"},
		"rate-limit-rps":                   {valid: "100"},
		"rewrite-target":                   {valid: "/app"},
		"session-cookie-max-age":           {valid: "1h", with: map[string]string{p + "affinity": "cookie"}},
		"session-cookie-name":              {valid: "SID", with: map[string]string{p + "affinity": "cookie"}},
		"session-cookie-domain":            {valid: ".example.test", with: map[string]string{p + "affinity": "cookie"}},
		"session-cookie-change-on-failure": {valid: "true", with: map[string]string{p + "affinity": "cookie"}},
		"service-upstream":                 {valid: "true"},
		"session-cookie-path":              {valid: "/app", with: map[string]string{p + "affinity": "cookie"}},
		"session-cookie-samesite":          {valid: "Lax", with: map[string]string{p + "affinity": "cookie"}},
		"session-cookie-secure":            {valid: "true", with: map[string]string{p + "affinity": "cookie"}},
		"ssl-passthrough":                  {valid: "true"},
		"ssl-redirect":                     {valid: "false"},
		"ssl-redirect-code":                {valid: "301", with: map[string]string{p + "ssl-redirect": "true"}},
		"temporal-redirect":                {valid: "https://ok.example/"},
		"timeout-connect":                  {valid: "5s"},
		"timeout-queue":                    {valid: "5s"},
		"timeout-server":                   {valid: "5s"},
		"timeout-tunnel":                   {valid: "5s"},
		"x-forwarded-prefix":               {valid: "/app"},
		"proxy-cookie-domain":              {valid: "a.example b.example"},
		"proxy-cookie-path":                {valid: "/a/ /"},
		"proxy-redirect-from":              {valid: "http://a.example/", with: map[string]string{p + "proxy-redirect-to": "/"}},
		"proxy-redirect-to":                {valid: "/b/", with: map[string]string{p + "proxy-redirect-from": "/a/"}},
		"upstream-vhost":                   {valid: "svc.internal:8080"},
		"rate-limit-rpm":                   {valid: "100"},
		"rate-limit-burst-multiplier":      {valid: "5", with: map[string]string{p + "rate-limit-rps": "10"}},
		"cors-expose-headers":              {valid: "X-A", with: map[string]string{p + "cors-enable": "true"}},
		"auth-url":                         {valid: "http://auth/check"},
		"auth-method":                      {valid: "POST", with: map[string]string{p + "auth-url": "http://auth/check"}},
		"auth-response-headers":            {valid: "X-User", with: map[string]string{p + "auth-url": "http://auth/check"}},
		"auth-signin":                      {valid: "https://login.example/start", with: map[string]string{p + "auth-url": "http://auth/check"}},
		"auth-signin-redirect-param":       {valid: "next", with: map[string]string{p + "auth-url": "http://auth/check", p + "auth-signin": "/login"}},
		"custom-http-errors":               {valid: "404,503", with: map[string]string{p + "default-backend": "errors:80"}},
		"default-backend":                  {valid: "errors:80"},
		"from-to-www-redirect":             {valid: "true"},
		"server-alias":                     {valid: "alias.hostile.test"},
		"use-regex":                        {valid: "true"},
		"headers":                          {valid: "response X-A: $host"},
	}
	s, ok := specs[name]
	if !ok {
		// A new annotation: the test needs its valid value.
		return hostileSpec{valid: "\x00missing"}
	}
	return s
}

func nginxSpec(name string) hostileSpec {
	p := render.NginxAnnotationPrefix
	basicAuth := map[string]string{p + "auth-type": "basic", p + "auth-secret": "htpasswd"}
	cors := map[string]string{p + "enable-cors": "true"}
	tlsBackend := map[string]string{p + "backend-protocol": "HTTPS", p + "proxy-ssl-secret": "default/ca"}
	cookie := map[string]string{p + "affinity": "cookie"}
	canary := map[string]string{p + "canary": "true"}
	specs := map[string]hostileSpec{
		"affinity":                         {valid: "cookie"},
		"allowlist-source-range":           {valid: "10.0.0.0/8"},
		"app-root":                         {valid: "/app"},
		"auth-realm":                       {valid: "Realm", with: basicAuth},
		"auth-secret":                      {valid: "htpasswd", with: map[string]string{p + "auth-type": "basic"}},
		"auth-secret-type":                 {valid: "auth-file", with: basicAuth},
		"auth-type":                        {valid: "basic", with: map[string]string{p + "auth-secret": "htpasswd"}},
		"backend-protocol":                 {valid: "HTTP"},
		"canary":                           {valid: "true"},
		"canary-by-cookie":                 {valid: "beta", with: canary},
		"canary-by-header":                 {valid: "X-Canary", with: canary},
		"canary-by-header-value":           {valid: "yes", with: map[string]string{p + "canary": "true", p + "canary-by-header": "X-Canary"}},
		"canary-weight":                    {valid: "10", with: canary},
		"canary-weight-total":              {valid: "1000", with: map[string]string{p + "canary": "true", p + "canary-weight": "10"}},
		"cors-allow-credentials":           {valid: "true", with: cors},
		"cors-allow-headers":               {valid: "X-A", with: cors},
		"cors-allow-methods":               {valid: "GET", with: cors},
		"cors-allow-origin":                {valid: "https://ok.example", with: cors},
		"cors-max-age":                     {valid: "60", with: cors},
		"denylist-source-range":            {valid: "10.0.0.0/8"},
		"enable-cors":                      {valid: "true"},
		"force-ssl-redirect":               {valid: "false"},
		"limit-connections":                {valid: "100"},
		"limit-rps":                        {valid: "100"},
		"load-balance":                     {valid: "ewma"},
		"permanent-redirect":               {valid: "https://ok.example/"},
		"proxy-body-size":                  {valid: "1m"},
		"proxy-connect-timeout":            {valid: "5"},
		"proxy-read-timeout":               {valid: "5"},
		"proxy-ssl-name":                   {valid: "backend.example", with: tlsBackend},
		"proxy-ssl-secret":                 {valid: "default/ca", with: map[string]string{p + "backend-protocol": "HTTPS"}},
		"proxy-ssl-verify":                 {valid: "off", with: tlsBackend},
		"rewrite-target":                   {valid: "/app"},
		"session-cookie-max-age":           {valid: "3600", with: cookie},
		"session-cookie-name":              {valid: "SID", with: cookie},
		"session-cookie-domain":            {valid: ".example.test", with: cookie},
		"session-cookie-change-on-failure": {valid: "true", with: cookie},
		"service-upstream":                 {valid: "true"},
		"session-cookie-expires":           {valid: "3600", with: cookie},
		"session-cookie-hash":              {valid: "sha1", with: cookie},
		"session-cookie-path":              {valid: "/app", with: cookie},
		"session-cookie-samesite":          {valid: "Lax", with: cookie},
		"session-cookie-secure":            {valid: "true", with: cookie},
		"ssl-passthrough":                  {valid: "true"},
		"ssl-redirect":                     {valid: "false"},
		"temporal-redirect":                {valid: "https://ok.example/"},
		"upstream-hash-by":                 {valid: "$request_uri"},
		"whitelist-source-range":           {valid: "10.0.0.0/8"},
		"x-forwarded-prefix":               {valid: "true"},
		"proxy-cookie-domain":              {valid: "a.example b.example"},
		"proxy-cookie-path":                {valid: "/a/ /"},
		"proxy-redirect-from":              {valid: "http://a.example/", with: map[string]string{p + "proxy-redirect-to": "/"}},
		"proxy-redirect-to":                {valid: "/b/", with: map[string]string{p + "proxy-redirect-from": "/a/"}},
		"upstream-vhost":                   {valid: "svc.internal"},
		"limit-rpm":                        {valid: "100"},
		"limit-burst-multiplier":           {valid: "5", with: map[string]string{p + "limit-rps": "10"}},
		"cors-expose-headers":              {valid: "X-A", with: cors},
		"proxy-send-timeout":               {valid: "5"},
		"client-body-buffer-size":          {valid: "8k"},
		"connection-proxy-header":          {valid: "keep-alive"},
		"proxy-buffer-size":                {valid: "8k"},
		"proxy-buffering":                  {valid: "off"},
		"proxy-buffers-number":             {valid: "4"},
		"proxy-http-version":               {valid: "1.1"},
		"proxy-max-temp-file-size":         {valid: "0"},
		"proxy-request-buffering":          {valid: "off"},
		"auth-url":                         {valid: "https://$host/check"},
		"auth-method":                      {valid: "GET", with: map[string]string{p + "auth-url": "http://auth/check"}},
		"auth-response-headers":            {valid: "X-User, X-Email", with: map[string]string{p + "auth-url": "http://auth/check"}},
		"auth-signin":                      {valid: "https://$host/oauth2/start?rd=$escaped_request_uri", with: map[string]string{p + "auth-url": "http://auth/check"}},
		"auth-signin-redirect-param":       {valid: "next", with: map[string]string{p + "auth-url": "http://auth/check", p + "auth-signin": "/login"}},
		"auth-cache-key":                   {valid: "$remote_user$http_authorization", with: map[string]string{p + "auth-url": "http://auth/check"}},
		"auth-cache-duration":              {valid: "200 202 401 5m", with: map[string]string{p + "auth-url": "http://auth/check"}},
		"custom-http-errors":               {valid: "404,503", with: map[string]string{p + "default-backend": "errors"}},
		"default-backend":                  {valid: "errors"},
		"from-to-www-redirect":             {valid: "true"},
		"server-alias":                     {valid: "alias.hostile.test"},
		"use-regex":                        {valid: "true"},
		"configuration-snippet":            {valid: "add_header X-A \"$host\";"},
		"server-snippet":                   {valid: "proxy_set_header X-A $service_name; #"},
	}
	if s, ok := specs[name]; ok {
		return s
	}
	// Unsupported ones are reported whatever their value.
	return hostileSpec{valid: "true"}
}

// hostileCase is one Ingress of the corpus: one annotation with one
// hostile value (plus the valid annotations it needs), on its own host and
// Service so that backend annotations never meet another Ingress's.
type hostileCase struct {
	ingress, host, svc string
	key, value         string
	ann                map[string]string
}

const (
	hostileNS  = "default"
	hostileSHA = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1" // "secret"
)

// hostileMarkers may never appear in a generated file where HAProxy would
// read them: outside single quotes.
var hostileMarkers = []string{"lua-load", "env(", "${", "$", "HOME", "\u202e", "\uff0f", "\u0430", "\\"}

func TestHostileAnnotations(t *testing.T) {
	echoPort := int32(startEcho(t, "hostile"))
	var in render.Inputs
	in.IngressClasses = append(in.IngressClasses, &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: "ours", Annotations: map[string]string{render.DefaultClassAnnotation: "true"}},
		Spec:       networkingv1.IngressClassSpec{Controller: render.DefaultControllerName},
	})
	// Services whose Ingress asks for TLS to the endpoints reach a TLS
	// echo server whose self-signed certificate is also the CA Secret's
	// bundle, so that verification succeeds.
	caPEM, keyPEM := testenv.SelfSigned(t, "backend.example", "")
	tlsEchoPort := int32(startHostileTLSEcho(t, caPEM, keyPEM))
	in.Secrets = append(in.Secrets,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: hostileNS, Name: "htpasswd"},
			Data: map[string][]byte{"auth": []byte("alice:" + hostileSHA + "\n")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: hostileNS, Name: "ca"},
			Data: map[string][]byte{"ca.crt": caPEM}})
	n := 0
	p := render.AnnotationPrefix
	add := func(host string, ann map[string]string) (name, svc string) {
		n++
		name, svc = "h-"+strconv.Itoa(n), "s-"+strconv.Itoa(n)
		in.Services = append(in.Services, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: hostileNS, Name: svc},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}})
		ready, port := true, echoPort
		if ann[p+"backend-protocol"] == "https" || ann[render.NginxAnnotationPrefix+"backend-protocol"] == "HTTPS" {
			port = tlsEchoPort
		}
		in.EndpointSlices = append(in.EndpointSlices, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: hostileNS, Name: svc + "-1", Labels: map[string]string{"kubernetes.io/service-name": svc}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
			Ports:       []discoveryv1.EndpointPort{{Name: hPtr("http"), Port: hPtr(port)}},
		})
		prefix := networkingv1.PathTypePrefix
		in.Ingresses = append(in.Ingresses, &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Namespace: hostileNS, Name: name, Annotations: ann,
				CreationTimestamp: metav1.NewTime(time.Unix(1_700_000_000+int64(n), 0))},
			Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: &prefix,
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}}},
				}}}}}}},
		})
		return name, svc
	}

	// The auth service of auth-url: the echo server, which answers 200.
	in.Services = append(in.Services, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: hostileNS, Name: "auth"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}})
	in.EndpointSlices = append(in.EndpointSlices, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: hostileNS, Name: "auth-1", Labels: map[string]string{"kubernetes.io/service-name": "auth"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: hPtr(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: hPtr("http"), Port: hPtr(echoPort)}},
	})
	goodIng, goodSvc := add("good.test", nil)
	validAnn := map[string]string{
		p + "balance": "leastconn", p + "timeout-server": "5s", p + "maxconn-server": "100",
		p + "affinity": "cookie", p + "session-cookie-name": "SID",
		p + "allowlist-source-range": "127.0.0.0/8, ::1", p + "denylist-source-range": "10.0.0.0/8",
		p + "rate-limit-rps": "1000", p + "body-size-limit": "1m", p + "cors-enable": "true", p + "hsts": "true",
		p + "auth-basic-secret": "htpasswd", p + "auth-realm": "Valid realm",
	}
	validIng, validSvc := add("valid.test", validAnn)

	var cases []hostileCase
	try := func(key, value string, with map[string]string) {
		ann := map[string]string{}
		for k, v := range with {
			ann[k] = v
		}
		ann[key] = value
		host := "h" + strconv.Itoa(n+1) + ".hostile.test"
		if strings.Contains(key, "canary") {
			// A canary shares the route of another Ingress: the
			// primary, on the same echo server.
			add(host, nil)
		}
		name, svc := add(host, ann)
		cases = append(cases, hostileCase{ingress: name, host: host, svc: svc, key: key, value: value, ann: ann})
	}
	for _, a := range render.Annotations() {
		s := oursSpec(a.Name)
		if s.valid == "\x00missing" {
			t.Errorf("annotation %s has no valid value in oursSpec: add one", a.Name)
			continue
		}
		for _, v := range hostileValues() {
			try(p+a.Name, v, s.with)
		}
		for _, suffix := range hostileSuffixes() {
			try(p+a.Name, s.valid+suffix, s.with)
		}
	}
	for _, a := range render.NginxAnnotations() {
		s := nginxSpec(a.Name)
		for _, v := range hostileValues() {
			try(render.NginxAnnotationPrefix+a.Name, v, s.with)
		}
		for _, suffix := range hostileSuffixes() {
			try(render.NginxAnnotationPrefix+a.Name, s.valid+suffix, s.with)
		}
	}
	// Hostile annotation names.
	for _, key := range []string{p + "balance\nlua-load /x", p + "../../etc/passwd", p + "balance ", p + "${HOME}",
		render.NginxAnnotationPrefix + "configuration-snippet\n", render.NginxAnnotationPrefix + "%[env(HOME)]"} {
		try(key, "leastconn", nil)
	}
	t.Logf("%d hostile Ingresses", len(cases))
	start := time.Now()
	lap := func(what string) { t.Logf("%s: %v", what, time.Since(start).Round(time.Millisecond)) }

	httpPort, httpsPort := freePort(t), freePort(t)
	rc := haproxycfg.Config{HTTPBind: "127.0.0.1:" + strconv.Itoa(httpPort), HTTPSBind: "127.0.0.1:" + strconv.Itoa(httpsPort)}
	// renderInputs picks the options from the inputs; compatibility is an
	// option, so the build is done here.
	m := render.BuildModel(in, render.Options{AnnotationsCompat: render.CompatNginx})
	rcT := rc
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	rcT.Template = tmpl
	out, err := haproxycfg.Render(m, rcT)
	if err != nil {
		t.Fatalf("render: %v", err)
	}

	lap("rendered")
	// (a) Every hostile annotation is reported, by Ingress and field, or
	// accepted in a validated form.
	warned, warnedIngress := map[[2]string]bool{}, map[string]bool{}
	for _, pr := range m.Problems {
		if !pr.Reason.Known() {
			t.Errorf("problem with an unknown reason: %s", pr.Report())
		}
		if strings.ContainsAny(pr.Report(), "\n\r\x00") {
			t.Errorf("problem report holds a control character: %q", pr.Report())
		}
		if pr.Kind != "Ingress" {
			continue
		}
		if pr.Name == goodIng || pr.Name == validIng {
			t.Errorf("problem on an Ingress without hostile input: %s", pr.Report())
		}
		if pr.Severity == render.Warning {
			warned[[2]string{pr.Name, pr.Field}] = true
			warnedIngress[pr.Name] = true
		}
	}
	served := map[string]bool{}
	for _, s := range m.Served {
		served[s] = true
	}
	accepted := map[string][]string{}
	for _, c := range cases {
		if !served[hostileNS+"/"+c.ingress] {
			t.Errorf("%s (%s=%q): the Ingress is not served", c.ingress, c.key, hShort(c.value))
		}
		// An Ingress that asks for authentication is protected, or warned
		// that it is not: never silently open.
		if want := hostileExpect(m, c); asksHostileAuth(c.ann) && !strings.HasPrefix(want, "401 ") && want != "503" && !warnedIngress[c.ingress] && !usesExtAuthFor(m, c.host) {
			t.Errorf("%s (%s=%q): asks for authentication, is served without and without a warning", c.ingress, c.key, hShort(c.value))
		}
		field := "metadata.annotations[" + strconv.Quote(c.key) + "]"
		if warned[[2]string{c.ingress, field}] {
			continue
		}
		// Accepted: only printable, valid UTF-8 text can be; line breaks
		// and tabs too in the annotations made of lines (NGINX snippets,
		// header rules), which are read line by line.
		lines := strings.HasSuffix(c.key, "-snippet") || c.key == p+"headers"
		control := func(r rune) bool { return (r < 0x20 || r == 0x7f) && !(lines && (r == '\n' || r == '\r' || r == '\t')) }
		if !utf8.ValidString(c.value) || strings.IndexFunc(c.value, control) >= 0 || len(c.value) > 4096 {
			t.Errorf("%s: %s=%q accepted without a warning (want a warning on %s)", c.ingress, c.key, hShort(c.value), field)
		}
		accepted[c.key] = append(accepted[c.key], c.value)
	}
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range accepted {
			if !yield(k) {
				return
			}
		}
	}) {
		t.Logf("accepted for %q: %q", k, hShortAll(accepted[k]))
	}

	// (b) The files: the expected set only, and hostile text nowhere HAProxy
	// would read it.
	fileName := regexp.MustCompile(`^(haproxy\.cfg|crt-list\.txt|maps/[a-z0-9-]+\.map|certs/[a-z0-9_.-]+\.pem)$`)
	for _, f := range out.Files {
		if f.Path == haproxycfg.ExtAuthScriptFile {
			// The fixed script: nothing of an object is in it.
			if !bytes.Equal(f.Data(), haproxycfg.ExtAuthScript()) {
				t.Errorf("%s is not the embedded script", f.Path)
			}
			continue
		}
		if !fileName.MatchString(f.Path) || strings.Contains(f.Path, "..") {
			t.Errorf("unexpected file %q", f.Path)
		}
		if strings.ContainsAny(string(f.Data()), "\x00\r") {
			t.Errorf("%s holds NUL or CR", f.Path)
		}
		if strings.HasSuffix(f.Path, ".pem") {
			checkHostilePEM(t, f.Path, f.Data())
			continue
		}
		checkHostileText(t, f.Path, f.Data(), f.Path == haproxycfg.ConfigFile)
	}
	lap("files checked")
	cfg := out.Get(haproxycfg.ConfigFile)
	checkHostileStructure(t, cfg, m, rc)
	lap("structure checked")

	dir := t.TempDir()
	writeFiles(t, dir, out)
	for version, bin := range testenv.HAProxies(t) {
		if err := reload.Check(context.Background(), bin, filepath.Join(dir, haproxycfg.ConfigFile)); err != nil {
			t.Fatalf("(c) haproxy %s -c refuses the hostile render: %v", version, err)
		}
	}

	lap("haproxy -c")
	// (d) Served: good.test, the valid annotations, and every hostile
	// Ingress as its accepted annotations say.
	for version, bin := range testenv.HAProxies(t) {
		t.Run("haproxy-"+version, func(t *testing.T) {
			startHAProxy(t, bin, filepath.Join(dir, haproxycfg.ConfigFile), httpPort)
			lap("haproxy " + version + " started")
			defer lap("haproxy " + version + " requests done")
			hc := &http.Client{Timeout: 10 * time.Second,
				Transport:     &http.Transport{DisableKeepAlives: true},
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			get := func(host string, hdr map[string]string) (*http.Response, string, error) {
				req, _ := http.NewRequest("GET", "http://127.0.0.1:"+strconv.Itoa(httpPort)+"/", nil)
				req.Host = host
				for k, v := range hdr {
					req.Header.Set(k, v)
				}
				resp, err := hc.Do(req)
				if err != nil {
					return nil, "", err
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				return resp, string(body), err
			}
			if resp, body, err := get("good.test", nil); err != nil || resp.StatusCode != 200 || body != "svc:hostile" {
				t.Errorf("good.test: %v %v %q, want 200 from the echo backend", hStatus(resp), err, body)
			}
			if resp, _, err := get("valid.test", nil); err != nil || resp.StatusCode != 401 {
				t.Errorf("valid.test without credentials: %v %v, want 401", hStatus(resp), err)
			}
			auth := map[string]string{"Authorization": "Basic YWxpY2U6c2VjcmV0"} // alice:secret
			if resp, body, err := get("valid.test", auth); err != nil || resp.StatusCode != 200 || body != "svc:hostile" ||
				!strings.HasPrefix(resp.Header.Get("Set-Cookie"), "SID=") {
				t.Errorf("valid.test: %v %v %q (Set-Cookie %q), want 200 from the echo backend with the SID cookie", hStatus(resp), err, body, hHeader(resp, "Set-Cookie"))
			}
			_ = goodSvc
			_ = validSvc

			type result struct {
				c    hostileCase
				want string
				got  string
			}
			challenge := regexp.MustCompile(`^Basic realm="[^"\\\x00-\x1f]*"$`)
			results := make([]result, len(cases))
			var wg sync.WaitGroup
			next := make(chan int)
			for w := 0; w < 16; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range next {
						c := cases[i]
						want := hostileExpect(m, c)
						resp, body, err := get(c.host, nil)
						got := ""
						switch {
						case err != nil:
							got = "error: " + err.Error()
						case resp.StatusCode == 200 && body != "svc:hostile" && body != "svc:hostile-tls":
							got = "200 not from the echo backend: " + hShort(body)
						case resp.StatusCode >= 300 && resp.StatusCode < 400:
							got = strconv.Itoa(resp.StatusCode) + " " + resp.Header.Get("Location")
						case resp.StatusCode == 200:
							got = "200 " + body
						case resp.StatusCode == 401 && !challenge.MatchString(resp.Header.Get("WWW-Authenticate")):
							// HAProxy does not escape the realm: a '"' or '\'
							// in it breaks the quoted-string (RFC 9110).
							got = "401 with a malformed challenge " + resp.Header.Get("WWW-Authenticate")
						case resp.StatusCode == 401:
							got = "401 " + resp.Header.Get("WWW-Authenticate")
						default:
							got = strconv.Itoa(resp.StatusCode)
						}
						results[i] = result{c, want, got}
					}
				}()
			}
			for i := range cases {
				next <- i
			}
			close(next)
			wg.Wait()
			bad := 0
			for _, r := range results {
				if r.got != r.want {
					bad++
					if bad <= 30 {
						t.Errorf("%s (%s=%q): got %s, want %s", r.c.host, r.c.key, hShort(r.c.value), r.got, r.want)
					}
				}
			}
			if bad > 30 {
				t.Errorf("... %d wrong answers in all", bad)
			}
		})
	}
}

// hostileExpect is what a plain GET / to a hostile Ingress's host answers,
// from the backend the model gives its route: a backend whose TLS or CA
// annotations cannot be met by the plain-HTTP echo server answers 503;
// otherwise the accepted route policy decides, in policyRules' order.
func hostileExpect(m *render.Model, c hostileCase) string {
	var route *render.Route
	for _, r := range m.Routes {
		if r.Host == c.host {
			route = r
		}
	}
	if route == nil {
		return "no route"
	}
	want := hostileBackendExpect(m, route.Backend, c.host)
	if route.Canary != nil {
		// Either backend may answer: they must agree.
		if other := hostileBackendExpect(m, route.Canary.Backend, c.host); other != want {
			return want + " or " + other
		}
	}
	return want
}

// hostileBackendExpect is what the backend named answers to GET /.
func hostileBackendExpect(m *render.Model, name, host string) string {
	i, found := slices.BinarySearchFunc(m.Backends, name, func(b *render.Backend, n string) int { return strings.Compare(b.Name, n) })
	if !found {
		return "no backend " + name
	}
	be := m.Backends[i]
	if be.Broken {
		return "503"
	}
	ok := "200 svc:hostile"
	if be.Settings.TLS() {
		ok = "200 svc:hostile-tls"
	}
	if be.Policy == nil {
		return ok
	}
	p := be.Policy
	if len(p.Closed) > 0 {
		return "503" // an access restriction that cannot be applied
	}
	if p.SSLRedirect == render.True {
		code := p.SSLRedirectCode
		if code == 0 {
			code = 308
		}
		return strconv.Itoa(code) + " https://" + host + "/"
	}
	local := netip.MustParseAddr("127.0.0.1")
	contains := func(ps []netip.Prefix) bool {
		return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Contains(local) })
	}
	if len(p.AllowSources) > 0 && !contains(p.AllowSources) || contains(p.DenySources) {
		return "403"
	}
	if p.AuthSecret != "" {
		realm := p.AuthRealm
		if realm == "" {
			realm = "Authentication Required"
		}
		return `401 Basic realm="` + realm + `"`
	}
	if p.ExtAuth != nil && be.ExtAuthBackend == "" {
		return "500" // no auth service to ask
	}
	// An auth service that is asked is the echo server: 200.
	if p.Redirect != "" {
		return strconv.Itoa(p.RedirectCode) + " " + p.Redirect
	}
	if p.AppRoot != "" {
		return "302 " + p.AppRoot
	}
	return ok
}

// asksHostileAuth: the annotations ask for Basic authentication.
func asksHostileAuth(ann map[string]string) bool {
	for _, k := range []string{render.AnnotationPrefix + "auth-basic-secret", render.NginxAnnotationPrefix + "auth-type", render.NginxAnnotationPrefix + "auth-secret",
		render.AnnotationPrefix + "auth-url", render.NginxAnnotationPrefix + "auth-url"} {
		if _, ok := ann[k]; ok {
			return true
		}
	}
	return false
}

// usesExtAuthFor: the route of host asks an auth service.
func usesExtAuthFor(m *render.Model, host string) bool {
	for _, r := range m.Routes {
		if r.Host != host {
			continue
		}
		for _, be := range m.Backends {
			if be.Name == r.Backend && be.Policy != nil && be.Policy.ExtAuth != nil && be.ExtAuthBackend != "" && len(be.Policy.Closed) == 0 {
				return true
			}
		}
	}
	return false
}
