package run

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/haproxy-sidecar/haproxy-sidecar/controller"
	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
)

// tlsSecret is a kubernetes.io/tls Secret for host, and its key's PEM.
func tlsSecret(t *testing.T, name, host string) (string, []byte) {
	cert, key := testenv.SelfSigned(t, host, "debug-test")
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: %s
type: kubernetes.io/tls
data:
  tls.crt: %s
  tls.key: %s
`, name, base64.StdEncoding.EncodeToString(cert), base64.StdEncoding.EncodeToString(key)), key
}

// withTLS adds a spec.tls entry to an Ingress built by ingress().
func withTLS(ing, host, secret string) string {
	return strings.Replace(ing, "spec:\n", fmt.Sprintf("spec:\n  tls:\n  - hosts: [%s]\n    secretName: %s\n", host, secret), 1)
}

// keyChunks are pieces of a private key's base64 body that no output of
// the sidecar may contain.
func keyChunks(keyPEM []byte) []string {
	b, _ := pem.Decode(keyPEM)
	enc := base64.StdEncoding.EncodeToString(b.Bytes)
	var chunks []string
	for i := 0; i+24 <= len(enc); i += len(enc) / 6 {
		chunks = append(chunks, enc[i:i+24])
	}
	return chunks
}

func assertNoKey(t *testing.T, what, text string, keys ...[]byte) {
	t.Helper()
	for _, k := range keys {
		for _, c := range keyChunks(k) {
			if strings.Contains(text, c) {
				t.Fatalf("%s contains private key material (%q)", what, c)
			}
		}
	}
}

// dump runs `haproxy-sidecar dump ARGS --addr <debug address>`.
func (s *sidecar) dump(args ...string) (string, error) {
	s.T.Helper()
	stdout, stderr, code, err := sidecartest.RunOnce(s.T, time.Minute, append(append([]string{"dump"}, args...), "--addr", "127.0.0.1:"+strconv.Itoa(s.DebugPort))...)
	if err == nil && code != 0 {
		err = fmt.Errorf("exit status %d", code)
	}
	if err != nil {
		return stdout, fmt.Errorf("%v: %s", err, stderr)
	}
	return stdout, nil
}

func httpGet(t testing.TB, port int, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitPass waits for a pass newer than after and returns the newest.
func (s *sidecar) waitPass(after int64) controller.Pass {
	s.T.Helper()
	var newest controller.Pass
	s.Eventually(10*time.Second, fmt.Sprintf("a pass after %d in /history", after), func() error {
		h := s.History()
		if len(h) == 0 || h[0].ID <= after {
			return fmt.Errorf("none yet")
		}
		if h[0].Diff == "" && h[0].Outcome != controller.OutcomeFailed {
			return fmt.Errorf("diff not made yet")
		}
		newest = h[0]
		return nil
	})
	return newest
}

func newestID(passes []controller.Pass) int64 {
	if len(passes) == 0 {
		return 0
	}
	return passes[0].ID
}

// settled returns the newest pass in /history once no new one has come
// for a moment: the record of a pass lands after its result is served.
func (s *sidecar) settled() int64 {
	s.T.Helper()
	last := newestID(s.History())
	for stable := time.Now(); time.Since(stable) < 400*time.Millisecond; time.Sleep(50 * time.Millisecond) {
		if id := newestID(s.History()); id != last {
			last, stable = id, time.Now()
		}
	}
	return last
}

// A live dump of one Ingress holds its rows and no other's; a dump by host
// likewise; certificates are described, never dumped; /history names what
// changed, how it was applied and the diff; nothing leaks a key; debug
// endpoints are not on the health address.
func TestDumpAndHistory(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		a, b, a2 := startEcho(t, "a"), startEcho(t, "b"), startEcho(t, "a2")
		s := startSidecar(t, sidecartest.Options{HAProxy: bin})
		secA, keyA := tlsSecret(t, "a-tls", "secure-a.test")
		secB, keyB := tlsSecret(t, "b-tls", "secure-b.test")
		ingA := withTLS(ingress("a", "a.test", "/", "a", "/api", "a"), "secure-a.test", "a-tls")
		s.Write("class.yaml", ingressClass)
		s.Write("a.yaml", app("a", a)+"---\n"+secA+"---\n"+ingA)
		s.Write("b.yaml", app("b", b)+"---\n"+secB+"---\n"+withTLS(ingress("b", "b.test", "/", "b"), "secure-b.test", "b-tls"))
		s.Expect("a.test", "/api", "svc:a")
		s.Expect("b.test", "/", "svc:b")
		// HAProxy serves a reload's configuration a moment before the
		// pass that made it records it as served.
		s.settled()

		out, err := s.dump("--ingress", "default/a")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"# ==> haproxy.cfg <==", "backend default_a_80",
			"# ==> maps/prefix.map <==", "a.test/api/ default_a_80", "# Ingress default/a spec.rules[0].http.paths[1]",
			"# ==> crt-list.txt <==", "certs/default_a-tls.pem secure-a.test",
			"# ==> certs/default_a-tls.pem <==", "DNS names: secure-a.test",
			"# ==> maps/tls-hosts.map <==", "secure-a.test 1",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("dump --ingress default/a lacks %q:\n%s", want, out)
			}
		}
		for _, not := range []string{"b.test", "default_b_80", "b-tls", "Ingress default/b"} {
			if strings.Contains(out, not) {
				t.Errorf("dump --ingress default/a holds %q of another Ingress:\n%s", not, out)
			}
		}
		out, err = s.dump("--host", "b.test")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "b.test/ default_b_80") || !strings.Contains(out, "backend default_b_80") || strings.Contains(out, "a.test") {
			t.Errorf("dump --host b.test:\n%s", out)
		}
		if _, err := s.dump("--ingress", "default/nope"); err == nil || !strings.Contains(err.Error(), "nothing in the configuration comes from Ingress default/nope") {
			t.Errorf("dump of an unknown Ingress: %v", err)
		}
		full, err := s.dump()
		if err != nil || !strings.Contains(full, "frontend ingress") {
			t.Fatalf("dump: %v\n%s", err, full)
		}
		cert, err := s.dump("--file", "certs/default_b-tls.pem")
		if err != nil || !strings.Contains(cert, "DNS names: secure-b.test") {
			t.Errorf("dump --file of a certificate: %v\n%s", err, cert)
		}
		assertNoKey(t, "dump --file certs/default_b-tls.pem", cert, keyA, keyB)
		assertNoKey(t, "dump --ingress default/a", out, keyA, keyB)

		// Debug endpoints are on the debug address only.
		for _, path := range []string{"/status", "/config", "/history", "/explain?url=http://a.test/"} {
			if code, _ := httpGet(t, s.HealthPort, path); code != http.StatusNotFound {
				t.Errorf("%s on the health address: %d, want 404", path, code)
			}
		}

		// A runtime change: the endpoint of a moves.
		before := s.settled()
		s.Write("a.yaml", app("a", a2)+"---\n"+secA+"---\n"+ingA)
		s.Expect("a.test", "/", "svc:a2")
		p := s.waitPass(before)
		if p.Outcome != controller.OutcomeRuntime || !strings.Contains(fmt.Sprint(p.Trigger), "updated EndpointSlice default/a-0") ||
			!slices.Equal(p.Commands, []string{"set server default_a_80/s1 addr 127.0.0.1 port " + strconv.Itoa(a2.port)}) {
			t.Errorf("runtime pass: outcome %s, trigger %v, commands %q", p.Outcome, p.Trigger, p.Commands)
		}
		if !strings.Contains(p.Diff, "+    server s1 127.0.0.1:"+strconv.Itoa(a2.port)) || !strings.Contains(p.Diff, "Service default/a port 80") {
			t.Errorf("runtime pass diff:\n%s", p.Diff)
		}

		// A reload: a new Service behind a new host, with a backend
		// annotation (a plain one would take a spare backend).
		s.Write("c.yaml", app("c", b)+"---\n"+annotated(ingress("c", "c.test", "/", "c"), "haproxy-sidecar.io/balance", "leastconn"))
		s.Expect("c.test", "/", "svc:b")
		p = s.waitPass(p.ID)
		if p.Outcome != controller.OutcomeReload || p.ReloadCause != controller.CauseBackends || p.ReloadReason == "" ||
			!strings.Contains(p.Diff, "+c.test/ default_c_80") || p.Generation == 0 {
			t.Errorf("reload pass: outcome %s, cause %s (%q), generation %d, diff:\n%s", p.Outcome, p.ReloadCause, p.ReloadReason, p.Generation, p.Diff)
		}
		reloaded := p
		// A changed key: the diff says so without showing either key.
		secA2, keyA2 := tlsSecret(t, "a-tls", "secure-a.test")
		s.Write("a.yaml", app("a", a2)+"---\n"+secA2+"---\n"+ingA)
		p = s.waitPass(p.ID)
		if !strings.Contains(p.Diff, "certs/default_a-tls.pem") || !strings.Contains(p.Diff, "sha256") {
			t.Errorf("certificate change diff:\n%s", p.Diff)
		}

		// A problem that appears is in the pass that brought it, with its
		// typed reason.
		s.Write("bad.yaml", ingress("bad", "bad.test", "/", "ghost"))
		p = s.waitPass(p.ID)
		if len(p.NewProblems) != 1 || p.NewProblems[0].Reason != "BackendNotFound" || p.NewProblems[0].Name != "bad" {
			t.Errorf("new problems of the pass: %+v", p.NewProblems)
		}
		// Dumping that Ingress says why it answers 503.
		if out, err := s.dump("--ingress", "default/bad"); err != nil || !strings.Contains(out, "# ==> problems of Ingress default/bad <==") ||
			!strings.Contains(out, "Service default/ghost not found") || !strings.Contains(out, "[BackendNotFound]") {
			t.Errorf("dump --ingress default/bad: %v\n%s", err, out)
		}

		text, err := s.dump("--history")
		if err != nil || !strings.Contains(text, fmt.Sprintf("reload because: %s [%s]", reloaded.ReloadReason, reloaded.ReloadCause)) || !strings.Contains(text, "runtime API commands:") ||
			!strings.Contains(text, "new problem: warning: Ingress default/bad") {
			t.Errorf("dump --history: %v\n%s", err, text)
		}
		_, raw := httpGet(t, s.DebugPort, "/history")
		_, status := httpGet(t, s.DebugPort, "/status")
		for what, body := range map[string]string{"/history": raw, "dump --history": text, "/status": status} {
			assertNoKey(t, what, body, keyA, keyB, keyA2)
		}
		if code, one := httpGet(t, s.DebugPort, "/history/"+strconv.FormatInt(p.ID, 10)); code != 200 || !strings.Contains(one, `"id": `+strconv.FormatInt(p.ID, 10)) {
			t.Errorf("/history/%d: %d %s", p.ID, code, one)
		}
	})
}

// A candidate HAProxy rejects is in the history with HAProxy's message
// and the object behind the failing line.
func TestHistoryShowsRejection(t *testing.T) {
	bin := bin26(t)
	a := startEcho(t, "a")
	tmplDir := t.TempDir()
	src, err := os.ReadFile("../../templates/haproxy.cfg.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	writeTmpl := func(s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(tmplDir, "haproxy.cfg.tmpl"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeTmpl(string(src))
	s := startSidecar(t, sidecartest.Options{HAProxy: bin, Templates: tmplDir})
	s.Write("class.yaml", ingressClass)
	s.Write("a.yaml", app("a", a)+"---\n"+ingress("a", "a.test", "/", "a"))
	s.Expect("a.test", "/", "svc:a")
	before := s.settled()
	writeTmpl(strings.Replace(string(src), "    balance {{.Balance}}\n", "    balance {{.Balance}}\n    no-such-keyword\n", 1))
	p := s.waitPass(before)
	if p.Outcome != controller.OutcomeRejected || !strings.Contains(p.Error, "no-such-keyword") ||
		!strings.Contains(p.Error, "caused by Service default/a port 80") || !strings.Contains(fmt.Sprint(p.Trigger), "Templates") {
		t.Errorf("rejected pass: outcome %s, trigger %v, error %q", p.Outcome, p.Trigger, p.Error)
	}
	if !strings.Contains(p.Diff, "+    no-such-keyword") {
		t.Errorf("rejected pass diff:\n%s", p.Diff)
	}
}

// `diff` offline predicts how `run` applies each change: the same planner,
// checked against what the live sidecar then does.
func TestDiffPredictsRun(t *testing.T) {
	bin := bin26(t)
	a, a2, b := startEcho(t, "a"), startEcho(t, "a2"), startEcho(t, "b")
	sec, _ := tlsSecret(t, "t-tls", "t.test")
	// Service c has its own backend from the start (in the first pass);
	// b gets its first route later, and with it a spare backend.
	c := "---\n" + app("c", b) + "---\n" + ingress("c", "c.test", "/", "c")
	base := ingressClass + "---\n" + app("a", a) + "---\n" + app("b", b) + "---\n" + ingress("a", "a.test", "/", "a") + c
	steps := []struct {
		name     string
		manifest string
		want     controller.Method
	}{
		{"endpoint moves", ingressClass + "---\n" + app("a", a2) + "---\n" + app("b", b) + "---\n" + ingress("a", "a.test", "/", "a") + c, controller.MethodRuntime},
		{"new path, same Service", ingressClass + "---\n" + app("a", a2) + "---\n" + app("b", b) + "---\n" + ingress("a", "a.test", "/", "a", "/x", "a") + c, controller.MethodRuntime},
		{"unchanged", ingressClass + "---\n" + app("a", a2) + "---\n" + app("b", b) + "---\n" + ingress("a", "a.test", "/", "a", "/x", "a") + c, controller.MethodNone},
		{"a Service gets its first route: a spare backend", ingressClass + "---\n" + app("a", a2) + "---\n" + app("b", b) + "---\n" + ingress("a", "a.test", "/", "a", "/x", "b") + c, controller.MethodRuntime},
		{"TLS added", ingressClass + "---\n" + app("a", a2) + "---\n" + app("b", b) + "---\n" + sec + "---\n" + withTLS(ingress("a", "a.test", "/", "a", "/x", "b"), "t.test", "t-tls") + c, controller.MethodRuntime},
		{"the last route of a Service with its own backend removed", ingressClass + "---\n" + app("a", a2) + "---\n" + app("b", b) + "---\n" + sec + "---\n" + withTLS(ingress("a", "a.test", "/", "a", "/x", "b"), "t.test", "t-tls"), controller.MethodReload},
	}
	// The sidecar's first pass has the whole base, as diff's old
	// snapshot does (a Service that comes later takes a spare).
	manifests := t.TempDir()
	sidecartest.WriteManifest(t, manifests, "all.yaml", base)
	s := startSidecar(t, sidecartest.Options{HAProxy: bin, Manifests: manifests, SpareBackends: -1})
	s.Expect("a.test", "/", "svc:a")
	prev := base
	work := t.TempDir()
	for i, step := range steps {
		oldDir, newDir := filepath.Join(work, strconv.Itoa(i), "old"), filepath.Join(work, strconv.Itoa(i), "new")
		for dir, content := range map[string]string{oldDir: prev, newDir: step.manifest} {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "all.yaml"), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		stdout, stderr, code, err := sidecartest.RunOnce(t, time.Minute, append([]string{"diff", "--manifests", oldDir, "--manifests", newDir}, s.RenderFlags()...)...)
		var predicted controller.Method
		var cause controller.Cause // of a predicted reload: "# needs a reload: why [cause]"
		switch first := strings.SplitN(stdout, "\n", 2)[0]; {
		case strings.HasPrefix(first, "# applied through the runtime API"):
			predicted = controller.MethodRuntime
		case strings.HasPrefix(first, "# needs a reload"):
			predicted = controller.MethodReload
			if i := strings.LastIndex(first, " ["); i >= 0 {
				cause = controller.Cause(strings.TrimSuffix(first[i+2:], "]"))
			}
		case strings.HasPrefix(first, "# the generated files do not change"):
			predicted = controller.MethodNone
		default:
			t.Fatalf("%s: diff printed %q (%v, %s)", step.name, first, err, stderr)
		}
		wantCode := 1
		if predicted == controller.MethodNone {
			wantCode = 0
		}
		if predicted != step.want || code != wantCode {
			t.Errorf("%s: diff predicts %s (exit %d), want %s\n%s", step.name, predicted, code, step.want, stdout)
		}

		before := s.settled()
		s.Write("all.yaml", step.manifest)
		prev = step.manifest
		if predicted == controller.MethodNone {
			time.Sleep(300 * time.Millisecond)
			if h := s.History(); newestID(h) != before {
				t.Errorf("%s: diff predicted no change, run did %s", step.name, h[0].Outcome)
			}
			continue
		}
		p := s.waitPass(before)
		if string(p.Outcome) != string(predicted) || p.ReloadCause != cause {
			t.Errorf("%s: diff predicted %s (%q), run did %s (%s: %s)", step.name, predicted, cause, p.Outcome, p.ReloadCause, p.ReloadReason)
		}
	}
}

// Metrics change as passes happen; they are parsed with Prometheus' own
// text parser.
func TestMetrics(t *testing.T) {
	bin := bin26(t)
	a, a2 := startEcho(t, "a"), startEcho(t, "a2")
	s := startSidecar(t, sidecartest.Options{HAProxy: bin})
	sec, _ := tlsSecret(t, "m-tls", "m.test")
	s.Write("class.yaml", ingressClass)
	s.Write("a.yaml", app("a", a)+"---\n"+sec+"---\n"+withTLS(ingress("a", "a.test", "/", "a"), "m.test", "m-tls"))
	s.Expect("a.test", "/", "svc:a")
	scrape := func() map[string]*dto.MetricFamily {
		t.Helper()
		code, body := httpGet(t, s.HealthPort, "/metrics")
		if code != 200 {
			t.Fatalf("/metrics: %d", code)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("parsing /metrics: %v", err)
		}
		return families
	}
	value := func(f map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
		fam, ok := f[name]
		if !ok {
			return 0, false
		}
	metrics:
		for _, m := range fam.Metric {
			for k, v := range labels {
				found := false
				for _, l := range m.Label {
					if l.GetName() == k && l.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount()), true
			}
		}
		return 0, false
	}
	var before map[string]*dto.MetricFamily
	s.Eventually(5*time.Second, "metrics of the first passes", func() error {
		before = scrape()
		if v, _ := value(before, "haproxy_sidecar_served", map[string]string{"what": "ingresses"}); v != 1 {
			return fmt.Errorf("served ingresses %v", v)
		}
		return nil
	})
	for _, name := range []string{"haproxy_sidecar_passes_total", "haproxy_sidecar_reloads_total", "haproxy_sidecar_generation",
		"haproxy_sidecar_last_applied_timestamp_seconds", "haproxy_sidecar_pass_phase_duration_seconds", "haproxy_sidecar_haproxy_old_workers",
		"haproxy_sidecar_change_to_applied_seconds", "go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := before[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	certPEM, _ := base64.StdEncoding.DecodeString(strings.Fields(strings.Split(sec, "tls.crt: ")[1])[0])
	blk, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := value(before, "haproxy_sidecar_certificate_expiry_timestamp_seconds", map[string]string{"namespace": "default", "secret": "m-tls"}); !ok || int64(v) != c.NotAfter.Unix() {
		t.Errorf("certificate expiry %v (%v), want %d", v, ok, c.NotAfter.Unix())
	}
	runtimeBefore, _ := value(before, "haproxy_sidecar_passes_total", map[string]string{"outcome": "runtime"})
	setBefore, _ := value(before, "haproxy_sidecar_runtime_api_commands_total", map[string]string{"kind": "set server"})

	s.Write("a.yaml", app("a", a2)+"---\n"+sec+"---\n"+withTLS(ingress("a", "a.test", "/", "a"), "m.test", "m-tls"))
	s.Expect("a.test", "/", "svc:a2")
	s.Eventually(5*time.Second, "metrics of the runtime pass", func() error {
		after := scrape()
		r, _ := value(after, "haproxy_sidecar_passes_total", map[string]string{"outcome": "runtime"})
		set, _ := value(after, "haproxy_sidecar_runtime_api_commands_total", map[string]string{"kind": "set server"})
		// The slot served a1: its move is one set server (addr), no state.
		if r != runtimeBefore+1 || set < setBefore+1 {
			return fmt.Errorf("runtime passes %v -> %v, set server commands %v -> %v", runtimeBefore, r, setBefore, set)
		}
		return nil
	})
	// The debug address does not serve metrics, nor the health address
	// the debug pages (TestDumpAndHistory).
	if code, _ := httpGet(t, s.DebugPort, "/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics on the debug address: %d", code)
	}
}
