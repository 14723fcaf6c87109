package render

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	corev1 "k8s.io/api/core/v1"
)

// A character outside ASCII is named as the character, not as the first
// byte of its UTF-8 encoding.
func TestValidatePathNamesTheCharacter(t *testing.T) {
	err := validatePath("/ü")
	if err == nil || !strings.Contains(err.Error(), "character 'ü' at offset 1") {
		t.Errorf("validatePath(/ü) = %v", err)
	}
}

// An encrypted PKCS#8 key says so: HAProxy cannot use it without a
// passphrase, and "no private key" would send the user looking elsewhere.
func TestEncryptedPKCS8Key(t *testing.T) {
	key := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x00}})
	_, _, err := privateKeyBlock(key)
	if err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Errorf("encrypted PKCS#8 key: %v, want an error saying it is encrypted", err)
	}
}

// A problem names a bad path without repeating all of it.
func TestValidatePathCutsLongValues(t *testing.T) {
	for _, p := range []string{"x" + strings.Repeat("a", 1000), "/" + strings.Repeat("a", 500) + "?q", "/" + strings.Repeat("a", 500) + " "} {
		err := validatePath(p)
		if err == nil || len(err.Error()) > 200 {
			t.Errorf("validatePath(%d bytes) = %v, want an error of at most 200 bytes", len(p), err)
		}
	}
}

// A path an annotation gives has one leading '/': "//host/x" is a path,
// but a browser follows it to another site as a redirect's Location.
func TestValidateAnnotationPath(t *testing.T) {
	for _, p := range []string{"/", "/app", "/a//b", "/a/"} {
		if err := validateAnnotationPath(p); err != nil {
			t.Errorf("validateAnnotationPath(%q) = %v, want ok", p, err)
		}
	}
	for _, p := range []string{"//evil.example", "//", "///x", "evil.example", "/a b"} {
		if err := validateAnnotationPath(p); err == nil {
			t.Errorf("validateAnnotationPath(%q) = nil, want an error", p)
		}
	}
	for _, name := range []string{"app-root", "rewrite-target", "x-forwarded-prefix", "health-check-path"} {
		a := parseAnnotations("default", map[string]string{AnnotationPrefix + name: "//evil.example"}, CompatNone)
		if len(a.problems) != 1 || a.problems[0].Reason != InvalidAnnotation || !a.route.IsZero() || a.backend.HealthCheckPath != "" {
			t.Errorf("%s: //evil.example: problems %v, route %+v", name, a.problems, a.route)
		}
	}
}

// An address with an IPv6 zone is refused, not narrowed to the address
// without it; an access restriction refused fails closed.
func TestCIDRWithZoneFailsClosed(t *testing.T) {
	for _, v := range []string{"fe80::1%eth0", "10.0.0.1, fe80::1%eth0", "fe80::1%eth0/64"} {
		if p, err := parseCIDRList(v); err == nil {
			t.Errorf("parseCIDRList(%q) = %v, want an error", v, p)
		}
		for _, key := range []string{AnnotationPrefix + "allowlist-source-range", AnnotationPrefix + "denylist-source-range"} {
			a := parseAnnotations("default", map[string]string{key: v}, CompatNone)
			if !slices.Equal(a.route.Closed, []string{key}) || len(a.route.AllowSources)+len(a.route.DenySources) != 0 {
				t.Errorf("%s=%q: closed %v, ranges %v %v", key, v, a.route.Closed, a.route.AllowSources, a.route.DenySources)
			}
		}
	}
}

// An EC key whose DER carries a public point that is not its own passes
// Go's pair check (Go derives the point from the scalar) but not OpenSSL's:
// the key reaches HAProxy marshalled again from what Go parsed, so the
// point is the right one, and haproxy -c accepts the certificate (checked
// through the fuzz corpus entry 93c2fedebf702b6e).
func TestPrivateKeyIsMarshalledAgain(t *testing.T) {
	crt, keyPEM := testenv.SelfSigned(t, "a.example", "")
	b, _ := pem.Decode(keyPEM)
	der := slices.Clone(b.Bytes)
	der[len(der)-3] ^= 0x2e // inside the stored public point
	if _, err := x509.ParsePKCS8PrivateKey(der); err != nil {
		t.Fatalf("the altered key no longer parses in Go (%v): pick another byte", err)
	}
	sec := &corev1.Secret{Type: corev1.SecretTypeTLS, Data: map[string][]byte{
		corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})}}
	out, err := certificatePEM(sec)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for rest := out; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		if blk.Type == "PRIVATE KEY" {
			got = blk.Bytes
		}
	}
	if !bytes.Equal(got, b.Bytes) {
		t.Errorf("the key written is not the key marshalled again from what Go parsed")
	}
}

// proxy-read-timeout and proxy-send-timeout both become timeout server:
// the longer applies, whichever it is, and two agreeing names are no
// conflict.
func TestNginxServerTimeouts(t *testing.T) {
	np := NginxAnnotationPrefix
	for _, c := range []struct {
		read, send string
		want       time.Duration
	}{
		{"5", "30", 30 * time.Second},
		{"60", "30", time.Minute},
		{"", "30", 30 * time.Second},
		{"45", "", 45 * time.Second},
		{"20", "20", 20 * time.Second},
		{"x", "20", 20 * time.Second},
	} {
		ann := map[string]string{}
		if c.read != "" {
			ann[np+"proxy-read-timeout"] = c.read
		}
		if c.send != "" {
			ann[np+"proxy-send-timeout"] = c.send
		}
		a := parseAnnotations("default", ann, CompatNginx)
		if a.backend.TimeoutServer != c.want {
			t.Errorf("read %q send %q: timeout server %v, want %v", c.read, c.send, a.backend.TimeoutServer, c.want)
		}
		for _, p := range a.problems {
			if p.Reason != InvalidAnnotation || c.read != "x" {
				t.Errorf("read %q send %q: unexpected problem %v", c.read, c.send, p)
			}
		}
	}
}

// The accepted ingress-nginx annotations validate their values and set
// nothing.
func TestNginxAccepted(t *testing.T) {
	np := NginxAnnotationPrefix
	good := map[string]string{np + "proxy-buffering": "off", np + "proxy-request-buffering": "on", np + "proxy-buffer-size": "8k",
		np + "proxy-buffers-number": "4", np + "client-body-buffer-size": "1m", np + "proxy-max-temp-file-size": "0",
		np + "proxy-http-version": "1.1", np + "connection-proxy-header": "keep-alive", np + "session-cookie-hash": "md5"}
	a := parseAnnotations("default", good, CompatNginx)
	if len(a.problems) != 0 || !a.route.IsZero() || a.backend != (BackendSettings{}) {
		t.Errorf("accepted annotations: problems %v, route %+v, backend %+v", a.problems, a.route, a.backend)
	}
	for key := range good {
		a := parseAnnotations("default", map[string]string{key: "x;y"}, CompatNginx)
		if len(a.problems) != 1 || a.problems[0].Reason != InvalidAnnotation {
			t.Errorf("%s=x;y: problems %v, want one InvalidAnnotation", key, a.problems)
		}
	}
}

// Values ingress-nginx accepts that real Ingresses carry: backend-protocol
// in lower case, a body size over a gigabyte.
func TestNginxValuesFromTheCorpus(t *testing.T) {
	np := NginxAnnotationPrefix
	a := parseAnnotations("default", map[string]string{np + "backend-protocol": "https", np + "proxy-body-size": "10000m"}, CompatNginx)
	if len(a.problems) != 0 || a.backend.Protocol != "https" || a.route.BodySizeLimit != 10000<<20 {
		t.Errorf("problems %v, protocol %q, body size %d", a.problems, a.backend.Protocol, a.route.BodySizeLimit)
	}
	for _, v := range []string{"2t", "99999999999t", "1099511627777"} {
		if _, err := parseSize(v); err == nil {
			t.Errorf("parseSize(%q) accepted, want over the 1t limit", v)
		}
	}
}

// ingress-nginx's limit-rps and limit-rpm allow a burst of 5 times the
// rate unless limit-burst-multiplier says otherwise; ours are strict
// unless rate-limit-burst-multiplier is set.
func TestRateLimitBurst(t *testing.T) {
	np, p := NginxAnnotationPrefix, AnnotationPrefix
	for _, c := range []struct {
		ann  map[string]string
		want int
	}{
		{map[string]string{np + "limit-rps": "10"}, 5},
		{map[string]string{np + "limit-rpm": "10"}, 5},
		{map[string]string{np + "limit-rps": "10", np + "limit-burst-multiplier": "2"}, 2},
		{map[string]string{np + "limit-connections": "10"}, 0},
		{map[string]string{p + "rate-limit-rps": "10"}, 0},
		{map[string]string{p + "rate-limit-rps": "10", p + "rate-limit-burst-multiplier": "4"}, 4},
	} {
		a := parseAnnotations("default", c.ann, CompatNginx)
		if len(a.problems) != 0 || a.route.RateLimitBurst != c.want {
			t.Errorf("%v: burst %d, problems %v; want %d", c.ann, a.route.RateLimitBurst, a.problems, c.want)
		}
	}
}
