package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// runBinary runs the built haproxy-sidecar and returns its exit status
// and output.
func runBinary(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(sidecartest.Binary(t), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return cmd.ProcessState.ExitCode(), o.String(), e.String()
}

// golden compares got with testdata/migrate/<name>, rewriting it with
// -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "migrate", name)
	if *testenv.Update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test . -run Migrate -update rewrites it); got:\n%s", path, got)
	}
}

// `haproxy-sidecar migrate` on what `kubectl get ingress,svc,secret -A -o
// yaml` prints for a cluster ingress-nginx serves: every category, a
// hostile value, an Ingress naming a Secret of another namespace.
func TestMigrateBinary(t *testing.T) {
	const cluster = "testdata/migrate/cluster/cluster.yaml"
	code, out, errs := runBinary(t, "migrate", "--manifests", cluster)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d (want 0: a report), stderr:\n%s", code, errs)
	}
	golden(t, "report.txt", out)
	for _, w := range []string{
		"Ingress default/hostile\n  not served as it stands: spec.ingressClassName \"nginx\" is not an IngressClass of controller \"haproxy-sidecar.io/controller\"\n  nginx.ingress.kubernetes.io/app-root: invalid: ",
		"  nginx.ingress.kubernetes.io/auth-url: fails closed: value \"https://auth.example.com/check\": https is not supported",
		"  nginx.ingress.kubernetes.io/proxy-connect-timeout: honoured: haproxy-sidecar.io/timeout-connect \"5s\"\n",
		"  nginx.ingress.kubernetes.io/load-balance: honoured with a difference: haproxy-sidecar.io/balance \"leastconn\"; ewma becomes leastconn\n",
		"  nginx.ingress.kubernetes.io/auth-secret: fails closed: value \"other/htpasswd\": Secret \"other/htpasswd\" is in another namespace",
		"  nginx.ingress.kubernetes.io/proxy-read-timeout: overridden: ignored: haproxy-sidecar.io/timeout-server is set and wins\n",
		"  nginx.ingress.kubernetes.io/canary-weight: honoured: haproxy-sidecar.io/canary-weight \"10\"\n",
		"Ingress default/not-a-canary\n  not served as it stands: spec.ingressClassName \"nginx\" is not an IngressClass of controller \"haproxy-sidecar.io/controller\"\n  nginx.ingress.kubernetes.io/canary-weight: invalid: value \"10\": nginx.ingress.kubernetes.io/canary is not \"true\"",
		"Secret team-c/htpasswd: these users cannot log in until their passwords are re-hashed: bob (line 2, Apache MD5",
		"these users' hashes cost too much CPU to check and are left out: carol (line 3, bcrypt cost 12)",
		"\n8 Ingresses, 7 with nginx.ingress.kubernetes.io annotations: 8 honoured, 10 honoured with a difference, 2 overridden, 2 unsupported, 3 invalid, 2 fails closed\n" +
			"Supported: 2 of 7 Ingresses with nginx.ingress.kubernetes.io annotations fully (28 %), 20 of 27 annotation uses (74 %)\n" +
			"8 of 8 Ingresses are selected by no IngressClass of the controller in the input",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("report lacks %q", w)
		}
	}
	// Users are named, their hashes never shown.
	if strings.Contains(out, "aprsalt1") || strings.Contains(out, "Mk7qXMQj") {
		t.Errorf("the report shows a password hash:\n%s", out)
	}
	// The hostile value's newline never starts a line of the report.
	if strings.Contains(out, "\n  http-request") {
		t.Errorf("a value broke a line of the report:\n%s", out)
	}

	// --output json says the same, and the same file twice (or a
	// directory holding it) is one cluster.
	code, js, errs := runBinary(t, "migrate", "--manifests", cluster, "--manifests", "testdata/migrate/cluster", "--output", "json")
	if code != 0 || errs != "" {
		t.Fatalf("--output json: exit %d, stderr:\n%s", code, errs)
	}
	golden(t, "report.json", js)
	var m render.Migration
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatal(err)
	}
	if want := (render.MigrationSummary{Ingresses: 8, WithNginx: 7, Honoured: 8, Difference: 10, Overridden: 2, Unsupported: 2, Invalid: 3, FailsClosed: 2,
		FullySupported: 2, NotSelected: 8}); m.Summary != want {
		t.Errorf("JSON summary %+v, want %+v", m.Summary, want)
	}
	if m.Text() != out {
		t.Errorf("the JSON report read back does not print as the text report")
	}

	// Unreadable input fails; bad usage is 2.
	unreadable := filepath.Join(t.TempDir(), "in")
	if err := os.MkdirAll(unreadable, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(unreadable, "bad.yaml"), []byte("kind: [unclosed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"migrate", "--manifests", "testdata/migrate/cluster/nope.yaml"}, 1, "no such file or directory"},
		{[]string{"migrate", "--manifests", unreadable}, 1, "some input could not be read"},
		{[]string{"migrate"}, 2, "--manifests is required"},
		{[]string{"migrate", "--manifests", cluster, "--output", "yaml"}, 2, "want text or json"},
		{[]string{"migrate", "--manifests", cluster, "extra"}, 2, "nothing else is an argument"},
	} {
		code, _, errs := runBinary(t, tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and %q", tt.args, code, errs, tt.code, tt.want)
		}
	}
}

// --annotations-compat is checked by every command that builds a model,
// and decides whether ingress-nginx's annotations are read.
func TestAnnotationsCompatFlag(t *testing.T) {
	for _, args := range [][]string{
		{"render", "--manifests", "testdata/hosts", "--stdout", "--no-validate"},
		{"explain", "--manifests", "testdata/hosts", "http://a.test/"},
		{"diff", "--manifests", "testdata/hosts", "--manifests", "testdata/hosts"},
		{"run", "--manifests", "testdata/hosts", "--config-dir", t.TempDir(), "--master-socket", "x"},
	} {
		// Flags before the arguments (explain's URL).
		code, _, errs := runCLI(t, append([]string{args[0], "--annotations-compat", "traefik"}, args[1:]...)...)
		if code == 0 || !strings.Contains(errs, `--annotations-compat: "traefik": want nginx or none`) {
			t.Errorf("%s with a bad --annotations-compat: exit %d, stderr %q", args[0], code, errs)
		}
	}
	dir := t.TempDir()
	manifest := `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: haproxy, annotations: {ingressclass.kubernetes.io/is-default-class: "true"}}
spec: {controller: ` + render.DefaultControllerName + `}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{port: 80, protocol: TCP}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: default
  annotations: {nginx.ingress.kubernetes.io/app-root: /start, nginx.ingress.kubernetes.io/configuration-snippet: "deny all;"}
spec:
  rules:
  - host: web.test
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}
`
	if err := os.WriteFile(filepath.Join(dir, "m.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		compat   []string
		redirect bool
		want     string
	}{
		{nil, false, "2 nginx.ingress.kubernetes.io annotations ignored: --annotations-compat nginx is not set"},
		{[]string{"--annotations-compat", "none"}, false, "2 nginx.ingress.kubernetes.io annotations ignored"},
		{[]string{"--annotations-compat", "nginx"}, true, `metadata.annotations["nginx.ingress.kubernetes.io/configuration-snippet"]: not supported, ignored: directive "deny" is raw NGINX configuration`},
	} {
		args := append([]string{"render", "--manifests", dir, "--stdout", "--no-validate"}, tt.compat...)
		code, cfg, errs := runCLI(t, args...)
		if code != 0 || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: exit %d, stderr lacks %q:\n%s", tt.compat, code, tt.want, errs)
		}
		if got := strings.Contains(cfg, "/start"); got != tt.redirect {
			t.Errorf("%v: app-root /start in haproxy.cfg: %v, want %v", tt.compat, got, tt.redirect)
		}
		code, out, errs := runCLI(t, append(append([]string{"explain", "--manifests", dir}, tt.compat...), "http://web.test/")...)
		// explain names the Ingress's own backend, which its route
		// annotations give it.
		if code != 0 || strings.Contains(out, "backend default_web_80:web") != tt.redirect {
			t.Errorf("explain %v: exit %d, want the Ingress's own backend: %v\n%s%s", tt.compat, code, tt.redirect, out, errs)
		}
	}
}
