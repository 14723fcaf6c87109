package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/haproxy-sidecar/haproxy-sidecar/controller"
	"github.com/haproxy-sidecar/haproxy-sidecar/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// clusterFlags are the settings of the Kubernetes source.
type clusterFlags struct {
	kubeconfig         string
	watchNamespace     string
	publishService     string
	publishAddress     string
	electionNamespace  string
	statusSyncInterval time.Duration
}

func (f *clusterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; default: the in-cluster service account (without --manifests)")
	fs.StringVar(&f.watchNamespace, "watch-namespace", "", "serve only Ingresses (and use only Services, EndpointSlices, Secrets) of this namespace; default all")
	fs.StringVar(&f.publishService, "publish-service", "", "namespace/name of the Service whose address is published in served Ingresses' status")
	fs.StringVar(&f.publishAddress, "publish-address", "", "comma-separated IPs or host names to publish in served Ingresses' status (instead of --publish-service)")
	fs.StringVar(&f.electionNamespace, "election-namespace", "", "namespace of the leader-election Lease; default $POD_NAMESPACE, else default")
	fs.DurationVar(&f.statusSyncInterval, "status-sync-interval", time.Minute, "how often status is re-checked even without changes (the published Service's address may change)")
}

// cluster is run mode's Kubernetes side: the informer source and, beside
// the render loop, leader election, Ingress status and Events.
type cluster struct {
	source *kube.Source
	leader *kube.Leader
	events *kube.EventReporter
	status *kube.StatusWriter // nil without --publish-service/--publish-address
	log    *zap.Logger

	mu      sync.Mutex
	model   *render.Model // last served
	trigger chan struct{}
}

func newCluster(f *runFlags, log *zap.Logger, notify func()) (*cluster, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", f.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration: %w", err)
	}
	cfg.UserAgent = "haproxy-sidecar/" + version
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	c := &cluster{log: log, trigger: make(chan struct{}, 1)}
	c.source, err = kube.NewSource(kube.SourceConfig{Client: client, Namespace: f.watchNamespace,
		SettingsConfigMap: f.settingsConfigMap, Notify: notify, Log: log.Named("kube")})
	if err != nil {
		return nil, err
	}

	if f.publishService != "" || f.publishAddress != "" {
		addrs, err := kube.ParsePublishAddresses(f.publishAddress)
		if err != nil {
			return nil, fmt.Errorf("--publish-address: %w", err)
		}
		c.status = &kube.StatusWriter{Client: client, PublishService: f.publishService, PublishAddresses: addrs, Log: log.Named("status")}
		if err := c.status.Validate(); err != nil {
			return nil, err
		}
	}
	ns := f.electionNamespace
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}
	if ns == "" {
		ns = "default"
	}
	identity, err := kube.DefaultIdentity()
	if err != nil {
		return nil, err
	}
	c.leader, err = kube.NewLeader(kube.LeaderConfig{
		Client: client, Namespace: ns, ControllerName: f.controllerName, Identity: identity,
		// A new leader writes status at once instead of waiting for a change.
		OnStartedLeading: func(context.Context) { c.syncStatus() },
		Log:              log.Named("leader"),
	})
	if err != nil {
		return nil, err
	}
	if c.status != nil {
		c.status.IsLeader = c.leader.IsLeader
	}
	c.events = kube.NewEventReporter(kube.EventReporterConfig{Client: client, Instance: identity, IsLeader: c.leader.IsLeader, Log: log.Named("events")})
	return c, nil
}

// applied follows every successful pass of the render loop.
func (c *cluster) applied(ev controller.Event) {
	c.mu.Lock()
	c.model = ev.Model
	c.mu.Unlock()
	c.events.Report(c.source.Ingresses(), ev.Model)
	c.syncStatus()
}

func (c *cluster) syncStatus() {
	select {
	case c.trigger <- struct{}{}:
	default:
	}
}

// run keeps leader election and status going until ctx is done. Status
// writes happen here, off the render loop, so API latency never delays
// serving a change.
func (c *cluster) run(ctx context.Context, interval time.Duration) error {
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
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.trigger:
		case <-tick.C:
		}
		c.mu.Lock()
		m := c.model
		c.mu.Unlock()
		if c.status == nil || m == nil || !c.leader.IsLeader() {
			continue
		}
		served := make(map[string]bool, len(m.Served))
		for _, s := range m.Served {
			served[s] = true
		}
		n, err := c.status.Sync(ctx, c.source.Ingresses(), served)
		if err != nil && ctx.Err() == nil {
			c.log.Warn("updating Ingress status", zap.Error(err))
		} else if n > 0 {
			c.log.Info("updated Ingress status", zap.Int("ingresses", n))
		}
	}
}
