// Package cluster holds end-to-end tests of `haproxy-sidecar run` driven by
// a real kube-apiserver and etcd. Everything (API server, echo backends on
// 198.18.0.0/15 addresses, HAProxy, the sidecar) runs inside a network
// namespace the test binary creates; no traffic leaves it.
package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(kube.RunInNetns(m)) }

const controllerName = "haproxy-sidecar.io/controller"

// env is one cluster with a sidecar serving it.
type env struct {
	t       *testing.T
	cluster *kube.Cluster
	client  kubernetes.Interface
	ns      string
	// sidecar is the one requests go through.
	sidecar *sidecartest.Sidecar
}

// start brings up etcd, the API server, a namespace, our IngressClass
// (default) and a sidecar with HAProxy.
func start(t *testing.T, haproxy string, extra ...string) *env {
	t.Helper()
	c := kube.Start(t)
	e := &env{t: t, cluster: c, client: c.Client, ns: "e2e-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)}
	e.create(namespace(e.ns))
	e.create(defaultClass())
	e.startSidecar(haproxy, extra...)
	return e
}

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// ourClassName is deploy/'s IngressClass name (not "haproxy", the
// default class of haproxytech's and haproxy-ingress's controllers).
const ourClassName = "haproxy-sidecar"

// defaultClass is our IngressClass, the default one.
func defaultClass() *networkingv1.IngressClass {
	return &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: ourClassName, Annotations: map[string]string{"ingressclass.kubernetes.io/is-default-class": "true"}},
		Spec:       networkingv1.IngressClassSpec{Controller: controllerName},
	}
}

// startSidecar starts a sidecar reading the cluster, with --haproxy-start,
// and waits until it is ready.
func (e *env) startSidecar(haproxy string, extra ...string) *sidecartest.Sidecar {
	t := e.t
	kubeconfig, err := e.cluster.WriteKubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	e.sidecar = sidecartest.Start(t, sidecartest.Options{HAProxy: haproxy, Kubeconfig: kubeconfig,
		MinReloadInterval: 100 * time.Millisecond, Args: extra, Wait: sidecartest.WaitReady})
	return e.sidecar
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

// create makes any of the objects these tests use, in the test namespace
// when namespaced.
func (e *env) create(obj any) {
	e.t.Helper()
	var err error
	ctx, c := e.ctx(), e.client
	switch o := obj.(type) {
	case *corev1.Namespace:
		_, err = c.CoreV1().Namespaces().Create(ctx, o, metav1.CreateOptions{})
	case *networkingv1.IngressClass:
		_, err = c.NetworkingV1().IngressClasses().Create(ctx, o, metav1.CreateOptions{})
	case *networkingv1.Ingress:
		_, err = c.NetworkingV1().Ingresses(e.ns).Create(ctx, o, metav1.CreateOptions{})
	case *corev1.Service:
		_, err = c.CoreV1().Services(e.ns).Create(ctx, o, metav1.CreateOptions{})
	case *discoveryv1.EndpointSlice:
		_, err = c.DiscoveryV1().EndpointSlices(e.ns).Create(ctx, o, metav1.CreateOptions{})
	case *corev1.Secret:
		_, err = c.CoreV1().Secrets(e.ns).Create(ctx, o, metav1.CreateOptions{})
	default:
		e.t.Fatalf("create: unsupported %T", obj)
	}
	if err != nil {
		e.t.Fatalf("create %T: %v", obj, err)
	}
}

// expect waits until a request through HAProxy gets the wanted answer:
// "service=<name>" for an echo backend, or "status:<code>".
func (e *env) expect(host, path, want string) {
	e.t.Helper()
	e.sidecar.Eventually(20*time.Second, fmt.Sprintf("http://%s%s -> %s", host, path, want), func() error {
		got, err := e.get(host, path)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("got %s", got)
		}
		return nil
	})
}

func (e *env) get(host, path string) (string, error) {
	status, body, err := sidecartest.Get(e.sidecar.HTTPPort, host, path)
	if err != nil {
		return "", err
	}
	if status == 200 && strings.HasPrefix(body, "service=") {
		return strings.TrimSpace(body), nil
	}
	return "status:" + strconv.Itoa(status), nil
}

// service creates a Service with one port "http" (80) and, when addrs are
// given, an EndpointSlice with them ready on targetPort.
func (e *env) service(name string, targetPort int32, addrs ...string) {
	e.t.Helper()
	e.create(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	})
	if len(addrs) > 0 {
		e.create(endpointSlice(name, targetPort, addrs...))
	}
}

func endpointSlice(service string, port int32, addrs ...string) *discoveryv1.EndpointSlice {
	name, ready := "http", true
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: service + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
	}
	for _, a := range addrs {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	return es
}

func ingress(name, host, path, service string) *networkingv1.Ingress {
	prefix := networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			Host: host,
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: path, PathType: &prefix,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: service, Port: networkingv1.ServiceBackendPort{Name: "http"}}},
			}}}},
		}}},
	}
}

// Create, update and delete of Ingresses, Services and EndpointSlices, and
// a switch of IngressClass, are served; on HAProxy 2.6 and 3.0.
func TestClusterRouting(t *testing.T) {
	for version, bin := range map[string]string{"2.6": testenv.HAProxy26(t), "3.0": testenv.HAProxy30(t)} {
		t.Run("haproxy-"+version, func(t *testing.T) {
			e := start(t, bin)
			web := kube.StartEcho(t, "web", kube.BackendIP(0)+":8080")
			api := kube.StartEcho(t, "api", kube.BackendIP(1)+":8080")
			_ = web
			e.service("web", 8080, kube.BackendIP(0))
			e.create(ingress("web", "web.test", "/", "web"))
			e.expect("web.test", "/", "service=web")
			e.expect("other.test", "/", "status:404")

			ctx, nc := e.ctx(), e.client.NetworkingV1().Ingresses(e.ns)
			// EndpointSlice update: the endpoint moves to the api backend.
			es, err := e.client.DiscoveryV1().EndpointSlices(e.ns).Get(ctx, "web-1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			es.Endpoints[0].Addresses = []string{kube.BackendIP(1)}
			if _, err := e.client.DiscoveryV1().EndpointSlices(e.ns).Update(ctx, es, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			e.expect("web.test", "/", "service=api")
			if api.Requests() == 0 {
				t.Errorf("the api echo backend saw no request")
			}
			// EndpointSlice delete: no endpoints, 503.
			if err := e.client.DiscoveryV1().EndpointSlices(e.ns).Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			e.expect("web.test", "/", "status:503")
			e.create(endpointSlice("web", 8080, kube.BackendIP(0)))
			e.expect("web.test", "/", "service=web")

			// Ingress update: another host.
			ing, err := nc.Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ing.Spec.Rules[0].Host = "www.test"
			if _, err := nc.Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			e.expect("www.test", "/", "service=web")
			e.expect("web.test", "/", "status:404")

			// IngressClass switch: another controller's class, then ours.
			other := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Spec: networkingv1.IngressClassSpec{Controller: "example.com/other"}}
			e.create(other)
			setClass := func(name string) {
				t.Helper()
				ing, err := nc.Get(ctx, "web", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				ing.Spec.IngressClassName = &name
				if _, err := nc.Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			setClass("other")
			e.expect("www.test", "/", "status:404")
			setClass(ourClassName)
			e.expect("www.test", "/", "service=web")
			// The class itself changes controller: re-evaluated.
			ourClass, err := e.client.NetworkingV1().IngressClasses().Get(ctx, ourClassName, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.client.NetworkingV1().IngressClasses().Delete(ctx, ourClassName, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			e.expect("www.test", "/", "status:404")
			ourClass.ResourceVersion = ""
			e.create(ourClass)
			e.expect("www.test", "/", "service=web")

			// Service delete: 503; Ingress delete: 404.
			if err := e.client.CoreV1().Services(e.ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			e.expect("www.test", "/", "status:503")
			if err := nc.Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			e.expect("www.test", "/", "status:404")

			// One log stream: client-go's own lines (leader election's)
			// come through zap, and every line is JSON.
			if len(e.sidecar.LogLines(`"logger":"klog"`, "lease")) == 0 {
				t.Errorf("no leader-election line of client-go came through zap (logger klog)")
			}
			for _, l := range strings.Split(strings.TrimSpace(e.sidecar.Logs.String()), "\n") {
				if !json.Valid([]byte(l)) {
					t.Errorf("a log line is not JSON: %q", l)
				}
			}
		})
	}
}

// The API server going away leaves HAProxy serving; informers resume when
// it is back and later changes are served.
func TestClusterAPIServerRestart(t *testing.T) {
	e := start(t, testenv.HAProxy26(t))
	kube.StartEcho(t, "web", kube.BackendIP(0)+":8080")
	e.service("web", 8080, kube.BackendIP(0))
	e.create(ingress("web", "web.test", "/", "web"))
	e.expect("web.test", "/", "service=web")

	if err := e.cluster.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if got, err := e.get("web.test", "/"); err != nil || got != "service=web" {
			t.Fatalf("while the API server is down: %q %v", got, err)
		}
	}
	if status, _, err := sidecartest.Get(e.sidecar.HealthPort, "localhost", "/readyz"); err != nil || status != 200 {
		t.Errorf("readyz %d %v while the API server is down; HAProxy still serves", status, err)
	}
	if err := e.cluster.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	e.create(ingress("api", "api.test", "/", "web"))
	e.expect("api.test", "/", "service=web")
	e.expect("web.test", "/", "service=web")
}

// httpsGet makes one HTTPS request with SNI and returns the certificate's
// organisation (set to a marker by tlsSecret). Any answer but 200 is an
// error unless anyStatus.
func (e *env) httpsGet(host string, anyStatus ...bool) (string, error) {
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(e.sidecar.HTTPSPort), 5*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Client(conn, &tls.Config{ServerName: host, InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if _, err := fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host); err != nil {
		return "", err
	}
	buf := make([]byte, 512)
	n, err := tc.Read(buf)
	if err != nil {
		return "", err
	}
	if len(anyStatus) == 0 && !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200") {
		return "", fmt.Errorf("answer %q", strings.SplitN(string(buf[:n]), "\r\n", 2)[0])
	}
	org := tc.ConnectionState().PeerCertificates[0].Subject.Organization
	if len(org) == 0 {
		return "", nil
	}
	return org[0], nil
}

func (e *env) expectCert(host, marker string) {
	e.t.Helper()
	e.sidecar.Eventually(20*time.Second, "certificate "+marker+" for "+host, func() error {
		got, err := e.httpsGet(host, true)
		if err != nil {
			return err
		}
		if got != marker {
			return fmt.Errorf("certificate %q", got)
		}
		return nil
	})
}

// tlsSecret is a kubernetes.io/tls Secret with a fresh self-signed EC
// certificate for host; marker goes into its Organization.
func tlsSecret(t *testing.T, name, host, marker string) *corev1.Secret {
	t.Helper()
	cert, key := testenv.SelfSigned(t, host, marker)
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key},
	}
}

// Two sidecars serve the same cluster: only the Lease holder writes status
// and Events; when it stops, the other takes over. Bad objects get Warning
// Events (once), served Ingresses a Normal one. Settings come from the
// ConfigMap named by --configmap, including the default certificate.
func TestClusterStatusEventsAndSettings(t *testing.T) {
	bin := testenv.HAProxy26(t)
	c := kube.Start(t)
	e := &env{t: t, cluster: c, client: c.Client, ns: "e2e-status"}
	e.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}})
	e.create(&networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: ourClassName, Annotations: map[string]string{"ingressclass.kubernetes.io/is-default-class": "true"}},
		Spec:       networkingv1.IngressClassSpec{Controller: controllerName},
	})
	e.create(tlsSecret(t, "fallback-tls", "fallback.invalid", "fallback"))
	if _, err := c.Client.CoreV1().ConfigMaps(e.ns).Create(e.ctx(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings"},
		Data:       map[string]string{"default-certificate": e.ns + "/fallback-tls", "timeout-client": "7s", "no-such-key": "x"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	common := []string{"--election-namespace", e.ns, "--configmap", e.ns + "/settings", "--status-sync-interval", "1s"}
	first := e.startSidecar(bin, append(common, "--publish-address", "198.18.1.1")...)
	second := e.startSidecar(bin, append(common, "--publish-address", "198.18.1.2")...)
	// leader reads a replica's /status: whether it holds the Lease.
	leader := func(s *sidecartest.Sidecar) bool {
		st, body, err := s.TryStatus()
		if err != nil || st.Leader == nil {
			t.Fatalf("/status of the replica on port %d: %v, %q", s.DebugPort, err, body)
		}
		return *st.Leader
	}

	kube.StartEcho(t, "web", kube.BackendIP(0)+":8080")
	e.service("web", 8080, kube.BackendIP(0))
	bad := ingress("web", "web.test", "/", "web")
	bad.Spec.Rules[0].HTTP.Paths = append(bad.Spec.Rules[0].HTTP.Paths, networkingv1.HTTPIngressPath{
		Path: "/a b", PathType: bad.Spec.Rules[0].HTTP.Paths[0].PathType, Backend: bad.Spec.Rules[0].HTTP.Paths[0].Backend})
	e.create(bad)
	e.expect("web.test", "/", "service=web") // through the second sidecar

	status := func() []string {
		ing, err := c.Client.NetworkingV1().Ingresses(e.ns).Get(e.ctx(), "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var ips []string
		for _, lb := range ing.Status.LoadBalancer.Ingress {
			ips = append(ips, lb.IP)
		}
		return ips
	}
	// The first to start holds the Lease; its address only, and it stays
	// that way while both run and re-sync every second.
	second.Eventually(30*time.Second, "status from the leader", func() error {
		if got := status(); len(got) != 1 || got[0] != "198.18.1.1" {
			return fmt.Errorf("status %v", got)
		}
		return nil
	})
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if got := status(); len(got) != 1 || got[0] != "198.18.1.1" {
			t.Fatalf("status changed to %v while the leader runs", got)
		}
	}
	if !leader(first) || leader(second) {
		t.Errorf("/status leader: first %v, second %v; want only the first", leader(first), leader(second))
	}

	// Events: one Warning for the bad path, one Normal Served; not one per
	// replica or per render. Only the Ingress's: the API server's own
	// repair of Service IPs may write one about Service "web".
	events := func() map[string]int32 {
		list, err := c.Client.CoreV1().Events(e.ns).List(e.ctx(), metav1.ListOptions{FieldSelector: "involvedObject.name=web,involvedObject.kind=Ingress"})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int32{}
		for _, ev := range list.Items {
			out[ev.Type+"/"+ev.Reason+": "+ev.Message] += ev.Count
		}
		return out
	}
	second.Eventually(20*time.Second, "events", func() error {
		ev := events()
		warn, served := 0, 0
		for k, n := range ev {
			if strings.HasPrefix(k, "Warning/") && strings.Contains(k, "spec.rules[0].http.paths[1].path") {
				warn += int(n)
			}
			if strings.HasPrefix(k, "Normal/Served") {
				served += int(n)
			}
		}
		if warn != 1 || served != 1 {
			return fmt.Errorf("events %v", ev)
		}
		return nil
	})
	// More passes (a new Service) do not repeat them.
	e.service("more", 8080, kube.BackendIP(1))
	time.Sleep(time.Second)
	for k, n := range events() {
		if n != 1 {
			t.Errorf("event %q counted %d times", k, n)
		}
	}

	// Settings: the default certificate answers unknown SNI.
	e.sidecar = first
	e.expectCert("unknown.test", "fallback")

	// The leader stops: the other replica takes over the status.
	first.Stop()
	second.Eventually(30*time.Second, "status from the new leader", func() error {
		if got := status(); len(got) != 1 || got[0] != "198.18.1.2" {
			return fmt.Errorf("status %v", got)
		}
		return nil
	})
	if !leader(second) {
		t.Errorf("/status of the remaining replica does not say it leads")
	}

	// The Ingress stops being ours: our address is removed.
	ing, err := c.Client.NetworkingV1().Ingresses(e.ns).Get(e.ctx(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	otherClass := "someone-else"
	ing.Spec.IngressClassName = &otherClass
	if _, err := c.Client.NetworkingV1().Ingresses(e.ns).Update(e.ctx(), ing, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	second.Eventually(30*time.Second, "status cleared", func() error {
		if got := status(); len(got) != 0 {
			return fmt.Errorf("status %v", got)
		}
		return nil
	})
}

// Annotations in Kubernetes mode: the htpasswd Secret an Ingress names is
// watched (401 for everyone while it is missing, then its users get in),
// and ingress-nginx's names are read with --annotations-compat nginx.
func TestClusterAnnotations(t *testing.T) {
	e := start(t, testenv.HAProxy26(t), "--annotations-compat", "nginx")
	kube.StartEcho(t, "web", kube.BackendIP(0)+":8080")
	e.service("web", 8080, kube.BackendIP(0))

	locked := ingress("locked", "locked.test", "/", "web")
	locked.Annotations = map[string]string{"haproxy-sidecar.io/auth-basic-secret": "users", "haproxy-sidecar.io/auth-realm": "team"}
	e.create(locked)
	alice := func() error {
		got, err := e.getAuth("locked.test", "alice", "secret")
		if err == nil && got != "service=web" {
			err = fmt.Errorf("with alice's password: %s", got)
		}
		return err
	}
	// The Secret does not exist yet: closed to everyone.
	e.expect("locked.test", "/", "status:401")
	if got, err := e.getAuth("locked.test", "alice", "secret"); err != nil || got != "status:401" {
		t.Errorf("without the Secret, alice gets %s (%v), want status:401", got, err)
	}
	// SHA-crypt of "secret" (openssl passwd -6 -salt saltsalt secret).
	e.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "users"}, Data: map[string][]byte{
		"auth": []byte("alice:$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1\n")}})
	e.sidecar.Eventually(20*time.Second, "alice gets in once the Secret exists", alice)
	e.expect("locked.test", "/", "status:401")

	// ingress-nginx's allowlist: the client (loopback) is outside it.
	guarded := ingress("guarded", "guarded.test", "/", "web")
	guarded.Annotations = map[string]string{"nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8"}
	e.create(guarded)
	e.expect("guarded.test", "/", "status:403")
	e.expect("locked.test", "/", "status:401")

	// An ingress-nginx canary beside its primary: at weight 100 it takes
	// every request; with the primary deleted its path is not served.
	kube.StartEcho(t, "canary", kube.BackendIP(1)+":8080")
	e.service("canary", 8080, kube.BackendIP(1))
	e.create(ingress("shop", "shop.test", "/", "web"))
	e.expect("shop.test", "/", "service=web")
	canary := ingress("shop-canary", "shop.test", "/", "canary")
	canary.Annotations = map[string]string{"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "100"}
	e.create(canary)
	e.expect("shop.test", "/", "service=canary")
	if err := e.client.NetworkingV1().Ingresses(e.ns).Delete(e.ctx(), "shop", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.expect("shop.test", "/", "status:404")
	e.expect("guarded.test", "/", "status:403")
}

// getAuth is get with Basic credentials.
func (e *env) getAuth(host, user, pass string) (string, error) {
	req, err := http.NewRequestWithContext(e.ctx(), "GET", "http://127.0.0.1:"+strconv.Itoa(e.sidecar.HTTPPort)+"/", nil)
	if err != nil {
		return "", err
	}
	req.Host = host
	req.SetBasicAuth(user, pass)
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 && strings.HasPrefix(string(body), "service=") {
		return strings.TrimSpace(string(body)), nil
	}
	return "status:" + strconv.Itoa(resp.StatusCode), nil
}
