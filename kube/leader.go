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
// usual values. A new leader takes over at most LeaseDuration after the
// old one died, and at once (one RetryPeriod) when it stopped cleanly.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

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
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.LeaseName},
			Client:     cfg.Client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
		},
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
		le.Run(ctx) // returns when leadership is lost or ctx is done
	}
	return nil
}

// IsLeader reports whether this replica holds the Lease now.
func (l *Leader) IsLeader() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leading
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
