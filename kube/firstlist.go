package kube

import (
	"context"
	"os"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// watchListEnv is client-go's own switch for streaming lists (its
// WatchListClient feature, read from the environment).
const watchListEnv = "KUBE_FEATURE_WatchListClient"

// sourceInformer is an informer of the Source: its objects trimmed (see
// trim), its first list one LIST answered from the API server's cache
// unless the environment asks client-go for streaming lists.
//
// Why not client-go's default (streaming lists, a watch whose initial
// events are every object, since v0.35): at 50k Ingresses against an API
// server that streams them (etcd 3.6), the lists took 2.0–2.5 s with it
// and 1.4–1.6 s as one LIST each, and the start to the first right
// answer 4.6–5.9 s against 3.9–4.8 s (BENCHMARKS.md): the API server
// sends each object as an event of its own, on one core, and the first
// render waits for the last. What the
// streaming list saves, the API server holding a whole LIST answer in
// memory, API servers since 1.33 no longer do (they encode a LIST as
// they send it). KUBE_FEATURE_WatchListClient=true (or false) in the
// environment leaves the choice to client-go, as in any client-go
// program.
func sourceInformer[L runtime.Object](obj runtime.Object, client any,
	list func(context.Context, metav1.ListOptions) (L, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error),
	narrow func(*metav1.ListOptions),
) cache.SharedIndexInformer {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			if narrow != nil {
				narrow(&o)
			}
			return list(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			if narrow != nil {
				narrow(&o)
			}
			return watchFn(ctx, o)
		},
	}
	// No namespace index (client-go's informers add one): nothing looks
	// objects up by namespace, and at 10k Ingresses it was about a
	// megabyte.
	inf := cache.NewSharedIndexInformer(firstLists(lw, client), obj, 0, cache.Indexers{})
	// Only fails once the informer runs; it has not started yet.
	_ = inf.SetTransform(trim)
	return inf
}

// firstLists is lw as the Source's informers list: see sourceInformer.
func firstLists(lw *cache.ListWatch, client any) cache.ListerWatcher {
	if _, set := os.LookupEnv(watchListEnv); set {
		return cache.ToListWatcherWithWatchListSemantics(lw, client)
	}
	return listsOnce{lw}
}

// listsOnce is a ListWatch that tells client-go's reflector it cannot
// stream lists, so that the reflector lists and then watches.
type listsOnce struct{ *cache.ListWatch }

// IsWatchListSemanticsUnSupported is read by client-go's reflector
// (watchlist.DoesClientNotSupportWatchListSemantics).
func (listsOnce) IsWatchListSemanticsUnSupported() bool { return true }
