package kube

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"k8s.io/client-go/tools/cache"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// watchedList is one kind's objects kept from an informer's events rather
// than listed from its store, so that each list it hands out comes with
// what changed since the one before (render.Delta): a pass for one new
// Ingress then reads one Ingress, not 10k. The list and the delta come
// from the same events, in the order the informer delivered them; a list
// of the store could hold an object whose event has not been delivered
// yet, and the delta would miss it.
//
// Lists handed out are never changed: the next change copies the list
// first (10k pointers, a few microseconds).
type watchedList[T any] struct {
	mu     sync.Mutex
	list   []*T
	pos    map[string]int // namespace/name → index in list
	shared bool           // list was handed out

	handed         []*T            // the list handed out last, nil before the first
	changed        bool            // list changed since handed
	added, removed map[*T]struct{} // since handed
	reg            cache.ResourceEventHandlerRegistration
	// quiet, when set, tells an update that changes nothing the renderer
	// reads (a status write): the list takes it in and notifies of such
	// updates together, quietDelay after the first (notifyQuiet).
	quiet func(old, new *T) bool
	// quietTimer is the pending notification of quiet updates;
	// quietPending says one came that no list handed out has yet.
	quietTimer   *time.Timer
	quietPending bool
}

// quietDelay is how long quiet updates wait to be told of, together. Not
// told at all, they were handed out only with the next change: until
// then the status loop decided on the objects of the list handed out
// last (at a start with 10k Ingresses, the periodic full check found all
// 10k without the status just written and wrote each again, a conflict
// and a read apiece, for minutes, while new Ingresses waited for their
// status), and the list and the renderer kept both objects of each
// Ingress. Told one by one, each was a pass (50k at a first start with
// 50k Ingresses); told together, a start writing 160 statuses a second
// makes one pass a second.
const quietDelay = time.Second

func newWatchedList[T any]() *watchedList[T] {
	return &watchedList[T]{pos: map[string]int{}, added: map[*T]struct{}{}, removed: map[*T]struct{}{}}
}

// handler is the informer event handler that keeps the list; notify is
// called after each change is in it.
func (l *watchedList[T]) handler(notify func()) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if o, ok := obj.(*T); ok {
				l.put(o)
				notify()
			}
		},
		UpdateFunc: func(old, new any) {
			if o, ok := new.(*T); ok && !resync(old, new) {
				l.put(o)
				if was, ok := old.(*T); ok && l.quiet != nil && l.quiet(was, o) {
					l.notifyQuiet(notify)
					return
				}
				notify()
			}
		},
		DeleteFunc: func(obj any) {
			key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
			if err == nil {
				l.remove(key)
				notify()
			}
		},
	}
}

// notifyQuiet calls notify quietDelay after the first quiet update not
// handed out yet, unless a list handed out meanwhile took them all.
func (l *watchedList[T]) notifyQuiet(notify func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.quietPending = true
	if l.quietTimer != nil {
		return
	}
	l.quietTimer = time.AfterFunc(quietDelay, func() {
		l.mu.Lock()
		pending := l.quietPending
		l.quietTimer, l.quietPending = nil, false
		l.mu.Unlock()
		if pending {
			notify()
		}
	})
}

// writable makes list safe to change: a copy once it was handed out.
func (l *watchedList[T]) writable() {
	if l.shared {
		l.list = slices.Clone(l.list)
		l.shared = false
	}
	l.changed = true
}

// put adds obj, or replaces the object of the same namespace/name.
func (l *watchedList[T]) put(obj *T) {
	key, err := cache.MetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writable()
	if i, ok := l.pos[key]; ok {
		l.noteRemoved(l.list[i])
		l.list[i] = obj
	} else {
		l.pos[key] = len(l.list)
		l.list = append(l.list, obj)
	}
	l.noteAdded(obj)
}

// remove takes the object of namespace/name out, if there is one.
func (l *watchedList[T]) remove(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, ok := l.pos[key]
	if !ok {
		return
	}
	l.writable()
	old := l.list[i]
	last := len(l.list) - 1
	if i != last {
		moved := l.list[last]
		l.list[i] = moved
		l.pos[keyOf(moved)] = i
	}
	l.list[last] = nil
	l.list = l.list[:last]
	delete(l.pos, key)
	l.noteRemoved(old)
}

// An object added and removed between two lists was never handed out,
// nor was one removed and added back (never the same pointer in practice).
func (l *watchedList[T]) noteAdded(obj *T) {
	if _, ok := l.removed[obj]; ok {
		delete(l.removed, obj)
		return
	}
	l.added[obj] = struct{}{}
}

func (l *watchedList[T]) noteRemoved(obj *T) {
	if _, ok := l.added[obj]; ok {
		delete(l.added, obj)
		return
	}
	l.removed[obj] = struct{}{}
}

// take returns the list, whether it is the one handed out last (nothing
// changed since), and otherwise, after the first, how it differs from
// that one. Added and Removed are in namespace/name order.
func (l *watchedList[T]) take() (list []*T, same bool, delta *render.Delta[*T]) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.handed != nil && !l.changed {
		return l.handed, true, nil
	}
	if l.list == nil {
		l.list = []*T{} // handed out: never nil, so that the next delta has a Since
	}
	if l.handed != nil {
		delta = &render.Delta[*T]{Since: l.handed, Added: sortedByKey(l.added), Removed: sortedByKey(l.removed)}
	}
	clear(l.added)
	clear(l.removed)
	l.handed, l.shared, l.changed, l.quietPending = l.list, true, false, false
	return l.list, false, delta
}

// handedList is the list take handed out last, for a reader other than
// the one take's deltas are for; nil before the first.
func (l *watchedList[T]) handedList() []*T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.handed
}

func sortedByKey[T any](objs map[*T]struct{}) []*T {
	if len(objs) == 0 {
		return nil
	}
	type keyed struct {
		obj *T
		key string
	}
	list := make([]keyed, 0, len(objs))
	for o := range objs {
		list = append(list, keyed{o, keyOf(o)})
	}
	slices.SortFunc(list, func(a, b keyed) int { return cmp.Compare(a.key, b.key) })
	out := make([]*T, len(list))
	for i, k := range list {
		out[i] = k.obj
	}
	return out
}

// keyOf is an object's namespace/name (the informer's key).
func keyOf[T any](obj *T) string {
	key, _ := cache.MetaNamespaceKeyFunc(obj)
	return key
}

// synced is done once the informer has synced and every event of its
// initial list reached the list.
func (l *watchedList[T]) synced() cache.DoneChecker { return l.reg.HasSyncedChecker() }
