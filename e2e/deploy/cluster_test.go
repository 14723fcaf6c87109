package deploy

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
)

func ctx(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

// apply sends every object of the kustomize output to the API server with
// server-side apply, as `kubectl apply --server-side -k deploy` would.
func apply(t *testing.T, c *kube.Cluster, b *built, dryRun bool) {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	opts := metav1.ApplyOptions{FieldManager: "e2e-deploy", Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	for _, o := range b.objects {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("%s %s: %v", gvk.Kind, o.GetName(), err)
			continue
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == "namespace" {
			if o.GetNamespace() == "" {
				t.Errorf("%s %s has no namespace in the kustomize output", gvk.Kind, o.GetName())
				continue
			}
			ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		if _, err := ri.Apply(ctx(t, 30*time.Second), o.GetName(), o, opts); err != nil {
			t.Errorf("apply (dry run %v) %s %s: %v", dryRun, gvk.Kind, o.GetName(), err)
		}
	}
}

// saClient is a client holding a token of deploy/'s ServiceAccount, from
// the TokenRequest API, and the same as a kubeconfig file.
func saClient(t *testing.T, c *kube.Cluster, namespace, sa string) (kubernetes.Interface, string) {
	t.Helper()
	exp := int64(3600)
	tr, err := c.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx(t, 30*time.Second), sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for ServiceAccount %s/%s: %v", namespace, sa, err)
	}
	cfg := rest.CopyConfig(c.Config)
	cfg.BearerToken = tr.Status.Token
	cfg.UserAgent = "e2e-deploy-serviceaccount"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	err = os.WriteFile(kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: e2e
  context: {cluster: e2e, user: %s}
current-context: e2e
`, cfg.Host, base64.StdEncoding.EncodeToString(cfg.CAData), sa, tr.Status.Token, sa), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return client, kubeconfig
}

// TestCluster applies deploy/ to a real kube-apiserver, checks its RBAC as
// the ServiceAccount, and runs its pod.
func TestCluster(t *testing.T) {
	b := kustomizeDeploy(t)
	c := kube.Start(t)
	dep := b.deployment(t)
	ns := dep.Namespace

	t.Run("dry-run", func(t *testing.T) {
		// A dry run of the Namespace creates nothing, so the namespaced
		// objects need it for real; everything else is a dry run only.
		if _, err := c.Client.CoreV1().Namespaces().Create(ctx(t, 30*time.Second),
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		apply(t, c, b, true)
		if _, err := c.Client.AppsV1().Deployments(ns).Get(ctx(t, 30*time.Second), dep.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("after a dry run, Deployment %s: %v, want not found", dep.Name, err)
		}
	})
	if t.Failed() {
		return
	}
	// A cluster that already runs haproxytech's or haproxy-ingress's
	// controller has their default IngressClass "haproxy"; deploy/ must
	// apply beside it and leave it alone (spec.controller is immutable,
	// so an IngressClass of ours by that name could not be applied).
	peer := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "haproxy"},
		Spec: networkingv1.IngressClassSpec{Controller: "haproxy.org/ingress-controller/haproxy"}}
	if _, err := c.Client.NetworkingV1().IngressClasses().Create(ctx(t, 30*time.Second), peer, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	apply(t, c, b, false)
	if t.Failed() {
		return
	}
	if got, err := c.Client.NetworkingV1().IngressClasses().Get(ctx(t, 30*time.Second), "haproxy", metav1.GetOptions{}); err != nil || got.Spec.Controller != peer.Spec.Controller {
		t.Errorf("the peer's IngressClass haproxy after applying deploy/: %v, %v", got, err)
	}
	sa, kubeconfig := saClient(t, c, ns, dep.Spec.Template.Spec.ServiceAccountName)

	t.Run("services", func(t *testing.T) { testServices(t, c, b) })
	t.Run("rbac", func(t *testing.T) { testRBAC(t, c, sa, ns) })
	t.Run("pod", func(t *testing.T) { testPod(t, c, b, sa, kubeconfig) })
}

// testServices reads the Services as the API server stored them: the
// LoadBalancer Service with externalTrafficPolicy Local has a
// healthCheckNodePort (allocated by the API server, answered by kube-proxy
// on each node), and the metrics Service's ports reach the pod's.
func testServices(t *testing.T, c *kube.Cluster, b *built) {
	svc, err := c.Client.CoreV1().Services(b.deployment(t).Namespace).Get(ctx(t, 30*time.Second), b.service(t).Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		t.Errorf("Service %s: externalTrafficPolicy %q, want Local", svc.Name, svc.Spec.ExternalTrafficPolicy)
	}
	hc := svc.Spec.HealthCheckNodePort
	t.Logf("Service %s: healthCheckNodePort %d, ports %+v", svc.Name, hc, svc.Spec.Ports)
	if hc < 30000 || hc > 32767 {
		t.Errorf("Service %s: healthCheckNodePort %d, want one allocated from the node port range", svc.Name, hc)
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort == 0 || p.NodePort == hc {
			t.Errorf("Service %s port %s: nodePort %d (health check %d)", svc.Name, p.Name, p.NodePort, hc)
		}
	}
	ms, err := c.Client.CoreV1().Services(svc.Namespace).Get(ctx(t, 30*time.Second), deployName+"-metrics", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ms.Spec.Type != corev1.ServiceTypeClusterIP || ms.Spec.HealthCheckNodePort != 0 || len(ms.Spec.Ports) != 2 {
		t.Errorf("metrics Service: %+v", ms.Spec)
	}
}

// testRBAC shows that the ServiceAccount may do what README's table lists
// and is refused the rest, asking the API server (SelfSubjectAccessReview)
// and trying real requests.
func testRBAC(t *testing.T, c *kube.Cluster, sa kubernetes.Interface, ns string) {
	other := "rbac-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx(t, 30*time.Second), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: other}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	can := func(verb, group, resource, subresource, namespace string) bool {
		t.Helper()
		r, err := sa.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx(t, 30*time.Second), &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: verb, Group: group, Resource: resource, Subresource: subresource, Namespace: namespace}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("SelfSubjectAccessReview: %v", err)
		}
		return r.Status.Allowed
	}
	split := func(res string) (string, string) { r, sub, _ := strings.Cut(res, "/"); return r, sub }

	// Everything README lists is allowed: cluster-wide, or for the Lease
	// in the pod's namespace only.
	for _, p := range readmePermissions(t) {
		res, sub := split(p.resource)
		where := other
		if p.namespaced {
			where = ns
			if can(p.verb, p.group, res, sub, other) {
				t.Errorf("allowed to %s outside the namespace %s", p, ns)
			}
		}
		if !can(p.verb, p.group, res, sub, where) {
			t.Errorf("refused to %s in %s, which README lists", p, where)
		}
	}

	// What it must not do, asked of the API server.
	for _, d := range []struct{ verb, group, resource, sub string }{
		{"create", "", "secrets", ""}, {"update", "", "secrets", ""}, {"patch", "", "secrets", ""}, {"delete", "", "secrets", ""},
		{"update", "networking.k8s.io", "ingresses", ""}, {"patch", "networking.k8s.io", "ingresses", ""},
		{"create", "networking.k8s.io", "ingresses", ""}, {"delete", "networking.k8s.io", "ingresses", ""},
		{"update", "networking.k8s.io", "ingresses", "status"},
		{"get", "", "pods", ""}, {"list", "", "pods", ""}, {"get", "", "pods", "log"}, {"create", "", "pods", "exec"},
		{"update", "", "services", ""}, {"update", "", "services", "status"}, {"create", "discovery.k8s.io", "endpointslices", ""},
		{"update", "", "configmaps", ""}, {"create", "", "configmaps", ""}, {"list", "", "nodes", ""}, {"list", "", "namespaces", ""},
		{"create", "", "serviceaccounts", "token"}, {"list", "apps", "deployments", ""}, {"update", "networking.k8s.io", "ingressclasses", ""},
		{"list", "rbac.authorization.k8s.io", "clusterroles", ""}, {"create", "rbac.authorization.k8s.io", "rolebindings", ""},
		{"delete", "coordination.k8s.io", "leases", ""}, {"list", "coordination.k8s.io", "leases", ""},
		{"get", "", "events", ""}, {"delete", "", "events", ""}, {"create", "events.k8s.io", "events", ""},
		{"list", "", "endpoints", ""}, {"list", "", "persistentvolumes", ""},
	} {
		for _, where := range []string{other, ns} {
			if can(d.verb, d.group, d.resource, d.sub, where) {
				t.Errorf("allowed to %s %s/%s %s in %s", d.verb, d.group, d.resource, d.sub, where)
			}
		}
	}

	// And real requests are refused (403), not merely reported as denied.
	c1 := ctx(t, 60*time.Second)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: other}, StringData: map[string]string{"k": "v"}}
	if _, err := c.Client.CoreV1().Secrets(other).Create(c1, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	prefix := networkingv1.PathTypePrefix
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "i", Namespace: other}, Spec: networkingv1.IngressSpec{
		Rules: []networkingv1.IngressRule{{Host: "a.test", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
			Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{
				Service: &networkingv1.IngressServiceBackend{Name: "x", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}}
	if ing, err := c.Client.NetworkingV1().Ingresses(other).Create(c1, ing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	} else {
		ing.Spec.Rules[0].Host = "b.test"
		_, err = sa.NetworkingV1().Ingresses(other).Update(c1, ing, metav1.UpdateOptions{})
		forbidden(t, "update an Ingress's spec", err)
		_, err = sa.NetworkingV1().Ingresses(other).Patch(c1, "i", types.MergePatchType, []byte(`{"spec":{"rules":[]}}`), metav1.PatchOptions{})
		forbidden(t, "patch an Ingress", err)
		// Its status it may patch (what the table's ingresses/status
		// patch is for), and only patch: an update of the status
		// subresource would write the metadata as sent.
		ing.Spec.Rules[0].Host = "a.test"
		ing.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "203.0.113.1"}}
		_, err = sa.NetworkingV1().Ingresses(other).UpdateStatus(c1, ing, metav1.UpdateOptions{})
		forbidden(t, "update an Ingress's status", err)
		if _, err := sa.NetworkingV1().Ingresses(other).Patch(c1, "i", types.MergePatchType,
			[]byte(`{"status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.1"}]}}}`), metav1.PatchOptions{}, "status"); err != nil {
			t.Errorf("patch an Ingress's status: %v", err)
		}
	}
	_, err := sa.CoreV1().Secrets(other).Create(c1, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "new"}}, metav1.CreateOptions{})
	forbidden(t, "create a Secret", err)
	_, err = sa.CoreV1().Secrets(other).Update(c1, secret, metav1.UpdateOptions{})
	forbidden(t, "update a Secret", err)
	forbidden(t, "delete a Secret", sa.CoreV1().Secrets(other).Delete(c1, "s", metav1.DeleteOptions{}))
	if _, err := sa.CoreV1().Secrets(other).Get(c1, "s", metav1.GetOptions{}); err != nil {
		t.Errorf("get a Secret by name (allowed): %v", err)
	}
	_, err = sa.CoreV1().Pods(other).List(c1, metav1.ListOptions{})
	forbidden(t, "list Pods", err)
	_, err = sa.CoreV1().Pods(ns).Get(c1, "any", metav1.GetOptions{})
	forbidden(t, "get a Pod", err)
	_, err = sa.CoreV1().Nodes().List(c1, metav1.ListOptions{})
	forbidden(t, "list Nodes", err)
	_, err = sa.AppsV1().Deployments(ns).List(c1, metav1.ListOptions{})
	forbidden(t, "list Deployments", err)
	_, err = sa.CoreV1().ConfigMaps(ns).Create(c1, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	forbidden(t, "create a ConfigMap", err)
}

func forbidden(t *testing.T, what string, err error) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Errorf("%s as the ServiceAccount: %v, want 403 Forbidden", what, err)
	}
}

// testPod runs the Deployment's pod: the native sidecar first, HAProxy once
// the sidecar's startup probe passes, with the ServiceAccount's token. An
// Ingress is served through that HAProxy and gets the Service's address in
// its status, and a sidecar container restart loses no request.
func testPod(t *testing.T, c *kube.Cluster, b *built, sa kubernetes.Interface, kubeconfig string) {
	dep := b.deployment(t)
	ns := dep.Namespace
	spec := dep.Spec.Template.Spec.DeepCopy()
	if len(spec.InitContainers) != 1 || len(spec.Containers) != 1 {
		t.Fatalf("want one native sidecar and one container")
	}
	sc, hc := &spec.InitContainers[0], &spec.Containers[0]

	// The image's executables: HAProxy of the Dockerfile's branch, and
	// the sidecar built from this tree.
	branch := parseDockerfile(t).haproxyBranch(t)
	haproxy, ok := testenv.HAProxies(t)[branch]
	if !ok {
		t.Fatalf("no tested HAProxy %s", branch)
	}
	sidecar := sidecartest.Binary(t)
	image := map[string]string{
		"haproxy": haproxy, "/usr/local/sbin/haproxy": haproxy,
		"haproxy-sidecar": sidecar, sidecarInImage: sidecar,
	}
	p := newPod(t, spec, ns, dep.Name+"-7d4b9c8f6-x2x5q", image)

	// No cloud controller here: give the LoadBalancer Service its address.
	svc, err := c.Client.CoreV1().Services(ns).Get(ctx(t, 30*time.Second), b.service(t).Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const lbIP = "203.0.113.80"
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: lbIP}}
	if _, err := c.Client.CoreV1().Services(ns).UpdateStatus(ctx(t, 30*time.Second), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The port clients reach: the Service's port 80, through its
	// targetPort, to the HAProxy container.
	var httpPort int
	for _, sp := range svc.Spec.Ports {
		if sp.Port == 80 {
			httpPort = port(t, hc, sp.TargetPort)
		}
	}
	if httpPort == 0 {
		t.Fatalf("Service %s has no port 80", svc.Name)
	}

	// The pod starts: the native sidecar, and HAProxy only once the
	// sidecar's startup probe passes.
	side := p.start(sc, "--kubeconfig="+kubeconfig)
	eventually(t, 120*time.Second, "the sidecar's startup probe", func() error { return probe(t, sc, sc.StartupProbe) }, side)
	hap := p.start(hc)
	eventually(t, 60*time.Second, "HAProxy's readiness probe", func() error { return probe(t, hc, hc.ReadinessProbe) }, side, hap)
	eventually(t, 60*time.Second, "the sidecar's readiness probe", func() error { return probe(t, sc, sc.ReadinessProbe) }, side, hap)
	if err := probe(t, sc, sc.LivenessProbe); err != nil {
		t.Errorf("sidecar liveness: %v", err)
	}
	if err := probe(t, hc, hc.LivenessProbe); err != nil {
		t.Errorf("haproxy liveness: %v", err)
	}
	// HAProxy runs as many threads as its container's CPU limit, which
	// the sidecar got from the Downward API, not one per CPU here.
	wantThreads := p.cpuLimit(hc).Threads(runtime.NumCPU())
	if got := p.nbthread(); got != wantThreads {
		t.Errorf("HAProxy runs %d threads, want %d (its CPU limit %s, %d CPUs here)", got, wantThreads, hc.Resources.Limits.Cpu(), runtime.NumCPU())
	}
	if !strings.Contains(side.logs.String(), `"from":"HAPROXY_CPU_LIMIT=`) {
		t.Errorf("the sidecar's log does not say the thread count came from HAPROXY_CPU_LIMIT")
	}

	// An application: Service, EndpointSlice (no controller-manager
	// here) and an Ingress of deploy/'s class.
	app := "app-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	kube.StartEcho(t, "web", kube.BackendIP(0)+":"+strconv.Itoa(echoPort))
	kube.StartEcho(t, "api", kube.BackendIP(1)+":"+strconv.Itoa(echoPort))
	createApp(t, c, app, "web", kube.BackendIP(0))
	class := b.all("IngressClass")[0].GetName()
	createIngress(t, c, app, "web", class, "web.deploy.test", "/", "web")
	get := func(host, path string) (string, error) {
		req, err := newRequest(httpPort, host, path)
		if err != nil {
			return "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		}
		return strings.TrimSpace(string(body)), nil
	}
	expect := func(host, path, want string, watched ...*process) {
		t.Helper()
		eventually(t, 60*time.Second, "http://"+host+path+" -> "+want, func() error {
			got, err := get(host, path)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("got %q", got)
			}
			return nil
		}, watched...)
	}
	expect("web.deploy.test", "/", "service=web", side, hap)

	// Status: the Ingress gets the LoadBalancer Service's address (leader
	// election through the Role's Lease, then ingresses/status).
	expectStatus(t, c, app, "web", lbIP, side, hap)

	// HAProxy's Prometheus exporter on the stats port.
	statsPort := 0
	for _, cp := range hc.Ports {
		if cp.Name == "stats" {
			statsPort = int(cp.ContainerPort)
		}
	}
	resp, err := client.Get("http://127.0.0.1:" + strconv.Itoa(statsPort) + "/metrics")
	if err != nil {
		t.Fatalf("HAProxy /metrics: %v", err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(metrics), "haproxy_process_") {
		t.Errorf("HAProxy /metrics: %s, %.300q", resp.Status, metrics)
	}

	// The metrics Service: each port, through its targetPort, reaches a
	// /metrics in Prometheus' format, the sidecar's and HAProxy's.
	ms := typed[corev1.Service](t, b.find(t, "Service", deployName+"-metrics"))
	wantPrefix := map[string]string{"sidecar-metrics": "haproxy_sidecar_", "haproxy-metrics": "haproxy_process_"}
	for _, sp := range ms.Spec.Ports {
		owner := hc
		if sp.Name == "sidecar-metrics" {
			owner = sc
		}
		target := port(t, owner, sp.TargetPort)
		resp, err := client.Get("http://127.0.0.1:" + strconv.Itoa(target) + "/metrics")
		if err != nil {
			t.Errorf("metrics Service port %s (%d): %v", sp.Name, target, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "\n"+wantPrefix[sp.Name]) {
			t.Errorf("metrics Service port %s (%d): %s, no %s* metric in %.200q", sp.Name, target, resp.Status, wantPrefix[sp.Name], body)
		}
	}

	// A sidecar container restart while a client polls: not one failed
	// request. The restarted sidecar then serves a new route.
	var served, failed atomic.Int64
	var firstErr sync.Once
	var errMsg atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := get("web.deploy.test", "/")
			if err == nil && got == "service=web" {
				served.Add(1)
			} else {
				failed.Add(1)
				firstErr.Do(func() { errMsg.Store(fmt.Sprintf("%q %v", got, err)) })
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second)
	side.kill()
	side = p.start(sc, "--kubeconfig="+kubeconfig)
	eventually(t, 120*time.Second, "the restarted sidecar's startup probe", func() error { return probe(t, sc, sc.StartupProbe) }, side, hap)
	eventually(t, 60*time.Second, "the restarted sidecar's readiness probe", func() error { return probe(t, sc, sc.ReadinessProbe) }, side, hap)
	createApp(t, c, app, "api", kube.BackendIP(1))
	createIngress(t, c, app, "api", class, "web.deploy.test", "/api", "api")
	expect("web.deploy.test", "/api/x", "service=api", side, hap)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	t.Logf("during the sidecar restart: %d requests served, %d failed", served.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed across the sidecar's restart; first: %v", failed.Load(), served.Load()+failed.Load(), errMsg.Load())
	}
	if served.Load() < 50 {
		t.Errorf("only %d requests made during the restart", served.Load())
	}

	// Draining as the preStop hook does it: SIGUSR1 to HAProxy's master
	// (PID 1 of its container); it exits within --grace-period.
	if err := hap.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hap.done:
	case <-time.After(time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second):
		t.Errorf("HAProxy did not exit within terminationGracePeriodSeconds of SIGUSR1")
	}
}

func newRequest(port int, host, path string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+path, nil)
	if err != nil {
		return nil, err
	}
	req.Host = host
	return req, nil
}

// echoPort is where the application's backends listen: not a port of the
// pod, which binds its ports on every address of the namespace.
const echoPort = 9090

func createApp(t *testing.T, c *kube.Cluster, ns, name, addr string) {
	t.Helper()
	cx := ctx(t, 30*time.Second)
	if _, err := c.Client.CoreV1().Namespaces().Get(cx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		if _, err := c.Client.CoreV1().Namespaces().Create(cx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Client.CoreV1().Services(ns).Create(cx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	portName, port, ready := "http", int32(echoPort), true
	if _, err := c.Client.DiscoveryV1().EndpointSlices(ns).Create(cx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func createIngress(t *testing.T, c *kube.Cluster, ns, name, class, host, path, service string) {
	t.Helper()
	prefix := networkingv1.PathTypePrefix
	_, err := c.Client.NetworkingV1().Ingresses(ns).Create(ctx(t, 30*time.Second), &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: networkingv1.IngressSpec{IngressClassName: &class, Rules: []networkingv1.IngressRule{{
			Host: host,
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: path, PathType: &prefix,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: service, Port: networkingv1.ServiceBackendPort{Name: "http"}}},
			}}}},
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// expectStatus waits (90 s) until the Ingress ns/name's status holds the
// one address lbIP, the processes watched meanwhile.
func expectStatus(t *testing.T, c *kube.Cluster, ns, name, lbIP string, watched ...*process) {
	t.Helper()
	eventually(t, 90*time.Second, "status of Ingress "+ns+"/"+name, func() error {
		ing, err := c.Client.NetworkingV1().Ingresses(ns).Get(ctx(t, 10*time.Second), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if lb := ing.Status.LoadBalancer.Ingress; len(lb) != 1 || lb[0].IP != lbIP {
			return fmt.Errorf("status.loadBalancer.ingress %+v, want %s", lb, lbIP)
		}
		return nil
	}, watched...)
}
