package kube

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const (
	// KubeVersion is the kube-apiserver release scripts/install-kube.sh
	// builds from tools/kube; the cached binary carries it in its name.
	KubeVersion = "v1.36.3"

	defaultCacheDir = "/var/cache/haproxy-sidecar"
	serviceCIDR     = "10.96.0.0/16"
	serviceIP       = "10.96.0.1" // first address of serviceCIDR: the "kubernetes" Service

	readyTimeout = 60 * time.Second
	stopGrace    = 20 * time.Second
)

// Cluster is a running etcd plus kube-apiserver. No controller-manager runs:
// Services get no EndpointSlices unless the test creates them, and deleted
// namespaces stay Terminating, so tests should use fresh namespace names.
type Cluster struct {
	// Config reaches the API server as a system:masters user. It stays
	// valid across StopAPIServer/StartAPIServer: the port, certificates and
	// token do not change.
	Config *rest.Config
	// Client is a clientset built from Config.
	Client kubernetes.Interface

	dir          string
	apiserverBin string
	etcdURL      string
	apiPort      int
	etcdPort     int
	etcdPeerPort int
	pki          *pki

	mu        sync.Mutex // guards etcd and apiserver
	etcd      *process
	apiserver *process
}

// Start runs etcd and kube-apiserver for the test and waits until /readyz
// answers; both are stopped at cleanup. It must be called inside the network
// namespace set up by RunInNetns, and fails the test (never skips) when a
// prerequisite is missing.
func Start(t testing.TB) *Cluster {
	t.Helper()
	if _, inside := CurrentNetns(); !inside {
		t.Fatalf("kube.Start must run inside the e2e network namespace: call kube.RunInNetns from TestMain")
	}
	c, err := newCluster(t.TempDir())
	if err != nil {
		t.Fatalf("prepare cluster: %v", err)
	}
	// Registered after t.TempDir, so it runs before the directory (and the
	// logs in it) is removed.
	t.Cleanup(func() {
		if t.Failed() {
			c.logTails(t)
		}
		if err := c.stop(); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	if err := c.startEtcd(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	if err := c.StartAPIServer(); err != nil {
		t.Fatalf("start kube-apiserver: %v", err)
	}
	return c
}

// newCluster locates the binaries and prepares ports, keys and clients.
func newCluster(dir string) (*Cluster, error) {
	apiserverBin, err := apiserverPath()
	if err != nil {
		return nil, err
	}
	p, err := newPKI(dir)
	if err != nil {
		return nil, fmt.Errorf("generate certificates: %w", err)
	}
	// All ports are picked at once so the kernel cannot hand out one twice.
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	cfg := &rest.Config{
		Host:            "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
		BearerToken:     p.adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: p.caPEM},
		UserAgent:       "haproxy-sidecar-e2e",
		// Fixtures create thousands of objects; the default 5 QPS would
		// dominate test time.
		QPS:   500,
		Burst: 1000,
		// Loopback is never proxied by Go anyway; this makes it explicit.
		Proxy: func(*http.Request) (*url.URL, error) { return nil, nil },
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build clientset: %w", err)
	}
	return &Cluster{
		Config:       cfg,
		Client:       client,
		dir:          dir,
		apiserverBin: apiserverBin,
		apiPort:      ports[0],
		etcdPort:     ports[1],
		etcdPeerPort: ports[2],
		pki:          p,
	}, nil
}

// apiserverPath finds the binary scripts/install-kube.sh built:
// $KUBE_APISERVER, else ${KUBE_CACHE_DIR:-/var/cache/haproxy-sidecar}/kube-apiserver-<version>.
func apiserverPath() (string, error) {
	path := os.Getenv("KUBE_APISERVER")
	if path == "" {
		dir := os.Getenv("KUBE_CACHE_DIR")
		if dir == "" {
			dir = defaultCacheDir
		}
		path = filepath.Join(dir, "kube-apiserver-"+KubeVersion)
	}
	info, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("kube-apiserver %s not found (%s): %w", KubeVersion, installHint, err)
	}
	if info.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s is not executable (%s)", path, installHint)
	}
	return path, nil
}

func etcdPath() (string, error) {
	if path := os.Getenv("ETCD"); path != "" {
		return path, nil
	}
	path, err := exec.LookPath("etcd")
	if err != nil {
		return "", fmt.Errorf("etcd not found (%s): %w", installHint, err)
	}
	return path, nil
}

// startEtcd runs a single-member etcd on free loopback ports with its data
// in the cluster directory, and waits until it reports healthy.
func (c *Cluster) startEtcd() error {
	bin, err := etcdPath()
	if err != nil {
		return err
	}
	c.etcdURL = "http://127.0.0.1:" + strconv.Itoa(c.etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(c.etcdPeerPort)
	argv := []string{bin,
		"--name=e2e",
		"--data-dir=" + filepath.Join(c.dir, "etcd"),
		"--listen-client-urls=" + c.etcdURL,
		"--advertise-client-urls=" + c.etcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=e2e=" + peerURL,
		"--initial-cluster-state=new",
		"--logger=zap",
		"--log-outputs=stderr",
	}
	p, err := startProcess("etcd", filepath.Join(c.dir, "etcd.log"), argv)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.etcd = p
	c.mu.Unlock()
	return waitFor(p, readyTimeout, func(ctx context.Context) error {
		return etcdHealthy(ctx, c.etcdURL)
	})
}

// etcdHealthy asks etcd's /health endpoint. The transport has no proxy so
// the probe can only ever go to loopback.
func etcdHealthy(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := noProxyClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return fmt.Errorf("read etcd health: %w", err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"health":"true"`) {
		return fmt.Errorf("etcd health: %s %q", resp.Status, body)
	}
	return nil
}

// StartAPIServer starts kube-apiserver (again, after StopAPIServer) on the
// same port with the same keys and etcd, and waits until /readyz is ok.
func (c *Cluster) StartAPIServer() error {
	c.mu.Lock()
	if c.apiserver != nil {
		if done, _ := c.apiserver.exited(); !done {
			c.mu.Unlock()
			return errors.New("kube-apiserver is already running")
		}
	}
	p, err := startProcess("kube-apiserver", filepath.Join(c.dir, "kube-apiserver.log"), c.apiserverArgs())
	if err != nil {
		c.mu.Unlock()
		return err
	}
	c.apiserver = p
	c.mu.Unlock()
	return waitFor(p, readyTimeout, c.apiserverReady)
}

// StopAPIServer terminates kube-apiserver gracefully (SIGTERM, then SIGKILL
// after a grace period) and leaves etcd running, so a test can observe how a
// client behaves while the API is away and after StartAPIServer.
func (c *Cluster) StopAPIServer() error {
	c.mu.Lock()
	p := c.apiserver
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	if err := p.stop(stopGrace); err != nil {
		return fmt.Errorf("stop kube-apiserver: %w", err)
	}
	return nil
}

// KillAPIServer kills kube-apiserver (SIGKILL): nothing is drained, its
// clients' connections simply break, and new ones are refused until
// StartAPIServer.
func (c *Cluster) KillAPIServer() error {
	c.mu.Lock()
	p := c.apiserver
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.kill()
}

// apiserverArgs are the flags known to work with Debian's etcd 3.4 (see
// /work/shared/FIELD-NOTES.md), plus an explicit advertise address because
// the namespace has no default route to derive one from.
func (c *Cluster) apiserverArgs() []string {
	return []string{c.apiserverBin,
		"--etcd-servers=" + c.etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=" + NodeIP,
		"--secure-port=" + strconv.Itoa(c.apiPort),
		"--tls-cert-file=" + c.pki.servingCert,
		"--tls-private-key-file=" + c.pki.servingKey,
		// Only written to if the files above were missing; keeps the
		// default /var/run/kubernetes untouched.
		"--cert-dir=" + filepath.Join(c.dir, "apiserver-certs"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + c.pki.saPublicKey,
		"--service-account-signing-key-file=" + c.pki.saSigningKey,
		"--token-auth-file=" + c.pki.tokenFile,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=" + serviceCIDR,
		"--disable-admission-plugins=ServiceAccount",
	}
}

// apiserverReady is one /readyz probe through the real client, so readiness
// also proves the token and CA in Config work.
func (c *Cluster) apiserverReady(ctx context.Context) error {
	body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("/readyz: %w (%s)", err, strings.TrimSpace(string(body)))
	}
	return nil
}

// Kubeconfig returns a kubeconfig for Config, for components that run as
// separate processes (the sidecar, kubectl) inside the namespace.
func (c *Cluster) Kubeconfig() []byte {
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: e2e-admin
  user:
    token: %s
contexts:
- name: e2e
  context:
    cluster: e2e
    user: e2e-admin
current-context: e2e
`, c.Config.Host, base64.StdEncoding.EncodeToString(c.pki.caPEM), c.pki.adminToken)
}

// WriteKubeconfig writes Kubeconfig into the cluster directory and returns
// its path; the file is removed with the test's temporary directory.
func (c *Cluster) WriteKubeconfig() (string, error) {
	path := filepath.Join(c.dir, "kubeconfig")
	if err := os.WriteFile(path, c.Kubeconfig(), 0o600); err != nil {
		return "", fmt.Errorf("write kubeconfig: %w", err)
	}
	return path, nil
}

// stop ends the API server before etcd, so the API server does not spend its
// shutdown retrying a vanished store.
func (c *Cluster) stop() error {
	c.mu.Lock()
	apiserver, etcd := c.apiserver, c.etcd
	c.mu.Unlock()
	var errs []error
	if apiserver != nil {
		if err := apiserver.stop(stopGrace); err != nil {
			errs = append(errs, err)
		}
	}
	if etcd != nil {
		if err := etcd.stop(stopGrace); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *Cluster) logTails(t testing.TB) {
	c.mu.Lock()
	procs := []*process{c.etcd, c.apiserver}
	c.mu.Unlock()
	for _, p := range procs {
		if p != nil {
			t.Logf("last lines of %s:\n%s", p.logPath, indent(p.logTail(40)))
		}
	}
}

// waitFor polls probe until it succeeds, the process exits or timeout passes.
func waitFor(p *process, timeout time.Duration, probe func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if done, err := p.exited(); done {
			return p.describeExit(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last = probe(ctx)
		cancel()
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %w; last log lines:\n%s",
				p.name, timeout, last, indent(p.logTail(30)))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// freePorts asks the kernel for n distinct unused loopback ports. Another
// process could take one before it is used, but inside the private namespace
// only this test binary allocates ports.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// noProxyClient never uses a proxy, whatever the environment says.
var noProxyClient = &http.Client{
	Transport: &http.Transport{Proxy: nil},
	Timeout:   10 * time.Second,
}
