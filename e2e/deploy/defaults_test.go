package deploy

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/cpulimit"
	"github.com/haproxy-sidecar/haproxy-sidecar/kube"
)

// Defaults that survive real clusters (issue 25): two replicas spread
// over nodes and zones without a required rule that leaves one Pending on
// a one-node cluster, a rollout that can progress there, a PDB that lets a
// drain through.
func TestSchedulingDefaults(t *testing.T) {
	b := kustomizeDeploy(t)
	dep := b.deployment(t)
	spec := &dep.Spec.Template.Spec
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", dep.Spec.Replicas)
	}

	// Spread, preferred only: both replicas may run on one node.
	keys := map[string]bool{}
	for _, c := range spec.TopologySpreadConstraints {
		if c.WhenUnsatisfiable != corev1.ScheduleAnyway {
			t.Errorf("topologySpreadConstraint %s: whenUnsatisfiable %s, want ScheduleAnyway (DoNotSchedule leaves a replica Pending on a one-node or one-zone cluster)", c.TopologyKey, c.WhenUnsatisfiable)
		}
		if c.MaxSkew != 1 {
			t.Errorf("topologySpreadConstraint %s: maxSkew %d, want 1", c.TopologyKey, c.MaxSkew)
		}
		if c.LabelSelector == nil || !selects(c.LabelSelector.MatchLabels, spec, dep) {
			t.Errorf("topologySpreadConstraint %s: selector %+v does not select the pod's labels", c.TopologyKey, c.LabelSelector)
		}
		keys[c.TopologyKey] = true
	}
	for _, k := range []string{corev1.LabelHostname, corev1.LabelTopologyZone} {
		if !keys[k] {
			t.Errorf("no topologySpreadConstraint over %s", k)
		}
	}
	if a := spec.Affinity; a != nil && (a.PodAntiAffinity != nil && len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) > 0 ||
		a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil) {
		t.Errorf("required affinity %+v: a one-node cluster leaves a replica Pending", a)
	}
	if len(spec.NodeSelector) > 0 {
		t.Errorf("nodeSelector %v: not every cluster has such nodes", spec.NodeSelector)
	}

	// Nothing ties a pod to a node's ports, so two pods of the Deployment
	// (two replicas, or a surge pod beside an old one) fit on one node.
	hostPorts := false
	if spec.HostNetwork {
		t.Errorf("hostNetwork: two pods on one node would collide on their ports")
		hostPorts = true
	}
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range list {
			for _, p := range c.Ports {
				if p.HostPort != 0 {
					t.Errorf("%s: hostPort %d: a second pod on the node would stay Pending", c.Name, p.HostPort)
					hostPorts = true
				}
			}
		}
	}

	// The rollout: a surge pod (maxSurge 1) needs room beside the old
	// ones, which hostPorts would deny; with hostPorts, maxSurge 0 and
	// maxUnavailable 1 would be the only way forward.
	st := dep.Spec.Strategy
	if st.Type != appsv1.RollingUpdateDeploymentStrategyType || st.RollingUpdate == nil {
		t.Fatalf("strategy %+v, want RollingUpdate", st)
	}
	surge := intOr(t, st.RollingUpdate.MaxSurge, 2)
	unavailable := intOr(t, st.RollingUpdate.MaxUnavailable, 2)
	if surge == 0 && unavailable == 0 {
		t.Errorf("maxSurge and maxUnavailable both 0: the rollout never starts")
	}
	if surge > 0 && hostPorts {
		t.Errorf("maxSurge %d with host ports: the surge pod stays Pending on a one-node cluster", surge)
	}
	if surge != 1 || unavailable != 0 {
		t.Errorf("maxSurge %d, maxUnavailable %d: want 1 and 0 (no capacity lost during a rollout; README says so)", surge, unavailable)
	}

	// The PDB: one replica at a time, never blocking a single replica's
	// drain (minAvailable would).
	pdbs := b.all("PodDisruptionBudget")
	if len(pdbs) != 1 {
		t.Fatalf("%d PodDisruptionBudgets, want 1", len(pdbs))
	}
	pdb := typed[policyv1.PodDisruptionBudget](t, pdbs[0])
	if pdb.Spec.MinAvailable != nil || pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != intstr.FromInt32(1) {
		t.Errorf("PDB %s: minAvailable %v, maxUnavailable %v; want maxUnavailable 1 only", pdb.Name, pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable)
	}
	if p := pdb.Spec.UnhealthyPodEvictionPolicy; p == nil || *p != policyv1.AlwaysAllow {
		t.Errorf("PDB %s: unhealthyPodEvictionPolicy %v, want AlwaysAllow (a drain does not wait on a pod that is not ready)", pdb.Name, p)
	}
	if pdb.Spec.Selector == nil || !selects(pdb.Spec.Selector.MatchLabels, spec, dep) {
		t.Errorf("PDB %s: selector %+v does not select the pod", pdb.Name, pdb.Spec.Selector)
	}
}

// selects: the labels are a subset of the pod template's.
func selects(labels map[string]string, _ *corev1.PodSpec, dep *appsv1.Deployment) bool {
	if len(labels) == 0 {
		return false
	}
	for k, v := range labels {
		if dep.Spec.Template.Labels[k] != v {
			return false
		}
	}
	return true
}

func intOr(t *testing.T, v *intstr.IntOrString, replicas int) int {
	t.Helper()
	if v == nil {
		t.Fatalf("rollingUpdate without maxSurge or maxUnavailable: say it (Kubernetes' 25%% is not obvious)")
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, replicas, true)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The names peers install by default; an IngressClass of ours under one
// of them cannot be applied where that peer runs (spec.controller is
// immutable), and a Namespace or cluster-scoped object would be taken
// over.
var peerNames = []string{"haproxy", "haproxy-ingress", "kubernetes-ingress", "haproxy-kubernetes-ingress", "nginx", "ingress-nginx", "traefik"}

// Every object is named after this project: the IngressClass, the
// Namespace and every cluster-scoped or namespaced object, and the
// election Lease.
func TestNamesAreOurs(t *testing.T) {
	b := kustomizeDeploy(t)
	for _, o := range b.objects {
		name := o.GetName()
		if !strings.HasPrefix(name, deployName) {
			t.Errorf("%s %q: not named haproxy-sidecar[-...]: it may collide with another controller's", o.GetKind(), name)
		}
		if slices.Contains(peerNames, name) {
			t.Errorf("%s %q: a peer's default name", o.GetKind(), name)
		}
		if ns := o.GetNamespace(); ns != "" && !strings.HasPrefix(ns, deployName) {
			t.Errorf("%s %s: namespace %q is not ours", o.GetKind(), name, ns)
		}
	}
	ic := typed[networkingv1.IngressClass](t, b.find(t, "IngressClass", "haproxy-sidecar"))
	if ic.Spec.Controller != controllerName {
		t.Errorf("IngressClass %s: controller %q", ic.Name, ic.Spec.Controller)
	}
	// The Lease: named from the controller name by the sidecar.
	if lease := leaseName(); !strings.HasPrefix(lease, deployName+"-") {
		t.Errorf("Lease %q is not named after the project", lease)
	}
}

// The Service keeps clients' addresses (Local) and the metrics Service
// reaches the sidecar's and HAProxy's metrics ports.
func TestServices(t *testing.T) {
	b := kustomizeDeploy(t)
	dep := b.deployment(t)
	spec := &dep.Spec.Template.Spec
	svc := b.service(t)
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		t.Errorf("Service %s: type %s, externalTrafficPolicy %q; want LoadBalancer with Local (clients' own addresses)", svc.Name, svc.Spec.Type, svc.Spec.ExternalTrafficPolicy)
	}

	ms := typed[corev1.Service](t, b.find(t, "Service", deployName+"-metrics"))
	if ms.Spec.Type != "" && ms.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("metrics Service: type %s, want ClusterIP (not exposed outside the cluster)", ms.Spec.Type)
	}
	if ms.Labels["app.kubernetes.io/component"] != "metrics" || ms.Labels["app.kubernetes.io/name"] != deployName {
		t.Errorf("metrics Service labels %v: want app.kubernetes.io/name=%s and app.kubernetes.io/component=metrics for a ServiceMonitor to select", ms.Labels, deployName)
	}
	if svc.Labels["app.kubernetes.io/component"] == "metrics" {
		t.Errorf("the LoadBalancer Service carries the metrics label: a ServiceMonitor would scrape it too")
	}
	if !selects(ms.Spec.Selector, spec, dep) {
		t.Errorf("metrics Service selector %v does not select the pod", ms.Spec.Selector)
	}
	// Each port reaches the container port serving /metrics: the sidecar's
	// --health-addr and HAProxy's --stats-bind.
	sc, hc := containerNamed(t, spec, sidecarName), containerNamed(t, spec, haproxyName)
	args := strings.Join(sc.Args, " ")
	want := map[string]struct {
		c    *corev1.Container
		flag string
	}{"sidecar-metrics": {sc, "--health-addr"}, "haproxy-metrics": {hc, "--stats-bind"}}
	for _, p := range ms.Spec.Ports {
		w, ok := want[p.Name]
		if !ok {
			t.Errorf("metrics Service port %s: not a metrics port", p.Name)
			continue
		}
		delete(want, p.Name)
		cp := port(t, w.c, p.TargetPort)
		if int(p.Port) != cp {
			t.Errorf("metrics Service port %s: %d, want the container's %d", p.Name, p.Port, cp)
		}
		if !strings.Contains(args, w.flag+"=:"+itoa(cp)) {
			t.Errorf("metrics Service port %s -> %s:%d, but the sidecar's %s is not :%d (%s)", p.Name, w.c.Name, cp, w.flag, cp, args)
		}
	}
	for name := range want {
		t.Errorf("metrics Service has no port %s", name)
	}
}

// The HAProxy container's CPU limit reaches the sidecar (which cannot see
// it) through the Downward API, in whole CPUs.
func TestThreadsFromLimit(t *testing.T) {
	b := kustomizeDeploy(t)
	spec := &b.deployment(t).Spec.Template.Spec
	sc, hc := containerNamed(t, spec, sidecarName), containerNamed(t, spec, haproxyName)
	var ref *corev1.ResourceFieldSelector
	for _, e := range sc.Env {
		if e.Name == cpulimit.EnvVar && e.ValueFrom != nil {
			ref = e.ValueFrom.ResourceFieldRef
		}
	}
	if ref == nil || ref.ContainerName != hc.Name || ref.Resource != "limits.cpu" {
		t.Fatalf("sidecar env %s: %+v, want the %s container's limits.cpu (resourceFieldRef)", cpulimit.EnvVar, ref, hc.Name)
	}
	if !ref.Divisor.IsZero() && ref.Divisor.String() != "1" {
		t.Errorf("divisor %s: want 1 (whole CPUs, rounded up)", ref.Divisor.String())
	}
	if _, ok := hc.Resources.Limits[corev1.ResourceCPU]; !ok {
		t.Errorf("the haproxy container has no CPU limit: the Downward API would give the node's CPUs")
	}
	if strings.Contains(strings.Join(sc.Args, " "), "--haproxy-threads") {
		t.Errorf("sidecar args set --haproxy-threads: the default follows the limit")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// leaseName is the election Lease the sidecar takes with deploy/'s
// --controller-name.
func leaseName() string { return kube.LeaseName(controllerName) }
