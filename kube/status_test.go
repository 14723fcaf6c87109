package kube

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	e2ekube "github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
)

func TestParsePublishAddresses(t *testing.T) {
	got, err := ParsePublishAddresses(" 198.51.100.7, lb.example.com,,2001:db8::1 ")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"198.51.100.7", "lb.example.com", "2001:db8::1"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"lb_example.com", "http://lb.example.com", "fe80::1%eth0", "Upper.Example.com", "-x.example.com"} {
		if _, err := ParsePublishAddresses("198.51.100.7," + bad); err == nil {
			t.Errorf("%q: accepted", bad)
		} else if !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: error does not name it: %v", bad, err)
		}
	}

	for _, w := range []StatusWriter{
		{},
		{PublishService: "ns/svc", PublishAddresses: []string{"198.51.100.7"}},
		{PublishService: "svc"},
		{PublishAddresses: []string{"not an address"}},
	} {
		if err := w.Validate(); err == nil {
			t.Errorf("%+v: Validate accepted it", w)
		}
	}
}

func TestStatusDesired(t *testing.T) {
	ours := statusNormalize([]networkingv1.IngressLoadBalancerIngress{{Hostname: "lb.example.com"}, {IP: "198.51.100.7"}, {IP: "198.51.100.7"}})
	if want := []string{"lb.example.com", "198.51.100.7"}; !slices.Equal(statusStrings(ours), want) {
		// IP "" sorts before any IP, so the hostname entry comes first.
		t.Fatalf("normalized %q, want %q", statusStrings(ours), want)
	}
	other := networkingv1.IngressLoadBalancerIngress{IP: "192.0.2.1"}
	cur := []networkingv1.IngressLoadBalancerIngress{other, {IP: "198.51.100.7"}}
	if got := statusDesired(cur, ours, false); !statusEqual(got, []networkingv1.IngressLoadBalancerIngress{other}) {
		t.Errorf("not served: %q, want only the other controller's entry", statusStrings(got))
	}
	if got := statusDesired(cur, ours, true); !statusEqual(got, ours) {
		t.Errorf("served: %q, want exactly ours", statusStrings(got))
	}
}

// statusIngress creates an Ingress; with lb it then writes that status as
// another controller would.
func statusIngress(t *testing.T, c kubernetes.Interface, ns, name string, lb ...networkingv1.IngressLoadBalancerIngress) *networkingv1.Ingress {
	t.Helper()
	ctx := context.Background()
	pt := networkingv1.PathTypePrefix
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			Host: name + ".example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &pt, Backend: networkingv1.IngressBackend{
					Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}},
				}}},
			}},
		}}},
	}
	ing, err := c.NetworkingV1().Ingresses(ns).Create(ctx, ing, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Ingress %s/%s: %v", ns, name, err)
	}
	if len(lb) > 0 {
		ing.Status.LoadBalancer.Ingress = lb
		ing, err = c.NetworkingV1().Ingresses(ns).UpdateStatus(ctx, ing, metav1.UpdateOptions{FieldManager: "other-controller"})
		if err != nil {
			t.Fatalf("set status of Ingress %s/%s: %v", ns, name, err)
		}
	}
	return ing
}

func statusGet(t *testing.T, c kubernetes.Interface, ns, name string) *networkingv1.Ingress {
	t.Helper()
	ing, err := c.NetworkingV1().Ingresses(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Ingress %s/%s: %v", ns, name, err)
	}
	return ing
}

func statusList(t *testing.T, c kubernetes.Interface, ns string) []*networkingv1.Ingress {
	t.Helper()
	l, err := c.NetworkingV1().Ingresses(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list Ingresses: %v", err)
	}
	var out []*networkingv1.Ingress
	for i := range l.Items {
		out = append(out, &l.Items[i])
	}
	return out
}

// statusWant fails unless the Ingress's status lists exactly want, in
// order (IP or hostname of each entry).
func statusWant(t *testing.T, ing *networkingv1.Ingress, want ...string) {
	t.Helper()
	if got := statusStrings(ing.Status.LoadBalancer.Ingress); !slices.Equal(got, want) {
		t.Errorf("Ingress %s status %q, want %q", ing.Name, got, want)
	}
}

func statusSync(t *testing.T, w *StatusWriter, ings []*networkingv1.Ingress, served ...string) int {
	t.Helper()
	set := map[string]bool{}
	for _, s := range served {
		set[s] = true
	}
	n, err := w.Sync(context.Background(), ings, set)
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return n
}

func TestStatusWriter(t *testing.T) {
	start := time.Now()
	c := e2ekube.Start(t)
	t.Logf("API server ready in %v", time.Since(start).Round(time.Millisecond))

	t.Run("publish-address", func(t *testing.T) {
		ns := apiTestNamespace(t, c.Client, "status-address")
		other := networkingv1.IngressLoadBalancerIngress{IP: "192.0.2.1"}
		created := []*networkingv1.Ingress{
			statusIngress(t, c.Client, ns, "ours"),
			// Another controller's Ingress that still carries our address
			// from before it changed hands.
			statusIngress(t, c.Client, ns, "theirs", other, networkingv1.IngressLoadBalancerIngress{IP: "198.51.100.7"}),
			statusIngress(t, c.Client, ns, "untouched", other),
		}
		addrs, err := ParsePublishAddresses("lb.example.com,198.51.100.7,198.51.100.8")
		if err != nil {
			t.Fatal(err)
		}
		w := &StatusWriter{Client: c.Client, PublishAddresses: addrs, Log: zaptest.NewLogger(t)}

		if n := statusSync(t, w, created, ns+"/ours"); n != 2 {
			t.Errorf("first Sync wrote %d Ingresses, want 2 (ours, theirs)", n)
		}
		statusWant(t, statusGet(t, c.Client, ns, "ours"), "lb.example.com", "198.51.100.7", "198.51.100.8")
		statusWant(t, statusGet(t, c.Client, ns, "theirs"), "192.0.2.1")
		statusWant(t, statusGet(t, c.Client, ns, "untouched"), "192.0.2.1")

		// Nothing changed: no write, whether the objects are fresh or the
		// stale ones from before the first Sync (as an informer cache
		// that has not caught up would hand out: the conflict makes Sync
		// re-read and find nothing to do).
		before := statusList(t, c.Client, ns)
		if n := statusSync(t, w, before, ns+"/ours"); n != 0 {
			t.Errorf("unchanged Sync wrote %d Ingresses", n)
		}
		if n := statusSync(t, w, created, ns+"/ours"); n != 0 {
			t.Errorf("Sync with stale objects wrote %d Ingresses", n)
		}
		after := statusList(t, c.Client, ns)
		for i := range before {
			if before[i].ResourceVersion != after[i].ResourceVersion {
				t.Errorf("Ingress %s written although nothing changed: resourceVersion %s -> %s",
					before[i].Name, before[i].ResourceVersion, after[i].ResourceVersion)
			}
		}

		// "ours" stops being served, and another controller added its own
		// entry meanwhile: only our addresses go.
		ing := statusGet(t, c.Client, ns, "ours")
		ing.Status.LoadBalancer.Ingress = append(ing.Status.LoadBalancer.Ingress, other)
		if _, err := c.Client.NetworkingV1().Ingresses(ns).UpdateStatus(context.Background(), ing, metav1.UpdateOptions{FieldManager: "other-controller"}); err != nil {
			t.Fatal(err)
		}
		if n := statusSync(t, w, statusList(t, c.Client, ns)); n != 1 {
			t.Errorf("Sync after unserving wrote %d Ingresses, want 1", n)
		}
		statusWant(t, statusGet(t, c.Client, ns, "ours"), "192.0.2.1")
		statusWant(t, statusGet(t, c.Client, ns, "untouched"), "192.0.2.1")

		// A status is written with our field manager, so `kubectl get
		// ingress --show-managed-fields` tells who wrote it.
		if mgr := statusManagers(statusGet(t, c.Client, ns, "theirs")); !slices.Contains(mgr, DefaultFieldManager) {
			t.Errorf("status managers %q do not include %q", mgr, DefaultFieldManager)
		}
	})

	t.Run("publish-service", func(t *testing.T) {
		ctx := context.Background()
		ns := apiTestNamespace(t, c.Client, "status-service")
		svcs := c.Client.CoreV1().Services(ns)
		svc, err := svcs.Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "haproxy"},
			Spec: corev1.ServiceSpec{
				Type:     corev1.ServiceTypeLoadBalancer,
				Selector: map[string]string{"app": "haproxy"},
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		statusIngress(t, c.Client, ns, "web")
		w := &StatusWriter{Client: c.Client, PublishService: ns + "/haproxy", Log: zaptest.NewLogger(t)}

		// No load balancer address and no external IP yet: the ClusterIP.
		statusSync(t, w, statusList(t, c.Client, ns), ns+"/web")
		statusWant(t, statusGet(t, c.Client, ns, "web"), svc.Spec.ClusterIP)

		svc.Spec.ExternalIPs = []string{"198.51.100.20", "198.51.100.10"}
		if svc, err = svcs.Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		statusSync(t, w, statusList(t, c.Client, ns), ns+"/web")
		statusWant(t, statusGet(t, c.Client, ns, "web"), "198.51.100.10", "198.51.100.20")

		// The cloud's load balancer wins over external IPs.
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.5"}, {Hostname: "lb.example.net"}}
		if _, err = svcs.UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		statusSync(t, w, statusList(t, c.Client, ns), ns+"/web")
		statusWant(t, statusGet(t, c.Client, ns, "web"), "lb.example.net", "203.0.113.5")

		// A missing Service is an error, not an empty status.
		w.PublishService = ns + "/missing"
		if _, err := w.Sync(ctx, statusList(t, c.Client, ns), map[string]bool{ns + "/web": true}); err == nil || !strings.Contains(err.Error(), "missing") {
			t.Errorf("Sync with a missing publish Service: err = %v", err)
		}
		statusWant(t, statusGet(t, c.Client, ns, "web"), "lb.example.net", "203.0.113.5")
	})
}

// statusManagers lists the field managers of the status subresource.
func statusManagers(ing *networkingv1.Ingress) []string {
	var out []string
	for _, f := range ing.ManagedFields {
		if f.Subresource == "status" {
			out = append(out, f.Manager)
		}
	}
	return out
}
