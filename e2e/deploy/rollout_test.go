package deploy

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
)

// deploy/'s Deployment and PDB driven by the real controllers
// (kube-controller-manager's deployment, replicaset and disruption
// controllers, kube-scheduler): a rolling update completes on a one-node
// cluster without ever having fewer than two ready replicas, a drain of
// that node onto a second one evicts both replicas one at a time through
// the Eviction API (as kubectl drain does), and a Deployment scaled to one
// replica does not block its node's drain. No kubelet runs: fakeKubelet
// reports bound pods ready and finishes deleting the ones being removed,
// which is all a kubelet tells the API server about them.
func TestRolloutAndDrain(t *testing.T) {
	b := kustomizeDeploy(t)
	dep := b.deployment(t)
	ns := dep.Namespace
	c := kube.Start(t)
	c.StartScheduler(t)
	c.StartControllerManager(t, "deployment", "replicaset", "disruption")
	createNode(t, c, "solo", "zone-a")
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx(t, 30*time.Second), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	stop := fakeKubelet(t, c, ns)
	defer stop()
	apply(t, c, b, false)
	if t.Failed() {
		return
	}
	deps := c.Client.AppsV1().Deployments(ns)
	waitRolledOut(t, c, ns, dep.Name, 2, 90*time.Second)
	if nodes := podNodes(t, c, ns); fmt.Sprint(nodes) != "[solo solo]" {
		t.Fatalf("pods on %v, want both on solo", nodes)
	}

	t.Run("rollout on one node", func(t *testing.T) {
		// Watch availability while the template changes.
		minAvailable := int32(2)
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				case <-time.After(50 * time.Millisecond):
				}
				d, err := deps.Get(context.Background(), dep.Name, metav1.GetOptions{})
				if err == nil && d.Status.AvailableReplicas < minAvailable {
					minAvailable = d.Status.AvailableReplicas
				}
			}
		}()
		patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"e2e/restartedAt":%q}}}}}`, time.Now().Format(time.RFC3339Nano))
		if _, err := deps.Patch(ctx(t, 30*time.Second), dep.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		waitRolledOut(t, c, ns, dep.Name, 2, 90*time.Second)
		close(done)
		wg.Wait()
		t.Logf("rolled out on one node in %s; fewest available replicas during it: %d", time.Since(start).Round(time.Millisecond), minAvailable)
		if minAvailable < 2 {
			t.Errorf("%d available replicas during the rollout, want 2 throughout (maxUnavailable 0)", minAvailable)
		}
	})

	t.Run("drain", func(t *testing.T) {
		createNode(t, c, "spare", "zone-b")
		start := time.Now()
		drain(t, c, ns, "solo", 90*time.Second)
		t.Logf("drained solo in %s", time.Since(start).Round(time.Millisecond))
		waitRolledOut(t, c, ns, dep.Name, 2, 90*time.Second)
		if nodes := podNodes(t, c, ns); fmt.Sprint(nodes) != "[spare spare]" {
			t.Errorf("after the drain, pods on %v, want both on spare", nodes)
		}
	})

	t.Run("drain with one replica", func(t *testing.T) {
		// Scaled to one replica, maxUnavailable: 1 still allows its
		// eviction (minAvailable: 1 would not, for ever).
		uncordon(t, c, "solo")
		scale, err := deps.GetScale(ctx(t, 30*time.Second), dep.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		scale.Spec.Replicas = 1
		if _, err := deps.UpdateScale(ctx(t, 30*time.Second), dep.Name, scale, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitRolledOut(t, c, ns, dep.Name, 1, 90*time.Second)
		drain(t, c, ns, "spare", 60*time.Second)
		waitRolledOut(t, c, ns, dep.Name, 1, 90*time.Second)
		if nodes := podNodes(t, c, ns); fmt.Sprint(nodes) != "[solo]" {
			t.Errorf("after the drain, pods on %v, want one on solo", nodes)
		}
	})

	t.Run("minAvailable would block", func(t *testing.T) {
		// The budget deploy/ had before: the single replica's eviction is
		// refused for as long as one tries.
		pdbs := c.Client.PolicyV1().PodDisruptionBudgets(ns)
		pdb, err := pdbs.Patch(ctx(t, 30*time.Second), deployName, types.MergePatchType,
			[]byte(`{"spec":{"maxUnavailable":null,"minAvailable":1}}`), metav1.PatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			got, err := pdbs.Get(ctx(t, 10*time.Second), pdb.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status.ObservedGeneration >= got.Generation {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("PDB status not updated: %+v", got.Status)
			}
		}
		list, err := c.Client.CoreV1().Pods(ns).List(ctx(t, 10*time.Second), metav1.ListOptions{})
		if err != nil || len(list.Items) != 1 {
			t.Fatalf("pods: %v %v", list, err)
		}
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			err := c.Client.PolicyV1().Evictions(ns).Evict(ctx(t, 10*time.Second), &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: list.Items[0].Name, Namespace: ns}})
			if !apierrors.IsTooManyRequests(err) {
				t.Fatalf("with minAvailable: 1, evicting the one replica: %v, want 429 Too Many Requests", err)
			}
		}
	})
}

// fakeKubelet does a kubelet's part for pods of ns: a pod bound to a node
// is reported running and ready; a pod being deleted is removed (its
// containers "stopped"). It runs until the returned function is called.
func fakeKubelet(t *testing.T, c *kube.Cluster, ns string) func() {
	cx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pods := c.Client.CoreV1().Pods(ns)
		zero := int64(0)
		for cx.Err() == nil {
			list, err := pods.List(cx, metav1.ListOptions{})
			if err == nil {
				for i := range list.Items {
					p := &list.Items[i]
					switch {
					case p.DeletionTimestamp != nil:
						pods.Delete(cx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
					case p.Spec.NodeName != "" && p.Status.Phase != corev1.PodRunning:
						now := metav1.Now()
						p.Status.Phase = corev1.PodRunning
						p.Status.StartTime = &now
						p.Status.Conditions = []corev1.PodCondition{
							{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
							{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
							{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
							{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
						}
						pods.UpdateStatus(cx, p, metav1.UpdateOptions{})
					}
				}
			}
			select {
			case <-cx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// waitRolledOut waits until the Deployment has observed its latest
// generation and has exactly replicas pods, all updated and available,
// as `kubectl rollout status` does.
func waitRolledOut(t *testing.T, c *kube.Cluster, ns, name string, replicas int32, limit time.Duration) {
	t.Helper()
	var d *appsv1.Deployment
	var err error
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		d, err = c.Client.AppsV1().Deployments(ns).Get(ctx(t, 10*time.Second), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s := d.Status
		if s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == replicas && s.Replicas == replicas && s.AvailableReplicas == replicas &&
			len(podNodes(t, c, ns)) == int(replicas) {
			return
		}
	}
	t.Fatalf("Deployment %s/%s not rolled out to %d replicas within %s: %+v (pods on %v)", ns, name, replicas, limit, d.Status, podNodes(t, c, ns))
}

// podNodes are the nodes of the pods of ns, sorted.
func podNodes(t *testing.T, c *kube.Cluster, ns string) []string {
	t.Helper()
	list, err := c.Client.CoreV1().Pods(ns).List(ctx(t, 10*time.Second), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range list.Items {
		out = append(out, p.Spec.NodeName)
	}
	sort.Strings(out)
	return out
}

// drain does what `kubectl drain` does: cordon the node, then evict each of
// its pods through the Eviction API, retrying while the PDB refuses (429),
// until none is left, within limit.
func drain(t *testing.T, c *kube.Cluster, ns, node string, limit time.Duration) {
	t.Helper()
	cordon(t, c, node)
	refused := 0
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		list, err := c.Client.CoreV1().Pods(ns).List(ctx(t, 10*time.Second), metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) == 0 {
			t.Logf("drain %s: done (%d evictions refused by the PDB meanwhile)", node, refused)
			return
		}
		for _, p := range list.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			err := c.Client.PolicyV1().Evictions(ns).Evict(ctx(t, 10*time.Second), &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: ns}})
			switch {
			case err == nil, apierrors.IsNotFound(err):
			case apierrors.IsTooManyRequests(err):
				refused++
			default:
				t.Fatalf("evict %s: %v", p.Name, err)
			}
		}
	}
	t.Fatalf("drain %s: pods left after %s (%d evictions refused)", node, limit, refused)
}

func uncordon(t *testing.T, c *kube.Cluster, name string) {
	t.Helper()
	n, err := c.Client.CoreV1().Nodes().Get(ctx(t, 30*time.Second), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Spec.Unschedulable = false
	if _, err := c.Client.CoreV1().Nodes().Update(ctx(t, 30*time.Second), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
