package render_test

import (
	"bytes"
	"fmt"
	"maps"
	mathrand "math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

// The incremental renderer must give what a full render gives, file for
// file and byte for byte, with the same model and problems, after every
// step of any sequence of changes. The cluster here is small and its
// names few, so that changes collide: conflicting paths and TLS hosts,
// defaultBackends, class switches, Services and Secrets that come and go,
// slices that move endpoints, invalid values of every kind.

type randomCluster struct {
	r *mathrand.Rand
	// touch decides the steps that also touch an Ingress (touchIngress):
	// a stream of its own, so that r makes the same clusters as before
	// touches were made.
	touch *mathrand.Rand
	certs []certPair
	in    render.Inputs
	age   int
	uids  int // UIDs given
	// externalNames counts the ExternalName Services made (service).
	externalNames int
}

var (
	rcNamespaces = []string{"a", "b"}
	rcServices   = []string{"web", "api", "gone", "ext"}
	rcHosts      = []string{"", "x.test", "y.test", "*.w.test", "Bad_Host", "z.w.test", "www.x.test"}
	rcPaths      = []string{"/", "/api", "/api/", "/a/b", "", "no-slash", "/x", "/api/(.*)", "/(a+)+"}
	rcTypes      = []string{"Prefix", "Exact", "ImplementationSpecific", "", "Regex"}
	rcSecrets    = []string{"tls-1", "tls-2", "tls-bad", "missing", "Bad_Name"}
	rcAddrs      = []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "fd00::1", "nope", "!10.0.0.6"}
)

// certPair is a certificate and its key, PEM.
type certPair struct{ crt, key []byte }

func newRandomCluster(seed uint64, certs []certPair) *randomCluster {
	c := &randomCluster{r: mathrand.New(mathrand.NewPCG(seed, 7)), touch: mathrand.New(mathrand.NewPCG(seed, 11)), certs: certs}
	c.in.IngressClasses = []*networkingv1.IngressClass{randomClass(c.r.IntN(2) == 0)}
	return c
}

func (c *randomCluster) pick(list []string) string { return list[c.r.IntN(len(list))] }

func (c *randomCluster) ingress(ns, name string) *networkingv1.Ingress {
	c.age++
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
		CreationTimestamp: metav1.NewTime(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(c.r.IntN(5)) * time.Hour))}}
	switch c.r.IntN(6) {
	case 0:
		ing.Annotations = map[string]string{render.LegacyClassAnnotation: c.pick([]string{"haproxy", "other"})}
	case 1: // no class: the default class, if any
	default:
		cls := c.pick([]string{"haproxy", "haproxy", "other"})
		ing.Spec.IngressClassName = &cls
	}
	backend := func() networkingv1.IngressBackend {
		if c.r.IntN(20) == 0 {
			return networkingv1.IngressBackend{}
		}
		b := networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: c.pick(rcServices)}}
		switch c.r.IntN(5) {
		case 0:
			b.Service.Port.Name = c.pick([]string{"http", "admin", "Bad Port"})
		case 1:
			b.Service.Port.Number = int32(c.r.IntN(3)) * 70000 // 0 or out of range
		default:
			b.Service.Port.Number = int32(80 + c.r.IntN(2))
		}
		return b
	}
	if c.r.IntN(4) == 0 {
		d := backend()
		ing.Spec.DefaultBackend = &d
	}
	for range c.r.IntN(3) {
		rule := networkingv1.IngressRule{Host: c.pick(rcHosts)}
		if c.r.IntN(8) > 0 {
			rule.HTTP = &networkingv1.HTTPIngressRuleValue{}
			for range 1 + c.r.IntN(3) {
				p := networkingv1.HTTPIngressPath{Path: c.pick(rcPaths), Backend: backend()}
				if t := c.pick(rcTypes); t != "" {
					pt := networkingv1.PathType(t)
					p.PathType = &pt
				}
				rule.HTTP.Paths = append(rule.HTTP.Paths, p)
			}
		}
		ing.Spec.Rules = append(ing.Spec.Rules, rule)
	}
	// Annotations: route ones give the Ingress its own backends, backend
	// ones are decided per Service by age, two name Secrets, and canaries
	// share the routes of others (or find none).
	for range c.r.IntN(3) {
		if ing.Annotations == nil {
			ing.Annotations = map[string]string{}
		}
		// Entries replace others rather than being added: the draws, and
		// so how often canaries and the rest come up, stay as they were.
		kv := c.pick([]string{"balance=leastconn", "balance=source", "service-upstream=true", "maxconn-server=10",
			"backend-ca-secret=" + c.pick(rcSecrets), "backend-protocol=https", "auth-basic-secret=" + c.pick(rcSecrets),
			"denylist-source-range=10.0.0.0/8", "rewrite-target=/r", "hsts=true", "typo=1",
			"canary-weight=30", "canary-by-header=X-Canary", "canary=false", "canary-weight=200",
			"auth-url=http://" + c.pick(rcServices) + "/auth", "auth-url=http://web.b.svc:80/auth",
			"default-backend=web:80", "default-backend=api", "default-backend=gone:http", "server-alias=y.test",
			"server-alias=q.test,*.w.test", "server-alias=x.test", "server-alias=Bad_Host",
			"from-to-www-redirect=true", "from-to-www-redirect=yes", "custom-http-errors=404,503", "custom-http-errors=200",
			"use-regex=true", "ssl-passthrough=true", "ssl-passthrough=true"})
		k, v, _ := strings.Cut(kv, "=")
		ing.Annotations[render.AnnotationPrefix+k] = v
	}
	for range c.r.IntN(3) {
		t := networkingv1.IngressTLS{SecretName: c.pick(append(rcSecrets, ""))}
		for range c.r.IntN(3) {
			t.Hosts = append(t.Hosts, c.pick(rcHosts[1:]))
		}
		ing.Spec.TLS = append(ing.Spec.TLS, t)
	}
	return ing
}

func (c *randomCluster) service(ns, name string) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if name == "ext" && c.r.IntN(2) == 0 {
		s.Spec.Type = corev1.ServiceTypeExternalName
		// Accepted, refused, and a change of name between two versions
		// of the Service; in turn, not drawn, so that the random stream
		// (and what the seeds of TestRandomClusterCoverage reach) is as
		// without ExternalName names.
		names := []string{"", "api.example.com", "api2.example.com", "web.other.svc.cluster.local", "web." + ns + ".svc"}
		s.Spec.ExternalName = names[c.externalNames%len(names)]
		c.externalNames++
	}
	for _, port := range []int32{80, 81} {
		if c.r.IntN(4) == 0 {
			continue
		}
		sp := corev1.ServicePort{Name: c.pick([]string{"http", "admin", ""}), Port: port}
		if c.r.IntN(10) == 0 {
			sp.Protocol = corev1.ProtocolUDP
		}
		s.Spec.Ports = append(s.Spec.Ports, sp)
	}
	return s
}

func (c *randomCluster) slice(ns, svc, name string) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	if c.r.IntN(10) == 0 {
		es.AddressType = discoveryv1.AddressTypeFQDN
	}
	portName, port := c.pick([]string{"http", "admin", ""}), int32(8080+c.r.IntN(2))
	if c.r.IntN(15) == 0 {
		port = 0
	}
	es.Ports = []discoveryv1.EndpointPort{{Name: &portName, Port: &port}}
	for range c.r.IntN(7) {
		a := c.pick(rcAddrs)
		ready := a[0] != '!'
		if !ready {
			a = a[1:]
		}
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	return es
}

func (c *randomCluster) secret(ns, name string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: corev1.SecretTypeTLS}
	pair := c.certs[c.r.IntN(len(c.certs))]
	crt, key := pair.crt, pair.key
	switch c.r.IntN(6) {
	case 0:
		key = nil
	case 1:
		s.Type = corev1.SecretTypeOpaque
	}
	s.Data = map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}
	// Now and then an htpasswd file too, for auth-basic-secret: one user,
	// or another (a canary's backend carries its primary's users).
	if c.r.IntN(2) == 0 {
		s.Data["auth"] = []byte(c.pick([]string{"alice:", "bob:"}) + "$1$saltsalt$" + strings.Repeat("A", 22) + "\n")
	}
	return s
}

// step makes one random change: add, update or delete one object of any
// kind (an update is a new object, as informers deliver them).
func (c *randomCluster) step() string {
	ns := c.pick(rcNamespaces)
	// Class changes are rare: each makes the incremental renderer start
	// over, and long runs without one are what is tested.
	kind := c.r.IntN(5)
	if c.r.IntN(40) == 0 {
		kind = 5
	}
	var name string
	switch kind {
	case 0, 1:
		name = "ing-" + strconv.Itoa(c.r.IntN(6))
		c.in.Ingresses = upsertOrDelete(c, c.in.Ingresses, ns, name, func() *networkingv1.Ingress { return c.ingress(ns, name) })
		what := "Ingress " + ns + "/" + name
		if c.touch.IntN(3) == 0 && len(c.in.Ingresses) > 0 {
			what += ", " + c.touchIngress(c.in.Ingresses[c.touch.IntN(len(c.in.Ingresses))])
		}
		return what
	case 2:
		name = c.pick(rcServices)
		c.in.Services = upsertOrDelete(c, c.in.Services, ns, name, func() *corev1.Service { return c.service(ns, name) })
		return "Service " + ns + "/" + name
	case 3:
		svc := c.pick(rcServices)
		name = svc + "-" + strconv.Itoa(c.r.IntN(2))
		c.in.EndpointSlices = upsertOrDelete(c, c.in.EndpointSlices, ns, name, func() *discoveryv1.EndpointSlice { return c.slice(ns, svc, name) })
		return "EndpointSlice " + ns + "/" + name
	case 4:
		name = c.pick(rcSecrets[:3])
		c.in.Secrets = upsertOrDelete(c, c.in.Secrets, ns, name, func() *corev1.Secret { return c.secret(ns, name) })
		return "Secret " + ns + "/" + name
	default:
		// The class: ours, ours and default, or gone.
		c.in.IngressClasses = nil
		switch c.r.IntN(3) {
		case 0:
			c.in.IngressClasses = append(c.in.IngressClasses, randomClass(false))
		case 1:
			c.in.IngressClasses = append(c.in.IngressClasses, randomClass(true))
		}
		return "IngressClass haproxy"
	}
}

// touchIngress replaces Ingress ing with a copy
// that differs in nothing the renderer reads (its status written, its
// resource version) or in an annotation no one reads, as a status write or
// kubectl annotate makes them.
func (c *randomCluster) touchIngress(ing *networkingv1.Ingress) string {
	i := slices.Index(c.in.Ingresses, ing)
	n := ing.DeepCopy()
	n.ResourceVersion += "1"
	what := "Ingress " + ing.Namespace + "/" + ing.Name + " touched (status)"
	if c.touch.IntN(3) == 0 {
		n.Annotations = maps.Clone(n.Annotations)
		if n.Annotations == nil {
			n.Annotations = map[string]string{}
		}
		n.Annotations["example.com/note-"+strconv.Itoa(c.touch.IntN(2))] = strconv.Itoa(c.touch.IntN(100))
		what = "Ingress " + ing.Namespace + "/" + ing.Name + " touched (annotation)"
	} else {
		n.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "198.51.100." + strconv.Itoa(c.touch.IntN(9))}}
	}
	c.in.Ingresses = append(append(c.in.Ingresses[:i:i], c.in.Ingresses[i+1:]...), n)
	return what
}

type object interface {
	GetNamespace() string
	GetName() string
	GetUID() types.UID
	SetUID(types.UID)
}

// upsertOrDelete deletes the object ns/name, or replaces it with a new
// one: an update (the same UID) or, now and then, a new object of the
// same name (another UID); or adds it.
func upsertOrDelete[T object](c *randomCluster, list []T, ns, name string, make func() T) []T {
	c.uids++
	for i, o := range list {
		if o.GetNamespace() == ns && o.GetName() == name {
			if c.r.IntN(3) == 0 {
				return append(list[:i:i], list[i+1:]...)
			}
			out := append(list[:i:i], list[i+1:]...)
			n := make()
			n.SetUID(o.GetUID())
			if c.r.IntN(3) == 0 {
				n.SetUID(types.UID(fmt.Sprintf("uid-%d", c.uids)))
			}
			return append(out, n)
		}
	}
	n := make()
	n.SetUID(types.UID(fmt.Sprintf("uid-%d", c.uids)))
	return append(list, n)
}

func testCertificates(t testing.TB, n int) []certPair {
	var out []certPair
	for i := range n {
		crt, key := testenv.SelfSigned(t, fmt.Sprintf("cert-%d.test", i), "")
		out = append(out, certPair{crt, key})
	}
	return out
}

// shuffledOrSame is last when it holds the same objects as list, half of
// the time (with kind added to unchanged), else list shuffled.
func shuffledOrSame[T any](r *mathrand.Rand, list, last []*T, unchanged *render.InputKinds, kind render.InputKinds) []*T {
	if len(list) == len(last) && r.IntN(2) == 0 {
		set := make(map[*T]bool, len(last))
		for _, o := range last {
			set[o] = true
		}
		same := true
		for _, o := range list {
			same = same && set[o]
		}
		if same {
			*unchanged |= kind
			return last
		}
	}
	return shuffled(r, list)
}

func TestIncrementalEqualsFull(t *testing.T) {
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg := haproxycfg.Config{HTTPBind: ":80", HTTPSBind: ":443", Template: tmpl}
	certs := testCertificates(t, 3)
	steps, seeds := 400, 25
	if testing.Short() {
		steps, seeds = 100, 5
	}
	defer render.SetBulkMin(64)()
	tcpServed := 0   // models with TCP services, which the sequence must reach
	spareServed := 0 // models with a Service in a spare backend, likewise
	for seed := range seeds {
		// Odd seeds take the bulk path (lists rebuilt at the end) for
		// any change of more than one new Ingress.
		render.SetBulkMin(64)
		if seed%2 == 1 {
			render.SetBulkMin(1)
		}
		c := newRandomCluster(uint64(seed), certs)
		// Some seeds have a --default-backend-service, present or not.
		dflt := []*render.ServiceRef{nil, {Namespace: "b", Name: "web"}, {Namespace: "a", Name: "api", Port: "81"}}[seed%3]
		// Even seeds have TCP services, whose ConfigMap changes now and
		// then (entries valid, bad, on the HTTP port, of Services that
		// come and go).
		opts := render.Options{DefaultService: dflt}
		if seed%2 == 0 {
			opts.TCPServicesConfigMap = "a/tcp"
			opts.ReservedPorts = []render.ReservedPort{{Name: render.ListenerHTTP, Port: 80}, {Name: render.ListenerHTTPS, Port: 443}}
		}
		// Most seeds have a pool of spare backends, small enough to run
		// out and grow.
		if seed%4 != 3 {
			opts.SpareBackends = 1 + seed%3
		}
		inc := haproxycfg.NewIncremental(cfg)
		var incPrev, fullPrev, incOlder, fullOlder *render.Model
		var prevOut *haproxycfg.Output
		var lastIn render.Inputs
		var log []string
		var servedBefore map[*byte]*networkingv1.Ingress // the last model's keys' objects
		for i := range steps {
			log = append(log, c.step())
			// Now and then a pass takes in several changes.
			if c.r.IntN(4) == 0 {
				for range 1 + c.r.IntN(3) {
					log = append(log, c.step())
				}
			}
			// Informer lists come in any order; a source that caches
			// them hands out the same list again when no object of its
			// kind changed (the engine then skips taking it in).
			if c.r.IntN(12) == 0 {
				c.in.ConfigMaps = randomTCPServices(c.r)
			}
			in := c.in
			in.Ingresses = shuffledOrSame(c.r, in.Ingresses, lastIn.Ingresses, &in.Unchanged, render.IngressesKind)
			// Most passes are told how the Ingresses, Services and
			// EndpointSlices changed since the last lists (withDelta).
			withDelta(c.r, &in.IngressDelta, lastIn.Ingresses, in.Ingresses, in.Unchanged, render.IngressesKind)
			in.Services = shuffledOrSame(c.r, in.Services, lastIn.Services, &in.Unchanged, render.ServicesKind)
			withDelta(c.r, &in.ServiceDelta, lastIn.Services, in.Services, in.Unchanged, render.ServicesKind)
			in.EndpointSlices = shuffledOrSame(c.r, in.EndpointSlices, lastIn.EndpointSlices, &in.Unchanged, render.EndpointSlicesKind)
			withDelta(c.r, &in.EndpointSliceDelta, lastIn.EndpointSlices, in.EndpointSlices, in.Unchanged, render.EndpointSlicesKind)
			in.Secrets = shuffledOrSame(c.r, in.Secrets, lastIn.Secrets, &in.Unchanged, render.SecretsKind)
			lastIn = in

			// Now and then the model HAProxy serves is not the last one
			// rendered (a retried pass, a restart): none, or an older one.
			fp, ip := fullPrev, incPrev
			switch c.r.IntN(20) {
			case 0:
				fp, ip = nil, nil
			case 1:
				fp, ip = fullOlder, incOlder
			}
			fo, io := opts, opts
			fo.Previous, io.Previous = fp, ip
			fullM := render.BuildModel(in, fo)
			fullOut, fullErr := haproxycfg.Render(fullM, cfg)
			incM, incOut, incErr := inc.Render(in, io)
			if (fullErr == nil) != (incErr == nil) {
				t.Fatalf("seed %d step %d: full render error %v, incremental %v", seed, i, fullErr, incErr)
			}
			if !reflect.DeepEqual(fullM, incM) {
				// %+v hides what pointers point to: name the fields.
				fv, iv := reflect.ValueOf(fullM).Elem(), reflect.ValueOf(incM).Elem()
				for k := 0; k < fv.NumField(); k++ {
					if fv.Type().Field(k).IsExported() && !reflect.DeepEqual(fv.Field(k).Interface(), iv.Field(k).Interface()) {
						t.Logf("field %s differs", fv.Type().Field(k).Name)
					}
				}
				t.Fatalf("seed %d step %d (%v): models differ\nfull: %+v\nincremental: %+v", seed, i, log, fullM, incM)
			}
			if fullErr == nil {
				if len(fullOut.Files) != len(incOut.Files) {
					t.Fatalf("seed %d step %d: %d files, incremental %d", seed, i, len(fullOut.Files), len(incOut.Files))
				}
				for j, f := range fullOut.Files {
					if g := incOut.Files[j]; g.Path != f.Path || !bytes.Equal(g.Data(), f.Data()) {
						t.Fatalf("seed %d step %d (%v): %s differs from the full render's:\n%s\n--- incremental:\n%s", seed, i, log, f.Path, f.Data(), g.Data())
					}
				}
			}
			// The planner's walk over sorted entries finds what comparing
			// the two renders' maps finds.
			if prevOut != nil && incOut != nil {
				for _, name := range haproxycfg.RuntimeMaps {
					got, want := haproxycfg.MapChanges(name, prevOut, incOut), mapDiff(prevOut.MapEntries(name), incOut.MapEntries(name))
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("seed %d step %d: haproxycfg.MapChanges(%s) = %v, comparing maps gives %v", seed, i, name, got, want)
					}
				}
			}
			// Model.Served: a key is the very string of the last model's
			// list only for the same Ingress, perhaps updated: one with
			// the same UID (of a name that names one object: of
			// duplicates, which one is served is left out).
			objs := map[string]*networkingv1.Ingress{}
			for _, ing := range in.Ingresses {
				k := ing.Namespace + "/" + ing.Name
				if _, dup := objs[k]; dup {
					objs[k] = nil
				} else {
					objs[k] = ing
				}
			}
			for _, k := range incM.Served {
				if was, ok := servedBefore[unsafe.StringData(k)]; ok && was != nil && objs[k] != nil && was.UID != objs[k].UID {
					t.Fatalf("seed %d step %d (%v): key %s handed out again for another Ingress (UID %s, now %s)", seed, i, log, k, was.UID, objs[k].UID)
				}
			}
			servedBefore = map[*byte]*networkingv1.Ingress{}
			for _, k := range incM.Served {
				servedBefore[unsafe.StringData(k)] = objs[k]
			}
			if incOut != nil {
				prevOut = incOut
			}
			if c.r.IntN(10) == 0 {
				fullOlder, incOlder = fullPrev, incPrev
			}
			fullPrev, incPrev = fullM, incM
			if len(fullM.TCPServices) > 0 {
				tcpServed++
			}
			for _, be := range fullM.Backends {
				if be.Spare && be.OwnName != "" {
					spareServed++
					break
				}
			}
		}
	}
	if tcpServed == 0 {
		t.Error("no model had a TCP service")
	}
	if spareServed == 0 {
		t.Error("no model had a Service in a spare backend")
	}
	t.Logf("%d models with TCP services, %d with a Service in a spare backend", tcpServed, spareServed)
}

// randomTCPServices is the TCP services ConfigMap a/tcp with some of a
// pool of entries, or none.
func randomTCPServices(r *mathrand.Rand) []*corev1.ConfigMap {
	if r.IntN(5) == 0 {
		return nil
	}
	pool := [][2]string{{"9000", "b/web:80"}, {"9001", "a/api:81::PROXY"}, {"9002", "a/ext:http"}, {"9003", "b/gone:admin:PROXY"},
		{"80", "a/web:80"}, {"x", "a/web:80"}, {"9004", "a/web:80:bad"}, {"9005", "a/web:http:PROXY:PROXY"}, {"9000", "a/api:admin"}}
	data := map[string]string{}
	for _, e := range pool {
		if r.IntN(2) == 0 {
			data[e[0]] = e[1]
		}
	}
	return []*corev1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "tcp"}, Data: data}}
}

// deltaOf is how list differs from since, as a caching source tells it.
func deltaOf[T comparable](since, list []T) *render.Delta[T] {
	d := &render.Delta[T]{Since: since}
	was, is := map[T]bool{}, map[T]bool{}
	for _, o := range since {
		was[o] = true
	}
	for _, o := range list {
		is[o] = true
		if !was[o] {
			d.Added = append(d.Added, o)
		}
	}
	for _, o := range since {
		if !is[o] {
			d.Removed = append(d.Removed, o)
		}
	}
	return d
}

// withDelta sets *d, on most passes, to how list changed since the list
// taken in last (since); now and then to a delta relative to another
// slice than that one, and wrong for it: the engine must walk the list
// then. A list unchanged (kind in unchanged) gets none.
func withDelta[T comparable](r *mathrand.Rand, d **render.Delta[T], since, list []T, unchanged render.InputKinds, kind render.InputKinds) {
	if unchanged.Has(kind) || r.IntN(4) == 0 {
		return
	}
	*d = deltaOf(since, list)
	if r.IntN(8) == 0 && len(since) > 0 {
		*d = &render.Delta[T]{Since: slices.Clone(since)}
	}
}

func shuffled[T any](r *mathrand.Rand, list []T) []T {
	out := append([]T(nil), list...)
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// The random clusters reach what the comparison is about.
func TestRandomClusterCoverage(t *testing.T) {
	certs := testCertificates(t, 2)
	reasons := map[render.Reason]int{}
	var routes, nCerts, backends, servers, canaries int
	var c *randomCluster
	for i := range 2000 {
		if i%400 == 0 {
			c = newRandomCluster(uint64(i/400), certs)
		}
		c.step()
		m := render.BuildModel(c.in, render.Options{})
		routes += len(m.Routes)
		for _, r := range m.Routes {
			if r.Canary != nil {
				canaries++
			}
		}
		nCerts += len(m.Certs)
		backends += len(m.Backends)
		for _, be := range m.Backends {
			servers += len(be.Servers)
		}
		for _, p := range m.Problems {
			reasons[p.Reason]++
		}
	}
	t.Logf("routes %d (%d with a canary) certs %d backends %d servers %d reasons %v", routes, canaries, nCerts, backends, servers, reasons)
	for _, r := range []render.Reason{render.Conflict, render.InvalidHost, render.InvalidPath, render.InvalidPathType, render.BackendNotFound, render.BackendPortNotFound, render.NoEndpoints,
		render.TLSSecretNotFound, render.TLSSecretInvalid, render.NotOurClass, render.InvalidBackend, render.UnsupportedBackend, render.InvalidAddress, render.UnsupportedAddressType,
		render.CanaryWithoutPrimary, render.InvalidAnnotation} {
		if reasons[r] == 0 {
			t.Errorf("no step reported %s", r)
		}
	}
	if routes == 0 || nCerts == 0 || servers == 0 || canaries == 0 {
		t.Errorf("routes %d, certificates %d, servers %d, routes with a canary %d: want some of each", routes, nCerts, servers, canaries)
	}
}

// mapDiff is what MapChanges must find: the entries that differ between
// two maps, removals first, each part sorted by key.
func mapDiff(was, now map[string]string) []haproxycfg.MapChange {
	var gone, changed []haproxycfg.MapChange
	for k := range was {
		if _, ok := now[k]; !ok {
			gone = append(gone, haproxycfg.MapChange{Key: k})
		}
	}
	for k, v := range now {
		if prev, ok := was[k]; !ok {
			changed = append(changed, haproxycfg.MapChange{Key: k, Value: v, Added: true})
		} else if prev != v {
			changed = append(changed, haproxycfg.MapChange{Key: k, Value: v})
		}
	}
	byKey := func(x, y haproxycfg.MapChange) int { return strings.Compare(x.Key, y.Key) }
	slices.SortFunc(gone, byKey)
	slices.SortFunc(changed, byKey)
	return append(gone, changed...)
}

// randomClass is the controller's IngressClass, the default one when def.
func randomClass(def bool) *networkingv1.IngressClass {
	c := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "haproxy"},
		Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}
	if def {
		c.Annotations = map[string]string{render.DefaultClassAnnotation: "true"}
	}
	return c
}
