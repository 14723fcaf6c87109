package kube

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	e2ekube "github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// The source hands out what the API server holds, notifies on changes, and
// watches exactly the Secrets Ingresses (and the settings) reference:
// never a cache of every Secret.
func TestSourceFollowsTheAPIServer(t *testing.T) {
	c := e2ekube.Start(t)
	ctx := context.Background()
	ns := apiTestNamespace(t, c.Client, "source")
	other := apiTestNamespace(t, c.Client, "source-other")

	var notified atomic.Int64
	// The TCP services ConfigMap is read by name, even outside
	// --watch-namespace.
	src := runSource(t, SourceConfig{Client: c.Client, Namespace: ns, SettingsConfigMap: ns + "/settings",
		TCPServicesConfigMap: other + "/tcp-services", Notify: func() { notified.Add(1) }})

	secret := func(namespace, name string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: []byte("x"), corev1.TLSPrivateKeyKey: []byte("y")}}
	}
	for _, s := range []*corev1.Secret{secret(ns, "used"), secret(ns, "unused"), secret(ns, "default-cert"), secret(other, "used")} {
		if _, err := c.Client.CoreV1().Secrets(s.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: networkingv1.IngressSpec{
			TLS: []networkingv1.IngressTLS{{Hosts: []string{"web.test"}, SecretName: "used"}},
			DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
				Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}},
		},
	}
	before := notified.Load()
	if _, err := c.Client.NetworkingV1().Ingresses(ns).Create(ctx, ing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// An Ingress elsewhere is outside --watch-namespace.
	ing2 := ing.DeepCopy()
	ing2.Namespace = other
	if _, err := c.Client.NetworkingV1().Ingresses(other).Create(ctx, ing2, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	settings := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "settings"},
		Data: map[string]string{DefaultCertificateKey: ns + "/default-cert"}}
	if _, err := c.Client.CoreV1().ConfigMaps(ns).Create(ctx, settings, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tcp := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: other, Name: "tcp-services"},
		Data: map[string]string{"5432": ns + "/db:5432"}}
	if _, err := c.Client.CoreV1().ConfigMaps(other).Create(ctx, tcp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	unrelated := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unrelated"}}
	if _, err := c.Client.CoreV1().ConfigMaps(ns).Create(ctx, unrelated, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	want := []string{ns + "/default-cert", ns + "/used"}
	apiTestEventually(t, 10*time.Second, func() (bool, string) {
		in, _, err := src.Inputs(ctx)
		if err != nil {
			return false, err.Error()
		}
		var secrets []string
		for _, s := range in.Secrets {
			secrets = append(secrets, s.Namespace+"/"+s.Name)
		}
		slices.Sort(secrets)
		state := fmt.Sprintf("ingresses %d configmaps %d secrets %v watched %v", len(in.Ingresses), len(in.ConfigMaps), secrets, src.WatchedSecrets())
		var cms []string
		for _, cm := range in.ConfigMaps {
			cms = append(cms, cm.Namespace+"/"+cm.Name)
		}
		slices.Sort(cms)
		state += fmt.Sprintf(" %v", cms)
		return len(in.Ingresses) == 1 && slices.Equal(cms, slices.Sorted(slices.Values([]string{other + "/tcp-services", ns + "/settings"}))) &&
			slices.Equal(secrets, want) && slices.Equal(src.WatchedSecrets(), want), state
	})
	if notified.Load() == before {
		t.Error("no notification for the changes")
	}

	// The reference goes away: so does the watch.
	if err := c.Client.NetworkingV1().Ingresses(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	apiTestEventually(t, 10*time.Second, func() (bool, string) {
		w := src.WatchedSecrets()
		return slices.Equal(w, []string{ns + "/default-cert"}), fmt.Sprint(w)
	})

	// A kind's list is handed out again while none of its objects
	// changed (render and the controller skip it then), and listed anew
	// once one did.
	web := ing.DeepCopy()
	web.Name = "web2"
	if _, err := c.Client.NetworkingV1().Ingresses(ns).Create(ctx, web, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Events of the earlier steps may still arrive (each lists the store
	// again): two calls in a row without one hand out the same lists.
	var first render.Inputs
	apiTestEventually(t, 10*time.Second, func() (bool, string) {
		before, _, err := src.Inputs(ctx)
		if err != nil || len(before.Ingresses) != 1 {
			return false, fmt.Sprintf("%d Ingresses, %v", len(before.Ingresses), err)
		}
		first, _, err = src.Inputs(ctx)
		if err != nil || len(first.Ingresses) != 1 {
			return false, fmt.Sprintf("%d Ingresses, %v", len(first.Ingresses), err)
		}
		return &first.Ingresses[0] == &before.Ingresses[0] && &first.ConfigMaps[0] == &before.ConfigMaps[0] &&
				first.Unchanged.Has(render.IngressesKind|render.ConfigMapsKind),
			fmt.Sprintf("unchanged lists not handed out again, or not said to be (unchanged %b)", first.Unchanged)
	})
	web, err := c.Client.NetworkingV1().Ingresses(ns).Get(ctx, "web2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	web.Labels = map[string]string{"changed": "yes"}
	if _, err := c.Client.NetworkingV1().Ingresses(ns).Update(ctx, web, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Each new Ingress list comes with how it differs from the one
	// before it: together, the old object removed and the new one added.
	prev := first.Ingresses
	var added, removed []*networkingv1.Ingress
	apiTestEventually(t, 10*time.Second, func() (bool, string) {
		now, _, err := src.Inputs(ctx)
		if err != nil || len(now.Ingresses) != 1 {
			return false, fmt.Sprint(err)
		}
		if now.Unchanged.Has(render.IngressesKind) && &now.Ingresses[0] != &prev[0] {
			t.Fatal("a new Ingress list said to be unchanged")
		}
		if !now.Unchanged.Has(render.IngressesKind) {
			d := now.IngressDelta
			if d == nil || len(d.Since) != 1 || &d.Since[0] != &prev[0] {
				t.Fatalf("a new Ingress list without a delta from the one before it: %+v", d)
			}
			added, removed = append(added, d.Added...), append(removed, d.Removed...)
		}
		prev = now.Ingresses
		if now.Ingresses[0].Labels["changed"] != "yes" {
			return false, "the update is not in the list yet"
		}
		if !slices.Contains(added, now.Ingresses[0]) || !slices.Contains(removed, first.Ingresses[0]) {
			t.Fatalf("the deltas added %d and removed %d objects, not the update", len(added), len(removed))
		}
		if &now.ConfigMaps[0] != &first.ConfigMaps[0] {
			return false, "the ConfigMap list was made again although no ConfigMap changed"
		}
		return true, ""
	})

	// EndpointSlices (and Services, the same way) too: an endpoint move
	// is told as the old slice removed and the new one added.
	es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-1",
		Labels: map[string]string{discoveryv1.LabelServiceName: "web"}}, AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"198.18.0.1"}}}}
	if es, err = c.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, es, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var before1 render.Inputs
	apiTestEventually(t, 10*time.Second, func() (bool, string) {
		before1, _, err = src.Inputs(ctx)
		return err == nil && len(before1.EndpointSlices) == 1, fmt.Sprintf("%d EndpointSlices, %v", len(before1.EndpointSlices), err)
	})
	es.Endpoints[0].Addresses = []string{"198.18.0.2"}
	if _, err := c.Client.DiscoveryV1().EndpointSlices(ns).Update(ctx, es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	prevSlices := before1.EndpointSlices
	var addedSlices, removedSlices []*discoveryv1.EndpointSlice
	apiTestEventually(t, 10*time.Second, func() (bool, string) {
		now, _, err := src.Inputs(ctx)
		if err != nil || len(now.EndpointSlices) != 1 {
			return false, fmt.Sprint(err)
		}
		if !now.Unchanged.Has(render.EndpointSlicesKind) {
			d := now.EndpointSliceDelta
			if d == nil || len(d.Since) != 1 || &d.Since[0] != &prevSlices[0] {
				t.Fatalf("a new EndpointSlice list without a delta from the one before it: %+v", d)
			}
			addedSlices, removedSlices = append(addedSlices, d.Added...), append(removedSlices, d.Removed...)
		}
		prevSlices = now.EndpointSlices
		if now.EndpointSlices[0].Endpoints[0].Addresses[0] != "198.18.0.2" {
			return false, "the update is not in the list yet"
		}
		if !slices.Contains(addedSlices, now.EndpointSlices[0]) || !slices.Contains(removedSlices, before1.EndpointSlices[0]) {
			t.Fatalf("the deltas added %d and removed %d EndpointSlices, not the update", len(addedSlices), len(removedSlices))
		}
		return true, ""
	})
}

// Cached objects drop what render never reads: managedFields and
// kubectl's last-applied copy (a Secret's data in plain text) everywhere,
// and each endpoint's Pod reference, node, zone and hints. The status
// writer patches the status alone, so writing an Ingress's status from
// the trimmed copy leaves its annotations on the server as they were.
func TestSourceTrimsCachedObjects(t *testing.T) {
	c := e2ekube.Start(t)
	ctx := context.Background()
	ns := apiTestNamespace(t, c.Client, "trim")
	applied := map[string]string{lastApplied: `{"data":{"tls.key":"c2VjcmV0"}}`, "keep": "me"}
	if _, err := c.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tls", Annotations: applied}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: []byte("x"), corev1.TLSPrivateKeyKey: []byte("y")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The Service has kubectl's copy alone: none is kept.
	if _, err := c.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web", Annotations: map[string]string{lastApplied: applied[lastApplied]}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ready, node, zone, port := true, "node-1", "zone-a", int32(8080)
	if _, err := c.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Port: &port}},
		Endpoints: []discoveryv1.Endpoint{{
			Addresses: []string{"198.18.0.10"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "web-7d4b9c-x2x9q", UID: "0b7e5d9a-1111-4c1d-9a43-5f0e4a2b7c11"},
			NodeName:  &node, Zone: &zone,
			Hints: &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: zone}}},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.NetworkingV1().Ingresses(ns).Create(ctx, &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web", Annotations: applied},
		Spec: networkingv1.IngressSpec{TLS: []networkingv1.IngressTLS{{Hosts: []string{"web.test"}, SecretName: "tls"}},
			DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
				Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	src := runSource(t, SourceConfig{Client: c.Client, Namespace: ns, Notify: func() {}})
	var in render.Inputs
	var err error
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if in, _, err = src.Inputs(ctx); err == nil && len(in.Secrets) == 1 && len(in.Services) == 1 && len(in.Ingresses) == 1 && len(in.EndpointSlices) == 1 {
			break
		}
	}
	if len(in.Secrets) != 1 || len(in.Services) != 1 || len(in.Ingresses) != 1 || len(in.EndpointSlices) != 1 {
		t.Fatalf("inputs: %d secrets, %d services, %d ingresses, %d slices", len(in.Secrets), len(in.Services), len(in.Ingresses), len(in.EndpointSlices))
	}
	for what, m := range map[string]*metav1.ObjectMeta{"Secret": &in.Secrets[0].ObjectMeta, "Ingress": &in.Ingresses[0].ObjectMeta} {
		if len(m.ManagedFields) != 0 || m.Annotations[lastApplied] != "" || m.Annotations["keep"] != "me" {
			t.Errorf("%s: managedFields %d, annotations %v", what, len(m.ManagedFields), m.Annotations)
		}
	}
	if m := in.Services[0].ObjectMeta; len(m.ManagedFields) != 0 || m.Annotations != nil {
		t.Errorf("Service: managedFields %d, annotations %#v, want none", len(m.ManagedFields), m.Annotations)
	}
	e := in.EndpointSlices[0].Endpoints[0]
	if e.TargetRef != nil || e.NodeName != nil || e.Zone != nil || e.Hints != nil {
		t.Errorf("endpoint not trimmed: %+v", e)
	}
	if !slices.Equal(e.Addresses, []string{"198.18.0.10"}) || e.Conditions.Ready == nil || !*e.Conditions.Ready || len(in.EndpointSlices[0].Ports) != 1 {
		t.Errorf("endpoint lost what render reads: %+v, ports %v", e, in.EndpointSlices[0].Ports)
	}

	// The status written from the trimmed copy: the server's object keeps
	// both annotations.
	addrs, err := ParsePublishAddresses("198.51.100.7")
	if err != nil {
		t.Fatal(err)
	}
	w := &StatusWriter{Client: c.Client, PublishAddresses: addrs, Log: zaptest.NewLogger(t)}
	if n := statusSync(t, w, in.Ingresses, ns+"/web"); n != 1 {
		t.Fatalf("Sync wrote %d Ingresses, want 1", n)
	}
	got := statusGet(t, c.Client, ns, "web")
	statusWant(t, got, "198.51.100.7")
	if !maps.Equal(got.Annotations, applied) {
		t.Errorf("annotations after the status write: %v, want %v", got.Annotations, applied)
	}
	// Unserved again, from the cache's (trimmed) copy of the written
	// object.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if in, _, err = src.Inputs(ctx); err == nil && len(in.Ingresses) == 1 && len(in.Ingresses[0].Status.LoadBalancer.Ingress) == 1 {
			break
		}
	}
	if a := in.Ingresses[0].Annotations; len(in.Ingresses[0].Status.LoadBalancer.Ingress) != 1 || a[lastApplied] != "" {
		t.Fatalf("the cache's copy after the write: status %v, annotations %v", in.Ingresses[0].Status, a)
	}
	if n := statusSync(t, w, in.Ingresses); n != 1 {
		t.Fatalf("Sync wrote %d Ingresses, want 1", n)
	}
	got = statusGet(t, c.Client, ns, "web")
	statusWant(t, got)
	if !maps.Equal(got.Annotations, applied) {
		t.Errorf("annotations after the second status write: %v, want %v", got.Annotations, applied)
	}
}

// A referenced Secret is followed through its life: missing at first,
// then created, updated and deleted, each change notified and in the
// next Inputs; a relist that finds it as it was is not a change.
func TestSourceFollowsAReferencedSecret(t *testing.T) {
	c := e2ekube.Start(t)
	ctx := context.Background()
	ns := apiTestNamespace(t, c.Client, "secret-life")
	if _, err := c.Client.NetworkingV1().Ingresses(ns).Create(ctx, &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: networkingv1.IngressSpec{TLS: []networkingv1.IngressTLS{{Hosts: []string{"web.test"}, SecretName: "later"}},
			DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
				Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var notified atomic.Int64
	src := runSource(t, SourceConfig{Client: c.Client, Namespace: ns, Notify: func() { notified.Add(1) }})
	// cert is the watched Secret's certificate in the next Inputs, "" for
	// no Secret.
	cert := func() string {
		in, _, err := src.Inputs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(in.Secrets) == 0 {
			return ""
		}
		return string(in.Secrets[0].Data[corev1.TLSCertKey])
	}
	if got := cert(); got != "" || !slices.Equal(src.WatchedSecrets(), []string{ns + "/later"}) {
		t.Fatalf("before the Secret exists: cert %q, watched %v", got, src.WatchedSecrets())
	}
	step := func(what, want string, change func() error) {
		t.Helper()
		before := notified.Load()
		if err := change(); err != nil {
			t.Fatal(err)
		}
		apiTestEventually(t, 10*time.Second, func() (bool, string) {
			got := cert()
			return got == want && notified.Load() > before, fmt.Sprintf("%s: cert %q, notified %v", what, got, notified.Load() > before)
		})
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "later"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: []byte("one"), corev1.TLSPrivateKeyKey: []byte("k")}}
	step("created", "one", func() error {
		_, err := c.Client.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{})
		return err
	})
	step("updated", "two", func() error {
		s, err := c.Client.CoreV1().Secrets(ns).Get(ctx, "later", metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Data[corev1.TLSCertKey] = []byte("two")
		_, err = c.Client.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
		return err
	})
	step("deleted", "", func() error {
		return c.Client.CoreV1().Secrets(ns).Delete(ctx, "later", metav1.DeleteOptions{})
	})
}

// A relist that finds the Secret as it was tells of no change; one that
// finds another version, or none, does.
func TestSecretWatchRelist(t *testing.T) {
	var changes int
	w := &secretWatch{synced: make(chan struct{}), changed: func() { changes++ }}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "tls", UID: "u1", ResourceVersion: "1"}}
	same := s.DeepCopy()
	newer := s.DeepCopy()
	newer.ResourceVersion = "2"
	for i, step := range []struct {
		list []any
		want int
	}{
		{[]any{s}, 1},     // the first list finds it
		{[]any{same}, 1},  // a relist, as it was
		{[]any{newer}, 2}, // a relist, changed meanwhile
		{nil, 3},          // a relist, gone meanwhile
		{nil, 3},          // and still gone
	} {
		if err := w.Replace(step.list, ""); err != nil {
			t.Fatal(err)
		}
		if changes != step.want {
			t.Errorf("step %d: %d changes, want %d", i, changes, step.want)
		}
	}
	if !cache.IsDone(w.Synced()) {
		t.Error("not synced after a list")
	}
}

// A watch stopped before its first list counts as synced, so that a
// render waiting for it goes on (its namespace's watch took the Secret
// over, or the reference went); the list may still come after.
func TestStoppedSecretWatchIsSynced(t *testing.T) {
	w := &secretWatch{cancel: func() {}, synced: make(chan struct{}), changed: func() {}}
	w.stop()
	if !cache.IsDone(w.Synced()) {
		t.Error("a stopped watch is not synced")
	}
	if err := w.Replace(nil, ""); err != nil {
		t.Fatal(err)
	}
	w.stop()
}

// References are counted per object event: a Secret stays referenced
// while any object names it, through updates and deletes.
func TestSecretReferenceCounting(t *testing.T) {
	s := &Source{cfg: SourceConfig{Log: zap.NewNop()}, secrets: map[string]*secretWatch{}, refs: map[string]int{},
		nsWatches: map[string]*namespaceTLS{}, nsRefs: map[string]int{}}
	tlsIngress := func(name string, secrets ...string) *networkingv1.Ingress {
		ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
		for _, sec := range secrets {
			ing.Spec.TLS = append(ing.Spec.TLS, networkingv1.IngressTLS{SecretName: sec})
		}
		return ing
	}
	a, b := tlsIngress("a", "x"), tlsIngress("b", "x", "y")
	a2 := tlsIngress("a", "y")
	for i, step := range []struct {
		do   func()
		want map[string]int
	}{
		{func() { s.countRefs(secretNames(a), 1) }, map[string]int{"ns/x": 1}},
		{func() { s.countRefs(secretNames(b), 1) }, map[string]int{"ns/x": 2, "ns/y": 1}},
		{func() { s.countRefs(secretNames(a2), 1); s.countRefs(secretNames(a), -1) }, map[string]int{"ns/x": 1, "ns/y": 2}},
		{func() { s.countRefs(secretNames(b), -1) }, map[string]int{"ns/y": 1}},
		{func() { s.countRefs(secretNames(a2), -1) }, map[string]int{}},
	} {
		step.do()
		if !maps.Equal(s.refs, step.want) {
			t.Errorf("step %d: references %v, want %v", i, s.refs, step.want)
		}
		// The namespace counts its referenced Secrets.
		if len(step.want) > 0 && s.nsRefs["ns"] != len(step.want) || len(step.want) == 0 && len(s.nsRefs) != 0 {
			t.Errorf("step %d: %v referenced Secrets per namespace, want %d", i, s.nsRefs, len(step.want))
		}
	}
}

// narrowReadCounter is a Secret client that counts the requests reading
// one Secret by name from scratch (a list, or a watch sending its initial
// events): what a watch of its own costs.
func narrowReadCounter(t *testing.T, c *e2ekube.Cluster) (kubernetes.Interface, *atomic.Int64) {
	t.Helper()
	var reads atomic.Int64
	cfg := rest.CopyConfig(c.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			q := r.URL.Query()
			if strings.HasSuffix(r.URL.Path, "/secrets") && strings.HasPrefix(q.Get("fieldSelector"), "metadata.name=") &&
				(q.Get("watch") != "true" || q.Get("sendInitialEvents") == "true") {
				reads.Add(1)
			}
			return rt.RoundTrip(r)
		})
	})
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client, &reads
}

// tlsSecret creates a TLS Secret whose certificate is cert.
func tlsSecret(t *testing.T, c kubernetes.Interface, ns, name, cert string) {
	t.Helper()
	if _, err := c.CoreV1().Secrets(ns).Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Type: corev1.SecretTypeTLS, Data: map[string][]byte{corev1.TLSCertKey: []byte(cert), corev1.TLSPrivateKeyKey: []byte("k")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// tlsIngress creates an Ingress whose TLS section names secrets.
func tlsIngress(t *testing.T, c kubernetes.Interface, ns, name string, secrets ...string) {
	t.Helper()
	var entries []networkingv1.IngressTLS
	for _, sec := range secrets {
		entries = append(entries, networkingv1.IngressTLS{Hosts: []string{sec + ".test"}, SecretName: sec})
	}
	if _, err := c.NetworkingV1().Ingresses(ns).Create(context.Background(), &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.IngressSpec{TLS: entries, DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
			Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// secretData is the certificate of each Secret in the source's next
// Inputs, by name.
func secretData(t *testing.T, src *Source) map[string]string {
	t.Helper()
	in, _, err := src.Inputs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range in.Secrets {
		out[s.Name] = string(s.Data[corev1.TLSCertKey])
	}
	return out
}

// ownWatches counts the Secrets of ns watched on their own.
func (s *Source) ownWatches(ns string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for key := range s.secrets {
		if strings.HasPrefix(key, ns+"/") {
			n++
		}
	}
	return n
}

// At start, a namespace with many referenced Secrets has its TLS Secrets
// listed once and watched as one: no read of its own for those (a Secret
// of another type and a missing one still get theirs), and none for a new
// TLS Secret referenced later. That watch follows an update and a
// delete; a Secret deleted there and created again as another type is
// found by a watch of its own. Unreferenced TLS Secrets of the namespace
// are not inputs; the namespace's watch stops with its last reference.
func TestSecretsWatchedByNamespace(t *testing.T) {
	c := e2ekube.Start(t)
	ctx := context.Background()
	ns := apiTestNamespace(t, c.Client, "secret-ns")
	var names []string
	for i := range nsWatchMin + 4 {
		name := fmt.Sprintf("tls-%02d", i)
		tlsSecret(t, c.Client, ns, name, "v1 "+name)
		names = append(names, name)
	}
	tlsSecret(t, c.Client, ns, "unreferenced", "v1 unreferenced")
	if _, err := c.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "opaque"},
		Data: map[string][]byte{corev1.TLSCertKey: []byte("v1 opaque")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tlsIngress(t, c.Client, ns, "web", append(names, "opaque", "missing")...)

	secretClient, narrowReads := narrowReadCounter(t, c)
	src := runSource(t, SourceConfig{Client: c.Client, SecretClient: secretClient, Namespace: ns, Notify: func() {}})
	got := secretData(t, src)
	if len(got) != nsWatchMin+5 || got["tls-03"] != "v1 tls-03" || got["opaque"] != "v1 opaque" || got["unreferenced"] != "" {
		t.Fatalf("after start: %d Secrets %v", len(got), got)
	}
	// Each watch of its own reads its Secret in one or two requests (a
	// watch with initial events, and a list where that is not served).
	if n := narrowReads.Load(); n > 4 {
		t.Errorf("%d reads of one Secret at start, want those of the opaque and the missing one only", n)
	}
	if n := src.ownWatches(ns); n != 2 {
		t.Errorf("%d Secrets watched on their own, want 2 (opaque, missing)", n)
	}
	if w := src.WatchedSecrets(); len(w) != nsWatchMin+6 {
		t.Errorf("watched %v, want every referenced Secret", w)
	}

	// An update and a delete, through the namespace's watch.
	s, err := c.Client.CoreV1().Secrets(ns).Get(ctx, "tls-05", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Data[corev1.TLSCertKey] = []byte("v2")
	if _, err := c.Client.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Client.CoreV1().Secrets(ns).Delete(ctx, "tls-06", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	apiTestEventually(t, 10*time.Second, func() (bool, string) {
		got := secretData(t, src)
		_, gone := got["tls-06"]
		return got["tls-05"] == "v2" && !gone, fmt.Sprintf("tls-05 %q, tls-06 there %v", got["tls-05"], !gone)
	})
	// Created again, as another type: its own watch finds it.
	if _, err := c.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tls-06"},
		Data: map[string][]byte{corev1.TLSCertKey: []byte("v2 opaque")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	apiTestEventually(t, 10*time.Second, func() (bool, string) {
		got := secretData(t, src)
		return got["tls-06"] == "v2 opaque", fmt.Sprintf("tls-06 %q", got["tls-06"])
	})

	// A new TLS Secret, then an Ingress naming it: the namespace's watch
	// has it, so it is served with no read of its own.
	tlsSecret(t, c.Client, ns, "later", "v1 later")
	apiTestEventually(t, 10*time.Second, func() (bool, string) {
		src.mu.Lock()
		defer src.mu.Unlock()
		return src.nsWatches[ns] != nil && src.nsWatches[ns].get("later") != nil, "the namespace's watch has not seen it"
	})
	before := narrowReads.Load()
	tlsIngress(t, c.Client, ns, "later", "later")
	apiTestEventually(t, 10*time.Second, func() (bool, string) {
		got := secretData(t, src)
		return got["later"] == "v1 later", fmt.Sprintf("later %q", got["later"])
	})
	if n := narrowReads.Load() - before; n != 0 {
		t.Errorf("%d reads of its own for a Secret the namespace's watch had", n)
	}

	// Every reference gone: no watch left.
	for _, name := range []string{"web", "later"} {
		if err := c.Client.NetworkingV1().Ingresses(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	apiTestEventually(t, 10*time.Second, func() (bool, string) {
		src.mu.Lock()
		defer src.mu.Unlock()
		return len(src.nsWatches) == 0 && len(src.secrets) == 0, fmt.Sprintf("%d namespace watches, %d of their own", len(src.nsWatches), len(src.secrets))
	})
	if got := secretData(t, src); len(got) != 0 {
		t.Errorf("Secrets after every reference went: %v", got)
	}
}

// A Secret its namespace's watch already holds becomes an input with its
// first reference, and that is a change: no watch of its own will tell
// (the Ingress's own event may have started a pass before the reference
// was counted, which then rendered it without the Secret).
func TestFirstReferenceToANamespaceSecretNotifies(t *testing.T) {
	var notified atomic.Int64
	nw := &namespaceTLS{synced: make(chan struct{}), byName: map[string]*corev1.Secret{
		"tls": {ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "tls", UID: "u", ResourceVersion: "1"}}}}
	close(nw.synced)
	s := &Source{cfg: SourceConfig{Log: zap.NewNop(), Notify: func() { notified.Add(1) }}, ctx: context.Background(),
		secrets: map[string]*secretWatch{}, refs: map[string]int{},
		nsWatches: map[string]*namespaceTLS{"ns": nw}, nsRefs: map[string]int{"ns": nsWatchMin}, seeded: make(chan struct{})}
	close(s.seeded)
	s.countRefs([]string{"ns/tls"}, 1)
	if notified.Load() == 0 {
		t.Error("the first reference to a Secret the namespace's watch holds was not a change")
	}
	if len(s.secrets) != 0 {
		t.Errorf("watched on its own too: %v", s.secrets)
	}
	if in := s.referencedSecrets(); len(in) != 1 || in[0].Name != "tls" {
		t.Errorf("inputs' Secrets %v", in)
	}
}

// A namespace reaching nsWatchMin referenced Secrets while running gets
// its TLS watch, which takes over from the watches of their own once its
// first list is in.
func TestSecretsWatchedByNamespaceOnceMany(t *testing.T) {
	c := e2ekube.Start(t)
	ns := apiTestNamespace(t, c.Client, "secret-ns-later")
	src := runSource(t, SourceConfig{Client: c.Client, Namespace: ns, Notify: func() {}})
	if err := src.WaitForSync(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range nsWatchMin + 2 {
		name := fmt.Sprintf("tls-%02d", i)
		tlsSecret(t, c.Client, ns, name, "v1 "+name)
		tlsIngress(t, c.Client, ns, name, name)
	}
	apiTestEventually(t, 20*time.Second, func() (bool, string) {
		got := secretData(t, src)
		src.mu.Lock()
		nsWatch := src.nsWatches[ns] != nil
		src.mu.Unlock()
		own := src.ownWatches(ns)
		return len(got) == nsWatchMin+2 && nsWatch && own == 0,
			fmt.Sprintf("%d Secrets, namespace watch %v, %d of their own", len(got), nsWatch, own)
	})
	if got := secretData(t, src); got["tls-17"] != "v1 tls-17" {
		t.Errorf("tls-17: %q", got["tls-17"])
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A status write is not a change to render: the source takes the new
// object in and tells of such writes together, a second after the first
// (at a first start with --publish-service, each of 50k status writes was
// a pass; never told of, they waited for the next change while the status
// loop decided on the objects from before them), and the next Inputs
// hands them out; an annotation written next notifies as before.
func TestSourceStatusWriteIsQuiet(t *testing.T) {
	c := e2ekube.Start(t)
	ctx := context.Background()
	ns := apiTestNamespace(t, c.Client, "quiet")
	ing := statusIngress(t, c.Client, ns, "web")
	var notified atomic.Int64
	src := runSource(t, SourceConfig{Client: c.Client, Namespace: ns, Notify: func() { notified.Add(1) }})
	cached := func() *networkingv1.Ingress { return src.Ingress(ns + "/web") }
	apiTestEventually(t, 10*time.Second, func() (bool, string) { return cached() != nil, "the Ingress cached" })
	if _, _, err := src.Inputs(ctx); err != nil {
		t.Fatal(err)
	}

	// Three status writes in a row, as the status loop makes them: not
	// told of one by one, but together, once, quietDelay after the first.
	before := notified.Load()
	start := time.Now()
	written := ing
	for _, ip := range []string{"198.51.100.7", "198.51.100.8", "198.51.100.9"} {
		written.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: ip}}
		var err error
		if written, err = c.Client.NetworkingV1().Ingresses(ns).UpdateStatus(ctx, written, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	apiTestEventually(t, 10*time.Second, func() (bool, string) {
		return cached().ResourceVersion == written.ResourceVersion, "the status writes cached"
	})
	if n := notified.Load() - before; n != 0 && time.Since(start) < quietDelay/2 {
		t.Errorf("status writes notified %d times at once", n)
	}
	apiTestEventually(t, 10*time.Second, func() (bool, string) {
		return notified.Load()-before == 1, "the status writes told of"
	})
	time.Sleep(quietDelay + 200*time.Millisecond)
	if n := notified.Load() - before; n != 1 {
		t.Errorf("three status writes notified %d times, want once", n)
	}
	in, _, err := src.Inputs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Ingresses) != 1 || in.Ingresses[0].ResourceVersion != written.ResourceVersion || in.IngressDelta == nil || len(in.IngressDelta.Added) != 1 {
		t.Fatalf("Inputs after the status write: %d Ingresses, delta %+v", len(in.Ingresses), in.IngressDelta)
	}

	// A status write handed out (with another change) before its
	// notification is due is not told of again.
	before, start = notified.Load(), time.Now()
	written.Status.LoadBalancer.Ingress = nil
	if written, err = c.Client.NetworkingV1().Ingresses(ns).UpdateStatus(ctx, written, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Handed out once the list has it (the informer's store, which
	// cached reads, has it before the list's handler runs).
	apiTestEventually(t, 10*time.Second, func() (bool, string) {
		in, _, err := src.Inputs(ctx)
		return err == nil && len(in.Ingresses) == 1 && in.Ingresses[0].ResourceVersion == written.ResourceVersion, "the status write handed out"
	})
	if handedAfter := time.Since(start); handedAfter < quietDelay/2 {
		time.Sleep(quietDelay + 200*time.Millisecond)
		if n := notified.Load() - before; n != 0 {
			t.Errorf("a status write handed out %s after it notified %d times", handedAfter.Round(time.Millisecond), n)
		}
	}

	written.Annotations = map[string]string{"haproxy-sidecar.io/balance": "leastconn"}
	if _, err := c.Client.NetworkingV1().Ingresses(ns).Update(ctx, written, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	apiTestEventually(t, 10*time.Second, func() (bool, string) {
		return notified.Load() > before, "an annotation written notified"
	})
}

// The Source's informers start with one LIST each, not client-go's
// streaming list (a watch sending every object as an event first), unless
// client-go's own environment switch asks for it (sourceInformer).
// The difference is in the requests, whether or not the API server
// streams (the tests' etcd 3.4 makes it refuse, and the reflector then
// lists): without the switch no request asks for initial events.
func TestSourceStartsWithOneList(t *testing.T) {
	c := e2ekube.Start(t)
	ns := apiTestNamespace(t, c.Client, "first-list")
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("streaming=%v", stream), func(t *testing.T) {
			if stream {
				t.Setenv(watchListEnv, "true")
			}
			var mu sync.Mutex
			lists, streams := map[string]int{}, map[string]int{}
			cfg := rest.CopyConfig(c.Config)
			cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
				return roundTripFunc(func(r *http.Request) (*http.Response, error) {
					q := r.URL.Query()
					kind := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
					mu.Lock()
					switch {
					case q.Get("sendInitialEvents") == "true":
						streams[kind]++
					case q.Get("watch") != "true":
						lists[kind]++
					}
					mu.Unlock()
					return rt.RoundTrip(r)
				})
			})
			client, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			runSource(t, SourceConfig{Client: client, Namespace: ns, SettingsConfigMap: ns + "/settings", Log: zaptest.NewLogger(t)})
			mu.Lock()
			defer mu.Unlock()
			for _, kind := range []string{"ingresses", "services", "endpointslices", "ingressclasses", "configmaps"} {
				// Streaming, a list follows only where the API server
				// refuses the stream (etcd 3.4); ETCD naming an etcd 3.6
				// runs this test against one that streams.
				if lists[kind] != 1 && (!stream || lists[kind] != 0) {
					t.Errorf("%s: %d lists (lists %v)", kind, lists[kind], lists)
				}
				if want := map[bool]int{false: 0, true: 1}[stream]; streams[kind] != want {
					t.Errorf("%s: %d streaming lists asked for, want %d (streaming %v)", kind, streams[kind], want, streams)
				}
			}
		})
	}
}
