package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/lists"
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
	// Namespace is where the Events written before are looked for when
	// leadership starts: the watched namespace, "" for all.
	Namespace string
	// IsLeader gates emission: only the leader writes Events, otherwise
	// every replica would write each one. Nil means always the leader:
	// the reporter then calls Lead itself. Otherwise the owner calls Lead
	// when leadership starts and Follow when it ends.
	IsLeader func() bool
	// EventsPerSecond paces the Events written (default
	// DefaultEventsPerSecond, with a burst of twice that).
	EventsPerSecond float64
	Log             *zap.Logger
}

// DefaultEventsPerSecond is how many Events a second an EventReporter
// writes at most: a sidecar starting at 10k Ingresses has one "Served"
// Event each to write, and the API server should not get them all at
// once. The queue keeps the Ingress's name, its UID and a reason per
// Event instead of a whole Event (or the object: see pendingEvent).
const DefaultEventsPerSecond = 50

// EventReporter writes Kubernetes Events about Ingresses: a Warning for
// every problem render found in an Ingress, and a Normal "Served" when an
// Ingress starts being served. It writes core/v1 Events itself (not
// through client-go's record package, whose broadcaster drops Events
// silently and never says whether one was written): `kubectl describe
// ingress` and `kubectl get events` show them on every API server version.
//
// Each (Ingress UID, type, reason, message) is reported once while it
// lasts: a render that finds the same problem again writes nothing, one
// that no longer finds it forgets it, so it is reported again if it comes
// back (the existing Event's count goes up: its name is derived from what
// it says).
//
// The memory holds only what was written, by this replica or, as read
// from the API when leadership started, by any replica before it.
// Followers remember nothing and queue nothing: whatever is missing when
// a replica takes over (an Ingress first seen while the old leader was
// dead, or written by nobody because the API was away) is written by the
// new leader, and nothing the old one wrote is written again. A write
// that fails stays queued and is tried again.
type EventReporter struct {
	cfg     EventReporterConfig
	limiter *rate.Limiter
	ctx     context.Context
	cancel  context.CancelFunc
	wake    chan struct{}

	mu sync.Mutex
	// term counts leadership changes: a write or a read of the API that
	// began in an earlier term is not recorded in a later one.
	term int
	// loaded is set once the Events written before this term are in
	// reported; nothing is queued before.
	loaded bool
	// reported is what is known to be written, of what the last report
	// wanted (and what the writer wrote since). seen numbers the reports:
	// a report marks the served Ingresses it finds written with its
	// number and then drops the others, in place (at 50k Ingresses, a
	// set of every served Ingress made again whenever one came or went
	// was a tenth of what the sidecar allocated).
	reported eventMemory
	seen     uint64
	// pending are the Events wanted but not written yet, oldest first.
	pending []pendingEvent
	// The last report's inputs, reported again once loaded.
	lookup func(key string) *networkingv1.Ingress
	model  *render.Model
	// walked is the served list the last report walked, with the UID it
	// found for each key ("" for none), and spare the buffer the next
	// walk's UIDs go into (see report).
	walked struct {
		keys        []string
		uids, spare []types.UID
	}
	// last is what the previous report saw (see ReportLazy).
	last struct {
		served   []string
		warnings []render.Problem
		term     int
		loaded   bool
	}
	failures     int       // writes failed in a row
	lastFailLog  time.Time // failures are logged at most once per eventFailLogEvery
	written      int
	lastWriteLog time.Time
}

type eventKey struct {
	typ, reason, message string
}

// NewEventReporter starts the writer in the background; call Shutdown to
// stop it.
func NewEventReporter(cfg EventReporterConfig) *EventReporter {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.EventsPerSecond <= 0 {
		cfg.EventsPerSecond = DefaultEventsPerSecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &EventReporter{
		cfg:     cfg,
		limiter: rate.NewLimiter(rate.Limit(cfg.EventsPerSecond), max(1, int(2*cfg.EventsPerSecond))),
		ctx:     ctx,
		cancel:  cancel,
		wake:    make(chan struct{}, 1),
	}
	go r.write()
	if cfg.IsLeader == nil {
		go r.Lead(ctx)
	}
	return r
}

// Shutdown stops writing Events; queued ones are not written.
func (r *EventReporter) Shutdown() { r.cancel() }

// pendingEvent is an Event waiting to be written about the Ingress
// name (namespace/name) of UID uid. The writer looks the object up when
// the Event's turn comes: Events are written at most EventsPerSecond,
// and at 50k Ingresses a report looking up every Ingress not told yet,
// to queue it again, was most of the sidecar's work between changes for
// the quarter hour the first Served Events took. Nor is the object the
// report found kept: the start's status writes replace every Ingress in
// the informers' store meanwhile, and a queue holding the objects of
// the first report kept a second copy of each (at 50k, some 70 MB of
// live heap until the next pass).
type pendingEvent struct {
	name string
	uid  types.UID
	key  *eventKey
}

// object is the Ingress p is about: the one of that name in the
// informers' store while it has p's UID; nil when it has gone.
func (p pendingEvent) object(lookup func(string) *networkingv1.Ingress) *networkingv1.Ingress {
	if lookup == nil {
		return nil
	}
	if ing := lookup(p.name); ing != nil && eventUID(ing) == p.uid {
		return ing
	}
	return nil
}

// Lead is called when this replica becomes leader: it reads the Events
// this controller wrote before (any replica, any earlier run of this
// one), retrying until ctx ends, and then writes what is missing. It
// returns once they are read.
func (r *EventReporter) Lead(ctx context.Context) {
	r.mu.Lock()
	r.term++
	term := r.term
	r.loaded, r.reported, r.pending = false, eventMemory{}, nil
	r.mu.Unlock()
	found, err := r.loadWritten(ctx)
	if err != nil {
		return // ctx ended: leadership is over or the sidecar stops
	}
	r.mu.Lock()
	if r.term != term {
		r.mu.Unlock()
		return
	}
	r.reported, r.loaded = found, true
	lookup, model := r.lookup, r.model
	r.mu.Unlock()
	r.cfg.Log.Info("read the Events written before; writing what is missing",
		zap.Int("served", len(found.served)), zap.Int("warnings", len(found.warnings)))
	if model != nil {
		r.report(lookup, model)
	}
}

// Follow is called when leadership ends: nothing more is written, and
// the memory is dropped (the next leader may write what this one had
// queued; Lead reads it all again).
func (r *EventReporter) Follow() {
	r.mu.Lock()
	r.term++
	r.loaded, r.reported, r.pending = false, eventMemory{}, nil
	r.mu.Unlock()
}

// eventListPage is how many Events one list request returns.
const eventListPage = 500

// loadWritten lists the Events this controller wrote about Ingresses,
// retrying with backoff while the API cannot be reached.
func (r *EventReporter) loadWritten(ctx context.Context) (eventMemory, error) {
	delay := 200 * time.Millisecond
	for {
		found, err := r.listWritten(ctx)
		if err == nil {
			return found, nil
		}
		if ctx.Err() != nil {
			return eventMemory{}, ctx.Err()
		}
		r.cfg.Log.Warn("reading the Events written before; retrying", zap.Error(err), zap.Duration("retry_in", delay))
		select {
		case <-ctx.Done():
			return eventMemory{}, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func (r *EventReporter) listWritten(ctx context.Context) (eventMemory, error) {
	found := eventMemory{served: map[types.UID]uint64{}, warnings: map[reportedEvent]bool{}}
	opts := metav1.ListOptions{FieldSelector: "source=" + EventComponent + ",involvedObject.kind=Ingress", Limit: eventListPage}
	for {
		reqCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		list, err := r.cfg.Client.CoreV1().Events(r.cfg.Namespace).List(reqCtx, opts)
		cancel()
		if err != nil {
			return eventMemory{}, fmt.Errorf("listing Events: %w", err)
		}
		for i := range list.Items {
			ev := &list.Items[i]
			o := ev.InvolvedObject
			uid := o.UID
			if uid == "" {
				uid = types.UID(o.Namespace + "/" + o.Name)
			}
			found.add(uid, eventKey{ev.Type, ev.Reason, ev.Message}, 0)
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			return found, nil
		}
	}
}

// eventRetryMax bounds the wait before a failed write is tried again.
const eventRetryMax = 5 * time.Second

// eventLogEvery bounds how often failed writes are logged, and how often
// written ones are summed up.
const eventLogEvery = 30 * time.Second

// write writes the pending Events, at most EventsPerSecond, until
// Shutdown. An Event no longer wanted when its turn comes (the Ingress
// was deleted, the problem went away), or already written, is skipped;
// none is written while this replica is not the leader.
func (r *EventReporter) write() {
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.wake:
		}
		for {
			r.mu.Lock()
			if len(r.pending) == 0 {
				r.pending = nil
				r.mu.Unlock()
				break
			}
			p := r.pending[0]
			term := r.term
			r.mu.Unlock()
			if err := r.limiter.Wait(r.ctx); err != nil {
				return
			}
			r.mu.Lock()
			if len(r.pending) == 0 || r.pending[0] != p || r.term != term {
				r.mu.Unlock()
				continue // the queue was replaced meanwhile
			}
			// Queued by the last report (each report queues anew), so
			// wanted; written meanwhile by nobody else.
			want := r.loaded && !r.reported.has(p.uid, *p.key)
			lookup := r.lookup
			if !want || !r.isLeader() {
				r.pending[0] = pendingEvent{}
				r.pending = r.pending[1:]
				r.mu.Unlock()
				continue
			}
			r.mu.Unlock()
			ing := p.object(lookup)
			if ing == nil {
				// Gone since the report: the next one tells of
				// what replaced it.
				r.mu.Lock()
				if len(r.pending) > 0 && r.pending[0] == p {
					r.pending[0] = pendingEvent{}
					r.pending = r.pending[1:]
				}
				r.mu.Unlock()
				continue
			}
			err := r.writeEvent(ing, p.key)
			r.mu.Lock()
			if err == nil {
				if r.term == term {
					r.reported.add(p.uid, *p.key, r.seen)
				}
				if len(r.pending) > 0 && r.pending[0] == p {
					r.pending[0] = pendingEvent{}
					r.pending = r.pending[1:]
				}
				r.failures = 0
				r.written++
				if time.Since(r.lastWriteLog) > eventLogEvery || len(r.pending) == 0 {
					r.cfg.Log.Debug("Ingress events written", zap.Int("events", r.written), zap.Int("queued", len(r.pending)))
					r.written, r.lastWriteLog = 0, time.Now()
				}
				r.mu.Unlock()
				continue
			}
			// Kept at the head of the queue and tried again after a
			// while; the API may be away.
			r.failures++
			delay := min(eventRetryMax, 100*time.Millisecond<<min(r.failures, 6))
			if time.Since(r.lastFailLog) > eventLogEvery {
				r.lastFailLog = time.Now()
				r.cfg.Log.Warn("writing an Event failed; it stays queued", zap.String("ingress", p.name),
					zap.String("reason", p.key.reason), zap.Int("queued", len(r.pending)), zap.Error(err), zap.Duration("retry_in", delay))
			}
			r.mu.Unlock()
			select {
			case <-r.ctx.Done():
				return
			case <-time.After(delay):
			}
		}
	}
}

func (r *EventReporter) isLeader() bool { return r.cfg.IsLeader == nil || r.cfg.IsLeader() }

// eventName derives an Event's name from what it says: the Ingress's
// name, then a hash of its UID, type, reason and message. Two replicas,
// or two runs, writing the same Event meet on one object: the API
// refuses the second create, and the count goes up instead.
func eventName(ing *networkingv1.Ingress, k *eventKey) string {
	h := sha256.New()
	for _, s := range []string{string(eventUID(ing)), k.typ, k.reason, k.message} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	suffix := "." + hex.EncodeToString(h.Sum(nil)[:8])
	name := ing.Name
	if room := 253 - len(suffix); len(name) > room {
		name = name[:room]
	}
	return name + suffix
}

// eventWriteTimeout bounds one Event write.
const eventWriteTimeout = 10 * time.Second

// writeEvent writes one Event, or counts it once more when an Event with
// its name exists (it came back after it went away).
func (r *EventReporter) writeEvent(ing *networkingv1.Ingress, k *eventKey) error {
	ctx, cancel := context.WithTimeout(r.ctx, eventWriteTimeout)
	defer cancel()
	events := r.cfg.Client.CoreV1().Events(ing.Namespace)
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: eventName(ing, k), Namespace: ing.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Ingress", APIVersion: "networking.k8s.io/v1",
			Namespace: ing.Namespace, Name: ing.Name, UID: ing.UID, ResourceVersion: ing.ResourceVersion},
		Type: k.typ, Reason: k.reason, Message: k.message,
		Source:         corev1.EventSource{Component: EventComponent, Host: r.cfg.Instance},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: EventComponent, ReportingInstance: r.cfg.Instance,
	}
	_, err := events.Create(ctx, ev, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	// Listed by name rather than read: the role grants list (for Lead)
	// but not get.
	list, err := events.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + ev.Name})
	if err != nil {
		return fmt.Errorf("counting Event %s again: %w", ev.Name, err)
	}
	count := int32(1)
	if len(list.Items) == 1 {
		count = list.Items[0].Count + 1
	}
	patch := fmt.Appendf(nil, `{"count":%d,"lastTimestamp":%q}`, count, now.UTC().Format(time.RFC3339))
	if _, err := events.Patch(ctx, ev.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("counting Event %s again: %w", ev.Name, err)
	}
	return nil
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
// same warnings in the same leadership term, there is nothing new to
// report (a change to an endpoint, at 10k Ingresses, need not read them
// all).
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
	r.mu.Lock()
	r.lookup, r.model = ingress, m
	term, loaded := r.term, r.loaded
	same := r.last.served != nil && len(r.last.served) == len(m.Served) && (len(m.Served) == 0 || &r.last.served[0] == &m.Served[0]) &&
		slices.Equal(r.last.warnings, warnings) && r.last.term == term && r.last.loaded == loaded
	r.last.served, r.last.warnings, r.last.term, r.last.loaded = m.Served, warnings, term, loaded
	r.mu.Unlock()
	if same || !loaded {
		// Not leading (or the Events before it not read yet): nothing
		// is remembered or queued; Lead reports the last model again.
		return
	}

	// What should have been reported by now, per Ingress, in model order.
	served := eventKey{corev1.EventTypeNormal, ReasonServed, servedMessage}
	wantWarnings := make(map[reportedEvent]bool, len(warnings))
	r.mu.Lock()
	if r.term != term || !r.loaded {
		r.mu.Unlock()
		return
	}
	// Queued: what is wanted and not reported yet, found in the same walk
	// (under the lock, which the lookups in the informers' store do not
	// take). A list of every served Ingress to filter afterwards was,
	// with the set, a sixth of what the sidecar allocated at 50k
	// Ingresses, made again whenever one came or went.
	r.pending = r.pending[:0]
	queue := func(name string, uid types.UID, k *eventKey) {
		r.pending = append(r.pending, pendingEvent{name: name, uid: uid, key: k})
	}
	r.seen++
	seen := r.seen
	// A served Ingress's key is the very string of the last walk's list
	// (not only an equal one) only for the same Ingress, the same UID
	// (render.Model.Served): a new Ingress of the same name gets a key of
	// its own. Its UID is then the one found last time, without looking
	// it up: at 50k Ingresses the informer store's lookups were four
	// fifths of a report, made whenever one Ingress came or went. Keys
	// are in the same order in both lists; j follows the last list past
	// a key that left it.
	prevKeys, prevUIDs := r.walked.keys, r.walked.uids
	uids := lists.Resized(r.walked.spare, len(m.Served))
	j := 0
	for i, key := range m.Served {
		var uid types.UID
		if j+1 < len(prevKeys) && !sameString(prevKeys[j], key) && sameString(prevKeys[j+1], key) {
			j++
		}
		if j < len(prevKeys) && sameString(prevKeys[j], key) {
			uid = prevUIDs[j]
			j++
		}
		if uid == "" {
			if ing := ingress(key); ing != nil {
				uid = eventUID(ing)
			}
		}
		uids[i] = uid
		if uid == "" {
			continue // not in the informers' store (any more)
		}
		if was, ok := r.reported.served[uid]; !ok {
			queue(key, uid, &served)
		} else if was != seen {
			r.reported.served[uid] = seen
		}
	}
	r.walked.keys, r.walked.uids, r.walked.spare = m.Served, uids, prevUIDs
	for _, p := range warnings {
		name := p.Namespace + "/" + p.Name
		if ing := ingress(name); ing != nil {
			k := eventKey{corev1.EventTypeWarning, EventReason(p.Reason), problemMessage(p)}
			if re := (reportedEvent{eventUID(ing), k}); !wantWarnings[re] {
				wantWarnings[re] = true
				if !r.reported.warnings[re] {
					queue(name, re.uid, &k)
				}
			}
		}
	}
	// Forgetting what is no longer wanted (problems that went away,
	// Ingresses deleted or no longer served) is what reports them again
	// when they come back.
	r.reported.forget(seen, wantWarnings)
	queued := len(r.pending)
	r.mu.Unlock()
	if queued > 0 {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// eventMemory is a set of Events: the Ingresses told they are served
// (each with the number of the last report that found it served,
// EventReporter.seen), and the warnings.
type eventMemory struct {
	served   map[types.UID]uint64
	warnings map[reportedEvent]bool
}

func (m eventMemory) has(uid types.UID, k eventKey) bool {
	if k.typ == corev1.EventTypeNormal && k.reason == ReasonServed {
		_, ok := m.served[uid]
		return ok
	}
	return m.warnings[reportedEvent{uid, k}]
}

// add records an Event as written; seen is the report that wanted it.
func (m *eventMemory) add(uid types.UID, k eventKey, seen uint64) {
	if k.typ == corev1.EventTypeNormal && k.reason == ReasonServed {
		if m.served == nil {
			m.served = map[types.UID]uint64{}
		}
		m.served[uid] = seen
		return
	}
	if m.warnings == nil {
		m.warnings = map[reportedEvent]bool{}
	}
	m.warnings[reportedEvent{uid, k}] = true
}

// forget removes, in place, the served Ingresses report seen did not find
// served, and the warnings not in want.
func (m eventMemory) forget(seen uint64, want map[reportedEvent]bool) {
	for uid, was := range m.served {
		if was != seen {
			delete(m.served, uid)
		}
	}
	for re := range m.warnings {
		if !want[re] {
			delete(m.warnings, re)
		}
	}
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

// sameString says whether a and b are the same string, not only equal
// ones: the same bytes in memory.
func sameString(a, b string) bool {
	return len(a) == len(b) && unsafe.StringData(a) == unsafe.StringData(b)
}
