package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
)

// promTools is the directory scripts/install-prom.sh fills: promtool,
// promexprs and the Prometheus Operator's CRDs.
func promTools(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PROM_TOOLS")
	if dir == "" {
		dir = "/var/cache/haproxy-sidecar/prom-v0.316.0"
	}
	for _, f := range []string{"promtool", "promexprs", "crds/monitoring.coreos.com_prometheusrules.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%v: run `make deps` (scripts/install-prom.sh) first", err)
		}
	}
	return dir
}

// monitoring is deploy/monitoring built with kustomize.
type monitoring struct {
	*built
	rules     *unstructured.Unstructured // the PrometheusRule
	dashboard map[string]any             // the Grafana dashboard's JSON
}

func kustomizeMonitoring(t *testing.T) monitoring {
	t.Helper()
	m := monitoring{built: kustomizeAt(t, "deploy/monitoring")}
	m.rules = m.find(t, "PrometheusRule", "haproxy-sidecar")
	cm := typed[corev1.ConfigMap](t, m.find(t, "ConfigMap", "haproxy-sidecar-dashboard"))
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("the dashboard's ConfigMap is not labelled grafana_dashboard=1 for Grafana's sidecar: %v", cm.Labels)
	}
	if err := json.Unmarshal([]byte(cm.Data["haproxy-sidecar.json"]), &m.dashboard); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	return m
}

// alerts returns the PrometheusRule's rules (spec.groups[].rules[]).
func (m monitoring) alerts(t *testing.T) []map[string]any {
	t.Helper()
	groups, _, err := unstructured.NestedSlice(m.rules.Object, "spec", "groups")
	if err != nil || len(groups) == 0 {
		t.Fatalf("PrometheusRule has no spec.groups: %v", err)
	}
	var out []map[string]any
	for _, g := range groups {
		rules, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rules {
			out = append(out, r.(map[string]any))
		}
	}
	return out
}

// Grafana's variables, replaced by what they stand for before parsing.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$namespace", ".*", "$pod", ".*")

// labelValues is Grafana's label_values(SELECTOR, LABEL) query, not PromQL:
// its selector is.
var labelValues = regexp.MustCompile(`^label_values\((.*),\s*\w+\)$`)

// expressions returns every PromQL expression of the alerts and the
// dashboard (panels' targets and the variables' queries), with what each
// comes from.
func (m monitoring) expressions(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range m.alerts(t) {
		out[strings.TrimSpace(r["expr"].(string))] = fmt.Sprintf("alert %v", r["alert"])
	}
	panels, _ := m.dashboard["panels"].([]any)
	for _, p := range panels {
		p := p.(map[string]any)
		targets, _ := p["targets"].([]any)
		for _, tg := range targets {
			e := tg.(map[string]any)["expr"].(string)
			out[grafanaVars.Replace(e)] = fmt.Sprintf("panel %q", p["title"])
		}
	}
	vars, _, _ := unstructured.NestedSlice(m.dashboard, "templating", "list")
	for _, v := range vars {
		q, ok, _ := unstructured.NestedString(v.(map[string]any), "query", "query")
		if !ok {
			continue
		}
		if sm := labelValues.FindStringSubmatch(q); sm != nil {
			q = sm[1]
		}
		out[grafanaVars.Replace(q)] = fmt.Sprintf("variable %v", v.(map[string]any)["name"])
	}
	if len(out) < 20 {
		t.Fatalf("only %d expressions found in the alerts and the dashboard", len(out))
	}
	return out
}

// metricsRead parses every expression with Prometheus' parser
// (promexprs) and returns the metrics they read, each with where it is
// read.
func metricsRead(t *testing.T, tools string, exprs map[string]string) map[string]string {
	t.Helper()
	list := make([]string, 0, len(exprs))
	for e := range exprs {
		list = append(list, e)
	}
	sort.Strings(list)
	in, _ := json.Marshal(list)
	cmd := exec.Command(filepath.Join(tools, "promexprs"))
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("promexprs: %v", err)
	}
	var results []struct {
		Expr    string   `json:"expr"`
		Metrics []string `json:"metrics"`
		Error   string   `json:"error"`
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatal(err)
	}
	read := map[string]string{}
	for _, r := range results {
		if r.Error != "" {
			t.Errorf("%s: %q does not parse: %s", exprs[r.Expr], r.Expr, r.Error)
		}
		if len(r.Metrics) == 0 && r.Error == "" {
			t.Errorf("%s: %q reads no metric", exprs[r.Expr], r.Expr)
		}
		for _, n := range r.Metrics {
			read[n] = exprs[r.Expr]
		}
	}
	return read
}

// The alerts' rule unit tests (deploy/monitoring/rules_test.yaml) pass
// with promtool, and each alert has a case where it fires and one where it
// has resolved.
func TestMonitoringAlerts(t *testing.T) {
	tools := promTools(t)
	m := kustomizeMonitoring(t)
	dir := t.TempDir()
	spec, err := yaml.Marshal(m.rules.Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	writeTo(t, filepath.Join(dir, "rules.yaml"), spec)
	tests, err := os.ReadFile(filepath.Join(root, "deploy/monitoring/rules_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	writeTo(t, filepath.Join(dir, "rules_test.yaml"), tests)
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "rules_test.yaml"}} {
		cmd := exec.Command(filepath.Join(tools, "promtool"), args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	var cases struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(tests, &cases); err != nil {
		t.Fatal(err)
	}
	fires, resolves := map[string]bool{}, map[string]bool{}
	for _, tc := range cases.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				resolves[a.Alertname] = true
			}
		}
	}
	want := []string{"HAProxySidecarStuck", "HAProxySidecarReloadFailing", "HAProxySidecarConfigRejected",
		"HAProxySidecarProblemsRising", "HAProxyDown", "IngressCertificateExpiresSoon", "HAProxyOldWorkersPilingUp"}
	var names []string
	for _, r := range m.alerts(t) {
		name, _ := r["alert"].(string)
		names = append(names, name)
		if !fires[name] || !resolves[name] {
			t.Errorf("alert %s: rule unit tests fire it: %v, resolve it: %v; want both", name, fires[name], resolves[name])
		}
	}
	for _, w := range want {
		if !slices.Contains(names, w) {
			t.Errorf("no alert %s (README's alerts: %v)", w, want)
		}
	}
}

// Every expression of the alerts and the dashboard parses with
// Prometheus' parser, and every metric they read is on a live sidecar's
// /metrics or its HAProxy's (2.6 and 3.0), in Kubernetes mode, serving a
// TLS Ingress, with a problem, a reload and a runtime API command behind
// it. The monitoring objects apply (server-side dry run) to the real API
// server with the Prometheus Operator's CRDs installed.
func TestMonitoringMetricsExist(t *testing.T) {
	tools := promTools(t)
	m := kustomizeMonitoring(t)
	read := metricsRead(t, tools, m.expressions(t))
	if t.Failed() {
		return
	}

	c := kube.Start(t)
	installCRDs(t, c, filepath.Join(tools, "crds"))
	apply(t, c, &built{objects: []*unstructured.Unstructured{{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "haproxy-sidecar"}}}}}, false)
	apply(t, c, m.built, true)

	const ns, class = "monitored", "monitored"
	kube.StartEcho(t, "web", kube.BackendIP(0)+":"+strconv.Itoa(echoPort))
	createApp(t, c, ns, "web", kube.BackendIP(0))
	cx := ctx(t, 30*time.Second)
	if _, err := c.Client.NetworkingV1().IngressClasses().Create(cx, &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: class}, Spec: networkingv1.IngressClassSpec{Controller: "haproxy-sidecar.io/controller"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := testenv.SelfSigned(t, "web.test", "monitoring")
	if _, err := c.Client.CoreV1().Secrets(ns).Create(cx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "web-tls"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createIngress(t, c, ns, "web", class, "web.test", "/", "web")
	ing, err := c.Client.NetworkingV1().Ingresses(ns).Get(cx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"web.test"}, SecretName: "web-tls"}}
	if _, err := c.Client.NetworkingV1().Ingresses(ns).Update(cx, ing, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A problem: an Ingress whose Service does not exist.
	createIngress(t, c, ns, "broken", class, "broken.test", "/", "missing")
	kubeconfig, err := c.WriteKubeconfig()
	if err != nil {
		t.Fatal(err)
	}

	for version, bin := range map[string]string{"2.6": testenv.HAProxy26(t), "3.0": testenv.HAProxy30(t)} {
		t.Run("haproxy-"+version, func(t *testing.T) {
			stats := sidecartest.FreePorts(t, 1)[0]
			s := sidecartest.Start(t, sidecartest.Options{HAProxy: bin, Kubeconfig: kubeconfig, Wait: sidecartest.WaitReady,
				Args: []string{"--stats-bind", "127.0.0.1:" + strconv.Itoa(stats)}})
			// A runtime API command: a new host on the same Service
			// (web.test itself redirects to HTTPS).
			host := "web-" + version + ".test"
			createIngress(t, c, ns, "web-"+strings.ReplaceAll(version, ".", ""), class, host, "/", "web")
			s.Expect(host, "/", "status:200") // the echo answers "service=web"

			var missing []string
			s.Eventually(30*time.Second, "every metric the alerts and the dashboard read", func() error {
				have := scrape(t, s.HealthPort, "/metrics")
				for n := range scrape(t, stats, "/metrics") {
					have[n] = true
				}
				missing = missing[:0]
				for n, where := range read {
					// up is Prometheus' own, for each target it scrapes.
					if n != "up" && !have[n] {
						missing = append(missing, n+" ("+where+")")
					}
				}
				if len(missing) > 0 {
					sort.Strings(missing)
					return fmt.Errorf("not on the sidecar's or HAProxy's /metrics: %s", strings.Join(missing, ", "))
				}
				return nil
			})
		})
	}
}

// scrape returns the metric names on http://127.0.0.1:port/path (each
// histogram's _bucket, _sum and _count series by those names).
func scrape(t *testing.T, port int, path string) map[string]bool {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + path)
	if err != nil {
		t.Fatalf("scraping %d%s: %v", port, path, err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %d%s: %v", port, path, err)
	}
	names := map[string]bool{}
	for name, f := range families {
		if len(f.GetMetric()) == 0 {
			continue
		}
		names[name] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[name+s] = true
			}
		}
	}
	return names
}

// installCRDs creates the CRDs of dir and waits until they are served.
func installCRDs(t *testing.T, c *kube.Cluster, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in %s: %v", dir, err)
	}
	var crds []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var u unstructured.Unstructured
		if err := yaml.Unmarshal(data, &u.Object); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		crds = append(crds, &u)
	}
	apply(t, c, &built{objects: crds}, false)
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	crdResource := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, u := range crds {
		deadline := time.Now().Add(30 * time.Second)
		for !established(dyn, crdResource, u.GetName()) {
			if time.Now().After(deadline) {
				t.Fatalf("CRD %s not established within 30 s", u.GetName())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// established says whether the API server serves the CRD named name.
func established(dyn dynamic.Interface, res schema.GroupVersionResource, name string) bool {
	got, err := dyn.Resource(res).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return false
	}
	conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
	for _, c := range conds {
		c, _ := c.(map[string]any)
		if c["type"] == "Established" && c["status"] == "True" {
			return true
		}
	}
	return false
}

func writeTo(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
