package render

import (
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// Incremental renders like BuildModel followed by Render, byte for byte,
// but keeps what each render computed from an object for the next one, as
// long as the object is the same. A change to one object then recomputes
// only what depends on it: the Ingress's parsed rules, the endpoints of
// the Service ports whose Service or EndpointSlices changed, a TLS
// Secret's certificate, and the haproxy.cfg sections of the backends whose
// servers changed. What is left for every render is the merge of those
// pieces (conflicts between Ingresses, which depend on their age, and the
// sorted maps), which is linear in the cluster but cheap.
//
// "The same object" means the same pointer: informer caches and the
// manifest reader hand out a new object for every change and never modify
// one they handed out, and render never modifies its inputs. A caller that
// modifies an object in place must use BuildModel and Render instead.
//
// The full render (BuildModel, Render) stays the reference: tests compare
// the two over randomized sequences of changes.
type Incremental struct {
	mu       sync.Mutex
	cfg      Config
	memo     memo
	sections sectionCache
}

// NewIncremental returns an incremental renderer for cfg (whose Template
// it keeps backend sections of: a renderer for new templates starts cold).
func NewIncremental(cfg Config) *Incremental {
	return &Incremental{cfg: cfg}
}

// Render builds the model (opts as for BuildModel) and renders it.
func (r *Incremental) Render(in Inputs, opts Options) (*Model, *Output, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := buildModel(in, opts, &r.memo)
	out, err := render(m, r.cfg, &r.sections)
	if err != nil {
		return m, nil, err
	}
	return m, out, nil
}

// memo is what a build keeps for the next. Each build moves the entries
// it used into the next* maps, which then replace the old ones: what
// belongs to deleted objects is dropped.
type memo struct {
	ingresses, nextIngresses map[*networkingv1.Ingress]*parsedIngress
	// endpoints are by backend name.
	endpoints, nextEndpoints map[string]*endpointsEntry
	certs, nextCerts         map[*corev1.Secret]certEntry
	// gen counts builds; last is the model the last one returned.
	gen  int
	last *Model
}

func (m *memo) begin() {
	m.gen++
	m.nextIngresses = make(map[*networkingv1.Ingress]*parsedIngress, len(m.ingresses))
	m.nextEndpoints = make(map[string]*endpointsEntry, len(m.endpoints))
	m.nextCerts = make(map[*corev1.Secret]certEntry, len(m.certs))
}

func (m *memo) end() {
	m.ingresses, m.nextIngresses = m.nextIngresses, nil
	m.endpoints, m.nextEndpoints = m.nextEndpoints, nil
	m.certs, m.nextCerts = m.nextCerts, nil
}

// endpointsEntry is a Service port's ready endpoints, valid while the port
// has the same name and the Service the same EndpointSlice objects.
type endpointsEntry struct {
	portName string
	slices   []*discoveryv1.EndpointSlice
	servers  []netip.AddrPort
	// made is the build that read the slices.
	made int
	// problems are all that reading the slices reported, in order.
	problems []Problem
	// slotAddrs are the slots last assigned to servers.
	slotAddrs []netip.AddrPort
	// backend is the last backend made from these endpoints.
	backend *Backend
}

// certEntry is what certificatePEM returned for a Secret.
type certEntry struct {
	pem []byte
	err error
}
