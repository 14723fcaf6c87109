package render_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/manifest"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

// settingsInputs loads testdata/settings and replaces the data of its
// settings ConfigMap (nil keeps the case's data).
func settingsInputs(t testing.TB, data map[string]string) render.Inputs {
	t.Helper()
	in, _, err := manifest.Load(filepath.Join("..", "testdata", "settings", "manifests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if data != nil {
		settingsConfigMap(t, in).Data = data
	}
	return in
}

func settingsConfigMap(t testing.TB, in render.Inputs) *corev1.ConfigMap {
	t.Helper()
	for _, c := range in.ConfigMaps {
		if c.Namespace+"/"+c.Name == SettingsConfigMap {
			return c
		}
	}
	t.Fatalf("testdata/settings has no ConfigMap %s", SettingsConfigMap)
	return nil
}

// buildSettings builds the model of testdata/settings with one key set.
func buildSettings(t testing.TB, in render.Inputs) *render.Model {
	t.Helper()
	return render.BuildModel(in, render.Options{SettingsConfigMap: SettingsConfigMap})
}

// configMapProblems are the problems reported about ConfigMaps.
func configMapProblems(m *render.Model) []render.Problem {
	var out []render.Problem
	for _, p := range m.Problems {
		if p.Kind == "ConfigMap" {
			out = append(out, p)
		}
	}
	return out
}

// The parser, key by key: a valid value sets its field (and nothing else);
// an invalid one is a Warning on data[<key>] naming the value and what is
// allowed, and keeps every default.
func TestSettingsParser(t *testing.T) {
	type S = render.Settings
	const httplog = "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r"
	tests := []struct {
		key, value string
		want       func(*S) // applied to the defaults; nil when the value is rejected
		problem    string   // part of the problem's message when rejected
	}{
		{"timeout-connect", "5s", func(s *S) { s.TimeoutConnect = 5 * time.Second }, ""},
		{"timeout-connect", "100ms", func(s *S) { s.TimeoutConnect = 100 * time.Millisecond }, ""},
		{"timeout-connect", "1m", func(s *S) { s.TimeoutConnect = time.Minute }, ""},
		{"timeout-connect", "1h30m", func(s *S) { s.TimeoutConnect = 90 * time.Minute }, ""},
		{"timeout-connect", "1.5s", func(s *S) { s.TimeoutConnect = 1500 * time.Millisecond }, ""},
		{"timeout-connect", "2500", func(s *S) { s.TimeoutConnect = 2500 * time.Millisecond }, ""},
		{"timeout-connect", "1d", func(s *S) { s.TimeoutConnect = 24 * time.Hour }, ""},
		{"timeout-connect", "24h", func(s *S) { s.TimeoutConnect = 24 * time.Hour }, ""},
		{"timeout-connect", "1ms", func(s *S) { s.TimeoutConnect = time.Millisecond }, ""},
		{"timeout-connect", "2d", nil, `"2d" is too long`},
		{"timeout-connect", "24h1ms", nil, "too long"},
		{"timeout-connect", "86400001", nil, "too long"},
		{"timeout-connect", "99999999999999999999", nil, "too long"},
		{"timeout-connect", "0", nil, "not positive"},
		{"timeout-connect", "0s", nil, "not positive"},
		{"timeout-connect", "-5s", nil, "not positive"},
		{"timeout-connect", "500us", nil, "whole number of milliseconds"},
		{"timeout-connect", "5 s", nil, "not a duration"},
		{"timeout-connect", " 5s", nil, "not a duration"},
		{"timeout-connect", "5S", nil, "not a duration"},
		{"timeout-connect", "", nil, "not a duration"},
		{"timeout-connect", "5s\n    lua-load /tmp/x", nil, `"5s\n    lua-load /tmp/x" is not a duration: want a duration such as 5s`},
		{"timeout-client", "7s", func(s *S) { s.TimeoutClient = 7 * time.Second }, ""},
		{"timeout-server", "7s", func(s *S) { s.TimeoutServer = 7 * time.Second }, ""},
		{"timeout-http-request", "7s", func(s *S) { s.TimeoutHTTPRequest = 7 * time.Second }, ""},
		{"timeout-http-keep-alive", "7s", func(s *S) { s.TimeoutHTTPKeepAlive = 7 * time.Second }, ""},
		{"timeout-queue", "7s", func(s *S) { s.TimeoutQueue = 7 * time.Second }, ""},
		{"timeout-tunnel", "7s", func(s *S) { s.TimeoutTunnel = 7 * time.Second }, ""},

		{"maxconn", "1", func(s *S) { s.MaxConn = 1 }, ""},
		{"maxconn", "10000000", func(s *S) { s.MaxConn = 10_000_000 }, ""},
		{"maxconn", "0", nil, `"0" is out of range: want a connection limit, a whole number from 1 to 10000000`},
		{"maxconn", "10000001", nil, "out of range"},
		{"maxconn", "+5", nil, "not a number"},
		{"maxconn", "1e3", nil, "not a number"},
		{"maxconn", "2000 ", nil, "not a number"},
		{"maxconn", "", nil, "not a number"},

		{"http-port", "8080", func(s *S) { s.HTTPPort = 8080 }, ""},
		{"http-port", "65535", func(s *S) { s.HTTPPort = 65535 }, ""},
		{"http-port", "0", nil, "want a port, a whole number from 1 to 65535"},
		{"http-port", "65536", nil, "out of range"},
		{"http-port", "80x", nil, "not a number"},
		{"https-port", "8443", func(s *S) { s.HTTPSPort = 8443 }, ""},
		{"https-redirect-port", "8443", func(s *S) { s.HTTPSRedirectPort = 8443 }, ""},
		{"trusted-proxies", "10.0.0.0/8, 192.168.1.1,fd00::/64", func(s *S) {
			s.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.1/32"), netip.MustParsePrefix("fd00::/64")}
		}, ""},
		{"trusted-proxies", "10.0.0.0/8 lua-load /x", nil, "is not a CIDR"},
		{"trusted-proxies", "", nil, "want"},
		{"use-proxy-protocol", "10.0.0.0/8, 192.168.1.1,fd00::/64, ::ffff:10.1.2.3", func(s *S) {
			s.ProxyProtocol = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.1/32"),
				netip.MustParsePrefix("fd00::/64"), netip.MustParsePrefix("10.1.2.3/32")}
		}, ""},
		{"use-proxy-protocol", "0.0.0.0/0, ::/0", func(s *S) {
			s.ProxyProtocol = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
		}, ""},
		{"use-proxy-protocol", "", func(s *S) {}, ""},

		{"dns-nameservers", "10.96.0.10, 127.0.0.1:5353,[::1]:53, ::ffff:10.0.0.1", func(s *S) {
			s.DNSNameservers = []netip.AddrPort{netip.MustParseAddrPort("10.96.0.10:53"), netip.MustParseAddrPort("127.0.0.1:5353"),
				netip.MustParseAddrPort("[::1]:53"), netip.MustParseAddrPort("10.0.0.1:53")}
		}, ""},
		{"dns-nameservers", "", func(s *S) {}, ""},
		{"dns-nameservers", "kube-dns.kube-system", nil, `"kube-dns.kube-system": want IP addresses or address:port pairs`},
		{"dns-nameservers", "10.0.0.1:0", nil, "a port from 1 to 65535"},
		{"dns-nameservers", "0.0.0.0", nil, "not unspecified"},
		{"dns-nameservers", "fe80::1%eth0", nil, "without zone"},
		{"dns-nameservers", "10.0.0.1\n    nameserver x 1.2.3.4:53", nil, "want IP addresses"},
		{"dns-nameservers", "1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5,1.1.1.6,1.1.1.7,1.1.1.8,1.1.1.9", nil, "more than 8 nameservers"},
		{"use-proxy-protocol", "true", nil, `"true": want the comma-separated CIDRs or addresses of the load balancers that send the PROXY protocol`},
		{"use-proxy-protocol", "False", nil, "PROXY protocol stays off: connections that begin with a PROXY header fail; ignored, the default applies"},
		{"use-proxy-protocol", "10.0.0.0/8 lua-load /x", nil, "is not a CIDR"},
		{"use-proxy-protocol", "10.0.0.1,", nil, "is not a CIDR"},
		{"use-proxy-protocol", "fe80::1%eth0", nil, "has an IPv6 zone"},
		{"use-proxy-protocol", strings.Repeat("10.0.0.1,", 1000) + "10.0.0.1", nil, "1001 entries: want at most 1000 CIDRs; PROXY protocol stays off"},
		{"https-redirect-port", "443", func(s *S) { s.HTTPSRedirectPort = 443 }, ""},
		{"https-redirect-port", ":8443", nil, "not a number"},

		{"ssl-min-version", "TLSv1.0", func(s *S) { s.SSLMinVersion = "TLSv1.0" }, ""},
		{"ssl-min-version", "TLSv1.1", func(s *S) { s.SSLMinVersion = "TLSv1.1" }, ""},
		{"ssl-min-version", "TLSv1.2", func(s *S) {}, ""},
		{"ssl-min-version", "TLSv1.3", func(s *S) { s.SSLMinVersion = "TLSv1.3" }, ""},
		{"ssl-min-version", "tlsv1.2", nil, "want one of TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3"},
		{"ssl-min-version", "SSLv3", nil, "not a TLS version"},
		{"ssl-min-version", "TLSv1.2 no-tlsv13", nil, "not a TLS version"},

		{"ssl-ciphers", "ECDHE-RSA-AES128-GCM-SHA256", func(s *S) { s.SSLCiphers = "ECDHE-RSA-AES128-GCM-SHA256" }, ""},
		{"ssl-ciphers", "AES128-SHA:AES256-SHA", func(s *S) { s.SSLCiphers = "AES128-SHA:AES256-SHA" }, ""},
		{"ssl-ciphers", "HIGH:!aNULL", nil, `"HIGH:!aNULL": "HIGH" is not a known name`},
		{"ssl-ciphers", `ALL"; x`, nil, `"ALL\"; x" is not a known name`},
		{"ssl-ciphers", "FOO", nil, "aliases and exclusions such as HIGH or !aNULL are not accepted"},
		{"ssl-ciphers", "AES128-SHA:", nil, `"AES128-SHA:": "" is not a known name`},
		{"ssl-ciphers", "", nil, "is empty"},
		{"ssl-ciphersuites", "TLS_AES_128_GCM_SHA256", func(s *S) { s.SSLCipherSuites = "TLS_AES_128_GCM_SHA256" }, ""},
		{"ssl-ciphersuites", "TLS_FOO", nil, "TLS 1.3 cipher suites from TLS_AES_128_CCM_8_SHA256"},
		{"ssl-ciphersuites", "TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384", nil, "not a known name"},

		{"log-format", httplog, func(s *S) { s.LogFormat = httplog }, ""},
		{"log-format", "%{+Q,-E}r %{+X}Ts", func(s *S) { s.LogFormat = "%{+Q,-E}r %{+X}Ts" }, ""},
		{"log-format", "100%% of %ST (a{b}c) [%tr] <x|y;z&*?~^`=!@>", func(s *S) { s.LogFormat = "100%% of %ST (a{b}c) [%tr] <x|y;z&*?~^`=!@>" }, ""},
		{"log-format", "%[env(HOME)]", nil, `"%[env(HOME)]": the sample expression at offset 0 is not allowed`},
		{"log-format", "%{+Q}[src]", nil, "sample expression"},
		{"log-format", "x %(name)r", nil, "'%' at offset 2 is not followed by a log-format variable"},
		{"log-format", "%zz", nil, "%zz at offset 0 is not a log-format variable"},
		{"log-format", "%cifoo", nil, "%cifoo at offset 0 is not a log-format variable"},
		{"log-format", "x %", nil, "not followed by a log-format variable"},
		{"log-format", "% x", nil, "not followed by a log-format variable"},
		{"log-format", "%{+json}o", nil, "flags {+json}"},
		{"log-format", "%{}r", nil, "flags {}"},
		{"log-format", "%{+Q r", nil, "is not closed"},
		{"log-format", `a"b`, nil, `character '"' at offset 1`},
		{"log-format", "it's", nil, `character '\'' at offset 2`},
		{"log-format", `a\b`, nil, `character '\\'`},
		{"log-format", "a#b", nil, "character '#'"},
		{"log-format", "${HOME}", nil, "character '$'"},
		{"log-format", "a\tb", nil, `character '\t'`},
		{"log-format", "a\nlua-load /x", nil, `character '\n'`},
		{"log-format", "caf\u00e9", nil, "character"},
		{"log-format", strings.Repeat("x", 1025), nil, "at most 1024"},
		{"log-format", "", nil, "is empty"},

		{"default-certificate", "default/missing", nil, "Secret default/missing not found"},
		{"default-certificate", "default/weak-cert", nil, "Secret default/weak-cert: data[tls.crt]: certificate 1 (weak): RSA key of 1024 bits is too small"},
		{"default-certificate", "default/opaque", nil, `Secret default/opaque: type is "Opaque"`},
		{"default-certificate", "default/mismatched", nil, "do not form a pair"},
		{"default-certificate", "default-cert", nil, "want namespace/name of a kubernetes.io/tls Secret"},
		{"default-certificate", "default/Bad_Name", nil, `name "Bad_Name"`},
		{"default-certificate", "default/a b\n", nil, `name "a b\n"`},

		{"proxy-body-size", "10m", nil, "unknown key (known keys: default-certificate, dns-nameservers, http-port,"},
		{"a b\n", "x", nil, "unknown key"},
	}
	base := settingsInputs(t, nil)
	var good, bad *corev1.Secret
	for _, s := range base.Secrets {
		switch s.Name {
		case "default-cert":
			good = s
		case "web-tls":
			bad = s
		}
	}
	base.Secrets = append(base.Secrets,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "opaque"}, Type: corev1.SecretTypeOpaque, Data: good.Data},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "mismatched"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": bad.Data["tls.crt"], "tls.key": good.Data["tls.key"]}})

	for _, tt := range tests {
		t.Run(tt.key+"="+strconv.Quote(tt.value), func(t *testing.T) {
			in := base
			in.ConfigMaps = []*corev1.ConfigMap{{
				ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "haproxy-sidecar"},
				Data:       map[string]string{tt.key: tt.value},
			}}
			m := buildSettings(t, in)
			want := render.DefaultSettings()
			if tt.want != nil {
				tt.want(&want)
			}
			if !reflect.DeepEqual(m.Settings, want) {
				t.Errorf("settings:\n got %+v\nwant %+v", m.Settings, want)
			}
			ps := configMapProblems(m)
			if tt.want != nil {
				if len(ps) > 0 {
					t.Errorf("unexpected problems: %v", ps)
				}
				return
			}
			if len(ps) != 1 {
				t.Fatalf("want one problem, got %v", ps)
			}
			p := ps[0]
			field := "data[" + tt.key + "]"
			if tt.key == "a b\n" {
				field = `data["a b\n"]`
			}
			if p.Severity != render.Warning || p.Namespace != "default" || p.Name != "haproxy-sidecar" || p.Field != field {
				t.Errorf("problem %#v, want a Warning on ConfigMap default/haproxy-sidecar %s", p, field)
			}
			if !strings.Contains(p.Message, tt.problem) {
				t.Errorf("problem message %q lacks %q", p.Message, tt.problem)
			}
		})
	}
}

func TestSettingsDefaultCertificate(t *testing.T) {
	in := settingsInputs(t, map[string]string{"default-certificate": "default/default-cert"})
	m := buildSettings(t, in)
	if ps := configMapProblems(m); len(ps) > 0 {
		t.Fatalf("problems: %v", ps)
	}
	c := m.Settings.DefaultCertificate
	if c == nil || c.File != render.DefaultCertFile || c.Namespace != "default" || c.Secret != "default-cert" {
		t.Fatalf("default certificate %+v", c)
	}
	// The file holds only re-encoded blocks: the certificate, then the key.
	var types []string
	var cn string
	for rest := c.PEM; ; {
		b, r := pem.Decode(rest)
		if b == nil {
			if len(strings.TrimSpace(string(r))) > 0 {
				t.Errorf("text after the PEM blocks: %q", r)
			}
			break
		}
		rest = r
		types = append(types, b.Type)
		if b.Type == "CERTIFICATE" {
			crt, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			cn = crt.Subject.CommonName
		}
	}
	if strings.Join(types, ",") != "CERTIFICATE,PRIVATE KEY" || cn != "settings default certificate" {
		t.Errorf("PEM blocks %v, CN %q", types, cn)
	}
	out := mustRender(t, m, ":80", ":443")
	if string(out.Get(render.DefaultCertFile)) != string(c.PEM) {
		t.Errorf("%s is not the Secret's certificate", render.DefaultCertFile)
	}
	// Without the setting, the built-in certificate.
	out = mustRender(t, buildSettings(t, settingsInputs(t, map[string]string{})), ":80", ":443")
	if !strings.Contains(certCN(t, out.Get(render.DefaultCertFile)), "haproxy-sidecar default certificate") {
		t.Errorf("built-in default certificate not used")
	}
}

func certCN(t *testing.T, data []byte) string {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.Subject.CommonName
}

func mustRender(t *testing.T, m *render.Model, httpBind, httpsBind string) *haproxycfg.Output {
	t.Helper()
	out, err := haproxycfg.Render(m, haproxycfg.Config{HTTPBind: httpBind, HTTPSBind: httpsBind, Template: loadTemplate(t)})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func loadTemplate(t testing.TB) *template.Template {
	t.Helper()
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func TestSettingsConfigMapSelection(t *testing.T) {
	in := settingsInputs(t, nil)
	// No settings ConfigMap named: defaults, nothing reported, and the
	// ConfigMaps present are not read.
	m := render.BuildModel(in, render.Options{})
	if !reflect.DeepEqual(m.Settings, render.DefaultSettings()) || len(configMapProblems(m)) > 0 {
		t.Errorf("no ConfigMap named: settings %+v, problems %v", m.Settings, configMapProblems(m))
	}
	// Named but missing: a notice, and the defaults.
	m = render.BuildModel(in, render.Options{SettingsConfigMap: "kube-system/nope"})
	ps := configMapProblems(m)
	if !reflect.DeepEqual(m.Settings, render.DefaultSettings()) || len(ps) != 1 || ps[0].Severity != render.Notice ||
		ps[0].String() != "ConfigMap kube-system/nope: settings ConfigMap not found; defaults used" {
		t.Errorf("missing ConfigMap: settings %+v, problems %v", m.Settings, ps)
	}
	// Another ConfigMap of the same inputs can be named.
	m = render.BuildModel(in, render.Options{SettingsConfigMap: "default/unrelated"})
	if m.Settings.TimeoutClient != time.Second || len(configMapProblems(m)) > 0 {
		t.Errorf("default/unrelated: settings %+v, problems %v", m.Settings, configMapProblems(m))
	}
	// An invalid reference (the CLI refuses it earlier).
	m = render.BuildModel(in, render.Options{SettingsConfigMap: "no-slash"})
	if ps := configMapProblems(m); len(ps) != 1 || ps[0].Severity != render.Warning || !strings.Contains(ps[0].Message, "want namespace/name") {
		t.Errorf("invalid reference: problems %v", ps)
	}
	for _, ref := range []string{"", "a", "a/", "/b", "A/b", "a/b c", "a/b/c"} {
		if _, _, err := render.ParseSettingsRef(ref); err == nil {
			t.Errorf("ParseSettingsRef(%q) accepted", ref)
		}
	}
	if ns, name, err := render.ParseSettingsRef("kube-system/haproxy.settings"); err != nil || ns != "kube-system" || name != "haproxy.settings" {
		t.Errorf("ParseSettingsRef: %q %q %v", ns, name, err)
	}
	// binaryData is not read.
	cm := settingsConfigMap(t, in)
	cm.Data = map[string]string{"maxconn": "5"}
	cm.BinaryData = map[string][]byte{"maxconn": []byte("7")}
	m = buildSettings(t, in)
	if ps := configMapProblems(m); m.Settings.MaxConn != 5 || len(ps) != 1 || ps[0].Field != "binaryData[maxconn]" {
		t.Errorf("binaryData: maxconn %d, problems %v", m.Settings.MaxConn, ps)
	}
}

func TestSettingsPorts(t *testing.T) {
	tests := []struct {
		data                 map[string]string
		httpBind, httpsBind  string
		wantHTTP, wantHTTPS  string
		wantProblem, wantErr string
	}{
		{map[string]string{}, ":80", ":443", ":80", ":443", "", ""},
		{map[string]string{"http-port": "8080", "https-port": "8443"}, ":80", ":443", ":8080", ":8443", "", ""},
		{map[string]string{"http-port": "8080"}, "127.0.0.1:80", "[::1]:443", "127.0.0.1:8080", "[::1]:443", "", ""},
		{map[string]string{"https-port": "8443"}, "127.0.0.1:80", "[::1]:443", "127.0.0.1:80", "[::1]:8443", "", ""},
		// The same port twice: both ignored.
		{map[string]string{"http-port": "8000", "https-port": "8000"}, ":80", ":443", ":80", ":443",
			"data[https-port]: 8000 is also http-port; both ignored", ""},
		// A port taken from the other bind address: Render refuses.
		{map[string]string{"http-port": "443"}, ":80", ":443", "", "", "", "listen on the same port"},
		{map[string]string{"https-port": "80"}, "0.0.0.0:80", "127.0.0.1:443", "", "", "", "listen on the same port"},
		// Different addresses may share a port.
		{map[string]string{"https-port": "80"}, "127.0.0.1:80", "127.0.0.2:443", "127.0.0.1:80", "127.0.0.2:80", "", ""},
	}
	for _, tt := range tests {
		m := buildSettings(t, settingsInputs(t, tt.data))
		var got []string
		for _, p := range configMapProblems(m) {
			got = append(got, p.String())
		}
		if tt.wantProblem == "" && len(got) > 0 || tt.wantProblem != "" && (len(got) != 1 || !strings.Contains(got[0], tt.wantProblem)) {
			t.Errorf("%v: problems %q, want %q", tt.data, got, tt.wantProblem)
		}
		out, err := haproxycfg.Render(m, haproxycfg.Config{HTTPBind: tt.httpBind, HTTPSBind: tt.httpsBind, Template: loadTemplate(t)})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: error %v, want %q", tt.data, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tt.data, err)
			continue
		}
		cfg := string(out.Get(haproxycfg.ConfigFile))
		for _, w := range []string{"    bind " + tt.wantHTTP + "\n", "    bind " + tt.wantHTTPS + " ssl "} {
			if !strings.Contains(cfg, w) {
				t.Errorf("%v with %s, %s: no %q", tt.data, tt.httpBind, tt.httpsBind, w)
			}
		}
	}
}

// A model not made by BuildModel (zero Settings) renders the defaults.
func TestSettingsZeroValueRendersDefaults(t *testing.T) {
	zero := &render.Model{DefaultBackend: render.NotFoundBackend}
	built := render.BuildModel(render.Inputs{}, render.Options{})
	a, b := mustRender(t, zero, ":80", ":443"), mustRender(t, built, ":80", ":443")
	if string(a.Get(haproxycfg.ConfigFile)) != string(b.Get(haproxycfg.ConfigFile)) {
		t.Errorf("zero Settings render differently from the defaults:\n%s", lineDiff(string(b.Get(haproxycfg.ConfigFile)), string(a.Get(haproxycfg.ConfigFile))))
	}
}

// What the template emits for the settings: typed values re-formatted,
// never the text of the ConfigMap.
func TestSettingsTemplateOutput(t *testing.T) {
	m := buildSettings(t, settingsInputs(t, map[string]string{
		"timeout-connect": "1.5s", "timeout-client": "2m", "timeout-server": "1d", "timeout-http-request": "250",
		"timeout-http-keep-alive": "1h", "timeout-queue": "1ms", "timeout-tunnel": "90m",
		"maxconn": "4096", "log-format": "%ci %{+Q}r %ST", "ssl-min-version": "TLSv1.3",
		"ssl-ciphers": "AES128-SHA", "ssl-ciphersuites": "TLS_AES_128_GCM_SHA256",
		"https-redirect-port": "8443",
	}))
	cfg := string(mustRender(t, m, ":80", ":443").Get(haproxycfg.ConfigFile))
	for _, w := range []string{
		"\n    maxconn 4096\n",
		"\n    ssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets\n",
		"\n    ssl-default-bind-ciphers AES128-SHA\n",
		"\n    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256\n",
		"\n    log-format \"%ci %{+Q}r %ST\"\n",
		"\n    timeout connect 1500ms\n", "\n    timeout client 120000ms\n", "\n    timeout server 86400000ms\n",
		"\n    timeout http-request 250ms\n", "\n    timeout http-keep-alive 3600000ms\n",
		"\n    timeout queue 1ms\n", "\n    timeout tunnel 5400000ms\n",
		" https://%[var(txn.host)]:8443%[pathq] if !{ ssl_fc }\n",
	} {
		if !strings.Contains(cfg, w) {
			t.Errorf("configuration lacks %q", w)
		}
	}
	if strings.Contains(cfg, "option httplog") {
		t.Errorf("option httplog kept alongside log-format")
	}
	def := string(mustRender(t, render.BuildModel(render.Inputs{}, render.Options{}), ":80", ":443").Get(haproxycfg.ConfigFile))
	if strings.Contains(def, "maxconn") || strings.Contains(def, "log-format") || !strings.Contains(def, "\n    option httplog\n") {
		t.Errorf("defaults emit maxconn or log-format, or lack option httplog")
	}
	// 443 is the default port of https URLs: never written.
	for _, v := range []string{"", "443"} {
		data := map[string]string{}
		if v != "" {
			data["https-redirect-port"] = v
		}
		c := string(mustRender(t, buildSettings(t, settingsInputs(t, data)), ":80", ":443").Get(haproxycfg.ConfigFile))
		if !strings.Contains(c, " https://%[var(txn.host)]%[pathq] if !{ ssl_fc }\n") {
			t.Errorf("https-redirect-port %q: the redirect names a port", v)
		}
	}

	// The hostile values of testdata/settings reach nothing.
	m, out, problems := renderCase(t, "../testdata/settings", nil)
	cfg = string(out.Get(haproxycfg.ConfigFile))
	for _, bad := range []string{"lua-load", "env(", "HOME", `ALL"`, "proxy-body-size", "ssl-redirect", "25h"} {
		if strings.Contains(cfg, bad) {
			t.Errorf("configuration contains %q", bad)
		}
	}
	var fields []string
	for _, p := range problems {
		if p.Kind == "ConfigMap" {
			fields = append(fields, p.Field)
		}
	}
	want := []string{"data[log-format]", "data[proxy-body-size]", "data[ssl-ciphers]", "data[ssl-redirect]",
		"data[timeout-client]", "data[timeout-http-request]", "data[timeout-queue]"}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("problems on %q, want %q", fields, want)
	}
	if m.Settings.DefaultCertificate == nil || m.Settings.HTTPPort != 8080 || m.Settings.MaxConn != 20000 {
		t.Errorf("valid keys of testdata/settings not applied: %+v", m.Settings)
	}
}

// Every key is documented in README.md, with every accepted name.
func TestSettingsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(readme)
	// settings.go looks keys up by binary search.
	if !slices.IsSorted(render.SettingKeys()) {
		t.Errorf("settingKeys is not sorted: %q", render.SettingKeys())
	}
	for _, k := range render.SettingKeys() {
		if !strings.Contains(doc, "| `"+k+"` |") {
			t.Errorf("README.md has no table row for %s", k)
		}
	}
	for _, list := range [][]string{render.SSLCipherNames(), render.SSLCipherSuiteNames(), render.SSLMinVersions()} {
		for _, n := range list {
			if !strings.Contains(doc, n) {
				t.Errorf("README.md does not list %s", n)
			}
		}
	}
	for _, v := range render.LogFormatVariables() {
		if !strings.Contains(doc, "`%"+v+"`") {
			t.Errorf("README.md does not list log-format variable %%%s", v)
		}
	}
}

// checkWithHAProxies writes an output and has every supported HAProxy
// check it.
func checkWithHAProxies(t *testing.T, out *haproxycfg.Output) {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, out)
	for version, bin := range testenv.HAProxies(t) {
		if err := reload.Check(context.Background(), bin, filepath.Join(dir, haproxycfg.ConfigFile)); err != nil {
			t.Errorf("haproxy %s -c: %v", version, err)
		}
	}
}

// Everything the parser accepts, HAProxy accepts: each cipher and cipher
// suite alone (OpenSSL fails a list in which it knows no name), each TLS
// version, every log-format variable and flag, and the bounds.
func TestSettingsAcceptedByHAProxy(t *testing.T) {
	var vars []string
	for _, v := range render.LogFormatVariables() {
		vars = append(vars, "%"+v)
	}
	cases := []map[string]string{
		{"log-format": strings.Join(vars, " ")},
		{"log-format": "%{+Q}r %{-Q}r %{+X}Ts %{-X}Ts %{+E}r %{-E}r %{+Q,+E}r 100%% [%tr] (x){y}<z>|;&*?~^`=!@", "maxconn": "10000000"},
		{"timeout-connect": "1ms", "timeout-client": "24h", "timeout-server": "1d", "timeout-tunnel": "86400000"},
		{"default-certificate": "default/default-cert"},
		{"https-redirect-port": "8443"},
		{"trusted-proxies": strings.TrimSuffix(strings.Repeat("10.0.0.0/8,", 150), ",")},
		{"trusted-proxies": distinctAddresses(999, "::/0")},
		{"use-proxy-protocol": distinctAddresses(999, "::/0")},
	}
	for _, c := range render.SSLCipherNames() {
		cases = append(cases, map[string]string{"ssl-ciphers": c})
	}
	for _, c := range render.SSLCipherSuiteNames() {
		cases = append(cases, map[string]string{"ssl-ciphersuites": c})
	}
	for _, v := range render.SSLMinVersions() {
		cases = append(cases, map[string]string{"ssl-min-version": v})
	}
	for _, data := range cases {
		m := buildSettings(t, settingsInputs(t, data))
		if ps := configMapProblems(m); len(ps) > 0 {
			t.Errorf("%v: %v", data, ps)
			continue
		}
		checkWithHAProxies(t, mustRender(t, m, ":80", ":443"))
	}
}

// distinctAddresses is a list of n distinct addresses of 10.0.0.0/8, then
// extra, comma-separated, as the CIDR settings and annotations take it.
// With n near the limit, the addresses a test connects from land in the
// last acl line.
func distinctAddresses(n int, extra ...string) string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff))
	}
	return strings.Join(append(out, extra...), ",")
}

// Every list of address ranges, settings and annotations, is accepted by
// HAProxy at its bound of 1000 distinct entries: its acl lines stay within
// HAProxy's 64 words a line.
func TestCIDRListsAtTheirBound(t *testing.T) {
	in := settingsInputs(t, map[string]string{
		"trusted-proxies":    distinctAddresses(1000),
		"use-proxy-protocol": distinctAddresses(1000),
	})
	for _, ing := range in.Ingresses {
		ing.Annotations = map[string]string{
			render.AnnotationPrefix + "allowlist-source-range": distinctAddresses(1000),
			render.AnnotationPrefix + "denylist-source-range":  distinctAddresses(1000),
		}
	}
	m := buildSettings(t, in)
	if len(m.Problems) > 0 {
		t.Fatalf("problems: %v", m.Problems)
	}
	cfg := mustRender(t, m, ":80", ":443")
	for _, want := range []string{"acl trusted_proxy src ", "acl proxy_protocol_peer src ", "acl src_allowed ", "acl src_denied "} {
		if n := strings.Count(string(cfg.Get(haproxycfg.ConfigFile)), want); n < 2 {
			t.Errorf("%d lines %q, want the list in several", n, want)
		}
	}
	checkWithHAProxies(t, cfg)
}

// The valid-values variant of testdata/settings passes the config-parser
// oracle, which checks every directive against the template rendered with
// the same settings.
func TestSettingsStructure(t *testing.T) {
	in := settingsInputs(t, map[string]string{
		"log-format":  "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r",
		"ssl-ciphers": "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256", "maxconn": "100",
		"timeout-tunnel": "10m", "http-port": "8080", "default-certificate": "default/default-cert",
	})
	m, out, problems := renderInputs(t, in, haproxycfg.Config{HTTPBind: ":80", HTTPSBind: ":443"}, nil)
	for _, p := range problems {
		if p.Kind == "ConfigMap" {
			t.Errorf("problem: %v", p)
		}
	}
	checkStructure(t, out.Get(haproxycfg.ConfigFile), m)
	checkWithHAProxies(t, out)

	// The oracle still sees a directive that does not come from the
	// settings.
	r := &recorder{T: t}
	bad := strings.Replace(string(out.Get(haproxycfg.ConfigFile)), "    maxconn 100\n", "    maxconn 100\n    lua-load /tmp/x.lua\n", 1)
	checkStructure(r, []byte(bad), m)
	if len(r.errs) == 0 {
		t.Errorf("injected global line not detected")
	}
}

// Through a real HAProxy: the ports of the ConfigMap are the ones
// listening, the default certificate answers SNI that matches no Ingress,
// and the log line has the configured format.
func TestRoutingSettings(t *testing.T) {
	httpPort, httpsPort := freePort(t), freePort(t)
	flagHTTP, flagHTTPS := freePort(t), freePort(t)
	in := settingsInputs(t, map[string]string{
		"http-port":           strconv.Itoa(httpPort),
		"https-port":          strconv.Itoa(httpsPort),
		"default-certificate": "default/default-cert",
		"log-format":          "settings-log %HM %HU %ST %b %{+Q}r",
		"ssl-min-version":     "TLSv1.2",
	})
	pointAtEchoServers(t, &in)
	_, out, problems := renderInputs(t, in, haproxycfg.Config{
		HTTPBind:  "127.0.0.1:" + strconv.Itoa(flagHTTP),
		HTTPSBind: "127.0.0.1:" + strconv.Itoa(flagHTTPS),
	}, nil)
	for _, p := range problems {
		if p.Kind == "ConfigMap" {
			t.Fatalf("problem: %v", p)
		}
	}
	dir := t.TempDir()
	writeFiles(t, dir, out)

	for version, bin := range testenv.HAProxies(t) {
		t.Run("haproxy-"+version, func(t *testing.T) {
			logs := startHAProxy(t, bin, filepath.Join(dir, haproxycfg.ConfigFile), httpPort)
			c := newClient(httpPort, httpsPort)
			for _, r := range []request{
				{host: "web.example", path: "/x", want: "redirect:https://web.example/x"},
				{https: true, host: "web.example", path: "/", want: "svc:default/web", cert: "web.example"},
				{https: true, host: "unknown.example", path: "/", want: "status:404", cert: "settings default certificate"},
				{https: true, host: "other.test", path: "/", want: "status:404", cert: "settings default certificate"},
			} {
				got, cert := c.do(t, r)
				if got != r.want || r.cert != "" && cert != r.cert {
					t.Errorf("%s: got %s with certificate %q, want %s with %q", r, got, cert, r.want, r.cert)
				}
			}
			// The bind addresses' own ports are not used.
			for _, p := range []int{flagHTTP, flagHTTPS} {
				if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p), time.Second); err == nil {
					conn.Close()
					t.Errorf("port %d of the bind address is listening", p)
				}
			}
			want := []string{
				`settings-log GET /x 308 ingress "GET /x HTTP/1.1"`,
				`settings-log GET / 200 default_web_80 "GET / HTTP/1.1"`,
				`settings-log GET / 404 _default_404 "GET / HTTP/1.1"`,
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				missing := ""
				for _, w := range want {
					if !strings.Contains(logs.String(), w+"\n") {
						missing = w
						break
					}
				}
				if missing == "" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no log line %q in HAProxy's output:\n%s", missing, logs.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
