package render_test

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

// syntheticInputs is a cluster of n Ingresses, each with its own host, two
// paths and a Service with three ready endpoints: the shape of the 10k
// Ingress benchmark target.
func syntheticInputs(n int) render.Inputs {
	cls := "haproxy"
	in := render.Inputs{IngressClasses: []*networkingv1.IngressClass{{
		ObjectMeta: metav1.ObjectMeta{Name: cls},
		Spec:       networkingv1.IngressClassSpec{Controller: render.DefaultControllerName},
	}}}
	prefix, exact := networkingv1.PathTypePrefix, networkingv1.PathTypeExact
	port, portName, ready := int32(8080), "http", true
	for i := range n {
		ns := "ns" + strconv.Itoa(i%100)
		name := "app" + strconv.Itoa(i)
		backend := networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: name, Port: networkingv1.ServiceBackendPort{Number: 80}}}
		in.Ingresses = append(in.Ingresses, &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: metav1.NewTime(time.Unix(int64(i), 0))},
			Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{
				Host: name + ".example.com",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
					{Path: "/", PathType: &prefix, Backend: backend},
					{Path: "/healthz", PathType: &exact, Backend: backend},
				}}},
			}}},
		})
		in.Services = append(in.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: portName, Port: 80}}},
		})
		es := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
		}
		for j := range 3 {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", j, i/256%256, i%256)},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			})
		}
		in.EndpointSlices = append(in.EndpointSlices, es)
	}
	return in
}

// syntheticTLS is syntheticInputs with a TLS section and a Secret of its
// own (a self-signed ECDSA certificate for its host) on the first tls
// Ingresses, as the cluster bench's TLS variant has them.
func syntheticTLS(b testing.TB, n, tls int) render.Inputs {
	in := syntheticInputs(n)
	for _, ing := range in.Ingresses[:tls] {
		host := ing.Spec.Rules[0].Host
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{host}, SecretName: ing.Name + "-tls"}}
		cert, key := testenv.SelfSigned(b, host, "bench")
		in.Secrets = append(in.Secrets, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ing.Namespace, Name: ing.Name + "-tls"},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key},
		})
	}
	return in
}

// syntheticAnnotated is syntheticInputs with annotations on a share of
// the Ingresses, as a migrated cluster has them: route annotations on one
// in 10 (its own backend and rules), backend annotations on one in 20,
// and a canary Ingress beside one in 50 (10% of its host's requests).
func syntheticAnnotated(n int) render.Inputs {
	in := syntheticInputs(n)
	p := render.AnnotationPrefix
	for i, ing := range in.Ingresses[:n] {
		switch {
		case i%10 == 0:
			ing.Annotations = map[string]string{p + "allowlist-source-range": "10.0.0.0/8", p + "rate-limit-rps": "100"}
		case i%20 == 5:
			ing.Annotations = map[string]string{p + "balance": "leastconn", p + "timeout-server": "30s"}
		}
		if i%50 == 7 {
			c := ing.DeepCopy()
			c.Name += "-canary"
			c.CreationTimestamp = metav1.NewTime(c.CreationTimestamp.Add(time.Hour))
			c.Annotations = map[string]string{p + "canary-weight": "10"}
			c.Spec.Rules[0].HTTP.Paths = c.Spec.Rules[0].HTTP.Paths[:1]
			in.Ingresses = append(in.Ingresses, c)
		}
	}
	return in
}

// BenchmarkPassTail is how one pass's time spreads when the collector runs
// during some passes, as in the sidecar: at 50k Ingresses (and as many
// Services), a new Service with its EndpointSlice and Ingress, handed as
// deltas, removed again the next pass, with GOGC 50 (run's once it
// serves). It reports the passes' p50, p90 and p99 and what a pass
// allocates: a pass the collector marks during is several times slower
// (its allocations pay for marking the live heap), and what passes
// allocate decides how often that happens.
func BenchmarkPassTail(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(50))
	tmpl, err := templates.Load("")
	if err != nil {
		b.Fatal(err)
	}
	n := 50000
	base := syntheticInputs(n)
	in := base
	r := haproxycfg.NewIncremental(haproxycfg.Config{HTTPBind: ":80", HTTPSBind: ":443", Template: tmpl})
	opts := render.Options{SpareBackends: 128}
	prev, _, err := r.Render(in, opts)
	if err != nil {
		b.Fatal(err)
	}
	var took []time.Duration
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	i := 0
	for b.Loop() {
		i++
		last := in
		in = base
		if i%2 == 1 {
			withNewServices(&in, n, i, 1)
		}
		in.IngressDelta = tailDelta(last.Ingresses, in.Ingresses)
		in.ServiceDelta = tailDelta(last.Services, in.Services)
		in.EndpointSliceDelta = tailDelta(last.EndpointSlices, in.EndpointSlices)
		in.Unchanged = render.IngressClassesKind | render.SecretsKind | render.ConfigMapsKind
		o := opts
		o.Previous = prev
		start := time.Now()
		m, _, err := r.Render(in, o)
		took = append(took, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		prev = m
	}
	runtime.ReadMemStats(&after)
	slices.Sort(took)
	at := func(q float64) float64 { return float64(took[int(q*float64(len(took)-1))].Microseconds()) / 1000 }
	b.ReportMetric(at(0.5), "p50-ms")
	b.ReportMetric(at(0.9), "p90-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(len(took)), "B/pass")
}

// BenchmarkRender measures objects → model → files, the work done for
// every change, at 1k and 10k Ingresses.
func BenchmarkRender(b *testing.B) {
	tmpl, err := templates.Load("")
	if err != nil {
		b.Fatal(err)
	}
	cfg := haproxycfg.Config{HTTPBind: ":80", HTTPSBind: ":443", Template: tmpl}
	for _, n := range []int{1000, 10000} {
		in := syntheticInputs(n)
		b.Run("ingresses="+strconv.Itoa(n)+"/model", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				render.BuildModel(in, render.Options{})
			}
		})
		// One object changed per render, as in a running sidecar: a new
		// host on an Ingress (a route change), or an EndpointSlice whose
		// endpoint moves (a backend change). Incremental evaluates only
		// what depends on it.
		b.Run("ingresses="+strconv.Itoa(n)+"/incremental/route", func(b *testing.B) {
			incrementalChanges(b, cfg, syntheticInputs(n), hostChange(n))
		})
		b.Run("ingresses="+strconv.Itoa(n)+"/incremental/endpoint", func(b *testing.B) {
			incrementalChanges(b, cfg, syntheticInputs(n), func(in *render.Inputs, i int) {
				es := in.EndpointSlices[n/2].DeepCopy()
				es.Endpoints[0].Addresses[0] = fmt.Sprintf("10.200.%d.%d", i/256%256, i%256)
				in.EndpointSlices[n/2] = es
				in.Unchanged = allKinds &^ render.EndpointSlicesKind
			})
		})
		// The same move as the cluster source hands it out: a new list,
		// told as a delta from the one before (Inputs.EndpointSliceDelta).
		b.Run("ingresses="+strconv.Itoa(n)+"/incremental/endpoint-delta", func(b *testing.B) {
			incrementalChanges(b, cfg, syntheticInputs(n), func(in *render.Inputs, i int) {
				old := in.EndpointSlices[n/2]
				es := old.DeepCopy()
				es.Endpoints[0].Addresses[0] = fmt.Sprintf("10.200.%d.%d", i/256%256, i%256)
				list := slices.Clone(in.EndpointSlices)
				list[n/2] = es
				in.EndpointSliceDelta = &render.Delta[*discoveryv1.EndpointSlice]{Since: in.EndpointSlices,
					Added: []*discoveryv1.EndpointSlice{es}, Removed: []*discoveryv1.EndpointSlice{old}}
				in.EndpointSlices = list
				in.Unchanged = allKinds &^ render.EndpointSlicesKind
			})
		})
		// With spare backends (run's default): a new Service behind a
		// new Ingress, removed again the next render; and an endpoint
		// move while 100 Services are in spares.
		spares := render.Options{SpareBackends: 128}
		b.Run("ingresses="+strconv.Itoa(n)+"/incremental/spare/new-service", func(b *testing.B) {
			base := syntheticInputs(n)
			incrementalChangesWith(b, cfg, syntheticInputs(n), spares, func(in *render.Inputs, i int) {
				*in = base
				if i%2 == 1 {
					withNewServices(in, n, i, 1)
				}
				in.Unchanged = render.IngressClassesKind | render.SecretsKind | render.ConfigMapsKind
			})
		})
		// The same as the cluster source hands it out: new lists told
		// as deltas from the ones before.
		b.Run("ingresses="+strconv.Itoa(n)+"/incremental/spare/new-service-delta", func(b *testing.B) {
			base := syntheticInputs(n)
			incrementalChangesWith(b, cfg, base, spares, func(in *render.Inputs, i int) {
				before := *in
				*in = base
				if i%2 == 1 {
					withNewServices(in, n, i, 1)
				}
				in.IngressDelta = tailDelta(before.Ingresses, in.Ingresses)
				in.ServiceDelta = tailDelta(before.Services, in.Services)
				in.EndpointSliceDelta = tailDelta(before.EndpointSlices, in.EndpointSlices)
				in.Unchanged = render.IngressClassesKind | render.SecretsKind | render.ConfigMapsKind
			})
		})
		b.Run("ingresses="+strconv.Itoa(n)+"/incremental/spare/endpoint", func(b *testing.B) {
			in := syntheticInputs(n)
			withNewServices(&in, n, 0, 100)
			r := haproxycfg.NewIncremental(cfg)
			prev, _, err := r.Render(syntheticInputs(n), spares)
			if err != nil {
				b.Fatal(err)
			}
			opts := spares
			opts.Previous = prev
			if prev, _, err = r.Render(in, opts); err != nil {
				b.Fatal(err)
			}
			incrementalChangesFrom(b, r, prev, in, spares, func(in *render.Inputs, i int) {
				es := in.EndpointSlices[n/2].DeepCopy()
				es.Endpoints[0].Addresses[0] = fmt.Sprintf("10.200.%d.%d", i/256%256, i%256)
				in.EndpointSlices[n/2] = es
				in.Unchanged = allKinds &^ render.EndpointSlicesKind
			})
		})
		// A sidecar's first pass: every object new to the engine.
		b.Run("ingresses="+strconv.Itoa(n)+"/first", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := haproxycfg.NewIncremental(cfg).Render(in, render.Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("ingresses="+strconv.Itoa(n)+"/model+files", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m := render.BuildModel(in, render.Options{})
				if _, err := haproxycfg.Render(m, cfg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// At 10k with 1,000 TLS Secrets (syntheticTLS): an endpoint move and
	// a new host beside 1,000 certificates, against the same without.
	n := 10000
	b.Run("ingresses=10000/tls1000/incremental/endpoint", func(b *testing.B) {
		incrementalChanges(b, cfg, syntheticTLS(b, n, 1000), func(in *render.Inputs, i int) {
			es := in.EndpointSlices[n/2].DeepCopy()
			es.Endpoints[0].Addresses[0] = fmt.Sprintf("10.200.%d.%d", i/256%256, i%256)
			in.EndpointSlices[n/2] = es
			in.Unchanged = allKinds &^ render.EndpointSlicesKind
		})
	})
	b.Run("ingresses=10000/tls1000/incremental/route", func(b *testing.B) {
		incrementalChanges(b, cfg, syntheticTLS(b, n, 1000), hostChange(n))
	})
	// A sidecar's first pass with 1,000 TLS Secrets (start-up's render).
	b.Run("ingresses=10000/tls1000/first", func(b *testing.B) {
		in := syntheticTLS(b, n, 1000)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if _, _, err := haproxycfg.NewIncremental(cfg).Render(in, render.Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The same at 10k with annotations (syntheticAnnotated).
	in := syntheticAnnotated(n)
	b.Run("ingresses=10000/annotated/model+files", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := render.BuildModel(in, render.Options{})
			if _, err := haproxycfg.Render(m, cfg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ingresses=10000/annotated/incremental/route", func(b *testing.B) {
		// An annotated Ingress gets a new host.
		incrementalChanges(b, cfg, syntheticAnnotated(n), hostChange(n))
	})
	// The same with regular-expression paths on 100 hosts (syntheticRegex).
	in = syntheticRegex(n)
	b.Run("ingresses=10000/regex100/model+files", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := render.BuildModel(in, render.Options{})
			if _, err := haproxycfg.Render(m, cfg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ingresses=10000/regex100/incremental/route", func(b *testing.B) {
		incrementalChanges(b, cfg, syntheticRegex(n), hostChange(n))
	})
}

// syntheticRegex is syntheticInputs where one Ingress in 100 (100 hosts
// at 10k) uses regular expressions with a rewrite, as ingress-nginx's
// rewrite example does.
func syntheticRegex(n int) render.Inputs {
	in := syntheticInputs(n)
	p := render.AnnotationPrefix
	for i, ing := range in.Ingresses {
		if i%100 == 3 {
			ing.Annotations = map[string]string{p + "use-regex": "true", p + "rewrite-target": "/$2"}
			ing.Spec.Rules[0].HTTP.Paths[0].Path = "/api/v[0-9]+(/|$)(.*)"
		}
	}
	return in
}

// allKinds are all lists of render.Inputs. A change declares every other
// list unchanged, as the Kubernetes source does for lists it hands out
// again (the changed list is the same slice changed in place, so it must
// not be declared).
const allKinds = render.IngressesKind | render.IngressClassesKind | render.ServicesKind | render.EndpointSlicesKind |
	render.SecretsKind | render.ConfigMapsKind

// hostChange gives the Ingress in the middle a new host.
func hostChange(n int) func(in *render.Inputs, i int) {
	return func(in *render.Inputs, i int) {
		ing := in.Ingresses[n/2].DeepCopy()
		ing.Spec.Rules[0].Host = "changed-" + strconv.Itoa(i) + ".example.com"
		in.Ingresses[n/2] = ing
		in.Unchanged = allKinds &^ render.IngressesKind
	}
}

// incrementalChanges renders in once, then one change per iteration
// against the previous render, as a running sidecar does.
func incrementalChanges(b *testing.B, cfg haproxycfg.Config, in render.Inputs, change func(in *render.Inputs, i int)) {
	incrementalChangesWith(b, cfg, in, render.Options{}, change)
}

// incrementalChangesWith is incrementalChanges with options.
func incrementalChangesWith(b *testing.B, cfg haproxycfg.Config, in render.Inputs, opts render.Options, change func(in *render.Inputs, i int)) {
	r := haproxycfg.NewIncremental(cfg)
	prev, _, err := r.Render(in, opts)
	if err != nil {
		b.Fatal(err)
	}
	incrementalChangesFrom(b, r, prev, in, opts, change)
}

// incrementalChangesFrom measures changes against a renderer that last
// rendered prev from in.
func incrementalChangesFrom(b *testing.B, r *haproxycfg.Incremental, prev *render.Model, in render.Inputs, opts render.Options, change func(in *render.Inputs, i int)) {
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		change(&in, i)
		o := opts
		o.Previous = prev
		m, _, err := r.Render(in, o)
		if err != nil {
			b.Fatal(err)
		}
		prev = m
	}
}

// withNewServices adds k Services, each with one endpoint and its own
// Ingress (host new-<i>-<j>.example.com), to a copy of in's lists.
func withNewServices(in *render.Inputs, n, i, k int) {
	extra := syntheticInputs(k)
	ings, svcs, ess := slices.Clone(in.Ingresses), slices.Clone(in.Services), slices.Clone(in.EndpointSlices)
	for j := range k {
		ing, svc, es := extra.Ingresses[j].DeepCopy(), extra.Services[j].DeepCopy(), extra.EndpointSlices[j].DeepCopy()
		name := fmt.Sprintf("new-%d-%d", i, j)
		ing.Name, svc.Name, es.Name = name, name, name+"-x"
		ing.CreationTimestamp = metav1.NewTime(time.Unix(int64(n+i), 0))
		ing.Spec.Rules[0].Host = name + ".example.com"
		for p := range ing.Spec.Rules[0].HTTP.Paths {
			ing.Spec.Rules[0].HTTP.Paths[p].Backend.Service.Name = name
		}
		es.Labels = map[string]string{discoveryv1.LabelServiceName: name}
		es.Endpoints = es.Endpoints[:1]
		es.Endpoints[0].Addresses = []string{fmt.Sprintf("10.100.%d.%d", j/256, j%256)}
		ings, svcs, ess = append(ings, ing), append(svcs, svc), append(ess, es)
	}
	in.Ingresses, in.Services, in.EndpointSlices = ings, svcs, ess
}

// A list changed in place (one object replaced in the same slice, as the
// benchmarks do) is taken in again: only Inputs.Unchanged lets the engine
// skip a list, and only when it is also the slice it took in last.
func TestIncrementalListChangedInPlace(t *testing.T) {
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg := haproxycfg.Config{HTTPBind: ":80", HTTPSBind: ":443", Template: tmpl}
	in := syntheticInputs(50)
	r := haproxycfg.NewIncremental(cfg)
	prev, _, err := r.Render(in, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hostChange(50)(&in, 1)
	m, _, err := r.Render(in, render.Options{Previous: prev})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, rt := range m.Routes {
		found = found || rt.Host == "changed-1.example.com"
	}
	if !found {
		t.Fatal("an Ingress replaced in the same slice was not taken in")
	}
	// Said to be unchanged and the same slice: skipped (a source that
	// caches its lists never changes one it handed out).
	hostChange(50)(&in, 2)
	in.Unchanged = render.IngressesKind
	m, _, err = r.Render(in, render.Options{Previous: m})
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range m.Routes {
		if rt.Host == "changed-2.example.com" {
			t.Fatal("a list said to be unchanged was taken in again")
		}
	}
}

// The synthetic cluster renders cleanly: the benchmark measures real work.
func TestSyntheticInputs(t *testing.T) {
	m := render.BuildModel(syntheticInputs(300), render.Options{})
	if len(m.Problems) > 0 || len(m.Routes) != 600 || len(m.Backends) != 300 {
		t.Fatalf("routes %d backends %d problems %v", len(m.Routes), len(m.Backends), m.Problems)
	}
	m = render.BuildModel(syntheticAnnotated(300), render.Options{})
	canaries := 0
	for _, r := range m.Routes {
		if r.Canary != nil {
			canaries++
		}
	}
	// The 30 Ingresses with route annotations have their own backend
	// instead of the Service's (no one else uses it); the 6 canaries
	// name their primary's Service, and a canary's backend is the one its
	// primary has for that Service (the primary's route policy runs in
	// it), so they add none.
	if len(m.Problems) > 0 || len(m.Routes) != 600 || canaries != 6 || len(m.Backends) != 300 {
		t.Fatalf("annotated: routes %d, %d with a canary, backends %d, problems %v", len(m.Routes), canaries, len(m.Backends), m.Problems)
	}
}

// tailDelta is how list differs from since, as the cluster source tells
// it, where the lists differ in their tails only (withNewServices
// appends): deltaOf without its maps, which would be most of the time
// measured.
func tailDelta[T comparable](since, list []T) *render.Delta[T] {
	d := &render.Delta[T]{Since: since}
	n := min(len(since), len(list))
	for n > 0 && since[n-1] != list[n-1] {
		n--
	}
	d.Removed = since[n:]
	d.Added = list[n:]
	return d
}

// BenchmarkRetained is what the incremental renderer keeps between passes
// (the engine's parsed Ingresses, indexes and routes, the last model and
// its files in pieces) per Ingress of the synthetic cluster, beside the
// objects themselves: the heap after a collection with the renderer
// alive, less the heap with only its inputs. The sidecar's memory at 10k
// and 50k Ingresses is mostly this and the informers' objects
// (BENCHMARKS.md, "What the engine keeps"). RETAINED_PROFILE=FILE writes
// the heap profile taken with the renderer alive (run with
// -test.memprofilerate=1 for every allocation), for `go tool pprof
// -sample_index=inuse_space`.
func BenchmarkRetained(b *testing.B) {
	tmpl, err := templates.Load("")
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{10000, 50000} {
		b.Run("ingresses="+strconv.Itoa(n), func(b *testing.B) {
			in := syntheticInputs(n)
			var kept uint64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				r := haproxycfg.NewIncremental(haproxycfg.Config{HTTPBind: ":80", HTTPSBind: ":443", Template: tmpl})
				m, _, err := r.Render(in, render.Options{SpareBackends: 128})
				if err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				kept = after.HeapAlloc - before.HeapAlloc
				if path := os.Getenv("RETAINED_PROFILE"); path != "" {
					writeHeapProfile(b, path)
				}
				runtime.KeepAlive(r)
				runtime.KeepAlive(m)
			}
			b.ReportMetric(float64(kept)/float64(n), "B/ingress")
		})
	}
}

// writeHeapProfile writes the heap profile to path.
func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}
