package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// --default-backend-service is checked by every command that builds a
// model, and names the backend of requests no rule matches.
func TestDefaultBackendServiceFlag(t *testing.T) {
	for _, args := range [][]string{
		{"render", "--manifests", "testdata/hosts", "--stdout", "--no-validate"},
		{"explain", "--manifests", "testdata/hosts", "http://a.test/"},
		{"run", "--manifests", "testdata/hosts", "--config-dir", t.TempDir(), "--master-socket", "x"},
	} {
		code, _, errs := runCLI(t, append([]string{args[0], "--default-backend-service", "no-namespace"}, args[1:]...)...)
		if code == 0 || !strings.Contains(errs, `--default-backend-service: "no-namespace": want namespace/name or namespace/name:port`) {
			t.Errorf("%s with a bad --default-backend-service: exit %d, stderr %q", args[0], code, errs)
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
metadata: {name: fallback, namespace: ops}
spec: {ports: [{name: http, port: 8080, protocol: TCP}]}
`
	if err := os.WriteFile(filepath.Join(dir, "m.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "render", "--manifests", dir, "--stdout", "--no-validate", "--default-backend-service", "ops/fallback:http")
	if code != 0 || !strings.Contains(out, "default_backend ops_fallback_8080\n") || !strings.Contains(out, "\nbackend ops_fallback_8080\n") {
		t.Errorf("render: exit %d, stderr %q; want default_backend ops_fallback_8080 and its backend in:\n%s", code, errs, out)
	}
	code, out, _ = runCLI(t, "explain", "--manifests", dir, "--default-backend-service", "ops/fallback", "http://nowhere.test/")
	if code != 0 || !strings.Contains(out, "the controller's default backend (--default-backend-service) ops/fallback") {
		t.Errorf("explain: exit %d:\n%s", code, out)
	}
}
