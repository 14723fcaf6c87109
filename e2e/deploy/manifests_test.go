package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// permission is one verb on one resource, as README's table and RBAC say it.
type permission struct {
	group, resource, verb string
	// namespaced: granted in the pod's namespace only (the election Lease).
	namespaced bool
}

func (p permission) String() string {
	g := p.group
	if g == "" {
		g = "core"
	}
	s := p.verb + " " + g + "/" + p.resource
	if p.namespaced {
		s += " (own namespace)"
	}
	return s
}

// readmePermissions parses the permissions table of README.md ("| resource |
// verbs |"): a backquoted API group applies to the resources after it, a
// parenthesis is a remark, "(election namespace)" makes the row namespaced.
func readmePermissions(t *testing.T) []permission {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	start := slices.Index(lines, "| resource | verbs |")
	if start < 0 {
		t.Fatal(`README.md has no "| resource | verbs |" table`)
	}
	remark := regexp.MustCompile(`\([^)]*\)`)
	var perms []permission
	for _, l := range lines[start+2:] {
		if !strings.HasPrefix(l, "|") {
			break
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		if len(cells) != 2 {
			t.Fatalf("README permissions row %q: want two cells", l)
		}
		namespaced := strings.Contains(cells[0], "(election namespace)")
		var verbs []string
		for _, v := range strings.Split(remark.ReplaceAllString(cells[1], ""), ",") {
			verbs = append(verbs, strings.TrimSpace(v))
		}
		group := ""
		for _, tok := range strings.Fields(strings.ReplaceAll(remark.ReplaceAllString(cells[0], ""), ",", " ")) {
			if strings.HasPrefix(tok, "`") {
				group = strings.Trim(tok, "`")
				continue
			}
			for _, v := range verbs {
				perms = append(perms, permission{group: group, resource: tok, verb: v, namespaced: namespaced})
			}
		}
	}
	if len(perms) < 10 {
		t.Fatalf("README permissions table parsed into only %v", perms)
	}
	return perms
}

// rbacPermissions expands deploy/'s ClusterRole and Role into permissions,
// failing on wildcards, resourceNames and non-resource URLs.
func rbacPermissions(t *testing.T, b *built) []permission {
	t.Helper()
	var perms []permission
	add := func(kind, name string, rules []rbacv1.PolicyRule, namespaced bool) {
		for _, r := range rules {
			if len(r.NonResourceURLs) > 0 || len(r.ResourceNames) > 0 {
				t.Errorf("%s %s: rule %+v: no resourceNames or nonResourceURLs expected", kind, name, r)
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						if g == "*" || res == "*" || v == "*" || strings.Contains(res, "*") {
							t.Errorf("%s %s: wildcard in %+v", kind, name, r)
						}
						perms = append(perms, permission{group: g, resource: res, verb: v, namespaced: namespaced})
					}
				}
			}
		}
	}
	for _, u := range b.all("ClusterRole") {
		add("ClusterRole", u.GetName(), typed[rbacv1.ClusterRole](t, u).Rules, false)
	}
	for _, u := range b.all("Role") {
		add("Role", u.GetName(), typed[rbacv1.Role](t, u).Rules, true)
	}
	return perms
}

// deploy/'s RBAC grants exactly what README's table lists: nothing more,
// nothing less, no wildcard; the Lease only in the pod's namespace.
func TestRBACIsREADMETable(t *testing.T) {
	b := kustomizeDeploy(t)
	readme, rbac := readmePermissions(t), rbacPermissions(t, b)
	key := func(p permission) string { return p.String() }
	want, got := map[string]bool{}, map[string]bool{}
	for _, p := range readme {
		want[key(p)] = true
	}
	for _, p := range rbac {
		got[key(p)] = true
	}
	for k := range got {
		if !want[k] {
			t.Errorf("deploy/ grants %s, which README's permissions table does not list", k)
		}
	}
	for k := range want {
		if !got[k] {
			t.Errorf("README lists %s, which deploy/ does not grant", k)
		}
	}
	for _, p := range rbac {
		if p.resource == "secrets" && p.verb != "get" && p.verb != "list" && p.verb != "watch" {
			t.Errorf("deploy/ grants %s: no write on Secrets", p)
		}
	}

	// Bindings give the roles to the pod's ServiceAccount, in its namespace.
	dep := b.deployment(t)
	sa := dep.Spec.Template.Spec.ServiceAccountName
	b.find(t, "ServiceAccount", sa)
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		bindings := b.all(kind)
		if len(bindings) != 1 {
			t.Fatalf("%d %ss, want 1", len(bindings), kind)
		}
		rb := typed[rbacv1.RoleBinding](t, bindings[0])
		if len(rb.Subjects) != 1 || rb.Subjects[0].Kind != "ServiceAccount" || rb.Subjects[0].Name != sa || rb.Subjects[0].Namespace != dep.Namespace {
			t.Errorf("%s %s: subjects %+v, want ServiceAccount %s/%s", kind, rb.Name, rb.Subjects, dep.Namespace, sa)
		}
	}
}

// The pod as the issue describes it; what can only be proved by running it
// is in TestCluster/pod.
func TestPodSpec(t *testing.T) {
	b := kustomizeDeploy(t)
	dep := b.deployment(t)
	spec := &dep.Spec.Template.Spec
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", dep.Spec.Replicas)
	}
	if len(spec.InitContainers) != 1 || len(spec.Containers) != 1 {
		t.Fatalf("want one (sidecar) init container and one container, got %d and %d", len(spec.InitContainers), len(spec.Containers))
	}
	sc, hc := containerNamed(t, spec, sidecarName), containerNamed(t, spec, haproxyName)
	if sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("sidecar is not a native sidecar (restartPolicy: Always)")
	}
	if sc.StartupProbe == nil || sc.StartupProbe.HTTPGet == nil || sc.StartupProbe.HTTPGet.Path != "/startupz" {
		t.Errorf("sidecar startupProbe %+v, want GET /startupz", sc.StartupProbe)
	}
	for _, c := range []*corev1.Container{sc, hc} {
		if c.Image != b.deployment(t).Spec.Template.Spec.Containers[0].Image {
			t.Errorf("%s: image %s: both containers run the one image", c.Name, c.Image)
		}
		if c.LivenessProbe == nil || c.ReadinessProbe == nil {
			t.Errorf("%s: liveness and readiness probes required", c.Name)
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[r]; !ok {
				t.Errorf("%s: no %s request", c.Name, r)
			}
			if _, ok := c.Resources.Limits[r]; !ok {
				t.Errorf("%s: no %s limit", c.Name, r)
			}
		}
		s := c.SecurityContext
		if s == nil || s.ReadOnlyRootFilesystem == nil || !*s.ReadOnlyRootFilesystem || s.RunAsNonRoot == nil || !*s.RunAsNonRoot ||
			s.AllowPrivilegeEscalation == nil || *s.AllowPrivilegeEscalation || s.Capabilities == nil ||
			!slices.Equal(s.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(s.Capabilities.Add) > 0 ||
			s.SeccompProfile == nil || s.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault || s.Privileged != nil && *s.Privileged {
			t.Errorf("%s: securityContext %+v: want readOnlyRootFilesystem, runAsNonRoot, no privilege escalation, drop ALL, seccomp RuntimeDefault", c.Name, s)
		}
		for _, p := range c.Ports {
			if p.ContainerPort <= 1024 {
				t.Errorf("%s: port %d: the image's user cannot bind ports up to 1024", c.Name, p.ContainerPort)
			}
		}
	}
	// The official image's user haproxy is uid 99; runAsNonRoot can verify
	// only a numeric user.
	if ps := spec.SecurityContext; ps == nil || ps.RunAsUser == nil || *ps.RunAsUser != 99 || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot {
		t.Errorf("pod securityContext %+v: want runAsNonRoot with runAsUser 99 (the image's haproxy user)", ps)
	}

	// The sidecar: Kubernetes mode, HAProxy in the other container.
	args := strings.Join(append(slices.Clone(sc.Command), sc.Args...), " ")
	for _, bad := range []string{"--manifests", "--kubeconfig", "--haproxy-start", "--init"} {
		if strings.Contains(args, bad) {
			t.Errorf("sidecar runs with %s: want Kubernetes mode with in-cluster config and HAProxy in its own container", bad)
		}
	}
	for _, want := range []string{"--controller-name=" + render.DefaultControllerName, "--publish-service=", "--configmap=", "--stats-bind="} {
		if !strings.Contains(args, want) {
			t.Errorf("sidecar args %q lack %s", args, want)
		}
	}
	if hc.Command[0] != "haproxy" || !slices.Contains(hc.Command, "-W") || !slices.Contains(hc.Command, "-S") || slices.Contains(hc.Command, "-D") {
		t.Errorf("haproxy command %q: want haproxy -W -S <socket> -f <config>, in the foreground", hc.Command)
	}

	// Draining: the preStop soft-stops HAProxy after a delay, and the pod
	// waits for the delay plus --grace-period (hard-stop-after).
	grace := 30 * time.Second
	if m := regexp.MustCompile(`--grace-period=(\S+)`).FindStringSubmatch(args); m != nil {
		g, err := time.ParseDuration(m[1])
		if err != nil {
			t.Fatal(err)
		}
		grace = g
	}
	if hc.Lifecycle == nil || hc.Lifecycle.PreStop == nil || hc.Lifecycle.PreStop.Exec == nil {
		t.Fatalf("haproxy has no preStop exec hook")
	}
	hook := strings.Join(hc.Lifecycle.PreStop.Exec.Command, " ")
	m := regexp.MustCompile(`sleep (\d+); kill -USR1 1`).FindStringSubmatch(hook)
	if m == nil {
		t.Fatalf("preStop %q: want \"sleep N; kill -USR1 1\" (a delay, then HAProxy's soft stop)", hook)
	}
	delay, _ := strconv.Atoi(m[1])
	if tg := spec.TerminationGracePeriodSeconds; tg == nil || time.Duration(*tg)*time.Second < time.Duration(delay)*time.Second+grace+5*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v < preStop delay %ds + --grace-period %s + 5s", tg, delay, grace)
	}

	// The IngressClass is ours; the Service is the one --publish-service
	// names, a LoadBalancer whose ports reach the HAProxy container's.
	ic := typed[networkingv1.IngressClass](t, b.all("IngressClass")[0])
	if ic.Spec.Controller != render.DefaultControllerName {
		t.Errorf("IngressClass %s: controller %q, want %q", ic.Name, ic.Spec.Controller, render.DefaultControllerName)
	}
	svc := b.service(t)
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		t.Errorf("Service %s: type %s, want LoadBalancer", svc.Name, svc.Spec.Type)
	}
	if len(b.all("PodDisruptionBudget")) != 1 {
		t.Errorf("want one PodDisruptionBudget")
	}
}
