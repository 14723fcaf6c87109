package haproxycfg

import (
	"sync"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// Incremental renders like BuildModel followed by Render, byte for byte,
// but keeps what each render computed for the next one. A change to one
// object evaluates again only the Ingresses it reaches (render.Engine), and
// renders again only the haproxy.cfg sections of the backends that
// changed and the map files whose entries changed (spliced from the
// previous ones); unchanged parts are handed out as the same slices.
//
// "The same object" means the same pointer: informer caches and the
// manifest reader hand out a new object for every change and never modify
// one they handed out, and render never modifies its inputs. A caller that
// modifies an object in place must use BuildModel and Render instead.
//
// The full render (BuildModel, Render) stays the reference: tests compare
// the two over randomized sequences of changes (render/incremental_test.go)
// and on fuzzed manifests (render/fuzz_test.go).
type Incremental struct {
	mu     sync.Mutex
	cfg    Config
	engine render.Engine
	cache  renderCache
}

// NewIncremental returns an incremental renderer for cfg (whose Template
// it keeps backend sections of: a renderer for new templates starts cold).
func NewIncremental(cfg Config) *Incremental {
	return &Incremental{cfg: cfg}
}

// Render builds the model (opts as for BuildModel) and renders it.
func (r *Incremental) Render(in render.Inputs, opts render.Options) (*render.Model, *Output, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.engine.Build(in, opts)
	out, err := renderFiles(m, r.cfg, &r.cache)
	if err != nil {
		return m, nil, err
	}
	return m, out, nil
}

// EvaluatedIngresses is how many Ingresses the last Render evaluated again
// (render.Engine.Evaluated).
func (r *Incremental) EvaluatedIngresses() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.engine.Evaluated()
}
