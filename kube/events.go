package kube

import (
	"context"
	"slices"
	"sync"

	"go.uber.org/zap"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// EventComponent is the source.component / reportingController of every
// Event the sidecar writes.
const EventComponent = "haproxy-sidecar"

// ReasonServed is the reason of the Normal Event an Ingress gets when it
// starts being served.
const ReasonServed = "Served"

// EventReason is the reason of the Warning Event for a problem: its typed
// reason as it is (InvalidHost, BackendNotFound, Conflict, ...), so that
// Events, /status and metrics share one vocabulary and
// `kubectl get events --field-selector reason=BackendNotFound` finds what
// a metric counted. Rewording a message never changes it.
func EventReason(r render.Reason) string { return string(r) }

// servedMessage is the note of the Normal "Served" Event.
const servedMessage = "Ingress is served by " + EventComponent

// eventMessageLimit is the longest Event message the events.k8s.io API
// accepts; core/v1 is laxer, but one limit for both keeps us safe.
const eventMessageLimit = 1024

// problemMessage is what the Event says: the field, so the user knows
// where to look, then what is wrong with it.
func problemMessage(p render.Problem) string {
	msg := p.Message
	if p.Field != "" {
		msg = p.Field + ": " + msg
	}
	if len(msg) > eventMessageLimit {
		msg = msg[:eventMessageLimit-3] + "..."
	}
	return msg
}

// EventReporterConfig configures an EventReporter.
type EventReporterConfig struct {
	Client kubernetes.Interface
	// Instance identifies this replica (source.host, reportingInstance);
	// the leader identity or pod name.
	Instance string
	// IsLeader gates emission: only the leader writes Events, otherwise
	// every replica would write each one. Nil means always emit.
	IsLeader func() bool
	// EventsPerSecond paces the Events handed to client-go (default
	// DefaultEventsPerSecond, with a burst of twice that).
	EventsPerSecond float64
	Log             *zap.Logger
}

// DefaultEventsPerSecond is how many Events a second an EventReporter
// writes at most. client-go queues at most about 2,000 Events and drops
// the rest silently; a sidecar starting at 10k Ingresses has one "Served"
// Event each to write, so it paces them itself, with a queue of its own
// that keeps a pointer and a reason per Event instead of a whole Event.
const DefaultEventsPerSecond = 50

// EventReporter writes Kubernetes Events about Ingresses: a Warning for
// every problem render found in an Ingress, and a Normal "Served" when an
// Ingress starts being served. It uses client-go's record package, which
// writes core/v1 Events: `kubectl describe ingress` and `kubectl get
// events` show them on every API server version.
//
// Each (Ingress UID, type, reason, message) is reported once while it
// lasts: a render that finds the same problem again writes nothing, one
// that no longer finds it forgets it, so it is reported again if it comes
// back (client-go then bumps the count of the existing Event).
//
// Followers do not emit but keep the same memory, as if they had: the
// leader has reported the same state, so a replica taking over reports
// only what changes from then on instead of repeating every Event.
type EventReporter struct {
	cfg         EventReporterConfig
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder

	limiter  *rate.Limiter
	stop     chan struct{}
	stopOnce sync.Once
	wake     chan struct{}

	mu       sync.Mutex
	reported eventMemory
	// pending are the Events reported but not handed to client-go yet,
	// oldest first.
	pending []pendingEvent
	// last is what the previous Report saw (see ReportLazy).
	last struct {
		served   []string
		warnings []render.Problem
		leader   bool
	}
}

type eventKey struct {
	typ, reason, message string
}

// NewEventReporter starts the broadcaster that writes Events in the
// background; call Shutdown to stop it.
func NewEventReporter(cfg EventReporterConfig) *EventReporter {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	// Our own memory is what keeps Events from repeating; client-go's
	// per-object spam filter (25 Events, then one per 5 minutes) would
	// drop the problems of an Ingress with many broken paths, so its
	// burst is raised. Its aggregation of more than 10 Events with the
	// same reason into one "combined" Event stays. Its caches (4096
	// objects by default) are made smaller: at 10k served Ingresses they
	// were full of one "Served" Event each, a megabyte of the heap, for
	// Events our own memory never repeats.
	b := record.NewBroadcaster(record.WithCorrelatorOptions(record.CorrelatorOptions{BurstSize: 100, LRUCacheSize: 512}))
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cfg.Client.CoreV1().Events("")})
	if cfg.EventsPerSecond <= 0 {
		cfg.EventsPerSecond = DefaultEventsPerSecond
	}
	r := &EventReporter{
		cfg:         cfg,
		broadcaster: b,
		recorder:    b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: EventComponent, Host: cfg.Instance}),
		limiter:     rate.NewLimiter(rate.Limit(cfg.EventsPerSecond), max(1, int(2*cfg.EventsPerSecond))),
		stop:        make(chan struct{}),
		wake:        make(chan struct{}, 1),
	}
	go r.write()
	return r
}

// Shutdown stops writing Events; queued ones may be lost.
func (r *EventReporter) Shutdown() {
	r.stopOnce.Do(func() {
		close(r.stop)
		r.broadcaster.Shutdown()
	})
}

// pendingEvent is an Event waiting to be written.
type pendingEvent struct {
	ing *networkingv1.Ingress
	key *eventKey
}

// write hands the pending Events to client-go, at most EventsPerSecond,
// until Shutdown. An Event no longer in the memory when its turn comes
// (the Ingress was deleted, the problem went away) is not written, nor
// any while this replica is not the leader.
func (r *EventReporter) write() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-r.stop
		cancel()
	}()
	for {
		select {
		case <-r.stop:
			return
		case <-r.wake:
		}
		written := 0
		for {
			r.mu.Lock()
			if len(r.pending) == 0 {
				r.pending = nil
				r.mu.Unlock()
				break
			}
			p := r.pending[0]
			r.pending[0] = pendingEvent{}
			r.pending = r.pending[1:]
			r.mu.Unlock()
			if err := r.limiter.Wait(ctx); err != nil {
				return
			}
			r.mu.Lock()
			still := r.reported.has(eventUID(p.ing), *p.key)
			r.mu.Unlock()
			if still && (r.cfg.IsLeader == nil || r.cfg.IsLeader()) {
				r.recorder.Event(p.ing, p.key.typ, p.key.reason, p.key.message)
				written++
			}
		}
		if written > 0 {
			r.cfg.Log.Debug("Ingress events written", zap.Int("events", written))
		}
	}
}

// Report emits the Events that are new since the previous call.
// ingresses are all the Ingresses the model was built from; problems of
// other kinds, Notice problems (Ingresses of other controllers, things
// ignored on purpose) and problems naming an Ingress not in the list are
// not reported. Writing is asynchronous: Report never blocks on the API.
func (r *EventReporter) Report(ingresses []*networkingv1.Ingress, m *render.Model) {
	byName := make(map[string]*networkingv1.Ingress, len(ingresses))
	for _, ing := range ingresses {
		byName[ing.Namespace+"/"+ing.Name] = ing
	}
	r.report(func(key string) *networkingv1.Ingress { return byName[key] }, m)
}

// ReportLazy is Report with each Ingress looked up by namespace/name
// (an informer's store) instead of listed, and nothing looked up when
// nothing can be new: the incremental renderer hands out the same
// Model.Served slice while no served Ingress changed, and then, with the
// same warnings and the same leadership, there is nothing new to report
// (a change to an endpoint, at 10k Ingresses, need not read them all).
func (r *EventReporter) ReportLazy(ingress func(key string) *networkingv1.Ingress, m *render.Model) {
	r.report(ingress, m)
}

func (r *EventReporter) report(ingress func(key string) *networkingv1.Ingress, m *render.Model) {
	var warnings []render.Problem
	for _, p := range m.Problems {
		if p.Kind == "Ingress" && p.Severity == render.Warning {
			warnings = append(warnings, p)
		}
	}
	leader := r.cfg.IsLeader == nil || r.cfg.IsLeader()
	r.mu.Lock()
	same := r.last.served != nil && len(r.last.served) == len(m.Served) && (len(m.Served) == 0 || &r.last.served[0] == &m.Served[0]) &&
		slices.Equal(r.last.warnings, warnings) && r.last.leader == leader
	r.last.served, r.last.warnings, r.last.leader = m.Served, warnings, leader
	r.mu.Unlock()
	if same {
		return
	}

	// What should have been reported by now, per Ingress, in model order.
	// "Served" is one set of UIDs: at 10k served Ingresses a map keyed
	// by UID and Event text was several megabytes of the live heap.
	type item struct {
		ing *networkingv1.Ingress
		key *eventKey
	}
	served := eventKey{corev1.EventTypeNormal, ReasonServed, servedMessage}
	var items []item
	now := eventMemory{served: make(map[types.UID]struct{}, len(m.Served)), warnings: make(map[reportedEvent]bool, len(warnings))}
	for _, key := range m.Served {
		if ing := ingress(key); ing != nil {
			uid := eventUID(ing)
			if _, ok := now.served[uid]; !ok {
				now.served[uid] = struct{}{}
				items = append(items, item{ing, &served})
			}
		}
	}
	for _, p := range warnings {
		if ing := ingress(p.Namespace + "/" + p.Name); ing != nil {
			k := eventKey{corev1.EventTypeWarning, EventReason(p.Reason), problemMessage(p)}
			if re := (reportedEvent{eventUID(ing), k}); !now.warnings[re] {
				now.warnings[re] = true
				items = append(items, item{ing, &k})
			}
		}
	}

	r.mu.Lock()
	queued := 0
	for _, it := range items {
		if !leader || r.reported.has(eventUID(it.ing), *it.key) {
			continue
		}
		r.pending = append(r.pending, pendingEvent{it.ing, it.key})
		queued++
	}
	// Replacing the memory forgets problems that went away and Ingresses
	// that were deleted or stopped being served.
	r.reported = now
	r.mu.Unlock()
	if queued > 0 {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// eventMemory is what has been reported: the Ingresses told they are
// served, and the warnings.
type eventMemory struct {
	served   map[types.UID]struct{}
	warnings map[reportedEvent]bool
}

func (m eventMemory) has(uid types.UID, k eventKey) bool {
	if k.typ == corev1.EventTypeNormal && k.reason == ReasonServed {
		_, ok := m.served[uid]
		return ok
	}
	return m.warnings[reportedEvent{uid, k}]
}

// reportedEvent is a warning reported for one Ingress.
type reportedEvent struct {
	uid types.UID
	key eventKey
}

// eventUID keys the memory. The UID tells a re-created Ingress from the
// one before it; objects without one (tests, manifests) fall back to
// their name.
func eventUID(ing *networkingv1.Ingress) types.UID {
	if ing.UID != "" {
		return ing.UID
	}
	return types.UID(ing.Namespace + "/" + ing.Name)
}
