package render

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func annotated(ns, name string, ann map[string]string) *networkingv1.Ingress {
	return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: ann}}
}

// Every category of the migration report, one Ingress per case: the rows
// come out sorted, with the haproxy-sidecar.io annotation, the converted
// value and the table's words.
func TestMigrationReportCategories(t *testing.T) {
	const np = NginxAnnotationPrefix
	hostile := "/x\"\n  http-request return status 200 string ${HOME}\n"
	type want struct {
		key    string // after the prefix
		status MigrationStatus
		ours   string // after the prefix
		value  string
		detail string // a substring
	}
	tests := []struct {
		name string
		ns   string
		ann  map[string]string
		want []want
	}{
		{"honoured", "default", map[string]string{np + "enable-cors": "true", np + "proxy-connect-timeout": "5", np + "backend-protocol": "GRPCS"}, []want{
			{"backend-protocol", MigrationHonoured, "backend-protocol", "grpcs", ""},
			{"enable-cors", MigrationHonoured, "cors-enable", "true", ""},
			{"proxy-connect-timeout", MigrationHonoured, "timeout-connect", "5s", ""},
		}},
		{"honoured by our default", "default", map[string]string{np + "ssl-redirect": "true", np + "force-ssl-redirect": "false"}, []want{
			{"force-ssl-redirect", MigrationHonoured, "ssl-redirect", "", ""},
			{"ssl-redirect", MigrationHonoured, "ssl-redirect", "", ""},
		}},
		{"with a difference", "default", map[string]string{np + "limit-rps": "10", np + "load-balance": "ewma", np + "rewrite-target": "/"}, []want{
			{"limit-rps", MigrationDifference, "rate-limit-rps", "10", findNginx("limit-rps").difference},
			{"load-balance", MigrationDifference, "balance", "leastconn", "ewma becomes leastconn"},
			{"rewrite-target", MigrationDifference, "rewrite-target", "/", "whole path"},
		}},
		{"accepted: HAProxy's behaviour answers it", "default", map[string]string{
			np + "proxy-buffering": "on", np + "proxy-request-buffering": "off", np + "proxy-buffer-size": "16k",
			np + "proxy-http-version": "1.0", np + "session-cookie-hash": "sha1", np + "rate-limit": "10",
		}, []want{
			{"proxy-buffer-size", MigrationDifference, "", "", "tune.bufsize"},
			{"proxy-buffering", MigrationDifference, "", "", "HAProxy streams responses"},
			{"proxy-http-version", MigrationInvalid, "", "", "want 1.1"},
			{"proxy-request-buffering", MigrationDifference, "", "", "streamed to the endpoints"},
			{"rate-limit", MigrationDifference, "", "", "not an ingress-nginx annotation (limit-rps and limit-rpm are); ingress-nginx ignores it, and so does haproxy-sidecar"},
			{"session-cookie-hash", MigrationDifference, "", "", "obsolete"},
		}},
		{"read and send timeouts: the longer for both", "default", map[string]string{np + "proxy-read-timeout": "30", np + "proxy-send-timeout": "120"}, []want{
			{"proxy-read-timeout", MigrationDifference, "timeout-server", "120s", "the longer of the two"},
			{"proxy-send-timeout", MigrationDifference, "timeout-server", "120s", "the longer of the two"},
		}},
		{"unsupported", "default", map[string]string{np + "auth-url": "https://auth.example/", np + "configuration-snippet": "deny all;", np + "not-a-thing": "1"}, []want{
			{"auth-url", MigrationFailsClosed, "auth-url", "", "(the auth service is reached over plain HTTP inside the cluster)"},
			{"configuration-snippet", MigrationUnsupported, "", "", `not supported, ignored: directive "deny" is raw NGINX configuration (only header directives are translated); no part of the snippet is applied (annotations cannot add configuration text)`},
			{"not-a-thing", MigrationUnsupported, "", "", "unknown to haproxy-sidecar's compatibility table"},
		}},
		{"fails closed", "default", map[string]string{
			np + "auth-tls-secret": "default/ca", np + "enable-modsecurity": "true", np + "auth-signin": "https://login.example/",
			np + "enable-owasp-core-rules": "false", np + "auth-method": "POST",
		}, []want{
			{"auth-method", MigrationInvalid, "auth-method", "", "needs auth-url"},
			{"auth-signin", MigrationInvalid, "auth-signin", "", "needs auth-url"},
			{"auth-tls-secret", MigrationFailsClosed, "", "", "client certificate authentication"},
			{"enable-modsecurity", MigrationFailsClosed, "", "", "ModSecurity"},
			{"enable-owasp-core-rules", MigrationUnsupported, "", "", effectWAF},
		}},
		{"client certificates not required", "default", map[string]string{
			np + "auth-tls-secret": "default/ca", np + "auth-tls-verify-client": "optional",
		}, []want{
			{"auth-tls-secret", MigrationUnsupported, "", "", "unless auth-tls-verify-client is off or optional"},
			{"auth-tls-verify-client", MigrationUnsupported, "", "", "on makes the Ingress fail closed"},
		}},
		{"canary", "default", map[string]string{
			np + "canary": "true", np + "canary-weight": "10", np + "whitelist-source-range": "10.0.0.0/8", np + "load-balance": "ewma",
		}, []want{
			{"canary", MigrationDifference, "canary", "true", "requests it takes pass the main Ingress's authentication"},
			{"canary-weight", MigrationHonoured, "canary-weight", "10", ""},
			{"load-balance", MigrationDifference, "balance", "leastconn", "ewma becomes leastconn"},
			{"whitelist-source-range", MigrationOverridden, "allowlist-source-range", "", "ignored on a canary"},
		}},
		{"invalid", "default", map[string]string{
			np + "rewrite-target":   "/$host/x",    // an NGINX variable
			np + "proxy-body-size":  "lots",        // refused by our parser
			np + "proxy-ssl-verify": "on",          // refused with the others: no CA
			np + "load-balance":     "least_conns", // not one ingress-nginx knows
		}, []want{
			{"load-balance", MigrationInvalid, "balance", "", "want round_robin or ewma"},
			{"proxy-body-size", MigrationInvalid, "body-size-limit", "", "is not a size"},
			{"proxy-ssl-verify", MigrationInvalid, "backend-verify", "", "true needs backend-ca-secret"},
			{"rewrite-target", MigrationInvalid, "rewrite-target", "", "NGINX variables"},
		}},
		{"hostile values", "default", map[string]string{np + "app-root": hostile, np + "cors-allow-origin": hostile, np + "x\n  y": hostile}, []want{
			{"app-root", MigrationInvalid, "app-root", "", "not allowed in a path"},
			{"cors-allow-origin", MigrationInvalid, "cors-allow-origin", "", "is not an origin"},
			{"x\n  y", MigrationUnsupported, "", "", "unknown"},
		}},
		{"Secret of another namespace", "team-b", map[string]string{
			np + "auth-type": "basic", np + "auth-secret": "other/htpasswd",
			np + "proxy-ssl-secret": "other/ca",
		}, []want{
			{"auth-secret", MigrationFailsClosed, "auth-basic-secret", "", "Secret \"other/htpasswd\" is in another namespace"},
			{"auth-type", MigrationDifference, "auth-basic-secret", "", "basic only"},
			{"proxy-ssl-secret", MigrationInvalid, "backend-ca-secret", "", "is in another namespace"},
		}},
		{"Secret of its own namespace", "team-b", map[string]string{
			np + "auth-type": "basic", np + "auth-secret": "team-b/htpasswd", np + "auth-secret-type": "auth-file",
		}, []want{
			{"auth-secret", MigrationDifference, "auth-basic-secret", "htpasswd", "bcrypt"},
			{"auth-secret-type", MigrationDifference, "auth-basic-secret", "", "auth-file only"},
			{"auth-type", MigrationDifference, "auth-basic-secret", "", "basic only"},
		}},
		{"not basic authentication", "default", map[string]string{np + "auth-type": "digest", np + "auth-secret": "htpasswd"}, []want{
			{"auth-secret", MigrationFailsClosed, "auth-basic-secret", "", "only basic authentication is supported"},
			{"auth-type", MigrationFailsClosed, "", "", "digest authentication (auth-type: digest) is not implemented"},
		}},
		{"overridden", "default", map[string]string{
			AnnotationPrefix + "timeout-server": "10s", np + "proxy-read-timeout": "60",
			np + "allowlist-source-range": "10.0.0.0/8", np + "whitelist-source-range": "192.168.0.0/16",
		}, []want{
			{"allowlist-source-range", MigrationDifference, "allowlist-source-range", "10.0.0.0/8", "trusted-proxies setting"},
			{"proxy-read-timeout", MigrationOverridden, "timeout-server", "", "haproxy-sidecar.io/timeout-server is set and wins"},
			{"whitelist-source-range", MigrationOverridden, "allowlist-source-range", "", np + "allowlist-source-range is set too and wins"},
		}},
		{"overridden by an invalid synonym", "default", map[string]string{
			np + "allowlist-source-range": "everyone", np + "whitelist-source-range": "192.168.0.0/16",
		}, []want{
			{"allowlist-source-range", MigrationFailsClosed, "allowlist-source-range", "", "is not a CIDR"},
			{"whitelist-source-range", MigrationOverridden, "allowlist-source-range", "", "its value is invalid, so neither applies"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := MigrationReport(Inputs{Ingresses: []*networkingv1.Ingress{annotated(tt.ns, "i", tt.ann)}}, "")
			if len(m.Ingresses) != 1 {
				t.Fatalf("%d Ingresses listed, want 1", len(m.Ingresses))
			}
			rows := m.Ingresses[0].Rows
			if len(rows) != len(tt.want) {
				t.Fatalf("rows:\n%s", m.Text())
			}
			for i, w := range tt.want {
				r := rows[i]
				wantOurs := ""
				if w.ours != "" {
					wantOurs = AnnotationPrefix + w.ours
				}
				if r.Annotation != np+w.key || r.Status != w.status || r.Ours != wantOurs || r.Value != w.value || !strings.Contains(r.Detail, w.detail) ||
					(w.detail == "" && r.Detail != "") {
					t.Errorf("row %d: %+v\nwant %+v", i, r, w)
				}
			}
		})
	}
}

// The report around the rows: Ingresses sorted by namespace and name,
// those without ingress-nginx annotations only counted, the counts, and
// text in which no annotation key or value can start a line.
func TestMigrationReportSummaryAndText(t *testing.T) {
	const np = NginxAnnotationPrefix
	in := Inputs{Ingresses: []*networkingv1.Ingress{
		annotated("b", "z", map[string]string{np + "enable-cors": "true", np + "auth-url": "x"}),
		annotated("a", "y", map[string]string{np + "limit-rps": "5", np + "app-root": "/a\nInjected line"}),
		annotated("a", "plain", map[string]string{AnnotationPrefix + "balance": "leastconn"}),
		annotated("a", "x", nil),
		annotated("b", "ours", map[string]string{AnnotationPrefix + "app-root": "/o", np + "app-root": "/n", np + "bogus\nkey": "v"}),
	}}
	m := MigrationReport(in, "")
	want := MigrationSummary{Ingresses: 5, WithNginx: 3, Honoured: 1, Difference: 1, Overridden: 1, Unsupported: 1, Invalid: 1, FailsClosed: 1,
		NotSelected: 5}
	if m.Summary != want {
		t.Errorf("summary %+v, want %+v", m.Summary, want)
	}
	var order []string
	for _, ing := range m.Ingresses {
		order = append(order, ing.Namespace+"/"+ing.Name)
	}
	if strings.Join(order, " ") != "a/y b/ours b/z" {
		t.Errorf("order %v", order)
	}
	text := m.Text()
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if line != "" && !strings.HasPrefix(line, "Ingress ") && !strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "5 Ingresses") &&
			!strings.HasPrefix(line, "Supported: ") && !strings.HasPrefix(line, "5 of 5 Ingresses are selected by no IngressClass") {
			t.Errorf("line %q: an annotation started a line of its own\n%s", line, text)
		}
		if strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "  nginx.ingress.kubernetes.io/") && !strings.HasPrefix(line, `  "nginx.ingress.kubernetes.io/`) &&
			!strings.HasPrefix(line, "  not served as it stands: ") {
			t.Errorf("line %q is not an annotation row\n%s", line, text)
		}
	}
	for _, w := range []string{
		"Ingress a/y\n  not served as it stands: no ingress class and no default IngressClass of controller \"haproxy-sidecar.io/controller\"\n  nginx.ingress.kubernetes.io/app-root: invalid: value \"/a\\nInjected line\"",
		"  nginx.ingress.kubernetes.io/limit-rps: honoured with a difference: haproxy-sidecar.io/rate-limit-rps \"5\"; 503 beyond the limit",
		"  nginx.ingress.kubernetes.io/app-root: overridden: ignored: haproxy-sidecar.io/app-root is set and wins",
		"  \"nginx.ingress.kubernetes.io/bogus\\nkey\": unsupported: unknown",
		"  nginx.ingress.kubernetes.io/enable-cors: honoured: haproxy-sidecar.io/cors-enable \"true\"\n",
		"5 Ingresses, 3 with nginx.ingress.kubernetes.io annotations: 1 honoured, 1 honoured with a difference, 1 overridden, 1 unsupported, 1 invalid, 1 fails closed\n" +
			"Supported: 0 of 3 Ingresses with nginx.ingress.kubernetes.io annotations fully (0 %), 3 of 6 annotation uses (50 %)\n" +
			"5 of 5 Ingresses are selected by no IngressClass",
	} {
		if !strings.Contains(text, w) {
			t.Errorf("text lacks %q:\n%s", w, text)
		}
	}
	if empty := MigrationReport(Inputs{}, "").Text(); empty != "0 Ingresses, 0 with nginx.ingress.kubernetes.io annotations: 0 honoured, 0 honoured with a difference, 0 overridden, 0 unsupported, 0 invalid, 0 fails closed\n"+
		"Supported: 0 of 0 Ingresses with nginx.ingress.kubernetes.io annotations fully (-), 0 of 0 annotation uses (-)\n" {
		t.Errorf("empty report: %q", empty)
	}
	// JSON: the statuses as words, an empty list rather than null.
	b, err := json.Marshal(MigrationReport(Inputs{}, ""))
	if err != nil || !strings.Contains(string(b), `"ingresses":[]`) {
		t.Errorf("JSON of an empty report: %s, %v", b, err)
	}
}

// What the report calls honoured is what the model applies: BuildModel
// with --annotations-compat nginx reports no problem on that annotation,
// and reports every one the report calls invalid, unsupported or
// overridden, with the matching reason.
func TestMigrationReportAgreesWithModel(t *testing.T) {
	const np = NginxAnnotationPrefix
	ing := annotated("default", "i", map[string]string{
		np + "enable-cors": "true", np + "limit-rps": "10", np + "auth-snippet": "x", np + "rewrite-target": "/$1",
		np + "proxy-body-size": "huge", np + "nope": "1", np + "ssl-redirect": "true",
		AnnotationPrefix + "timeout-server": "5s", np + "proxy-read-timeout": "30",
	})
	ing.Spec.Rules = []networkingv1.IngressRule{{Host: "a.example.com"}}
	m := BuildModel(Inputs{Ingresses: []*networkingv1.Ingress{ing}, IngressClasses: []*networkingv1.IngressClass{ourClass(true)}},
		Options{AnnotationsCompat: CompatNginx})
	fields := map[string]Reason{}
	for _, p := range m.Problems {
		if p.Kind == "Ingress" {
			fields[p.Field] = p.Reason
		}
	}
	wantReason := map[MigrationStatus]Reason{MigrationInvalid: InvalidAnnotation, MigrationUnsupported: UnsupportedAnnotation,
		MigrationOverridden: AnnotationOverridden, MigrationFailsClosed: UnsupportedProtection}
	rows := MigrationReport(Inputs{Ingresses: []*networkingv1.Ingress{ing}}, "").Ingresses[0].Rows
	if len(rows) != 8 {
		t.Fatalf("%d rows, want 8", len(rows))
	}
	for _, r := range rows {
		reason, reported := fields[annotationField(r.Annotation)]
		switch r.Status {
		case MigrationHonoured, MigrationDifference:
			if reported {
				t.Errorf("%s: %s, but the model reports %s", r.Annotation, r.Status, reason)
			}
		default:
			if reason != wantReason[r.Status] {
				t.Errorf("%s: %s, but the model reports %q", r.Annotation, r.Status, reason)
			}
		}
	}
}

// The tables are looked up by binary search: sorted by name, no name twice.
// Every protection that fails closed is an ingress-nginx annotation the
// compatibility table knows, and each fails closed when set, through the
// model, with the reason that says so.
func TestNginxTablesAndProtections(t *testing.T) {
	byName := func(a, b string) int { return strings.Compare(a, b) }
	if !slices.IsSortedFunc(nginxAnnotations, func(a, b nginxAnnotation) int { return byName(a.name, b.name) }) {
		t.Error("nginxAnnotations is not sorted by name")
	}
	if !slices.IsSortedFunc(nginxProtections, func(a, b nginxProtection) int { return byName(a.name, b.name) }) {
		t.Error("nginxProtections is not sorted by name")
	}
	for _, p := range nginxProtections {
		if findNginx(p.name) == nil {
			t.Errorf("%s fails closed but is not in the compatibility table", p.name)
		}
		v := "true"
		switch p.name {
		case "auth-tls-verify-client":
			v = "on"
		case "auth-type":
			v = "digest"
		}
		a := parseAnnotations("default", map[string]string{NginxAnnotationPrefix + p.name: v}, CompatNginx)
		if !slices.Equal(a.route.Closed, []string{NginxAnnotationPrefix + p.name}) ||
			!slices.ContainsFunc(a.problems, func(lp *localProblem) bool { return lp.Reason == UnsupportedProtection }) {
			t.Errorf("%s=%q: closed %v, problems %v", p.name, v, a.route.Closed, a.problems)
		}
		// Without --annotations-compat nginx, nothing of ingress-nginx's
		// is read (one notice says so).
		if a := parseAnnotations("default", map[string]string{NginxAnnotationPrefix + p.name: v}, CompatNone); len(a.route.Closed) != 0 {
			t.Errorf("%s read without compatibility", p.name)
		}
	}
}

// An Ingress written for ingress-nginx names its class: the report says
// when no IngressClass of our controller in the input selects it, and an
// Ingress with only supported uses counts as fully supported.
func TestMigrationReportClassesAndShares(t *testing.T) {
	const np = NginxAnnotationPrefix
	nginxClass, ours := "nginx", "haproxy"
	withClass := func(name string, class *string, ann map[string]string) *networkingv1.Ingress {
		ing := annotated("default", name, ann)
		ing.Spec.IngressClassName = class
		return ing
	}
	in := Inputs{
		IngressClasses: []*networkingv1.IngressClass{
			{ObjectMeta: metav1.ObjectMeta{Name: "nginx"}, Spec: networkingv1.IngressClassSpec{Controller: "k8s.io/ingress-nginx"}},
			{ObjectMeta: metav1.ObjectMeta{Name: "haproxy"}, Spec: networkingv1.IngressClassSpec{Controller: DefaultControllerName}},
		},
		Ingresses: []*networkingv1.Ingress{
			withClass("old", &nginxClass, map[string]string{np + "limit-rps": "5"}),
			withClass("new", &ours, map[string]string{np + "limit-rps": "5", np + "proxy-buffering": "off"}),
			withClass("partial", &ours, map[string]string{np + "limit-rps": "5", np + "mirror-target": "http://m"}),
		},
	}
	m := MigrationReport(in, "")
	if s := m.Summary; s.NotSelected != 1 || s.FullySupported != 2 || s.WithNginx != 3 || s.Supported() != 4 || s.Uses() != 5 {
		t.Errorf("summary %+v (supported %d of %d uses), want 1 not selected, 2 of 3 fully supported, 4 of 5 uses", s, s.Supported(), s.Uses())
	}
	for _, ing := range m.Ingresses {
		want := ""
		if ing.Name == "old" {
			want = `spec.ingressClassName "nginx" is not an IngressClass of controller "haproxy-sidecar.io/controller"`
		}
		if ing.NotSelected != want {
			t.Errorf("%s: not selected %q, want %q", ing.Name, ing.NotSelected, want)
		}
	}
	text := m.Text()
	for _, w := range []string{
		"Ingress default/old\n  not served as it stands: spec.ingressClassName \"nginx\"",
		"Supported: 2 of 3 Ingresses with nginx.ingress.kubernetes.io annotations fully (66 %), 4 of 5 annotation uses (80 %)\n",
		"1 of 3 Ingresses are selected by no IngressClass of the controller in the input",
	} {
		if !strings.Contains(text, w) {
			t.Errorf("text lacks %q:\n%s", w, text)
		}
	}
	// Another controller name selects the other class.
	if m := MigrationReport(in, "k8s.io/ingress-nginx"); m.Summary.NotSelected != 2 {
		t.Errorf("with ingress-nginx's controller: %d not selected, want 2", m.Summary.NotSelected)
	}
}
