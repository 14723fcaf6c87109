package metrics

import (
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

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
