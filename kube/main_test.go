package kube

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"
	"weak"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	e2ekube "github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
	_ "github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv" // defines -update for go test ./... -update
)

// TestMain re-executes the test binary inside the e2e network namespace,
// which e2ekube.Start requires: every test in this package talks to a real
// etcd and kube-apiserver, never to a fake clientset.
func TestMain(m *testing.M) { os.Exit(e2ekube.RunInNetns(m)) }

// apiTestNamespace creates a namespace for one test. The harness runs no
// controller-manager, so namespaces are never really deleted: every test
// uses its own name.
func apiTestNamespace(t *testing.T, c kubernetes.Interface, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := c.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

// apiTestEventually polls cond until it reports done, failing the test
// with cond's last description after timeout.
func apiTestEventually(t *testing.T, timeout time.Duration, cond func() (done bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, state := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still not done after %v: %s", timeout, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runSource runs a Source made from cfg until the test ends and waits for
// its caches.
func runSource(t *testing.T, cfg SourceConfig) *Source {
	t.Helper()
	src, err := NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { src.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	syncCtx, cancelSync := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelSync()
	if err := src.WaitForSync(syncCtx); err != nil {
		t.Fatal(err)
	}
	return src
}

// aliveAfterGC collects garbage and counts the objects of ps still alive.
func aliveAfterGC[T any](ps []weak.Pointer[T]) int {
	runtime.GC()
	alive := 0
	for _, p := range ps {
		if p.Value() != nil {
			alive++
		}
	}
	return alive
}
