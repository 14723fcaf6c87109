package kube

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// componentPath finds a control-plane command scripts/install-kube.sh
// built (kube-scheduler, kube-controller-manager): $<env>, else
// ${KUBE_CACHE_DIR:-/var/cache/haproxy-sidecar}/<name>-<version>.
func componentPath(name, env string) (string, error) {
	path := os.Getenv(env)
	if path == "" {
		dir := os.Getenv("KUBE_CACHE_DIR")
		if dir == "" {
			dir = defaultCacheDir
		}
		path = filepath.Join(dir, name+"-"+KubeVersion)
	}
	info, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%s %s not found (%s): %w", name, KubeVersion, installHint, err)
	}
	if info.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s is not executable (%s)", path, installHint)
	}
	return path, nil
}

// StartScheduler runs the real kube-scheduler against the cluster until the
// test ends: pods are bound to the Nodes the test registers by the same
// rules (topology spread, affinity, ports, resources) as in a real
// cluster. No kubelet runs, so bound pods never start.
func (c *Cluster) StartScheduler(t testing.TB) {
	t.Helper()
	c.startComponent(t, "kube-scheduler", "KUBE_SCHEDULER")
}

// StartControllerManager runs the real kube-controller-manager with only
// the given controllers (e.g. "deployment", "replicaset", "disruption")
// until the test ends.
func (c *Cluster) StartControllerManager(t testing.TB, controllers ...string) {
	t.Helper()
	c.startComponent(t, "kube-controller-manager", "KUBE_CONTROLLER_MANAGER", "--controllers="+strings.Join(controllers, ","))
}

// startComponent runs a control-plane command with the admin kubeconfig,
// no leader election and no serving port.
func (c *Cluster) startComponent(t testing.TB, name, env string, extra ...string) {
	t.Helper()
	bin, err := componentPath(name, env)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := c.WriteKubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	argv := append([]string{bin,
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--v=2",
	}, extra...)
	p, err := startProcess(name, filepath.Join(c.dir, name+".log"), argv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.stop(5 * time.Second); err != nil {
			t.Logf("stopping %s: %v", name, err)
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.logTail(60))
		}
	})
	time.Sleep(200 * time.Millisecond)
	if done, err := p.exited(); done {
		t.Fatalf("%s exited at once: %v\n%s", name, err, p.logTail(40))
	}
}
