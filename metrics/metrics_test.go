package metrics

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// ObserveModel counts a model's hosts (its routes are sorted by host, so
// a host's routes are next to each other), and sets the certificates'
// expiry again only when the model holds another certificate list.
func TestObserveModel(t *testing.T) {
	m := New(nil)
	certPEM, _ := testenv.SelfSigned(t, "a.test", "one")
	model := &render.Model{
		Routes: []*render.Route{{Host: "a.test", Key: "a.test/"}, {Host: "a.test", Key: "a.test/x"},
			{Host: "b.test", Key: "b.test/"}, {Host: "c.test", Key: "c.test/"}, {Host: "c.test", Key: "c.test/y"}},
		Served: []string{"ns/a", "ns/b"},
		Certs:  []render.Certificate{{File: "certs/ns_a.pem", Namespace: "ns", Secret: "a", PEM: certPEM}},
	}
	m.ObserveModel(model, nil)
	for what, want := range map[string]float64{"hosts": 3, "routes": 5, "ingresses": 2, "certificates": 1} {
		if got := value(t, m.served.WithLabelValues(what)); got != want {
			t.Errorf("served{what=%q} = %v, want %v", what, got, want)
		}
	}
	expiry := func() float64 { return value(t, m.certExpiry.WithLabelValues("ns", "a")) }
	if got, want := expiry(), float64(notAfter(t, certPEM)); got != want {
		t.Fatalf("expiry of ns/a = %v, want %v", got, want)
	}

	// The same list: the gauges are left as they are (here, one cleared
	// on purpose stays cleared).
	m.certExpiry.Reset()
	m.ObserveModel(model, nil)
	if n := series(m.certExpiry); n != 0 {
		t.Errorf("%d expiry series after a pass with the same certificate list, want the 0 left", n)
	}
	// Another list (a rotated Secret): set again from it.
	rotated, _ := testenv.SelfSigned(t, "a.test", "two")
	next := *model
	next.Certs = []render.Certificate{{File: "certs/ns_a.pem", Namespace: "ns", Secret: "a", PEM: rotated}}
	m.ObserveModel(&next, nil)
	if got, want := expiry(), float64(notAfter(t, rotated)); got != want {
		t.Errorf("expiry of ns/a after the rotation = %v, want %v", got, want)
	}
}

// Models from the incremental renderer, one after another: the hosts are
// counted from the last model's (only the routes that changed are read),
// and come out as counting every route does, as Ingresses come and go,
// with a host of their own or one another Ingress has.
func TestObserveModelCountsHostsFromTheLastModel(t *testing.T) {
	cls := "haproxy"
	ing := func(name, host string) *networkingv1.Ingress {
		prefix := networkingv1.PathTypePrefix
		return &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{
				Host: host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: "/" + name, PathType: &prefix,
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "svc", Port: networkingv1.ServiceBackendPort{Number: 80}}},
				}}}},
			}}},
		}
	}
	in := render.Inputs{
		IngressClasses: []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: cls}, Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}},
		Services:       []*corev1.Service{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "svc"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}},
	}
	for i := range 6 {
		in.Ingresses = append(in.Ingresses, ing(fmt.Sprintf("i%d", i), fmt.Sprintf("h%d.test", i%3)))
	}
	steps := []func(){
		func() { in.Ingresses = append(in.Ingresses, ing("new", "h9.test")) },            // a new host
		func() { in.Ingresses = append(in.Ingresses, ing("more", "h1.test")) },           // a host already there
		func() { in.Ingresses = slices.Delete(in.Ingresses, 0, 1) },                      // one of h0's two
		func() { in.Ingresses = slices.Delete(in.Ingresses, 2, 3) },                      // h0's last
		func() { in.Ingresses = append(in.Ingresses[:1:1], ing("a", "h0.test")) },        // many gone, one back
		func() { in.Ingresses = append(slices.Clone(in.Ingresses), ing("b", "a.test")) }, // first in order
	}
	m := New(nil)
	var e render.Engine
	var prev *render.Model
	for k := -1; k < len(steps); k++ {
		if k >= 0 {
			steps[k]()
			in.Ingresses = slices.Clone(in.Ingresses)
		}
		model := e.Build(in, render.Options{Previous: prev})
		prev = model
		m.ObserveModel(model, nil)
		hosts := map[string]bool{}
		for _, r := range model.Routes {
			hosts[r.Host] = true
		}
		if len(hosts) == 0 {
			t.Fatalf("step %d: no routes", k)
		}
		if got := value(t, m.served.WithLabelValues("hosts")); got != float64(len(hosts)) {
			t.Errorf("step %d: served{what=hosts} = %v, want %d", k, got, len(hosts))
		}
	}
}

func notAfter(t *testing.T, certPEM []byte) int64 {
	b, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.NotAfter.Unix()
}

func value(t *testing.T, g prometheus.Gauge) float64 {
	var d dto.Metric
	if err := g.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetGauge().GetValue()
}

func series(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 16)
	c.Collect(ch)
	close(ch)
	return len(ch)
}
