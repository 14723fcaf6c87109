package deploy

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
)

// The real kube-scheduler places deploy/'s pods: on a one-node cluster
// (kind, k3d, minikube) both replicas and a rollout's surge pod are bound
// to the node, none left Pending; the required anti-affinity deploy/ had
// before leaves the second replica Pending on the same cluster (so this
// test can tell). On two nodes in two zones the replicas go apart. Pods
// are created from the Deployment's template as its ReplicaSets would
// (no controller-manager runs here), and no kubelet starts them.
func TestScheduling(t *testing.T) {
	b := kustomizeDeploy(t)
	dep := b.deployment(t)
	ns := dep.Namespace
	c := kube.Start(t)
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx(t, 30*time.Second), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	apply(t, c, b, false)
	if t.Failed() {
		return
	}
	c.StartScheduler(t)

	t.Run("one node", func(t *testing.T) {
		createNode(t, c, "solo", "zone-a")
		// Two replicas of one revision, then the surge pod of the next
		// (maxSurge 1): three pods on one node.
		pods := []string{
			createPod(t, c, ns, dep.Spec.Template, "rev1", "a"),
			createPod(t, c, ns, dep.Spec.Template, "rev1", "b"),
			createPod(t, c, ns, dep.Spec.Template, "rev2", "c"),
		}
		for _, p := range pods {
			if node := waitBound(t, c, ns, p); node != "solo" {
				t.Errorf("pod %s bound to %q, want solo", p, node)
			}
		}

		// The old default, a required anti-affinity over hostnames: the
		// second replica stays Pending.
		old := "anti-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
		if _, err := c.Client.CoreV1().Namespaces().Create(ctx(t, 30*time.Second), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: old}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tmpl := *dep.Spec.Template.DeepCopy()
		tmpl.Spec.TopologySpreadConstraints = nil
		tmpl.Spec.ServiceAccountName = ""
		tmpl.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				TopologyKey:   corev1.LabelHostname,
				LabelSelector: &metav1.LabelSelector{MatchLabels: dep.Spec.Selector.MatchLabels},
			}},
		}}
		first := createPod(t, c, old, tmpl, "rev1", "a")
		waitBound(t, c, old, first)
		second := createPod(t, c, old, tmpl, "rev1", "b")
		msg := waitUnschedulable(t, c, old, second)
		t.Logf("with required anti-affinity, the second replica: %s", msg)
	})

	t.Run("two zones", func(t *testing.T) {
		// Fresh nodes in two zones; the one-node subtest's node is
		// cordoned so that only these count.
		cordon(t, c, "solo")
		createNode(t, c, "za-1", "zone-x")
		createNode(t, c, "zb-1", "zone-y")
		a := createPod(t, c, ns, dep.Spec.Template, "rev3", "a")
		na := waitBound(t, c, ns, a)
		bp := createPod(t, c, ns, dep.Spec.Template, "rev3", "b")
		nb := waitBound(t, c, ns, bp)
		t.Logf("replicas on %s and %s", na, nb)
		if na == nb {
			t.Errorf("both replicas on node %s though another zone had an empty node", na)
		}
	})
}

// createNode registers a ready, untainted Node with 4 CPUs and 8 GiB, as a kubelet
// would, labelled with its hostname and zone.
func createNode(t *testing.T, c *kube.Cluster, name, zone string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		corev1.LabelHostname: name, corev1.LabelTopologyZone: zone, corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64",
	}}}
	n, err := c.Client.CoreV1().Nodes().Create(ctx(t, 30*time.Second), n, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"),
		corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceEphemeralStorage: resource.MustParse("50Gi"),
	}
	n.Status = corev1.NodeStatus{Capacity: res, Allocatable: res, Conditions: []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
	}}}
	if n, err = c.Client.CoreV1().Nodes().UpdateStatus(ctx(t, 30*time.Second), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The API server's admission taints a new Node not-ready; the node
	// lifecycle controller (not running here) lifts it once the kubelet
	// reports Ready, as it did above.
	n.Spec.Taints = nil
	if _, err := c.Client.CoreV1().Nodes().Update(ctx(t, 30*time.Second), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func cordon(t *testing.T, c *kube.Cluster, name string) {
	t.Helper()
	n, err := c.Client.CoreV1().Nodes().Get(ctx(t, 30*time.Second), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Spec.Unschedulable = true
	if _, err := c.Client.CoreV1().Nodes().Update(ctx(t, 30*time.Second), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// createPod makes a pod of the template as a ReplicaSet of revision hash
// would: the template's labels plus pod-template-hash.
func createPod(t *testing.T, c *kube.Cluster, ns string, tmpl corev1.PodTemplateSpec, hash, suffix string) string {
	t.Helper()
	p := &corev1.Pod{ObjectMeta: *tmpl.ObjectMeta.DeepCopy(), Spec: *tmpl.Spec.DeepCopy()}
	p.Name = deployName + "-" + hash + "-" + suffix
	p.Namespace = ns
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	p.Labels["pod-template-hash"] = hash
	if _, err := c.Client.CoreV1().Pods(ns).Create(ctx(t, 30*time.Second), p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, p.Name, err)
	}
	return p.Name
}

// waitBound waits until the scheduler has bound the pod and returns its
// node.
func waitBound(t *testing.T, c *kube.Cluster, ns, name string) string {
	t.Helper()
	var last string
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		p, err := c.Client.CoreV1().Pods(ns).Get(ctx(t, 10*time.Second), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.NodeName != "" {
			return p.Spec.NodeName
		}
		last = fmt.Sprintf("%+v", p.Status.Conditions)
	}
	t.Fatalf("pod %s/%s not scheduled within 60s: %s", ns, name, last)
	return ""
}

// waitUnschedulable waits for the scheduler's verdict that the pod fits
// no node (it stays Pending) and returns its message.
func waitUnschedulable(t *testing.T, c *kube.Cluster, ns, name string) string {
	t.Helper()
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		p, err := c.Client.CoreV1().Pods(ns).Get(ctx(t, 10*time.Second), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.NodeName != "" {
			t.Fatalf("pod %s/%s was bound to %s, want Pending", ns, name, p.Spec.NodeName)
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
				return cond.Message
			}
		}
	}
	t.Fatalf("pod %s/%s: no Unschedulable verdict within 60s", ns, name)
	return ""
}
