package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/haproxy-sidecar/haproxy-sidecar/kube"
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

func (f *clusterFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; default: the in-cluster service account (without --manifests)")
	fs.StringVar(&f.watchNamespace, "watch-namespace", "", "serve only Ingresses (and use only Services, EndpointSlices, Secrets) of this namespace; default all")
	fs.StringVar(&f.publishService, "publish-service", "", "namespace/name of the Service whose address is published in served Ingresses' status")
	fs.StringVar(&f.publishAddress, "publish-address", "", "comma-separated IPs or host names to publish in served Ingresses' status (instead of --publish-service)")
	fs.StringVar(&f.electionNamespace, "election-namespace", "", "namespace of the leader-election Lease; default $POD_NAMESPACE, else default")
	fs.DurationVar(&f.statusSyncInterval, "status-sync-interval", time.Minute, "how often status is checked in full, changes or not: the publish Service's address read again and every Ingress (after a change, only the Ingresses it touched are)")
}

// newCluster connects to the API server named by the flags.
func newCluster(f *runFlags, log *zap.Logger, notify func()) (*kube.Cluster, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", f.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration: %w", err)
	}
	cfg.UserAgent = "haproxy-sidecar/" + buildInfo().Version
	// client-go's default of 5 requests/s would take 200 s to start the
	// one watch per referenced Secret of 1,000 TLS Ingresses, longer than
	// the start-up wait (measured in e2e/bench: the sidecar never served).
	// Watches are long-running requests the API server does not count
	// against its in-flight limits.
	cfg.QPS, cfg.Burst = 200, 400
	// Protobuf, as Kubernetes' own controllers use: every kind the
	// sidecar reads or writes is a built-in one, and decoding the initial
	// lists at 10k Ingresses is most of start-up and of its peak memory
	// in JSON.
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	// Requests wait for an API server that is away instead of failing,
	// so client-go's reflector backoff does not grow toward 30 s during an
	// outage (a change made after it ends is served within a second or
	// two); the same wrapper tells /readyz, /status, the metrics and the
	// log about the outage. See kube.APIHealth.
	api := &kube.APIHealth{Log: log.Named("kube.api"), Server: cfg.Host}
	cfg.Dial = api.Dial
	cfg.Wrap(api.WrapTransport)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	// The Secret watches get a limit of their own: each referenced Secret
	// is a list and a watch of one object (a third request where the API
	// server cannot stream lists), and at 200/s 1,000 TLS Ingresses took
	// seconds of client-side waiting to start (e2e/bench, TLS variant).
	// Its own connection: client-go does not share the transport of a
	// configuration with a Dial function.
	secretCfg := rest.CopyConfig(cfg)
	secretCfg.QPS, secretCfg.Burst = 1000, 3000
	secretClient, err := kubernetes.NewForConfig(secretCfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	addrs, err := kube.ParsePublishAddresses(f.publishAddress)
	if err != nil {
		return nil, fmt.Errorf("--publish-address: %w", err)
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
	return kube.NewCluster(kube.ClusterConfig{
		Client: client, SecretClient: secretClient, Namespace: f.watchNamespace, SettingsConfigMap: f.settingsConfigMap,
		TCPServicesConfigMap: f.tcpServicesConfigMap,
		ControllerName:       f.controllerName, ElectionNamespace: ns, Identity: identity,
		PublishService: f.publishService, PublishAddresses: addrs, Notify: notify, Log: log, API: api,
	})
}
