package kube

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Lease timings used when LeaderConfig leaves them zero: client-go's
// usual values.
//
// A replica stops leading (IsLeader false, OnStoppedLeading called) as
// soon as the Lease it last wrote expires unrenewed: at RenewTime (its
// whole second) + LeaseDuration of its last renewal, never later, so two
// replicas never both lead. When it stops cleanly it releases the Lease, and another
// takes over within one poll (RetryPeriod to 2.2 × RetryPeriod, client-go's
// jitter). When it dies (kill -9) or is cut off, another takes over at
// most TakeoverBound after its last renewal: client-go's followers measure
// the LeaseDuration from when they saw the last renewal, which they poll
// for every RetryPeriod to 2.2 × RetryPeriod, and check for expiry at the
// same pace. With the defaults that is 23.8 s at most; 15-20 s is usual
// (TestLeaderPartitionedStepsDown measures it with short timings, the
// e2e cluster test with these).
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// leaderJitter is client-go's JitterFactor for the followers' polls.
const leaderJitter = 1.2

// TakeoverBound is the longest a follower takes to take over the Lease of
// a leader that renewed it last at t: t + TakeoverBound (see the
// Default* durations).
func TakeoverBound(leaseDuration, retryPeriod time.Duration) time.Duration {
	return leaseDuration + 2*time.Duration(float64(retryPeriod)*(1+leaderJitter))
}

// leaseNamePrefix starts every Lease name, so the Leases of this
// controller are easy to find in a namespace.
const leaseNamePrefix = "haproxy-sidecar-"

// LeaseName derives the coordination.k8s.io Lease name from the controller
// name (e.g. "haproxy-sidecar.io/controller"): replicas serving the same
// IngressClass controller share one Lease, and two installations with
// different controller names never compete. The readable part is
// sanitized to a DNS label; the hash keeps names that sanitize alike
// ("a/b" and "a.b") apart.
func LeaseName(controllerName string) string {
	sum := sha256.Sum256([]byte(controllerName))
	hash := hex.EncodeToString(sum[:4])
	var b strings.Builder
	dash := true // no leading dash, no runs of dashes
	for _, r := range strings.ToLower(controllerName) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	// 63 characters keep the name usable as a label value too.
	readable := b.String()
	if room := 63 - len(leaseNamePrefix) - len(hash) - 1; len(readable) > room {
		readable = readable[:room]
	}
	readable = strings.TrimRight(readable, "-")
	if readable == "" {
		return leaseNamePrefix + hash
	}
	return leaseNamePrefix + readable + "-" + hash
}

// DefaultIdentity is the host name (the pod name in Kubernetes) with a
// random suffix: a restarted container with the same pod name must not be
// mistaken for the previous holder of the Lease, which may still be
// running its last writes.
func DefaultIdentity() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("leader identity: %w", err)
	}
	var suffix [5]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", fmt.Errorf("leader identity: %w", err)
	}
	return host + "_" + hex.EncodeToString(suffix[:]), nil
}

// LeaderConfig configures leader election among the sidecar replicas.
type LeaderConfig struct {
	Client kubernetes.Interface
	// Namespace holds the Lease: the pod's own namespace.
	Namespace string
	// ControllerName is render.Options.ControllerName; the Lease name is
	// LeaseName(ControllerName) unless LeaseName is set.
	ControllerName string
	LeaseName      string
	// Identity defaults to DefaultIdentity().
	Identity string
	// Zero durations take the Default* values.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// OnStartedLeading runs in its own goroutine each time this replica
	// becomes leader; ctx is cancelled when leadership ends. Use it to sync
	// status at once instead of waiting for the next change.
	OnStartedLeading func(ctx context.Context)
	// OnStoppedLeading is called when leadership that was held ends.
	OnStoppedLeading func()
	Log              *zap.Logger
}

// Leader runs leader election on a Lease. Losing the Lease does not end
// Run: the sidecar keeps serving traffic either way, so it simply stands
// for election again.
type Leader struct {
	cfg      LeaderConfig
	election leaderelection.LeaderElectionConfig

	mu      sync.Mutex
	leading bool
	// expiry is when the Lease this replica last wrote as holder expires;
	// expire fires then, unless a renewal moved it.
	expiry time.Time
	expire *time.Timer
	// endTerm cancels the running elector's context.
	endTerm context.CancelFunc
}

// expiringLock passes the Lease through and tells the Leader of every
// write that makes or keeps this replica the holder.
type expiringLock struct {
	resourcelock.Interface
	l *Leader
}

func (k expiringLock) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	err := k.Interface.Create(ctx, rec)
	if err == nil {
		k.l.renewed(rec)
	}
	return err
}

func (k expiringLock) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	err := k.Interface.Update(ctx, rec)
	if err == nil {
		k.l.renewed(rec)
	}
	return err
}

// NewLeader checks the configuration and fills in defaults.
func NewLeader(cfg LeaderConfig) (*Leader, error) {
	if cfg.Client == nil {
		return nil, errors.New("leader election: no client")
	}
	if cfg.Namespace == "" {
		return nil, errors.New("leader election: no namespace for the Lease")
	}
	if cfg.LeaseName == "" {
		if cfg.ControllerName == "" {
			return nil, errors.New("leader election: no controller name to derive the Lease name from")
		}
		cfg.LeaseName = LeaseName(cfg.ControllerName)
	}
	if cfg.Identity == "" {
		id, err := DefaultIdentity()
		if err != nil {
			return nil, err
		}
		cfg.Identity = id
	}
	cfg.LeaseDuration = cmp.Or(cfg.LeaseDuration, DefaultLeaseDuration)
	cfg.RenewDeadline = cmp.Or(cfg.RenewDeadline, DefaultRenewDeadline)
	cfg.RetryPeriod = cmp.Or(cfg.RetryPeriod, DefaultRetryPeriod)
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	l := &Leader{cfg: cfg}
	l.election = leaderelection.LeaderElectionConfig{
		Lock: expiringLock{l: l, Interface: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.LeaseName},
			Client:     cfg.Client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
		}},
		LeaseDuration: cfg.LeaseDuration,
		RenewDeadline: cfg.RenewDeadline,
		RetryPeriod:   cfg.RetryPeriod,
		// A replica that is shut down hands over within one RetryPeriod
		// instead of a whole LeaseDuration. Status writes are idempotent,
		// so one that is still in flight when the next leader starts does
		// no harm.
		ReleaseOnCancel: true,
		Name:            cfg.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: l.started,
			OnStoppedLeading: l.stopped,
			OnNewLeader: func(id string) {
				cfg.Log.Info("leader observed", zap.String("leader", id), zap.Bool("self", id == cfg.Identity))
			},
		},
	}
	// Let client-go check the durations now rather than at Run.
	if _, err := leaderelection.NewLeaderElector(l.election); err != nil {
		return nil, fmt.Errorf("leader election: %w", err)
	}
	return l, nil
}

// Run takes part in the election until ctx is done. When ctx ends while
// leading, the Lease is released before Run returns.
func (l *Leader) Run(ctx context.Context) error {
	l.cfg.Log.Info("standing for leader election", zap.String("lease", l.cfg.Namespace+"/"+l.cfg.LeaseName),
		zap.String("identity", l.cfg.Identity))
	for ctx.Err() == nil {
		// A fresh elector per term: it keeps observed state (the last
		// record, when it was seen) that should not leak into the next.
		le, err := leaderelection.NewLeaderElector(l.election)
		if err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
		term, end := context.WithCancel(ctx)
		l.mu.Lock()
		l.endTerm = end
		l.mu.Unlock()
		le.Run(term) // returns when leadership is lost, the Lease expired or ctx is done
		end()
	}
	l.mu.Lock()
	if l.expire != nil {
		l.expire.Stop()
	}
	l.mu.Unlock()
	return nil
}

// IsLeader reports whether this replica holds the Lease now: it leads,
// and the Lease it last wrote has not expired (less expiryMargin).
func (l *Leader) IsLeader() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leading && time.Now().Before(l.expiry)
}

// expiryMargin is how long before its Lease expires a replica that
// could not renew it stops leading: the timer and whoever checks
// IsLeader next need a moment, and the Lease's RenewTime is stored in
// microseconds.
const expiryMargin = 100 * time.Millisecond

// renewed follows a successful write of the Lease: when it names this
// replica, the Lease now expires at its RenewTime (in whole seconds, as
// the other replicas see it) + LeaseDuration.
func (l *Leader) renewed(rec resourcelock.LeaderElectionRecord) {
	if rec.HolderIdentity != l.cfg.Identity || rec.RenewTime.IsZero() {
		return
	}
	// From the second the renewal falls in: client-go's followers tell
	// records apart by their JSON, where RenewTime has whole seconds, so
	// they may date the last renewal from an earlier one in the same
	// second (measured: a takeover 3.79 s after the last renewal of a
	// 4 s Lease renewed every 500 ms).
	expiry := rec.RenewTime.Truncate(time.Second).Add(time.Duration(rec.LeaseDurationSeconds)*time.Second - expiryMargin)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expiry = expiry
	if l.expire == nil {
		l.expire = time.AfterFunc(time.Until(expiry), l.expired)
	} else {
		l.expire.Reset(time.Until(expiry))
	}
}

// expired runs when the Lease this replica wrote last expired without a
// renewal (the API server is away, or cut off from this replica):
// leadership ends now rather than when client-go gives up (its renewal
// and release each wait for the renew deadline), and the elector is
// stopped so that this replica stands for election afresh.
func (l *Leader) expired() {
	l.mu.Lock()
	if !l.leading || time.Now().Before(l.expiry) {
		l.mu.Unlock()
		return
	}
	l.leading = false
	end := l.endTerm
	l.mu.Unlock()
	l.cfg.Log.Warn("stopped leading: the Lease expired without a renewal", zap.String("identity", l.cfg.Identity))
	if end != nil {
		end()
	}
	if l.cfg.OnStoppedLeading != nil {
		l.cfg.OnStoppedLeading()
	}
}

// Identity is the holder identity this replica writes into the Lease.
func (l *Leader) Identity() string { return l.cfg.Identity }

// LeaseName is the name of the Lease in the configured namespace.
func (l *Leader) LeaseName() string { return l.cfg.LeaseName }

// started is client-go's OnStartedLeading. client-go starts it in a
// goroutine, so it can run after the term it belongs to has already ended
// (and stopped has run); ctx tells, because client-go cancels it before
// calling stopped.
func (l *Leader) started(ctx context.Context) {
	l.mu.Lock()
	if ctx.Err() != nil {
		l.mu.Unlock()
		return
	}
	l.leading = true
	l.mu.Unlock()
	l.cfg.Log.Info("became leader", zap.String("identity", l.cfg.Identity))
	if l.cfg.OnStartedLeading != nil {
		l.cfg.OnStartedLeading(ctx)
	}
}

// stopped is client-go's OnStoppedLeading, which it calls at the end of
// every Run, also when leadership was never acquired.
func (l *Leader) stopped() {
	l.mu.Lock()
	was := l.leading
	l.leading = false
	l.mu.Unlock()
	if !was {
		return
	}
	l.cfg.Log.Info("stopped leading", zap.String("identity", l.cfg.Identity))
	if l.cfg.OnStoppedLeading != nil {
		l.cfg.OnStoppedLeading()
	}
}
