package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
)

// The chart (charts/haproxy-sidecar), rendered by the real Helm CLI that
// scripts/install-helm.sh builds from tools/helm: Helm's Go packages need
// a newer client-go than this module's, and the CLI is what users run.
const (
	chartDir = root + "/charts/haproxy-sidecar"
	// The release the defaults are compared under: deploy/'s names.
	releaseName      = "haproxy-sidecar"
	releaseNamespace = "haproxy-sidecar"
	// The API server the tests run (tools/kube).
	kubeVersion = "v1.36.3"
)

// helmBin is the CLI scripts/install-helm.sh builds ($HELM overrides).
func helmBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("HELM")
	if bin == "" {
		bin = "/var/cache/haproxy-sidecar/helm-v4.3.2"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%v: run `make deps` (scripts/install-helm.sh) first", err)
	}
	return bin
}

// helm3Bin is Helm 3's CLI, from the same script ($HELM3 overrides).
func helm3Bin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("HELM3")
	if bin == "" {
		bin = "/var/cache/haproxy-sidecar/helm-v3.21.4"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%v: run `make deps` (scripts/install-helm.sh) first", err)
	}
	return bin
}

// runHelm runs Helm 4 with its own empty home (no user's repositories or
// plugins), returning stdout, and stderr in the error.
func runHelm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	return runHelmBin(t, helmBin(t), args...)
}

func runHelmBin(t *testing.T, bin string, args ...string) ([]byte, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+home,
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), errors.New(strings.TrimSpace(stderr.String()) + " (" + err.Error() + ")")
	}
	return stdout.Bytes(), nil
}

// valueSet is one `helm template` of the tests: its flags (--set, -f).
type valueSet struct {
	name  string
	flags []string
}

// An image digest, for the digest set.
const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// optionsValues sets most of what the defaults leave out.
const optionsValues = `
replicaCount: 3
nodeSelector: {kubernetes.io/os: linux}
tolerations:
- {key: dedicated, operator: Equal, value: ingress, effect: NoSchedule}
affinity:
  nodeAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 1
      preference:
        matchExpressions:
        - {key: node-role.kubernetes.io/ingress, operator: Exists}
topologySpreadConstraints: []
priorityClassName: ""
podAnnotations: {example.com/team: platform}
sidecar:
  extraArgs: [--log-format=json]
  extraEnv: [{name: GOMAXPROCS, value: "1"}]
  resources: {requests: {cpu: 50m, memory: 64Mi}, limits: {memory: 256Mi}}
haproxy:
  extraArgs: [-dW]
  extraEnv: [{name: TZ, value: UTC}]
  resources: {requests: {cpu: 500m, memory: 256Mi}, limits: {cpu: "4", memory: 2Gi}}
ingressClass: {name: edge, default: true, controllerName: example.com/edge}
service:
  type: LoadBalancer
  annotations: {service.beta.kubernetes.io/aws-load-balancer-type: nlb}
  externalTrafficPolicy: Cluster
  loadBalancerSourceRanges: [192.0.2.0/24]
  ports: {http: 8080, https: 8443}
config: {ssl-redirect: "true"}
podDisruptionBudget: {enabled: false}
`

func valueSets(t *testing.T) []valueSet {
	options := filepath.Join(t.TempDir(), "options.yaml")
	if err := os.WriteFile(options, []byte(optionsValues), 0o644); err != nil {
		t.Fatal(err)
	}
	return []valueSet{
		{"default", nil},
		{"hpa", []string{"--set", "autoscaling.enabled=true,autoscaling.minReplicas=2,autoscaling.maxReplicas=6,autoscaling.targetCPUUtilizationPercentage=60"}},
		{"single-replica", []string{"--set", "replicaCount=1"}},
		{"namespaced", []string{"--set", "watchNamespace=team-a"}},
		{"monitoring", []string{"--set", "monitoring.podMonitor.enabled=true,monitoring.prometheusRule.enabled=true,monitoring.dashboard.enabled=true"}},
		{"digest", []string{"--set", "image.digest=" + testDigest + ",image.pullPolicy=Always,imagePullSecrets[0].name=regcred"}},
		{"options", []string{"-f", options}},
	}
}

// helmTemplate renders the chart as `helm install` would install it.
func helmTemplate(t *testing.T, chart, release, namespace string, flags ...string) *built {
	t.Helper()
	args := append([]string{"template", release, chart, "--namespace", namespace, "--kube-version", kubeVersion}, flags...)
	out, err := runHelm(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v", strings.Join(args, " "), err)
	}
	return decodeObjects(t, out)
}

// helmLabels are what Helm's conventions add to deploy/'s labels: the
// comparison with deploy/ removes them wherever they are (also the
// release label in selectors, which keeps two releases apart).
var helmLabels = []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/version"}

func withoutHelmLabels(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			if !slices.Contains(helmLabels, k) {
				out[k] = withoutHelmLabels(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = withoutHelmLabels(e)
		}
		return out
	}
	return v
}

// key names an object of an output.
func key(o *unstructured.Unstructured) string {
	return o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
}

// sameObjects compares the chart's output with kustomize's, object by
// object, after removing what Helm adds (and the Namespace, which Helm's
// --create-namespace makes).
func sameObjects(t *testing.T, chart, kustomized *built) {
	t.Helper()
	want := map[string]map[string]any{}
	for _, o := range kustomized.objects {
		if o.GetKind() != "Namespace" {
			want[key(o)] = o.Object
		}
	}
	got := map[string]map[string]any{}
	for _, o := range chart.objects {
		if _, dup := got[key(o)]; dup {
			t.Errorf("the chart renders %s twice", key(o))
		}
		got[key(o)] = withoutHelmLabels(o.Object).(map[string]any)
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("the chart has no %s", k)
			continue
		}
		if !reflect.DeepEqual(g, w) {
			gy, _ := yaml.Marshal(g)
			wy, _ := yaml.Marshal(w)
			t.Errorf("%s differs from deploy/'s (Helm's labels removed) at %s\nchart:\n%s\nkustomize:\n%s", k, strings.Join(differences("", g, w), ", "), gy, wy)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("the chart renders %s, which deploy/ has not", k)
		}
	}
}

// differences lists the paths at which two decoded objects differ.
func differences(path string, a, b any) []string {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		var out []string
		for k := range am {
			out = append(out, differences(path+"."+k, am[k], bm[k])...)
		}
		for k := range bm {
			if _, ok := am[k]; !ok {
				out = append(out, path+"."+k)
			}
		}
		slices.Sort(out)
		return out
	}
	as, aok := a.([]any)
	bs, bok := b.([]any)
	if aok && bok && len(as) == len(bs) {
		var out []string
		for i := range as {
			out = append(out, differences(path+"["+strconv.Itoa(i)+"]", as[i], bs[i])...)
		}
		return out
	}
	if reflect.DeepEqual(a, b) {
		return nil
	}
	return []string{path}
}

// TestChartLint is `helm lint --strict`, with the defaults and with every
// value set of the tests.
func TestChartLint(t *testing.T) {
	for _, s := range valueSets(t) {
		t.Run(s.name, func(t *testing.T) {
			args := append([]string{"lint", "--strict", chartDir, "--namespace", releaseNamespace, "--kube-version", kubeVersion}, s.flags...)
			if out, err := runHelm(t, args...); err != nil {
				t.Errorf("helm lint: %v\n%s", err, out)
			}
		})
	}
}

// TestChartHelm3: the chart is for Helm 3 too. Helm 3's lint passes and
// its render is Helm 4's, object for object, for every value set, and its
// schema validation refuses a typo.
func TestChartHelm3(t *testing.T) {
	helm3 := helm3Bin(t)
	for _, s := range valueSets(t) {
		t.Run(s.name, func(t *testing.T) {
			common := append([]string{chartDir, "--namespace", releaseNamespace, "--kube-version", kubeVersion}, s.flags...)
			if out, err := runHelmBin(t, helm3, append([]string{"lint", "--strict"}, common...)...); err != nil {
				t.Errorf("helm 3 lint: %v\n%s", err, out)
			}
			out, err := runHelmBin(t, helm3, append([]string{"template", releaseName}, common...)...)
			if err != nil {
				t.Fatalf("helm 3 template: %v", err)
			}
			v3 := decodeObjects(t, out)
			v4 := helmTemplate(t, chartDir, releaseName, releaseNamespace, s.flags...)
			if len(v3.objects) != len(v4.objects) {
				t.Fatalf("Helm 3 renders %d objects, Helm 4 %d", len(v3.objects), len(v4.objects))
			}
			for i := range v3.objects {
				if d := differences("", v3.objects[i].Object, v4.objects[i].Object); len(d) > 0 {
					t.Errorf("%s: Helm 3 and 4 render it differently at %s", key(v4.objects[i]), strings.Join(d, ", "))
				}
			}
		})
	}
	_, err := runHelmBin(t, helm3, "template", releaseName, chartDir, "--set", "replicas=3")
	if err == nil || !strings.Contains(err.Error(), "replicas") {
		t.Errorf("helm 3 with the typo replicas=3: %v, want the schema to refuse it by name", err)
	}
}

// TestChartDefaultsAreDeploy: with its default values, the chart renders
// deploy/ (kustomize's build), and with the monitoring objects on,
// deploy/monitoring, whose rule and dashboard are the chart's files.
func TestChartDefaultsAreDeploy(t *testing.T) {
	sameObjects(t, helmTemplate(t, chartDir, releaseName, releaseNamespace), kustomizeDeploy(t))

	mon := helmTemplate(t, chartDir, releaseName, releaseNamespace,
		"--set", "monitoring.podMonitor.enabled=true,monitoring.prometheusRule.enabled=true,monitoring.dashboard.enabled=true")
	var onlyMonitoring built
	for _, o := range mon.objects {
		switch key(o) {
		case "PodMonitor haproxy-sidecar/haproxy-sidecar", "PrometheusRule haproxy-sidecar/haproxy-sidecar",
			"ConfigMap haproxy-sidecar/haproxy-sidecar-dashboard":
			onlyMonitoring.objects = append(onlyMonitoring.objects, o)
		}
	}
	sameObjects(t, &onlyMonitoring, kustomizeAt(t, "deploy/monitoring"))

	// The chart's copies are deploy/monitoring's files, byte for byte
	// (its comments included): edit one, copy it to the other.
	for chartFile, deployFile := range map[string]string{
		"files/prometheusrule.yaml": "deploy/monitoring/prometheusrule.yaml",
		"files/dashboard.json":      "deploy/monitoring/dashboard.json",
	} {
		a, err := os.ReadFile(filepath.Join(chartDir, chartFile))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(root, deployFile))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("charts/haproxy-sidecar/%s differs from %s: copy the one you edited to the other", chartFile, deployFile)
		}
	}
}

// TestChartValues checks what each value set changes in the output.
func TestChartValues(t *testing.T) {
	sets := map[string]*built{}
	for _, s := range valueSets(t) {
		sets[s.name] = helmTemplate(t, chartDir, releaseName, releaseNamespace, s.flags...)
	}
	dep := func(name string) *appsv1.Deployment { return sets[name].deployment(t) }

	t.Run("default", func(t *testing.T) {
		if d := dep("default"); d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
			t.Errorf("replicas %v, want 2", d.Spec.Replicas)
		}
		if n := len(sets["default"].all("HorizontalPodAutoscaler")); n != 0 {
			t.Errorf("%d HorizontalPodAutoscalers by default", n)
		}
	})
	t.Run("hpa", func(t *testing.T) {
		if d := dep("hpa"); d.Spec.Replicas != nil {
			t.Errorf("with autoscaling, the Deployment has replicas %d: each upgrade would reset the HPA's count", *d.Spec.Replicas)
		}
		h := typed[autoscalingv2.HorizontalPodAutoscaler](t, sets["hpa"].find(t, "HorizontalPodAutoscaler", deployName))
		if h.APIVersion != "autoscaling/v2" || h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != deployName ||
			h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != 2 || h.Spec.MaxReplicas != 6 || len(h.Spec.Metrics) != 1 {
			t.Fatalf("HPA %+v", h)
		}
		m := h.Spec.Metrics[0]
		if m.Resource == nil || m.Resource.Name != corev1.ResourceCPU || m.Resource.Target.AverageUtilization == nil || *m.Resource.Target.AverageUtilization != 60 {
			t.Errorf("HPA metric %+v, want CPU at 60%%", m)
		}
	})
	t.Run("single-replica", func(t *testing.T) {
		if d := dep("single-replica"); d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
			t.Errorf("replicas %v, want 1", d.Spec.Replicas)
		}
	})
	t.Run("namespaced", func(t *testing.T) {
		b := sets["namespaced"]
		sc := containerNamed(t, &dep("namespaced").Spec.Template.Spec, sidecarName)
		if !slices.Contains(sc.Args, "--watch-namespace=team-a") {
			t.Errorf("sidecar args %q lack --watch-namespace=team-a", sc.Args)
		}
		cr := typed[rbacv1.ClusterRole](t, b.find(t, "ClusterRole", deployName))
		want := []rbacv1.PolicyRule{{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingressclasses"}, Verbs: []string{"get", "list", "watch"}}}
		if !reflect.DeepEqual(cr.Rules, want) {
			t.Errorf("namespaced ClusterRole rules %+v, want only reading IngressClasses", cr.Rules)
		}
		role := typed[rbacv1.Role](t, b.find(t, "Role", deployName))
		if role.Namespace != "team-a" {
			t.Errorf("Role in %q, want team-a", role.Namespace)
		}
	})
	t.Run("digest", func(t *testing.T) {
		spec := dep("digest").Spec.Template.Spec
		for _, c := range []string{sidecarName, haproxyName} {
			ct := containerNamed(t, &spec, c)
			if want := "ghcr.io/haproxy-sidecar/haproxy-sidecar@" + testDigest; ct.Image != want || ct.ImagePullPolicy != corev1.PullAlways {
				t.Errorf("%s: image %s (%s), want %s (Always)", c, ct.Image, ct.ImagePullPolicy, want)
			}
		}
		if len(spec.ImagePullSecrets) != 1 || spec.ImagePullSecrets[0].Name != "regcred" {
			t.Errorf("imagePullSecrets %v", spec.ImagePullSecrets)
		}
	})
	t.Run("default-image", func(t *testing.T) {
		for _, c := range []string{sidecarName, haproxyName} {
			if got := containerNamed(t, &dep("default").Spec.Template.Spec, c).Image; got != "ghcr.io/haproxy-sidecar/haproxy-sidecar:0.25.0" {
				t.Errorf("%s: image %s, want the chart's appVersion", c, got)
			}
		}
	})
	t.Run("options", func(t *testing.T) {
		b := sets["options"]
		d := dep("options")
		spec := d.Spec.Template.Spec
		if *d.Spec.Replicas != 3 || spec.NodeSelector["kubernetes.io/os"] != "linux" || len(spec.Tolerations) != 1 ||
			spec.Affinity == nil || spec.Affinity.NodeAffinity == nil || len(spec.TopologySpreadConstraints) != 0 ||
			d.Spec.Template.Annotations["example.com/team"] != "platform" {
			t.Errorf("scheduling values not rendered: replicas %d, %+v", *d.Spec.Replicas, spec)
		}
		sc, hc := containerNamed(t, &spec, sidecarName), containerNamed(t, &spec, haproxyName)
		if sc.Args[len(sc.Args)-1] != "--log-format=json" || !slices.Contains(sc.Args, "--controller-name=example.com/edge") {
			t.Errorf("sidecar args %q", sc.Args)
		}
		if sc.Env[len(sc.Env)-1].Name != "GOMAXPROCS" || hc.Env[0].Name != "TZ" || hc.Command[len(hc.Command)-1] != "-dW" {
			t.Errorf("extra env/args: sidecar %v, haproxy %v %q", sc.Env, hc.Env, hc.Command)
		}
		if sc.Resources.Requests.Cpu().String() != "50m" || hc.Resources.Limits.Cpu().String() != "4" {
			t.Errorf("resources: sidecar %v, haproxy %v", sc.Resources, hc.Resources)
		}
		ic := b.find(t, "IngressClass", "edge")
		if ic.GetAnnotations()["ingressclass.kubernetes.io/is-default-class"] != "true" {
			t.Errorf("IngressClass edge is not the default class: %v", ic.GetAnnotations())
		}
		if c, _, _ := unstructured.NestedString(ic.Object, "spec", "controller"); c != "example.com/edge" {
			t.Errorf("IngressClass controller %q", c)
		}
		svc := b.service(t)
		if svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster || svc.Spec.LoadBalancerSourceRanges[0] != "192.0.2.0/24" ||
			svc.Annotations["service.beta.kubernetes.io/aws-load-balancer-type"] != "nlb" || svc.Spec.Ports[0].Port != 8080 {
			t.Errorf("Service %+v", svc)
		}
		cm := typed[corev1.ConfigMap](t, b.find(t, "ConfigMap", deployName))
		if cm.Data["ssl-redirect"] != "true" || cm.Data["timeout-client"] != "60s" {
			t.Errorf("settings %v: want the given key added to the defaults", cm.Data)
		}
		if n := len(b.all("PodDisruptionBudget")); n != 0 {
			t.Errorf("%d PDBs with podDisruptionBudget.enabled false", n)
		}
	})
	t.Run("cluster-ip", func(t *testing.T) {
		svc := helmTemplate(t, chartDir, releaseName, releaseNamespace, "--set", "service.type=ClusterIP").service(t)
		if svc.Spec.Type != corev1.ServiceTypeClusterIP || svc.Spec.ExternalTrafficPolicy != "" {
			t.Errorf("ClusterIP Service: type %s, externalTrafficPolicy %q (the API server refuses one there)", svc.Spec.Type, svc.Spec.ExternalTrafficPolicy)
		}
	})
}

// TestChartSchema: values.schema.json turns a typo or a wrong value into
// an error naming it, instead of a value silently ignored.
func TestChartSchema(t *testing.T) {
	for _, c := range []struct {
		set  string
		want []string // in helm's message
	}{
		{"replicas=3", []string{"additional properties", "replicas"}},
		{"service.externalTrafficPolicy=local", []string{"externalTrafficPolicy", "Local"}},
		{"autoscaling.enable=true", []string{"autoscaling", "enable"}},
		{"image.digest=latest", []string{"digest"}},
		{"watchNamespace=Team_A", []string{"watchNamespace"}},
	} {
		out, err := runHelm(t, "template", releaseName, chartDir, "--namespace", releaseNamespace, "--set", c.set)
		if err == nil {
			t.Errorf("--set %s: rendered, want the schema to refuse it:\n%s", c.set, out)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("--set %s: helm says %q, which does not name %q", c.set, err, w)
			}
		}
	}
}

// TestChartPackage: `helm package` makes the archive make chart and make
// dist publish, and it renders what the chart's directory renders.
func TestChartPackage(t *testing.T) {
	dir := t.TempDir()
	if out, err := runHelm(t, "package", chartDir, "--destination", dir); err != nil {
		t.Fatalf("helm package: %v\n%s", err, out)
	}
	// The chart's version is the release's, the image tag it defaults
	// to (appVersion) too; the default image equal to deploy/'s (above)
	// ties both to nextRelease (TestReleaseVersionPinned).
	data, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct{ Version, AppVersion string }
	if err := yaml.Unmarshal(data, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Version == "" || meta.Version != meta.AppVersion {
		t.Errorf("Chart.yaml: version %q, appVersion %q: bump both with the release", meta.Version, meta.AppVersion)
	}
	tgz := filepath.Join(dir, "haproxy-sidecar-"+meta.Version+".tgz")
	fromPackage := helmTemplate(t, tgz, releaseName, releaseNamespace)
	fromDir := helmTemplate(t, chartDir, releaseName, releaseNamespace)
	if !bytes.Equal(fromPackage.yaml, fromDir.yaml) {
		t.Errorf("the package renders differently from the chart's directory:\n%s\n---- directory:\n%s", fromPackage.yaml, fromDir.yaml)
	}
}

// TestChartCluster applies every value set with a server-side dry run to
// a real kube-apiserver (the monitoring set after the Prometheus
// Operator's CRDs), installs the namespaced set for real and checks what
// its ServiceAccount may do, then installs the defaults and runs their pod
// as TestCluster runs deploy/'s.
func TestChartCluster(t *testing.T) {
	sets := valueSets(t)
	c := kube.Start(t)
	for _, ns := range []string{releaseNamespace, "team-a", "lb"} {
		if _, err := c.Client.CoreV1().Namespaces().Create(ctx(t, 30*time.Second),
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	installCRDs(t, c, filepath.Join(promTools(t), "crds"))

	t.Run("dry-run", func(t *testing.T) {
		for _, s := range sets {
			t.Run(s.name, func(t *testing.T) {
				apply(t, c, helmTemplate(t, chartDir, releaseName, releaseNamespace, s.flags...), true)
			})
		}
	})

	t.Run("namespaced", func(t *testing.T) {
		// Release "lb" in namespace lb serving team-a: the settings
		// ConfigMap and the published Service stay in lb.
		b := helmTemplate(t, chartDir, "lb", "lb", "--set", "watchNamespace=team-a,ingressClass.name=team-a,ingressClass.controllerName=haproxy-sidecar.io/team-a")
		apply(t, c, b, false)
		if t.Failed() {
			return
		}
		sa := "system:serviceaccount:lb:lb-haproxy-sidecar"
		for _, a := range []struct {
			ns, group, resource, verb, name string
			allowed                         bool
		}{
			{"team-a", "networking.k8s.io", "ingresses", "watch", "", true},
			{"team-a", "networking.k8s.io", "ingresses/status", "patch", "", true},
			{"team-a", "networking.k8s.io", "ingresses/status", "update", "", false},
			{"team-a", "", "secrets", "get", "tls", true},
			{"team-a", "discovery.k8s.io", "endpointslices", "list", "", true},
			{"team-a", "", "events", "create", "", true},
			{"", "networking.k8s.io", "ingressclasses", "watch", "", true},
			{"lb", "", "configmaps", "get", "lb-haproxy-sidecar", true},
			{"lb", "", "services", "get", "lb-haproxy-sidecar", true},
			{"lb", "coordination.k8s.io", "leases", "update", "", true},
			{"default", "networking.k8s.io", "ingresses", "list", "", false},
			{"default", "", "secrets", "get", "tls", false},
			{"", "networking.k8s.io", "ingresses", "list", "", false}, // all namespaces
			{"lb", "", "secrets", "get", "tls", false},
		} {
			resource, sub, _ := strings.Cut(a.resource, "/")
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: sa, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:lb"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: a.ns, Group: a.group,
					Resource: resource, Subresource: sub, Verb: a.verb, Name: a.name}}}
			res, err := c.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx(t, 30*time.Second), sar, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status.Allowed != a.allowed {
				t.Errorf("%s %s %s in %q: allowed %v, want %v", a.verb, a.resource, a.name, a.ns, res.Status.Allowed, a.allowed)
			}
		}
	})

	// The namespaced release's pod, run as testPod runs deploy/'s: its
	// Role and ClusterRole are enough for run (the first configuration
	// needs every informer's list), it serves team-a's Ingress, not
	// another namespace's, and writes the Ingress's status from the
	// Service and Lease in its own namespace.
	t.Run("namespaced-pod", func(t *testing.T) {
		b := helmTemplate(t, chartDir, "lb", "lb", "--set", "watchNamespace=team-a,ingressClass.name=team-a,ingressClass.controllerName=haproxy-sidecar.io/team-a")
		dep := typed[appsv1.Deployment](t, b.find(t, "Deployment", "lb-haproxy-sidecar"))
		testNamespacedPod(t, c, b, dep)
	})

	t.Run("pod", func(t *testing.T) {
		b := helmTemplate(t, chartDir, releaseName, releaseNamespace)
		apply(t, c, b, false)
		if t.Failed() {
			return
		}
		dep := b.deployment(t)
		sa, kubeconfig := saClient(t, c, dep.Namespace, dep.Spec.Template.Spec.ServiceAccountName)
		testPod(t, c, b, sa, kubeconfig)
	})
}

func testNamespacedPod(t *testing.T, c *kube.Cluster, b *built, dep *appsv1.Deployment) {
	ns := dep.Namespace
	spec := dep.Spec.Template.Spec.DeepCopy()
	sc, hc := containerNamed(t, spec, sidecarName), containerNamed(t, spec, haproxyName)
	_, kubeconfig := saClient(t, c, ns, spec.ServiceAccountName)
	branch := parseDockerfile(t).haproxyBranch(t)
	haproxy, ok := testenv.HAProxies(t)[branch]
	if !ok {
		t.Fatalf("no tested HAProxy %s", branch)
	}
	sidecar := sidecartest.Binary(t)
	p := newPod(t, spec, ns, dep.Name+"-5f6d7c8b9-q7w2e", map[string]string{
		"haproxy": haproxy, "/usr/local/sbin/haproxy": haproxy,
		"haproxy-sidecar": sidecar, sidecarInImage: sidecar,
	})

	svc, err := c.Client.CoreV1().Services(ns).Get(ctx(t, 30*time.Second), dep.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const lbIP = "203.0.113.81"
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: lbIP}}
	if _, err := c.Client.CoreV1().Services(ns).UpdateStatus(ctx(t, 30*time.Second), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	class := b.all("IngressClass")[0].GetName()
	kube.StartEcho(t, "web", kube.BackendIP(2)+":"+strconv.Itoa(echoPort))
	createApp(t, c, "team-b", "web", kube.BackendIP(2))
	createIngress(t, c, "team-b", "web", class, "b.chart.test", "/", "web")
	createApp(t, c, "team-a", "web", kube.BackendIP(2))
	createIngress(t, c, "team-a", "web", class, "a.chart.test", "/", "web")

	side := p.start(sc, "--kubeconfig="+kubeconfig)
	eventually(t, 120*time.Second, "the namespaced sidecar's startup probe", func() error { return probe(t, sc, sc.StartupProbe) }, side)
	hap := p.start(hc)
	eventually(t, 60*time.Second, "HAProxy's readiness probe", func() error { return probe(t, hc, hc.ReadinessProbe) }, side, hap)
	eventually(t, 60*time.Second, "the sidecar's readiness probe", func() error { return probe(t, sc, sc.ReadinessProbe) }, side, hap)

	httpPort := port(t, hc, intstr.FromString("http"))
	get := func(host string) (int, string, error) {
		req, err := newRequest(httpPort, host, "/")
		if err != nil {
			return 0, "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body)), err
	}
	eventually(t, 60*time.Second, "team-a's Ingress served", func() error {
		code, body, err := get("a.chart.test")
		if err != nil {
			return err
		}
		if code != 200 || body != "service=web" {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	}, side, hap)
	if code, body, err := get("b.chart.test"); err != nil || code == 200 {
		t.Errorf("team-b's Ingress, outside watchNamespace: %d %q %v, want it not served", code, body, err)
	}
	expectStatus(t, c, "team-a", "web", lbIP, side, hap)
	if strings.Contains(side.logs.String(), "forbidden") {
		t.Errorf("the namespaced sidecar was refused something:\n%s", tail(side.logs.String(), 20))
	}
}
