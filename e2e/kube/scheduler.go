package kube

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// schedulerPath finds the kube-scheduler scripts/install-kube.sh built:
// $KUBE_SCHEDULER, else ${KUBE_CACHE_DIR:-/var/cache/haproxy-sidecar}/kube-scheduler-<version>.
func schedulerPath() (string, error) {
	path := os.Getenv("KUBE_SCHEDULER")
	if path == "" {
		dir := os.Getenv("KUBE_CACHE_DIR")
		if dir == "" {
			dir = defaultCacheDir
		}
		path = filepath.Join(dir, "kube-scheduler-"+KubeVersion)
	}
	info, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("kube-scheduler %s not found (%s): %w", KubeVersion, installHint, err)
	}
	if info.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s is not executable (%s)", path, installHint)
	}
	return path, nil
}

// StartScheduler runs the real kube-scheduler against the cluster until the
// test ends: pods the test creates are bound to the Nodes it creates, by
// the same rules (topology spread, affinity, ports, resources) as in a
// real cluster. No kubelet runs, so bound pods never start. It does not
// elect a leader and serves nothing.
func (c *Cluster) StartScheduler(t testing.TB) {
	t.Helper()
	bin, err := schedulerPath()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := c.WriteKubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	p, err := startProcess("kube-scheduler", filepath.Join(c.dir, "kube-scheduler.log"), []string{bin,
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--v=2",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.stop(5 * time.Second); err != nil {
			t.Logf("stopping kube-scheduler: %v", err)
		}
		if t.Failed() {
			t.Logf("kube-scheduler log:\n%s", p.logTail(60))
		}
	})
	time.Sleep(200 * time.Millisecond)
	if done, err := p.exited(); done {
		t.Fatalf("kube-scheduler exited at once: %v\n%s", err, p.logTail(40))
	}
}
