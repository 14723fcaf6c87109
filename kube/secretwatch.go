package kube

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// secretWatch keeps one Secret, the one an Ingress (or the settings)
// names, from a reflector of its own: a list and watch narrowed to that
// name. Not a shared informer: its event queue, processor and the
// 1,024-slot ring buffer of every handler are per informer, and with one
// per referenced Secret they cost, at 1,000 TLS Ingresses, 12.5 MB of
// buffers and thousands of goroutines (e2e/bench, heap profile of the TLS
// variant). A reflector needs only a store; this one holds one object.
type secretWatch struct {
	cancel context.CancelFunc

	mu      sync.Mutex
	secret  *corev1.Secret // nil: none (not yet, or not there)
	synced  chan struct{}  // closed by the first list, or by stop
	once    sync.Once      // closes synced
	changed func()
}

// watchSecret starts watching namespace/name until ctx is done; changed
// is called after each change of the Secret, the first list finding it
// included, not for a relist or resync that finds it as it was.
func watchSecret(ctx context.Context, client kubernetes.Interface, ns, name string, changed func()) *secretWatch {
	ctx, stop := context.WithCancel(ctx)
	w := &secretWatch{cancel: stop, synced: make(chan struct{}), changed: changed}
	lw := cache.ToListWatcherWithWatchListSemantics(secretListWatch(client, ns, oneObject(name)), client)
	r := cache.NewReflectorWithOptions(lw, &corev1.Secret{}, w, cache.ReflectorOptions{Name: "Secret " + ns + "/" + name})
	go r.RunWithContext(ctx)
	return w
}

// secretListWatch lists and watches the Secrets of ns that narrow
// selects (one name, or one type).
func secretListWatch(client kubernetes.Interface, ns string, narrow func(*metav1.ListOptions)) *cache.ListWatch {
	secrets := client.CoreV1().Secrets(ns)
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			narrow(&o)
			return secrets.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			narrow(&o)
			return secrets.Watch(ctx, o)
		},
	}
}

// trimSecret is trim for a Secret: what is kept of it.
func trimSecret(s *corev1.Secret) *corev1.Secret {
	if t, err := trim(s); err == nil {
		return t.(*corev1.Secret)
	}
	return s
}

// seededListWatch answers its first list with seed, then lists and
// watches as its ListWatch does. It tells the reflector it cannot stream
// lists (a watch with initial events), so that the reflector lists, and
// that first list is the seed.
type seededListWatch struct {
	*cache.ListWatch
	mu   sync.Mutex
	seed *corev1.SecretList
}

func (lw *seededListWatch) ListWithContext(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
	lw.mu.Lock()
	seed := lw.seed
	lw.seed = nil
	lw.mu.Unlock()
	if seed != nil {
		return seed, nil
	}
	return lw.ListWatch.ListWithContext(ctx, o)
}

func (lw *seededListWatch) List(o metav1.ListOptions) (runtime.Object, error) {
	return lw.ListWithContext(context.Background(), o)
}

// IsWatchListSemanticsUnSupported is read by client-go's reflector
// (watchlist.DoesClientNotSupportWatchListSemantics).
func (lw *seededListWatch) IsWatchListSemanticsUnSupported() bool { return true }

// stop ends the watch. A render waiting for its first list goes on: a
// watch is stopped when the Secret is no longer referenced or its
// namespace's watch has it (cover), and either way nothing is to come
// from this one.
func (w *secretWatch) stop() {
	w.cancel()
	w.once.Do(func() { close(w.synced) })
}

// Synced is done once the first list is in, or the watch stopped.
func (w *secretWatch) Synced() cache.DoneChecker { return w }

// Name and Done make secretWatch a cache.DoneChecker.
func (w *secretWatch) Name() string          { return "Secret watch" }
func (w *secretWatch) Done() <-chan struct{} { return w.synced }

// Secret is the Secret, or nil.
func (w *secretWatch) Secret() *corev1.Secret {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.secret
}

// set makes s (nil: none) the Secret and tells of a change, unless it is
// the same version as before (a relist or resync).
func (w *secretWatch) set(s *corev1.Secret) {
	if s != nil {
		s = trimSecret(s)
	}
	w.mu.Lock()
	old := w.secret
	w.secret = s
	tell := !sameVersion(old, s)
	w.mu.Unlock()
	if tell {
		w.changed()
	}
}

func sameVersion(a, b *corev1.Secret) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.UID == b.UID && a.ResourceVersion == b.ResourceVersion
}

// The reflector's store (cache.ReflectorStore): the watch is narrowed to
// one name, so every object is that Secret.

func (w *secretWatch) Add(obj any) error {
	if s, ok := obj.(*corev1.Secret); ok {
		w.set(s)
	}
	return nil
}

func (w *secretWatch) Update(obj any) error { return w.Add(obj) }

func (w *secretWatch) Delete(any) error {
	w.set(nil)
	return nil
}

// Replace takes a (re)list: the Secret, or nothing. The first one makes
// the watch synced; a later one tells of a change only if there is one.
func (w *secretWatch) Replace(list []any, _ string) error {
	var s *corev1.Secret
	for _, obj := range list {
		if o, ok := obj.(*corev1.Secret); ok {
			s = o
		}
	}
	w.set(s)
	w.once.Do(func() { close(w.synced) })
	return nil
}

func (w *secretWatch) Resync() error { return nil }
