package render

import (
	"sync"
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
	mu     sync.Mutex
	cfg    Config
	engine engine
	cache  renderCache
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
	m := r.engine.build(in, opts)
	out, err := render(m, r.cfg, &r.cache)
	if err != nil {
		return m, nil, err
	}
	return m, out, nil
}

// certEntry is what certificatePEM returned for a Secret.
type certEntry struct {
	pem []byte
	err error
}
