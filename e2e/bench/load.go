// Package bench measures haproxy-sidecar in Kubernetes mode against the real
// kube-apiserver and etcd of e2e/kube, inside the test's network namespace:
// how long a change written to the API takes to be served through HAProxy.
//
// The measurements are Go benchmarks (cluster_bench_test.go), so `go test
// ./...` compiles them but runs nothing heavy; `make bench` runs them:
//
//	go test -run '^$' -bench Cluster -benchtime 1x -timeout 60m ./e2e/bench/
//
// This file holds the loader: the synthetic cluster's objects and a
// parallel writer for them. probe.go polls HAProxy; report.go computes the
// percentiles and prints the results table; manifests.go writes the same
// objects as a manifest file for `haproxy-sidecar render`; loadgen.go holds
// the load clients of the reload soak and the throughput client; check.go
// the minimal configuration that `haproxy -c` of ours is compared with.
// BENCH_ONLY (cluster, soak, throughput, check, render) runs some parts
// alone.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

const (
	// Namespace holds every object the loader creates.
	Namespace = "bench"
	// ClassName is the IngressClass created (as the default class) for
	// ControllerName, the controller name haproxy-sidecar serves by default.
	ClassName      = "haproxy-sidecar"
	ControllerName = "haproxy-sidecar.io/controller"
	// EchoPort is the port every endpoint uses; echo backends listen on it.
	EchoPort = 8080
	// GroupSize is how many backend addresses make one endpoint group:
	// group 0 is kube.BackendIP(0..7), group 1 kube.BackendIP(8..15).
	// Services start on group 0; the endpoint-change measurement moves a
	// Service's EndpointSlice to the other group.
	GroupSize = 8
	// Writers is how many goroutines write objects in parallel.
	Writers = 32
)

// Spec is one synthetic cluster.
type Spec struct {
	// Ingresses is N: N Ingresses, each with its own host and one or two
	// paths (odd ones also route /api), spread over N/5 Services.
	Ingresses int
	// TLSSecrets gives the first TLSSecrets Ingresses a TLS section and a
	// Secret each (kubernetes.io/tls, a self-signed ECDSA certificate).
	TLSSecrets int
	// BackendIP returns the i-th backend address (0 <= i < 2*GroupSize);
	// in the e2e namespace this is kube.BackendIP.
	BackendIP func(i int) string
	// Cert returns a certificate and key (PEM) for host, used when
	// TLSSecrets > 0.
	Cert func(host string) (certPEM, keyPEM []byte)
	// Applied makes the objects as `kubectl apply` and the EndpointSlice
	// controller write them in a real cluster: each Ingress and Service
	// carries kubectl's last-applied copy of itself, each endpoint its
	// Pod reference, node and zone (the "applied" variant).
	Applied bool
	// Class is the IngressClass the Ingresses name; empty, ClassName.
	// The side-by-side benchmark (peers_bench_test.go) gives each peer
	// controller its own.
	Class string
}

// Services is the number of Services: N/5, at least 1.
func (s Spec) Services() int { return max(1, s.Ingresses/5) }

// Host is the host name of Ingress i.
func Host(i int) string { return fmt.Sprintf("app-%05d.bench.test", i) }

// HasTLS reports whether Ingress i has a TLS section (and so is served over
// HTTPS; plain HTTP requests for it are redirected).
func (s Spec) HasTLS(i int) bool { return i < s.TLSSecrets }

// ServiceName is the name of Service j.
func ServiceName(j int) string { return fmt.Sprintf("svc-%05d", j) }

// ServiceOf is the Service Ingress i routes to. Ingress j < Services()
// routes to Service j.
func (s Spec) ServiceOf(i int) int { return i % s.Services() }

// Ingress is Ingress i of the synthetic cluster.
func (s Spec) Ingress(i int) *networkingv1.Ingress {
	ing := NewIngress(fmt.Sprintf("app-%05d", i), Host(i), ServiceName(s.ServiceOf(i)), i%2 == 1)
	if s.Class != "" {
		class := s.Class
		ing.Spec.IngressClassName = &class
	}
	if s.HasTLS(i) {
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{Host(i)}, SecretName: SecretName(i)}}
	}
	if s.Applied {
		withLastApplied(&ing.ObjectMeta, networkingv1.SchemeGroupVersion.WithKind("Ingress"), ing)
	}
	return ing
}

// Service is Service j of the synthetic cluster.
func (s Spec) Service(j int) *corev1.Service {
	svc := NewService(ServiceName(j))
	if s.Applied {
		withLastApplied(&svc.ObjectMeta, corev1.SchemeGroupVersion.WithKind("Service"), svc)
	}
	return svc
}

// EndpointSlice is the EndpointSlice of Service j, on endpoint group g.
func (s Spec) EndpointSlice(j, g int) *discoveryv1.EndpointSlice {
	es := NewEndpointSlice(ServiceName(j), s.Addrs(j, g))
	if s.Applied {
		// As the EndpointSlice controller writes them: the Pod, its node
		// and zone.
		for k := range es.Endpoints {
			e := &es.Endpoints[k]
			node, zone := fmt.Sprintf("node-%03d", (j+k)%100), fmt.Sprintf("zone-%c", 'a'+(j+k)%3)
			e.NodeName, e.Zone = &node, &zone
			e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: Namespace,
				Name: fmt.Sprintf("%s-7d4b9c5f8-%05d", ServiceName(j), k+g*GroupSize),
				UID:  types.UID(fmt.Sprintf("5f0e4a2b-%04x-4c1d-9a43-%012x", k+g*GroupSize, j))}
		}
	}
	return es
}

// withLastApplied sets kubectl's last-applied annotation to obj as a
// manifest of kind gvk (what `kubectl apply` sends, without the
// annotation itself).
func withLastApplied(m *metav1.ObjectMeta, gvk schema.GroupVersionKind, obj any) {
	m.Annotations = nil
	b, err := json.Marshal(obj)
	if err != nil {
		panic(err) // the bench's own objects always marshal
	}
	var manifest map[string]any
	if err := json.Unmarshal(b, &manifest); err != nil {
		panic(err)
	}
	manifest["apiVersion"], manifest["kind"] = gvk.GroupVersion().String(), gvk.Kind
	delete(manifest, "status")
	if b, err = json.Marshal(manifest); err != nil {
		panic(err)
	}
	m.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": string(b) + "\n"}
}

// SecretName is the TLS Secret of Ingress i.
func SecretName(i int) string { return fmt.Sprintf("tls-%05d", i) }

// NewIngress routes host (path / and, with api, /api too) to Service
// service's port "http", with IngressClass ClassName.
func NewIngress(name, host, service string, api bool) *networkingv1.Ingress {
	prefix, class := networkingv1.PathTypePrefix, ClassName
	backend := networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: service, Port: networkingv1.ServiceBackendPort{Name: "http"}}}
	paths := []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: backend}}
	if api {
		paths = append(paths, networkingv1.HTTPIngressPath{Path: "/api", PathType: &prefix, Backend: backend})
	}
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace},
		Spec: networkingv1.IngressSpec{IngressClassName: &class, Rules: []networkingv1.IngressRule{{
			Host:             host,
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}},
		}}},
	}
}

// NewService is a Service with one port "http" (80 → EchoPort).
func NewService(name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Name: "http", Port: 80, TargetPort: intstr.FromInt32(EchoPort),
		}}},
	}
}

// NewEndpointSlice is the EndpointSlice "<service>-1" with the given ready
// addresses on EchoPort.
func NewEndpointSlice(service string, addrs []string) *discoveryv1.EndpointSlice {
	name, port, ready := "http", int32(EchoPort), true
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: service + "-1", Namespace: Namespace, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
	}
	for _, a := range addrs {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	return es
}

// Addrs are the 2 or 3 (2 + j%2) endpoint addresses of Service j in
// group g (0 or 1).
func (s Spec) Addrs(j, g int) []string {
	n := 2 + j%2
	addrs := make([]string, n)
	for k := range n {
		addrs[k] = s.BackendIP(g*GroupSize + (j+k)%GroupSize)
	}
	return addrs
}

// Base is what the cluster needs before the objects: the namespace and the
// default IngressClass.
func Base(ctx context.Context, c kubernetes.Interface) error {
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace: %w", err)
	}
	if _, err := c.NetworkingV1().IngressClasses().Create(ctx, NewIngressClass(), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create IngressClass: %w", err)
	}
	return nil
}

// LoadResult says what Load wrote.
type LoadResult struct {
	Objects  int
	Duration time.Duration
}

// Rate is objects per second.
func (r LoadResult) Rate() float64 { return float64(r.Objects) / r.Duration.Seconds() }

// Load creates the Spec's Services (with their EndpointSlices, in group 0),
// TLS Secrets and Ingresses with Writers goroutines in parallel. The client
// should not be rate limited (QPS/Burst in its rest.Config). The first
// error stops the load and is returned.
func Load(ctx context.Context, c kubernetes.Interface, s Spec) (LoadResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan func(context.Context) error, Writers)
	var wg sync.WaitGroup
	var written atomic.Int64
	start := time.Now()
	for range Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range jobs {
				if ctx.Err() != nil {
					continue
				}
				if err := job(ctx); err != nil {
					cancel(err)
					continue
				}
				written.Add(1)
			}
		}()
	}
	send := func(job func(context.Context) error) bool {
		select {
		case jobs <- job:
			return true
		case <-ctx.Done():
			return false
		}
	}
	func() {
		defer close(jobs)
		for j := range s.Services() {
			svc := s.Service(j)
			es := s.EndpointSlice(j, 0)
			if !send(func(ctx context.Context) error { return CreateService(ctx, c, svc) }) ||
				!send(func(ctx context.Context) error { return CreateEndpointSlice(ctx, c, es) }) {
				return
			}
		}
		for i := range s.TLSSecrets {
			cert, key := s.Cert(Host(i))
			sec := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: SecretName(i), Namespace: Namespace},
				Type:       corev1.SecretTypeTLS,
				Data:       map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key},
			}
			if !send(func(ctx context.Context) error {
				_, err := c.CoreV1().Secrets(Namespace).Create(ctx, sec, metav1.CreateOptions{})
				return wrap(err, "Secret", sec.Name)
			}) {
				return
			}
		}
		for i := range s.Ingresses {
			ing := s.Ingress(i)
			if !send(func(ctx context.Context) error { return CreateIngress(ctx, c, ing) }) {
				return
			}
		}
	}()
	wg.Wait()
	r := LoadResult{Objects: int(written.Load()), Duration: time.Since(start)}
	return r, context.Cause(ctx)
}

// CreateService creates svc.
func CreateService(ctx context.Context, c kubernetes.Interface, svc *corev1.Service) error {
	_, err := c.CoreV1().Services(Namespace).Create(ctx, svc, metav1.CreateOptions{})
	return wrap(err, "Service", svc.Name)
}

// CreateEndpointSlice creates es.
func CreateEndpointSlice(ctx context.Context, c kubernetes.Interface, es *discoveryv1.EndpointSlice) error {
	_, err := c.DiscoveryV1().EndpointSlices(Namespace).Create(ctx, es, metav1.CreateOptions{})
	return wrap(err, "EndpointSlice", es.Name)
}

// CreateIngress creates ing.
func CreateIngress(ctx context.Context, c kubernetes.Interface, ing *networkingv1.Ingress) error {
	_, err := c.NetworkingV1().Ingresses(Namespace).Create(ctx, ing, metav1.CreateOptions{})
	return wrap(err, "Ingress", ing.Name)
}

func wrap(err error, kind, name string) error {
	if err != nil {
		return fmt.Errorf("create %s %s/%s: %w", kind, Namespace, name, err)
	}
	return nil
}
