package faults

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
)

// tlsSecret is a kubernetes.io/tls Secret.
func tlsSecret(name string, cert, key []byte) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: %s
type: kubernetes.io/tls
data:
  tls.crt: %s
  tls.key: %s
`, name, base64.StdEncoding.EncodeToString(cert), base64.StdEncoding.EncodeToString(key))
}

// tlsIngress routes host/ to service over HTTPS with the given Secret.
func tlsIngress(name, host, secret, service string) string {
	return fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: %s
spec:
  tls:
  - hosts: [%s]
    secretName: %s
  rules:
  - host: %s
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: %s
            port:
              name: http
`, name, host, secret, host, service)
}

// Defect 8: render --out writes only the files it owns. Into a non-empty
// directory it did not create it either refuses, naming the directory,
// or leaves every file there untouched (the contract: it refuses). In a
// directory it wrote before it removes only files it wrote, and a key file
// (and haproxy.cfg, which may hold password hashes) ends up 0600 whatever
// its mode was. No HAProxy serves here: there is no
// route to poll; each version validates the output.
func TestRenderOutOwnsOnlyItsFiles(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		a := startEcho(t, "a")
		c1, k1 := testenv.SelfSigned(t, "one.test", "")
		c2, k2 := testenv.SelfSigned(t, "two.test", "")
		m := t.TempDir()
		writeFile(t, filepath.Join(m, "class.yaml"), ingressClass)
		writeFile(t, filepath.Join(m, "a.yaml"), app("a", a))
		writeFile(t, filepath.Join(m, "one.yaml"), tlsSecret("one", c1, k1)+"---\n"+tlsIngress("one", "one.test", "one", "a"))
		writeFile(t, filepath.Join(m, "two.yaml"), tlsSecret("two", c2, k2)+"---\n"+tlsIngress("two", "two.test", "two", "a"))
		render := func(out string) (string, int) {
			t.Helper()
			_, stderr, code, err := runBinary(t, 60*time.Second, "render", "--manifests", m, "--out", out, "--haproxy", bin,
				"--http-bind", "127.0.0.1:18080", "--https-bind", "127.0.0.1:18443")
			if err != nil {
				t.Fatalf("render --out %s: %v\n%s", out, err, stderr)
			}
			return stderr, code
		}
		type file struct {
			content string
			mode    os.FileMode
		}
		snapshot := func(dir string, names ...string) map[string]file {
			got := map[string]file{}
			for _, n := range names {
				p := filepath.Join(dir, n)
				data, err := os.ReadFile(p)
				if err != nil {
					continue
				}
				st, _ := os.Stat(p)
				got[n] = file{string(data), st.Mode().Perm()}
			}
			return got
		}

		// A directory the user made, holding their own files, some where
		// render writes its own (maps/, certs/).
		foreign := map[string]file{
			"notes.txt":       {"mine\n", 0o644},
			"maps/mine.map":   {"my.test my_backend\n", 0o644},
			"certs/other.pem": {"not render's\n", 0o600},
		}
		theirs := t.TempDir()
		var names []string
		for n, f := range foreign {
			writeFile(t, filepath.Join(theirs, n), f.content)
			os.Chmod(filepath.Join(theirs, n), f.mode)
			names = append(names, n)
		}
		stderr, code := render(theirs)
		if code != 0 {
			t.Logf("render --out into a foreign non-empty directory refused (exit %d): %s", code, strings.TrimSpace(stderr))
			if !strings.Contains(stderr, theirs) {
				t.Errorf("the refusal does not name the directory %s:\n%s", theirs, stderr)
			}
		} else {
			t.Logf("render --out into a foreign non-empty directory wrote into it (the contract says it refuses)")
		}
		if got := snapshot(theirs, names...); fmt.Sprint(got) != fmt.Sprint(foreign) {
			t.Errorf("render --out changed files it did not write: %v, want %v", got, foreign)
		}

		// A directory render creates, then writes again.
		out := filepath.Join(t.TempDir(), "out")
		if stderr, code := render(out); code != 0 {
			t.Fatalf("render --out into a new directory: exit %d\n%s", code, stderr)
		}
		for _, n := range []string{"certs/default_one.pem", "certs/default_two.pem", "haproxy.cfg"} {
			st, err := os.Stat(filepath.Join(out, n))
			if err != nil {
				t.Fatalf("%s not written: %v", n, err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %o, want 0600", n, st.Mode().Perm())
			}
		}
		// A key file loosened since (a copy, an umask, a hand edit), and
		// a file of the user's own among render's.
		if err := os.Chmod(filepath.Join(out, "certs/default_one.pem"), 0o644); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(out, "certs/mine.pem"), "mine\n")
		writeFile(t, filepath.Join(out, "maps/mine.map"), "mine\n")
		// Secret two goes away.
		if err := os.Remove(filepath.Join(m, "two.yaml")); err != nil {
			t.Fatal(err)
		}
		if stderr, code := render(out); code != 0 {
			t.Fatalf("render --out into its own directory again: exit %d\n%s", code, stderr)
		}
		if st, err := os.Stat(filepath.Join(out, "certs/default_one.pem")); err != nil {
			t.Error(err)
		} else if st.Mode().Perm() != 0o600 {
			t.Errorf("certs/default_one.pem has mode %o after a render over a 0644 copy, want 0600", st.Mode().Perm())
		}
		if _, err := os.Stat(filepath.Join(out, "certs/default_two.pem")); !os.IsNotExist(err) {
			t.Errorf("certs/default_two.pem, written by render and no longer rendered, is still there (%v)", err)
		}
		for _, n := range []string{"certs/mine.pem", "maps/mine.map"} {
			if data, err := os.ReadFile(filepath.Join(out, n)); err != nil || string(data) != "mine\n" {
				t.Errorf("%s, not written by render, was changed or removed: %q %v", n, data, err)
			}
		}
	})
}
