package kube_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
	_ "github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv" // defines -update for go test ./... -update
)

func TestMain(m *testing.M) { os.Exit(kube.RunInNetns(m)) }

// TestNetnsHasNoWayOut checks the isolation the other tests rely on without
// sending a packet: the namespace has the expected addresses and no default
// route, so nothing can reach an address outside it.
func TestNetnsHasNoWayOut(t *testing.T) {
	name, inside := kube.CurrentNetns()
	if !inside {
		t.Fatal("test is not running inside the e2e network namespace")
	}
	t.Logf("network namespace %s", name)

	routes, err := os.ReadFile("/proc/net/route")
	if err != nil {
		t.Fatalf("read routing table: %v", err)
	}
	for _, line := range strings.Split(string(routes), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 1 && f[1] == "00000000" {
			t.Fatalf("namespace has a default route, traffic could leave it: %q", line)
		}
	}

	want := map[string]bool{"127.0.0.1": false, kube.NodeIP: false}
	for i := 0; i < kube.NumBackendIPs; i++ {
		want[kube.BackendIP(i)] = false
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatalf("list addresses: %v", err)
	}
	for _, a := range addrs {
		ip, _, err := net.ParseCIDR(a.String())
		if err != nil {
			t.Fatalf("parse address %q: %v", a, err)
		}
		if _, ok := want[ip.String()]; !ok && ip.To4() != nil {
			t.Errorf("unexpected address %s in the namespace", ip)
		}
		want[ip.String()] = true
	}
	for ip, found := range want {
		if !found {
			t.Errorf("address %s missing from the namespace", ip)
		}
	}
}

// TestEchoBackend serves on a backend address and fetches from it.
func TestEchoBackend(t *testing.T) {
	echo := kube.StartEcho(t, "web", kube.BackendIP(0)+":0")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	status, body, err := kube.Get(ctx, echo.URL+"/some/path?q=1")
	if err != nil {
		t.Fatal(err)
	}
	if status != 200 || body != "service=web\n" {
		t.Fatalf("GET %s = %d %q, want 200 %q", echo.URL, status, body, "service=web\n")
	}
	if got := echo.Requests(); got != 1 {
		t.Errorf("echo counted %d requests, want 1", got)
	}
}

// TestAPIServer drives a real etcd and kube-apiserver: the objects the
// sidecar consumes are accepted and read back, an EndpointSlice address is
// served by an echo backend, and the same client recovers after the API
// server restarts.
func TestAPIServer(t *testing.T) {
	c := kube.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	version, err := c.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	if version.GitVersion != kube.KubeVersion {
		t.Errorf("server reports %s, want %s (is the binary from scripts/install-kube.sh?)", version.GitVersion, kube.KubeVersion)
	}

	const ns = "e2e-basic"
	backendIP := kube.BackendIP(1)
	createFixture(ctx, t, c.Client, ns, backendIP)

	t.Run("read back", func(t *testing.T) { checkFixture(ctx, t, c.Client, ns, backendIP) })

	t.Run("loopback endpoint rejected", func(t *testing.T) {
		// Why the tests live in a network namespace at all.
		slice := endpointSlice(ns, "web-loopback", "127.0.0.1")
		_, err := c.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) {
			t.Fatalf("creating an EndpointSlice with 127.0.0.1: got %v, want Invalid", err)
		}
	})

	t.Run("endpoint serves traffic", func(t *testing.T) {
		slice, err := c.Client.DiscoveryV1().EndpointSlices(ns).Get(ctx, "web-abc", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get EndpointSlice: %v", err)
		}
		addr := net.JoinHostPort(slice.Endpoints[0].Addresses[0], fmt.Sprint(*slice.Ports[0].Port))
		kube.StartEcho(t, "web", addr)
		status, body, err := kube.Get(ctx, "http://"+addr+"/")
		if err != nil {
			t.Fatal(err)
		}
		if status != 200 || body != "service=web\n" {
			t.Fatalf("GET %s = %d %q", addr, status, body)
		}
	})

	t.Run("kubeconfig", func(t *testing.T) {
		path, err := c.WriteKubeconfig()
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			t.Fatalf("load kubeconfig: %v", err)
		}
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{}); err != nil {
			t.Fatalf("get Service through kubeconfig client: %v", err)
		}
	})

	t.Run("restart", func(t *testing.T) {
		start := time.Now()
		if err := c.StopAPIServer(); err != nil {
			t.Fatal(err)
		}
		t.Logf("API server stopped in %s", time.Since(start).Round(time.Millisecond))
		if _, err := c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
			t.Fatal("API request succeeded while the API server was stopped")
		}
		start = time.Now()
		if err := c.StartAPIServer(); err != nil {
			t.Fatal(err)
		}
		t.Logf("API server ready again in %s", time.Since(start).Round(time.Millisecond))
		// The same clientset works again and etcd kept the objects.
		checkFixture(ctx, t, c.Client, ns, backendIP)
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after-restart"}}
		if _, err := c.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create after restart: %v", err)
		}
	})
}

// createFixture creates what the sidecar reads: a Namespace, a Service, its
// EndpointSlice (no controller-manager makes one) and an Ingress.
func createFixture(ctx context.Context, t *testing.T, client kubernetes.Interface, ns, backendIP string) {
	t.Helper()
	if _, err := client.CoreV1().Namespaces().Create(ctx,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Namespace: %v", err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Service: %v", err)
	}
	if _, err := client.DiscoveryV1().EndpointSlices(ns).Create(ctx,
		endpointSlice(ns, "web-abc", backendIP), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create EndpointSlice with %s: %v", backendIP, err)
	}
	pathType := networkingv1.PathTypePrefix
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			Host: "web.example",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{
					Path:     "/",
					PathType: &pathType,
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80},
					}},
				}},
			}},
		}}},
	}
	if _, err := client.NetworkingV1().Ingresses(ns).Create(ctx, ing, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Ingress: %v", err)
	}
}

func endpointSlice(ns, name, ip string) *discoveryv1.EndpointSlice {
	port, ready := int32(8080), true
	portName, proto := "http", corev1.ProtocolTCP
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: "web"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{ip},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		}},
		Ports: []discoveryv1.EndpointPort{{Name: &portName, Port: &port, Protocol: &proto}},
	}
}

// checkFixture reads every object back and checks the fields the sidecar
// routes on.
func checkFixture(ctx context.Context, t *testing.T, client kubernetes.Interface, ns, backendIP string) {
	t.Helper()
	svc, err := client.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Service: %v", err)
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.Ports[0].TargetPort.IntValue() != 8080 {
		t.Errorf("Service read back as %+v", svc.Spec)
	}
	slices, err := client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=web",
	})
	if err != nil {
		t.Fatalf("list EndpointSlices: %v", err)
	}
	if len(slices.Items) != 1 || slices.Items[0].Endpoints[0].Addresses[0] != backendIP {
		t.Errorf("EndpointSlices read back as %+v", slices.Items)
	}
	ing, err := client.NetworkingV1().Ingresses(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Ingress: %v", err)
	}
	rule := ing.Spec.Rules[0]
	if rule.Host != "web.example" || rule.HTTP.Paths[0].Backend.Service.Name != "web" {
		t.Errorf("Ingress read back as %+v", ing.Spec)
	}
}
