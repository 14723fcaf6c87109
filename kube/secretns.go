package kube

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// A namespace whose objects reference many Secrets (nsWatchMin) has its
// kubernetes.io/tls Secrets kept by one list and watch (namespaceTLS)
// instead of one reflector per Secret: at 1,000 TLS Ingresses the
// per-Secret reflectors (each a goroutine or two, a watch stream, its
// decoder's buffers) were about 70 MiB of the sidecar's peak RSS against
// 1,000 Secrets of a few KiB (e2e/bench, TLS variant), 1,000 watch
// requests at start, and a new TLS host waited for its Secret's new
// watch to list it. Only Secrets of that type are kept: the referenced
// ones mostly are, and a namespace's other Secrets (Helm releases,
// tokens) may be large and many. A referenced Secret the namespace's
// watch does not hold (another type, or none of that name yet) keeps a
// watch of its own until it does.

// nsWatchMin is how many Secrets of one namespace must be referenced for
// its TLS Secrets to be watched as one: below it, narrow watches cost
// less than keeping the namespace's unreferenced TLS Secrets too.
const nsWatchMin = 16

// namespaceTLS keeps the kubernetes.io/tls Secrets of one namespace.
type namespaceTLS struct {
	stop   context.CancelFunc
	synced chan struct{} // closed by the first list

	mu     sync.Mutex
	byName map[string]*corev1.Secret
	// changed is told the names whose Secret changed (added, updated,
	// deleted); not for a relist or resync that finds them as they were.
	// Called without mu held.
	changed func(names []string)
}

// watchNamespaceTLS starts watching the TLS Secrets of ns until ctx is
// done. seed, when not nil, is its first list, already made (at start,
// startDeferred lists the namespaces before deciding which to watch so):
// it is synced at once and watches from that list's version.
func watchNamespaceTLS(ctx context.Context, client kubernetes.Interface, ns string, changed func(names []string), seed *corev1.SecretList) *namespaceTLS {
	ctx, stop := context.WithCancel(ctx)
	w := &namespaceTLS{stop: stop, synced: make(chan struct{}), byName: map[string]*corev1.Secret{}, changed: changed}
	tlsOnly := fields.OneTermEqualSelector("type", string(corev1.SecretTypeTLS)).String()
	base := secretListWatch(client, ns, func(o *metav1.ListOptions) { o.FieldSelector = tlsOnly })
	lw := cache.ToListWatcherWithWatchListSemantics(base, client)
	if seed != nil {
		// Kept without telling: nothing was served from it before.
		lw = &seededListWatch{ListWatch: base, seed: seed}
		for i := range seed.Items {
			w.byName[seed.Items[i].Name] = trimSecret(&seed.Items[i])
		}
		close(w.synced)
	}
	r := cache.NewReflectorWithOptions(lw, &corev1.Secret{}, w, cache.ReflectorOptions{Name: "TLS Secrets of " + ns})
	go r.RunWithContext(ctx)
	return w
}

// isSynced says whether the first list is in.
func (w *namespaceTLS) isSynced() bool { return cache.IsDone(w) }

// Name and Done make namespaceTLS a cache.DoneChecker.
func (w *namespaceTLS) Name() string          { return "namespace TLS Secrets" }
func (w *namespaceTLS) Done() <-chan struct{} { return w.synced }

// get is the Secret name, or nil.
func (w *namespaceTLS) get(name string) *corev1.Secret {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.byName[name]
}

// The reflector's store (cache.ReflectorStore).

func (w *namespaceTLS) Add(obj any) error {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return nil
	}
	s = trimSecret(s)
	w.mu.Lock()
	old := w.byName[s.Name]
	w.byName[s.Name] = s
	w.mu.Unlock()
	if !sameVersion(old, s) {
		w.changed([]string{s.Name})
	}
	return nil
}

func (w *namespaceTLS) Update(obj any) error { return w.Add(obj) }

func (w *namespaceTLS) Delete(obj any) error {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return nil
	}
	w.mu.Lock()
	_, had := w.byName[s.Name]
	delete(w.byName, s.Name)
	w.mu.Unlock()
	if had {
		w.changed([]string{s.Name})
	}
	return nil
}

// Replace takes a (re)list; it tells of the names that differ from what
// was kept.
func (w *namespaceTLS) Replace(list []any, _ string) error {
	next := make(map[string]*corev1.Secret, len(list))
	for _, obj := range list {
		if s, ok := obj.(*corev1.Secret); ok {
			next[s.Name] = trimSecret(s)
		}
	}
	w.mu.Lock()
	var names []string
	for name, s := range next {
		if !sameVersion(w.byName[name], s) {
			names = append(names, name)
		}
	}
	for name := range w.byName {
		if next[name] == nil {
			names = append(names, name)
		}
	}
	w.byName = next
	w.mu.Unlock()
	// The reflector calls its store from one goroutine: no other close.
	select {
	case <-w.synced:
	default:
		close(w.synced)
	}
	if len(names) > 0 {
		w.changed(names)
	}
	return nil
}

func (w *namespaceTLS) Resync() error { return nil }
