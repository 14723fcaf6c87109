package kube

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// ClusterConfig wires a Cluster.
type ClusterConfig struct {
	Client kubernetes.Interface
	// SecretClient, when set, watches the referenced Secrets (see
	// SourceConfig.SecretClient).
	SecretClient kubernetes.Interface
	// Namespace limits what is watched ("" for all).
	Namespace string
	// SettingsConfigMap is "namespace/name" of the settings ConfigMap.
	SettingsConfigMap string
	// TCPServicesConfigMap is "namespace/name" of the TCP services
	// ConfigMap.
	TCPServicesConfigMap string
	ControllerName       string
	// ElectionNamespace holds the leader-election Lease.
	ElectionNamespace string
	// Identity names this replica in the Lease and in Events.
	Identity string
	// PublishService ("namespace/name") or PublishAddresses say what to
	// write into served Ingresses' status; without both, status is left
	// alone.
	PublishService   string
	PublishAddresses []string
	// Notify is called when an object the render reads changed.
	Notify func()
	Log    *zap.Logger
	// API, when set, follows the clients' connections to the API server
	// (see APIHealth); its state is the source's.
	API *APIHealth
}

// Cluster is run mode's Kubernetes side: the informer source and, beside
// the render loop, leader election, Ingress status and Events.
type Cluster struct {
	Source *Source
	leader *Leader
	events *EventReporter
	status *StatusWriter // nil without a publish service or addresses
	api    *APIHealth
	log    *zap.Logger

	mu      sync.Mutex
	model   *render.Model // last served
	trigger chan struct{}
	// fullStatus asks the status loop's next run to check every Ingress
	// (a new leader does not take the last run's word for them).
	fullStatus atomic.Bool
}

// NewCluster sets up the informers, leader election, status and Events.
func NewCluster(cfg ClusterConfig) (*Cluster, error) {
	log := cfg.Log
	if log == nil {
		log = zap.NewNop()
	}
	c := &Cluster{log: log, api: cfg.API, trigger: make(chan struct{}, 1)}
	if c.api == nil {
		c.api = &APIHealth{}
	}
	var err error
	c.Source, err = NewSource(SourceConfig{Client: cfg.Client, SecretClient: cfg.SecretClient, Namespace: cfg.Namespace,
		SettingsConfigMap: cfg.SettingsConfigMap, TCPServicesConfigMap: cfg.TCPServicesConfigMap, Notify: cfg.Notify, Log: log.Named("kube")})
	if err != nil {
		return nil, err
	}
	if cfg.PublishService != "" || len(cfg.PublishAddresses) > 0 {
		c.status = &StatusWriter{Client: cfg.Client, PublishService: cfg.PublishService,
			PublishAddresses: cfg.PublishAddresses, Log: log.Named("status")}
		if err := c.status.Validate(); err != nil {
			return nil, err
		}
	}
	c.leader, err = NewLeader(LeaderConfig{
		Client: cfg.Client, Namespace: cfg.ElectionNamespace, ControllerName: cfg.ControllerName, Identity: cfg.Identity,
		// A new leader writes status at once instead of waiting for a
		// change, and reads the Events written before it to write what
		// is missing.
		OnStartedLeading: func(ctx context.Context) { c.fullStatus.Store(true); c.syncStatus(); c.events.Lead(ctx) },
		OnStoppedLeading: func() { c.events.Follow() },
		Log:              log.Named("leader"),
	})
	if err != nil {
		return nil, fmt.Errorf("leader election: %w", err)
	}
	if c.status != nil {
		c.status.IsLeader = c.leader.IsLeader
	}
	c.events = NewEventReporter(EventReporterConfig{Client: cfg.Client, Instance: cfg.Identity, Namespace: cfg.Namespace,
		IsLeader: c.leader.IsLeader, Log: log.Named("events")})
	return c, nil
}

// API is the API server's reachability as the clients see it.
func (c *Cluster) API() APIState { return c.api.State() }

// WaitForSync waits for the source's first full read
// (Source.WaitForSync), and says in the log while that takes long why:
// 2 s after it started, then 4, 8 and 16 s later, then every
// APIHealthLogEvery, a line with the API server's address and what it
// did (no answer yet, or the last error). A sidecar that waits in silence
// for an API server that accepts connections and never answers looks
// hung; client-go's first error comes only after its timeouts.
func (c *Cluster) WaitForSync(ctx context.Context) error {
	done := make(chan struct{})
	defer close(done)
	start := time.Now()
	go func() {
		gap := syncWaitLogFirst
		t := time.NewTimer(gap)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			st := c.api.State()
			fields := []zap.Field{zap.String("server", st.Server), zap.Duration("waiting", time.Since(start).Round(time.Millisecond))}
			if p := st.Problem(time.Now()); p != "" {
				fields = append(fields, zap.String("api", p))
			} else {
				fields = append(fields, zap.String("api", "answering; lists not complete yet"))
			}
			c.log.Named("kube").Warn("waiting for the Kubernetes API server's first lists before the first render", fields...)
			gap = min(2*gap, APIHealthLogEvery)
			t.Reset(gap)
		}
	}()
	return c.Source.WaitForSync(ctx)
}

// syncWaitLogFirst is how long the first read may take before the log
// says it is waiting.
const syncWaitLogFirst = 2 * time.Second

// IsLeader reports whether this replica holds the Lease (and so writes
// status and Events).
func (c *Cluster) IsLeader() bool { return c.leader.IsLeader() }

// Applied follows every successful pass of the render loop with the model
// HAProxy serves.
func (c *Cluster) Applied(m *render.Model) {
	c.mu.Lock()
	c.model = m
	c.mu.Unlock()
	c.events.ReportLazy(c.Source.Ingress, m)
	c.syncStatus()
}

func (c *Cluster) syncStatus() {
	select {
	case c.trigger <- struct{}{}:
	default:
	}
}

// Run keeps leader election and status going until ctx is done. Status
// writes happen here, off the render loop, so API latency never delays
// serving a change; interval re-checks status without a change (the
// published Service's address may change).
func (c *Cluster) Run(ctx context.Context, interval time.Duration) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := c.leader.Run(ctx); err != nil {
			c.log.Error("leader election stopped", zap.Error(err))
		}
	}()
	defer func() { wg.Wait(); c.events.Shutdown() }()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var tracker *statusTracker
	if c.status != nil {
		tracker = newStatusTracker(c.status)
	}
	for {
		full := false
		select {
		case <-ctx.Done():
			return nil
		case <-c.trigger:
		case <-tick.C:
			full = true // reads the published addresses again, and every Ingress
		}
		c.mu.Lock()
		m := c.model
		c.mu.Unlock()
		if tracker == nil || m == nil {
			continue
		}
		full = c.fullStatus.Swap(false) || full
		n, err := tracker.run(ctx, c.Source.IngressList(), m.Served, c.Source.Ingress, full)
		if err != nil && ctx.Err() == nil {
			c.log.Warn("updating Ingress status", zap.Error(err))
		} else if n > 0 {
			c.log.Info("updated Ingress status", zap.Int("ingresses", n))
		}
	}
}
