// Package kube is the sidecar's Kubernetes side: informers that feed the
// render loop, Ingress status, Events and leader election.
package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// SourceConfig selects what the source watches.
type SourceConfig struct {
	Client kubernetes.Interface
	// SecretClient, when set, is the client of the Secret watches: one
	// list and watch per referenced Secret, so 1,000 TLS Ingresses make
	// 2,000-3,000 requests at start, which the main client's rate limit
	// would spread over many seconds. Default: Client.
	SecretClient kubernetes.Interface
	// Namespace limits Ingresses, Services and EndpointSlices to one
	// namespace; "" watches all. IngressClasses are cluster-scoped.
	Namespace string
	// SettingsConfigMap is "namespace/name" of the global settings
	// ConfigMap, or "".
	SettingsConfigMap string
	// TCPServicesConfigMap is "namespace/name" of the TCP services
	// ConfigMap, or "".
	TCPServicesConfigMap string
	// Notify is called after any watched object changed.
	Notify func()
	Log    *zap.Logger
}

// Source keeps informer caches of the objects a render needs and hands
// them out as render.Inputs. Secrets are never cached cluster-wide: each
// Secret an Ingress references gets its own single-object watch, started
// when the first reference appears and stopped when the last goes away.
type Source struct {
	cfg       SourceConfig
	ingresses cache.SharedIndexInformer
	classes   cache.SharedIndexInformer
	services  cache.SharedIndexInformer
	slices    cache.SharedIndexInformer
	settings  cache.SharedIndexInformer // nil without a settings ConfigMap
	tcp       cache.SharedIndexInformer // nil without a TCP services ConfigMap

	mu      sync.Mutex
	ctx     context.Context
	secrets map[string]*secretWatch // by namespace/name
	// nsWatches keep the TLS Secrets of the namespaces with nsWatchMin
	// or more referenced Secrets (nsRefs counts them): a referenced
	// Secret one holds has no watch of its own (cover).
	nsWatches map[string]*namespaceTLS
	nsRefs    map[string]int
	// refs counts the references to each Secret (namespace/name) of
	// the objects in the caches (counted before an object is in its list:
	// listsSynced are done once the initial lists' references are).
	refs map[string]int
	// Until the initial lists' references are counted, watches are not
	// started but noted in deferred; then startDeferred starts them, the
	// namespace watches from one list each, and closes seeded.
	starting bool
	deferred map[string]bool
	seeded   chan struct{}

	// Each informer's objects, kept from its events (see watchedList):
	// Inputs hands a list out again while no event of its kind came in
	// (at 10k Ingresses, listing the store and taking the list in costs
	// milliseconds on every pass for one change), and the Ingresses with
	// what changed since the list before.
	ingressList  *watchedList[networkingv1.Ingress]
	classList    *watchedList[networkingv1.IngressClass]
	serviceList  *watchedList[corev1.Service]
	sliceList    *watchedList[discoveryv1.EndpointSlice]
	settingsList *watchedList[corev1.ConfigMap] // nil without a settings ConfigMap
	tcpList      *watchedList[corev1.ConfigMap] // nil without a TCP services ConfigMap
	// configMaps is the last ConfigMaps list handed out (both lists'
	// objects), handed out again while neither list changed.
	configMaps []*corev1.ConfigMap
	// listsSynced are done once each list holds its informer's initial
	// list, for WaitForSync.
	listsSynced []cache.DoneChecker
}

// NewSource prepares the informers; Run starts them.
func NewSource(cfg SourceConfig) (*Source, error) {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.SecretClient == nil {
		cfg.SecretClient = cfg.Client
	}
	s := &Source{cfg: cfg, secrets: map[string]*secretWatch{}, refs: map[string]int{},
		nsWatches: map[string]*namespaceTLS{}, nsRefs: map[string]int{},
		starting: true, deferred: map[string]bool{}, seeded: make(chan struct{})}
	// Informers of their own (sourceInformer): trimmed objects, one LIST
	// to start, no namespace index.
	ings := cfg.Client.NetworkingV1().Ingresses(cfg.Namespace)
	s.ingresses = sourceInformer(&networkingv1.Ingress{}, cfg.Client, ings.List, ings.Watch, nil)
	svcs := cfg.Client.CoreV1().Services(cfg.Namespace)
	s.services = sourceInformer(&corev1.Service{}, cfg.Client, svcs.List, svcs.Watch, nil)
	eps := cfg.Client.DiscoveryV1().EndpointSlices(cfg.Namespace)
	s.slices = sourceInformer(&discoveryv1.EndpointSlice{}, cfg.Client, eps.List, eps.Watch, nil)
	classes := cfg.Client.NetworkingV1().IngressClasses()
	s.classes = sourceInformer(&networkingv1.IngressClass{}, cfg.Client, classes.List, classes.Watch, nil)
	if cfg.SettingsConfigMap != "" {
		ns, name, err := splitRef(cfg.SettingsConfigMap)
		if err != nil {
			return nil, fmt.Errorf("settings ConfigMap: %w", err)
		}
		// One object only: a field selector keeps every other ConfigMap
		// out of memory.
		cms := cfg.Client.CoreV1().ConfigMaps(ns)
		s.settings = sourceInformer(&corev1.ConfigMap{}, cfg.Client, cms.List, cms.Watch, oneObject(name))
	}
	if cfg.TCPServicesConfigMap != "" {
		ns, name, err := splitRef(cfg.TCPServicesConfigMap)
		if err != nil {
			return nil, fmt.Errorf("TCP services ConfigMap: %w", err)
		}
		// Like the settings: one object, its own informer.
		cms := cfg.Client.CoreV1().ConfigMaps(ns)
		s.tcp = sourceInformer(&corev1.ConfigMap{}, cfg.Client, cms.List, cms.Watch, oneObject(name))
	}
	// Ingresses and the settings (default certificate) add and drop
	// Secret references; each event counts the references of the object
	// it is about, so that a watch starts with a Secret's first reference
	// and stops with its last. (Finding them by reading every Ingress on
	// each event made an initial list of 1,000 TLS Ingresses read the
	// cache a million times.) They are counted in the same handler as the
	// list takes the object in, before it tells of the change: the pass
	// the change starts finds the Secrets it references watched.
	refs := &cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { s.countRefs(secretNames(obj), 1) },
		UpdateFunc: func(old, new any) {
			if o, n := secretNames(old), secretNames(new); !slices.Equal(o, n) {
				// The new ones first: a name in both keeps its watch.
				s.countRefs(n, 1)
				s.countRefs(o, -1)
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			s.countRefs(secretNames(obj), -1)
		},
	}
	var err error
	if s.ingressList, err = watchList[networkingv1.Ingress](s, s.ingresses, refs); err != nil {
		return nil, err
	}
	// A status write (the sidecar's own, one per Ingress it serves, or
	// another controller's) is no change to render: no pass of its own,
	// but one a second for all of them, so that the list handed out, the
	// renderer and the status loop hold what the API server does (a
	// status another controller changed is put right then).
	s.ingressList.quiet = render.SameIngress
	if s.classList, err = watchList[networkingv1.IngressClass](s, s.classes, nil); err != nil {
		return nil, err
	}
	if s.serviceList, err = watchList[corev1.Service](s, s.services, nil); err != nil {
		return nil, err
	}
	if s.sliceList, err = watchList[discoveryv1.EndpointSlice](s, s.slices, nil); err != nil {
		return nil, err
	}
	if s.settings != nil {
		if s.settingsList, err = watchList[corev1.ConfigMap](s, s.settings, refs); err != nil {
			return nil, err
		}
	}
	if s.tcp != nil {
		if s.tcpList, err = watchList[corev1.ConfigMap](s, s.tcp, nil); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// oneObject narrows a list and watch to the object named name.
func oneObject(name string) func(*metav1.ListOptions) {
	return func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
	}
}

// lastApplied is kubectl's copy of the whole object as last applied: for
// a Secret, its data in plain text.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// trim drops from cached objects what render never reads, before they
// are stored: managedFields (often the largest part of an object),
// kubectl's last-applied copy of the whole object (as large again; the
// status writer patches the status alone, so nothing is written back
// from the cache), and of each endpoint of an EndpointSlice its Pod
// reference, node, zone and topology hints (at 10k Services of 3 Pods, a
// few megabytes).
func trim(obj any) (any, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return obj, nil // a tombstone: nothing to trim
	}
	m.SetManagedFields(nil)
	if a := m.GetAnnotations(); a[lastApplied] != "" {
		// None kept when it was the only one (as kubectl apply leaves a
		// Service or an Ingress without annotations of its own): an
		// empty map is 48 bytes an object, 3 MB of 70k.
		var kept map[string]string
		if len(a) > 1 {
			kept = make(map[string]string, len(a)-1)
			for k, v := range a {
				if k != lastApplied {
					kept[k] = v
				}
			}
		}
		m.SetAnnotations(kept)
	}
	if es, ok := obj.(*discoveryv1.EndpointSlice); ok {
		for i := range es.Endpoints {
			e := &es.Endpoints[i]
			e.TargetRef, e.NodeName, e.Zone, e.Hints, e.DeprecatedTopology = nil, nil, nil, nil, nil
		}
	}
	return obj, nil
}

func (s *Source) informers() []cache.SharedIndexInformer {
	infs := []cache.SharedIndexInformer{s.ingresses, s.classes, s.services, s.slices}
	if s.settings != nil {
		infs = append(infs, s.settings)
	}
	if s.tcp != nil {
		infs = append(infs, s.tcp)
	}
	return infs
}

func (s *Source) changed() {
	if s.cfg.Notify != nil {
		s.cfg.Notify()
	}
}

// resync is true for the periodic resync's no-op updates.
func resync(old, new any) bool {
	o, ok1 := old.(metav1.Object)
	n, ok2 := new.(metav1.Object)
	return ok1 && ok2 && o.GetResourceVersion() == n.GetResourceVersion()
}

// watchList keeps an informer's objects in a watchedList, which tells the
// loop of each change once it is in the list; first, when not nil, sees
// each event before the list does.
func watchList[T any](s *Source, inf cache.SharedIndexInformer, first *cache.ResourceEventHandlerFuncs) (*watchedList[T], error) {
	l := newWatchedList[T]()
	h := l.handler(s.changed)
	if first != nil {
		h = inOrder(*first, h)
	}
	reg, err := inf.AddEventHandler(h)
	if err != nil {
		return nil, err
	}
	l.reg = reg
	s.listsSynced = append(s.listsSynced, l.synced())
	return l, nil
}

// inOrder is one handler that runs a's functions, then b's.
func inOrder(a, b cache.ResourceEventHandlerFuncs) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.OnAdd(obj, false); b.OnAdd(obj, false) },
		UpdateFunc: func(old, new any) { a.OnUpdate(old, new); b.OnUpdate(old, new) },
		DeleteFunc: func(obj any) { a.OnDelete(obj); b.OnDelete(obj) },
	}
}

// takeInto sets *dst to l's list, and kind in *unchanged when it is the
// one handed out last time; it returns how the list differs from that one.
func takeInto[T any](l *watchedList[T], dst *[]*T, kind render.InputKinds, unchanged *render.InputKinds) *render.Delta[*T] {
	list, same, delta := l.take()
	*dst = list
	if same {
		*unchanged |= kind
	}
	return delta
}

// Run starts the informers and blocks until ctx is done. Informers
// reconnect by themselves when the API server goes away; their caches keep
// the last state meanwhile, so HAProxy keeps serving it.
func (s *Source) Run(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	for key := range s.refs {
		s.startWatch(key)
	}
	s.mu.Unlock()
	for _, inf := range s.informers() {
		go inf.Run(ctx.Done())
	}
	go func() {
		if cache.WaitFor(ctx, "", s.listsSynced...) {
			s.startDeferred(ctx)
		}
	}()
	<-ctx.Done()
	s.mu.Lock()
	for key, w := range s.secrets {
		w.stop()
		delete(s.secrets, key)
	}
	for ns, w := range s.nsWatches {
		w.stop()
		delete(s.nsWatches, ns)
	}
	s.mu.Unlock()
	return nil
}

// WaitForSync blocks until every cache (including the watches of Secrets
// referenced at that point) holds a full list, so that the first render
// does not serve a partial cluster. It waits on channels, not by polling
// (cache.WaitForCacheSync looks every 100 ms: on average 50 ms of every
// start-up spent after the lists were in).
func (s *Source) WaitForSync(ctx context.Context) error {
	// A list's registration is done once its informer has synced and
	// every object of the initial list reached the list handed out.
	// And every reference of those lists counted: their Secrets watched.
	if !cache.WaitFor(ctx, "", s.listsSynced...) {
		return fmt.Errorf("waiting for informer caches: %w", ctx.Err())
	}
	select {
	case <-s.seeded:
	case <-ctx.Done():
		return fmt.Errorf("waiting for Secret watches to start: %w", ctx.Err())
	}
	if !cache.WaitFor(ctx, "", s.secretsSynced()...) {
		return fmt.Errorf("waiting for Secret caches: %w", ctx.Err())
	}
	return nil
}

// secretsSynced are the Secret watches' sync checkers not done yet (at
// 1,000 Secrets, waiting on every checker took a third of a second when
// all were done).
func (s *Source) secretsSynced() []cache.DoneChecker {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []cache.DoneChecker
	for _, w := range s.secrets {
		if c := w.Synced(); !cache.IsDone(c) {
			out = append(out, c)
		}
	}
	return out
}

// secretNames are the Secrets an Ingress or the settings ConfigMap names
// (namespace/name), in order.
func secretNames(obj any) []string {
	switch o := obj.(type) {
	case *networkingv1.Ingress:
		var out []string
		for _, t := range o.Spec.TLS {
			if t.SecretName != "" {
				out = append(out, o.Namespace+"/"+t.SecretName)
			}
		}
		// htpasswd and backend CA Secrets named by annotations.
		return append(out, render.AnnotationSecrets(o)...)
	case *corev1.ConfigMap:
		if ref := o.Data[DefaultCertificateKey]; ref != "" {
			return []string{ref}
		}
	}
	return nil
}

// secretSyncWait bounds how long a render waits for a new Secret watch.
const secretSyncWait = 2 * time.Second

// DefaultCertificateKey is the settings ConfigMap key naming the default
// certificate Secret, which the source must watch too.
const DefaultCertificateKey = "default-certificate"

// countRefs adds delta to the references of each of names, starting the
// watch of a Secret referenced for the first time and stopping that of one
// no longer referenced.
func (s *Source) countRefs(names []string, delta int) {
	if len(names) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, key := range names {
		n := s.refs[key] + delta
		ns, _, err := splitRef(key)
		switch {
		case n > 0:
			s.refs[key] = n
			if n == delta { // the first reference
				if err == nil {
					s.nsRefs[ns]++
				}
				s.startWatch(key)
				if s.covered(key) {
					// Its namespace's watch had it: it is an input now,
					// and no watch of its own will say so. (This event
					// may come after the pass its Ingress started.)
					s.changed()
				}
			}
		default:
			_, was := s.refs[key]
			served := s.secrets[key] != nil || s.covered(key)
			delete(s.refs, key)
			delete(s.deferred, key)
			if w := s.secrets[key]; w != nil {
				w.stop()
				delete(s.secrets, key)
				s.cfg.Log.Debug("stopped watching Secret", zap.String("secret", key))
			}
			if was && err == nil {
				if s.nsRefs[ns]--; s.nsRefs[ns] <= 0 {
					delete(s.nsRefs, ns)
					if w := s.nsWatches[ns]; w != nil {
						w.stop()
						delete(s.nsWatches, ns)
						s.cfg.Log.Debug("stopped watching the namespace's TLS Secrets", zap.String("namespace", ns))
					}
				}
			}
			if served {
				s.changed()
			}
		}
	}
}

// startWatch starts watching the Secret namespace/name, once the source
// runs and unless it is invalid or outside the watched namespace (render
// then reports it missing): through its namespace's TLS watch, started
// when the namespace has nsWatchMin referenced Secrets, else on its own.
// s.mu is held.
func (s *Source) startWatch(key string) {
	if s.ctx == nil {
		return // not running yet (Run starts it)
	}
	ns, _, err := splitRef(key)
	if err != nil || s.cfg.Namespace != "" && ns != s.cfg.Namespace {
		return
	}
	if s.starting {
		s.deferred[key] = true
		return
	}
	if s.nsWatches[ns] == nil && s.nsRefs[ns] >= nsWatchMin {
		// Its first list takes over the Secrets watched one by one
		// until then (nsChanged).
		s.nsWatches[ns] = watchNamespaceTLS(s.ctx, s.cfg.SecretClient, ns, s.nsChanged(ns), nil)
		s.cfg.Log.Debug("watching the namespace's TLS Secrets", zap.String("namespace", ns))
	}
	s.cover(key)
}

// covered says whether the referenced Secret key is kept by its
// namespace's TLS watch. s.mu is held.
func (s *Source) covered(key string) bool {
	ns, name, err := splitRef(key)
	if err != nil {
		return false
	}
	w := s.nsWatches[ns]
	return w != nil && w.isSynced() && w.get(name) != nil
}

// cover makes sure the referenced Secret key is watched: by its
// namespace's TLS watch when that holds it (a watch of its own is then
// stopped), else by a watch of its own. s.mu is held.
func (s *Source) cover(key string) {
	if s.covered(key) {
		if w := s.secrets[key]; w != nil {
			w.stop()
			delete(s.secrets, key)
		}
		return
	}
	if s.secrets[key] == nil {
		ns, name, _ := splitRef(key)
		s.secrets[key] = watchSecret(s.ctx, s.cfg.SecretClient, ns, name, s.changed)
		s.cfg.Log.Debug("watching Secret", zap.String("secret", key))
	}
}

// nsChanged is told by the TLS watch of ns which Secrets changed: those
// referenced are a change of the inputs, and each is watched by the
// namespace or on its own as it now holds it or not (a Secret deleted
// there may come back as another type, which only its own watch sees).
func (s *Source) nsChanged(ns string) func(names []string) {
	return func(names []string) {
		s.mu.Lock()
		tell := false
		for _, name := range names {
			key := ns + "/" + name
			if s.refs[key] > 0 && !s.starting && s.ctx != nil {
				tell = true
				s.cover(key)
			}
		}
		s.mu.Unlock()
		if tell {
			s.changed()
		}
	}
}

// startDeferred starts the watches the initial lists' references asked
// for: a namespace with nsWatchMin or more of them gets its TLS watch,
// from one list made here (listTLSSecrets), and the Secrets it does not
// hold a watch each. From then on every watch starts at once.
func (s *Source) startDeferred(ctx context.Context) {
	defer close(s.seeded)
	s.mu.Lock()
	perNS := map[string]int{}
	for key := range s.deferred {
		if ns, _, err := splitRef(key); err == nil && s.refs[key] > 0 {
			perNS[ns]++
		}
	}
	s.mu.Unlock()
	start := time.Now()
	seeds := map[string]*corev1.SecretList{}
	for ns, n := range perNS {
		if n < nsWatchMin {
			continue
		}
		list, err := listTLSSecrets(ctx, s.cfg.SecretClient, ns)
		if err != nil {
			s.cfg.Log.Warn("Secrets watched one by one instead", zap.String("namespace", ns), zap.Error(fmt.Errorf("listing the namespace's TLS Secrets: %w", err)))
			continue
		}
		seeds[ns] = list
	}
	listed := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.starting = false
	for ns, list := range seeds {
		if s.nsRefs[ns] > 0 && s.nsWatches[ns] == nil {
			s.nsWatches[ns] = watchNamespaceTLS(s.ctx, s.cfg.SecretClient, ns, s.nsChanged(ns), list)
		}
	}
	covered := 0
	for key := range s.deferred {
		if s.refs[key] == 0 {
			continue
		}
		if s.cover(key); s.secrets[key] == nil {
			covered++
		}
	}
	clear(s.deferred)
	s.cfg.Log.Info("watching the referenced Secrets", zap.Int("secrets", len(s.secrets)+covered), zap.Int("by_namespace", covered),
		zap.Int("namespaces", len(s.nsWatches)), zap.Duration("listing_took", listed.Sub(start)))
}

// WatchedSecrets lists the referenced Secrets currently watched, on their
// own or by their namespace's TLS watch, sorted (for tests and debugging).
func (s *Source) WatchedSecrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.refs {
		if s.secrets[k] != nil || s.covered(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// Inputs returns the cached objects. They are shared with the informers
// and must not be modified; render only reads them.
func (s *Source) Inputs(ctx context.Context) (render.Inputs, []render.Problem, error) {
	// A Secret referenced a moment ago may still be loading: give its
	// watch a moment rather than render (and report) it as missing.
	s.mu.Lock()
	running := s.ctx != nil
	s.mu.Unlock()
	if running {
		select {
		case <-s.seeded:
		default:
			wait, cancel := context.WithTimeout(ctx, secretSyncWait)
			select {
			case <-s.seeded:
			case <-wait.Done():
			}
			cancel()
		}
	}
	if pending := s.secretsSynced(); len(pending) > 0 {
		wait, cancel := context.WithTimeout(ctx, secretSyncWait)
		cache.WaitFor(wait, "", pending...)
		cancel()
	}
	var in render.Inputs
	in.IngressDelta = takeInto(s.ingressList, &in.Ingresses, render.IngressesKind, &in.Unchanged)
	takeInto(s.classList, &in.IngressClasses, render.IngressClassesKind, &in.Unchanged)
	in.ServiceDelta = takeInto(s.serviceList, &in.Services, render.ServicesKind, &in.Unchanged)
	in.EndpointSliceDelta = takeInto(s.sliceList, &in.EndpointSlices, render.EndpointSlicesKind, &in.Unchanged)
	in.ConfigMaps = s.takeConfigMaps(&in.Unchanged)
	in.Secrets = s.referencedSecrets()
	return in, nil, nil
}

// referencedSecrets are the referenced Secrets there are, from their
// namespace's watch or their own.
func (s *Source) referencedSecrets() []*corev1.Secret {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*corev1.Secret
	for key := range s.refs {
		var sec *corev1.Secret
		if ns, name, err := splitRef(key); err == nil && s.covered(key) {
			sec = s.nsWatches[ns].get(name)
		} else if w := s.secrets[key]; w != nil {
			sec = w.Secret()
		}
		if sec != nil {
			out = append(out, sec)
		}
	}
	return out
}

// takeConfigMaps is the settings and the TCP services ConfigMaps as one
// list: the last one again, and ConfigMapsKind unchanged, while neither
// list changed.
func (s *Source) takeConfigMaps(unchanged *render.InputKinds) []*corev1.ConfigMap {
	var lists [][]*corev1.ConfigMap
	same := true
	for _, l := range []*watchedList[corev1.ConfigMap]{s.settingsList, s.tcpList} {
		if l == nil {
			continue
		}
		list, unchangedList, _ := l.take()
		lists = append(lists, list)
		same = same && unchangedList
	}
	if same && (s.configMaps != nil || len(lists) == 0) {
		*unchanged |= render.ConfigMapsKind
		return s.configMaps
	}
	out := []*corev1.ConfigMap{}
	for _, l := range lists {
		out = append(out, l...)
	}
	s.configMaps = out
	return out
}

// IngressList is the Ingress list the last Inputs handed out (the status
// loop's, after the pass that read it), never changed; nil before the
// first.
func (s *Source) IngressList() []*networkingv1.Ingress { return s.ingressList.handedList() }

// Ingress returns a cached Ingress by namespace/name, or nil.
func (s *Source) Ingress(key string) *networkingv1.Ingress {
	obj, ok, err := s.ingresses.GetStore().GetByKey(key)
	if err != nil || !ok {
		return nil
	}
	ing, _ := obj.(*networkingv1.Ingress)
	return ing
}

// Service returns a cached Service, for the published address.
func (s *Source) Service(namespace, name string) (*corev1.Service, bool) {
	obj, ok, err := s.services.GetStore().GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return nil, false
	}
	return obj.(*corev1.Service), true
}

func splitRef(ref string) (string, string, error) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("%q is not namespace/name", ref)
	}
	return ns, name, nil
}
