package faults

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
)

// The smaller items of issue 8: an encrypted PKCS#8 key is reported as
// encrypted, a path "/ü" is reported with the character ü, and deleting
// every manifest is a warning in /status and the log ("no Ingress"), as it
// is almost always a mistake. Failures allowed: 0 until every manifest is
// deleted; after that 404 is what the (empty) configuration serves.
func TestReportsNameTheFault(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		cert, key := testenv.SelfSigned(t, "enc.test", "")
		plain := filepath.Join(t.TempDir(), "key.pem")
		if err := os.WriteFile(plain, key, 0o600); err != nil {
			t.Fatal(err)
		}
		encrypted, err := exec.Command("openssl", "pkcs8", "-topk8", "-in", plain, "-passout", "pass:secret", "-v2", "aes-256-cbc").Output()
		if err != nil {
			t.Fatalf("openssl pkcs8: %v", err)
		}
		if !strings.Contains(string(encrypted), "BEGIN ENCRYPTED PRIVATE KEY") {
			t.Fatalf("openssl did not encrypt the key:\n%s", encrypted)
		}

		s, _ := serving(t, bin)
		p := poll(t, s)
		s.Write("enc.yaml", tlsSecret("enc", cert, encrypted)+"---\n"+tlsIngress("enc", "enc.test", "enc", "a"))
		s.Write("uml.yaml", ingress("uml", "uml.test", "/ü", "a"))
		s.EventuallyProblem("Secret default/enc", "encrypted")
		s.EventuallyProblem("Ingress default/uml", "ü")
		for _, prob := range s.Status().Problems {
			if strings.Contains(prob, "Ã") {
				t.Errorf("a problem shows a byte of ü as a character: %q", prob)
			}
		}
		p.ExpectNone(t, "bad Secrets and paths are skipped; the rest is served")

		entries, err := os.ReadDir(s.Manifests)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			s.Remove(e.Name())
		}
		s.Expect("a.test", "/", "status:404")
		prob := s.EventuallyProblem("no Ingress")
		if !strings.HasPrefix(prob, "warning:") {
			t.Errorf("deleting every manifest is reported as %q, want a warning", prob)
		}
		s.WaitLog(5*time.Second, "no Ingress", 1)
		if lines := s.LogLines("warn", "no Ingress"); len(lines) == 0 {
			t.Errorf("the log has no warning about no Ingress left: %q", s.LogLines("no Ingress"))
		}
	})
}
