package controller

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pmezard/go-difflib/difflib"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

// Predict is the planner `run` uses, and says why it reloads; the runtime
// commands are the ones MasterCLI sends.
func TestPredict(t *testing.T) {
	base := cluster{services: map[string][]string{"a": {"10.0.0.1"}}, routes: []string{"x.test/=a"}}
	old := base.state(t)
	moved := cluster{services: map[string][]string{"a": {"10.0.0.2"}}, routes: []string{"x.test/=a", "y.test/=a"}}.state(t)
	p := Predict(old.model, old.out, moved.model, moved.out)
	want := []string{
		// s1 served 10.0.0.1: ready already; the backend's only server,
		// so no maintenance even for 2.6 (plan.keepsIdle).
		"set server ns_a_80/s1 addr 10.0.0.2 port 8080",
		"add map maps/prefix.map y.test/ ns_a_80",
	}
	if p.Method != MethodRuntime || strings.Join(p.Commands, "\n") != strings.Join(want, "\n") {
		t.Errorf("runtime change: %s %q, want runtime %q", p.Method, p.Commands, want)
	}
	grown := cluster{services: map[string][]string{"a": {"10.0.0.1"}, "b": {"10.0.0.3"}}, routes: []string{"x.test/=a", "z.test/=b"}}.state(t)
	if p := Predict(old.model, old.out, grown.model, grown.out); p.Method != MethodReload || p.Cause != CauseBackends || p.Reason == "" {
		t.Errorf("new backend: %+v", p)
	}
	if p := Predict(old.model, old.out, old.model, old.out); p.Method != MethodNone {
		t.Errorf("same output: %+v", p)
	}
}

// What triggered a pass: objects added, updated (compared in full only
// when the pointer differs) and deleted.
func TestObjectChanges(t *testing.T) {
	svc := func(name, port string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: port, Port: 80}}}}
	}
	same, changed, gone := svc("same", "http"), svc("changed", "http"), svc("gone", "http")
	old := render.Inputs{Services: []*corev1.Service{same, changed, gone}}
	next := render.Inputs{Services: []*corev1.Service{svc("same", "http"), svc("changed", "web"), svc("new", "http")}}
	var got []string
	for _, c := range ObjectChanges(old, next) {
		got = append(got, c.String())
	}
	want := "updated Service ns/changed, deleted Service ns/gone, added Service ns/new"
	if strings.Join(got, ", ") != want {
		t.Errorf("changes: %q, want %q", strings.Join(got, ", "), want)
	}
	if len(capChanges(make([]Change, maxTrigger+10))) != maxTrigger+1 {
		t.Error("capChanges keeps more than maxTrigger changes and a summary")
	}
}

// A diff never shows key bytes: certificates are compared through their
// description (haproxycfg.DescribePEM), so two files that differ only in the
// key look the same to it and the diff says "private key changed".
func TestFileDiffHidesKeys(t *testing.T) {
	renderTLS := func(certPEM, keyPEM []byte) *haproxycfg.Output {
		t.Helper()
		cls := "haproxy"
		in := render.Inputs{
			IngressClasses: []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: cls},
				Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}},
			Secrets: []*corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "tls"}, Type: corev1.SecretTypeTLS,
				Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM}}},
			Ingresses: []*networkingv1.Ingress{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ing"},
				Spec: networkingv1.IngressSpec{IngressClassName: &cls, TLS: []networkingv1.IngressTLS{{Hosts: []string{"a.test"}, SecretName: "tls"}}}}},
		}
		tmpl, err := templates.Load("")
		if err != nil {
			t.Fatal(err)
		}
		out, err := haproxycfg.Render(render.BuildModel(in, render.Options{}), haproxycfg.Config{HTTPBind: ":80", HTTPSBind: ":443", Template: tmpl})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	cert1, key1 := testenv.SelfSigned(t, "a.test", "one")
	cert2, key2 := testenv.SelfSigned(t, "a.test", "two")
	d := FileDiff(renderTLS(cert1, key1), renderTLS(cert2, key2))
	for _, k := range [][]byte{key1, key2} {
		body := strings.Join(strings.Split(string(k), "\n")[1:3], "")
		for i := 0; i+16 <= len(body); i += 16 {
			if strings.Contains(d, body[i:i+16]) {
				t.Fatalf("diff shows key bytes:\n%s", d)
			}
		}
	}
	if !strings.Contains(d, "certs/ns_tls.pem") || !strings.Contains(d, "sha256") || !strings.Contains(d, "O=two") {
		t.Errorf("certificate diff:\n%s", d)
	}
	if shown("certs/x.pem", append(cert1, key1...)) != shown("certs/x.pem", append(cert1, key2...)) {
		t.Error("the shown form of a certificate file depends on its key")
	}
}

// BenchmarkFileDiff is the history's diff of one endpoint change at 10k
// Services: it runs for every pass, off the loop but on the same cores.
func BenchmarkFileDiff(b *testing.B) {
	t := &testing.T{}
	c := cluster{services: map[string][]string{}}
	for i := range 10000 {
		name := fmt.Sprintf("s%05d", i)
		c.services[name] = []string{fmt.Sprintf("10.0.%d.%d", i/256, i%256)}
		c.routes = append(c.routes, name+".test/="+name)
	}
	old := c.state(t)
	c.services["s05000"] = []string{"10.9.9.9"}
	next := c.state(t)
	b.ResetTimer()
	for b.Loop() {
		if d := FileDiff(old.out, next.out); !strings.Contains(d, "10.9.9.9") {
			b.Fatal(d)
		}
	}
}

// The diff of a change deep in a large file has the same hunks, at the
// same line numbers, as difflib's diff of the whole file.
func TestUnifiedDiffMatchesDifflib(t *testing.T) {
	var a []string
	for i := range 500 {
		a = append(a, fmt.Sprintf("line %d\n", i))
	}
	for _, change := range []func([]string) []string{
		func(x []string) []string { x[250] = "changed\n"; return x },
		func(x []string) []string { return append(x[:100:100], x[101:]...) },
		func(x []string) []string { return append(x[:300:300], append([]string{"new\n"}, x[300:]...)...) },
		func(x []string) []string { x[0] = "first\n"; x[499] = "last\n"; return x },
		func(x []string) []string { x[10], x[400] = "ten\n", "four hundred\n"; return x },
	} {
		b := change(slices.Clone(a))
		got := unifiedDiff([]byte(strings.Join(a, "")), []byte(strings.Join(b, "")), "a", "b")
		want, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(strings.Join(a, "")), B: difflib.SplitLines(strings.Join(b, "")), FromFile: "a", ToFile: "b", Context: diffContext})
		if got != want {
			t.Errorf("diff of the trimmed middle:\n%s\nwant difflib's:\n%s", got, want)
		}
	}
}

// The tracker names what changed between passes: a new pointer with the
// same content is no change, a gone pointer whose name comes back is an
// update, one that does not is a deletion.
func TestInputTracker(t *testing.T) {
	svc := func(name, ip string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Spec: corev1.ServiceSpec{ClusterIP: ip}}
	}
	a, b, c := svc("a", "10.0.0.1"), svc("b", "10.0.0.2"), svc("c", "10.0.0.3")
	var tr inputTracker
	got := func(svcs ...*corev1.Service) string {
		var out []string
		for _, ch := range tr.update(render.Inputs{Services: svcs}) {
			out = append(out, ch.Op+" "+ch.Name)
		}
		return strings.Join(out, ", ")
	}
	if g := got(a, b); g != "added a, added b" {
		t.Errorf("first pass: %q", g)
	}
	if g := got(b, a); g != "" {
		t.Errorf("same objects: %q", g)
	}
	if g := got(svc("a", "10.0.0.1"), b); g != "" {
		t.Errorf("a new object equal to the old one: %q", g)
	}
	if g := got(svc("a", "10.0.0.9"), c); g != "updated a, deleted b, added c" {
		t.Errorf("update, delete, add: %q", g)
	}
	// A list handed out again (a source that caches its lists) is
	// skipped, and its objects are not taken for deleted.
	svcs := []*corev1.Service{a, b}
	class := func(name string) []*networkingv1.IngressClass {
		return []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: name}}}
	}
	changes := func(in render.Inputs) string {
		var out []string
		for _, ch := range tr.update(in) {
			out = append(out, ch.Op+" "+ch.Kind+" "+ch.Name)
		}
		return strings.Join(out, ", ")
	}
	if g := changes(render.Inputs{Services: svcs, IngressClasses: class("x")}); g != "added IngressClass x, added Service a, added Service b, deleted Service a, deleted Service c" &&
		g != "added IngressClass x, updated Service a, added Service b, deleted Service c" {
		t.Errorf("new lists: %q", g)
	}
	if g := changes(render.Inputs{Services: svcs, IngressClasses: class("y"), Unchanged: render.ServicesKind}); g != "deleted IngressClass x, added IngressClass y" {
		t.Errorf("the same Service list, a new class list: %q", g)
	}
	if g := changes(render.Inputs{Services: svcs[:1], IngressClasses: class("y"), Unchanged: render.ServicesKind}); g != "deleted Service b" {
		t.Errorf("a shorter Service list: %q", g)
	}
	// The same slice changed in place, not said to be unchanged.
	svcs[0] = svc("c", "10.0.0.3")
	if g := changes(render.Inputs{Services: svcs[:1], IngressClasses: class("y")}); g != "deleted Service a, added Service c" {
		t.Errorf("a list changed in place: %q", g)
	}

	// Ingresses told as a delta from the list taken in last: only the
	// delta is read. A delta from another list is ignored and the list
	// walked.
	ing := func(name, host string) *networkingv1.Ingress {
		return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: host}}}}
	}
	i1, i2, i3 := ing("i1", "a.test"), ing("i2", "b.test"), ing("i3", "c.test")
	base := render.Inputs{Services: svcs[:1], IngressClasses: class("y"), Unchanged: render.ServicesKind | render.IngressClassesKind}
	withIngresses := func(list []*networkingv1.Ingress, d *render.Delta[*networkingv1.Ingress]) render.Inputs {
		in := base
		in.Ingresses, in.IngressDelta = list, d
		return in
	}
	l1 := []*networkingv1.Ingress{i1, i2}
	if g := changes(withIngresses(l1, nil)); g != "added Ingress i1, added Ingress i2" {
		t.Errorf("first Ingress list: %q", g)
	}
	i2b := ing("i2", "b2.test")
	l2 := []*networkingv1.Ingress{i1, i2b, i3}
	if g := changes(withIngresses(l2, &render.Delta[*networkingv1.Ingress]{Since: l1, Added: []*networkingv1.Ingress{i2b, i3},
		Removed: []*networkingv1.Ingress{i2}})); g != "updated Ingress i2, added Ingress i3" {
		t.Errorf("a delta: %q", g)
	}
	// Only the delta is read: an object of the list it does not name
	// is not looked at (here, one the delta leaves out on purpose).
	i4 := ing("i4", "d.test")
	l3 := []*networkingv1.Ingress{i1, i2b, i3, i4}
	if g := changes(withIngresses(l3, &render.Delta[*networkingv1.Ingress]{Since: l2})); g != "" {
		t.Errorf("an empty delta from the last list: %q", g)
	}
	// The same delta from a list not taken in last: the list is walked.
	l4 := []*networkingv1.Ingress{i1, i3}
	if g := changes(withIngresses(l4, &render.Delta[*networkingv1.Ingress]{Since: l2})); g != "deleted Ingress i2" {
		t.Errorf("a delta from another list: %q", g)
	}

	// EndpointSlices (and Services) are told the same way.
	slice := func(name, addr string) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{addr}}}}
	}
	withSlices := func(list []*discoveryv1.EndpointSlice, d *render.Delta[*discoveryv1.EndpointSlice]) render.Inputs {
		in := withIngresses(l4, nil)
		in.Unchanged |= render.IngressesKind
		in.EndpointSlices, in.EndpointSliceDelta = list, d
		return in
	}
	e1, e2 := slice("e1", "10.0.0.1"), slice("e2", "10.0.0.2")
	s1 := []*discoveryv1.EndpointSlice{e1, e2}
	if g := changes(withSlices(s1, nil)); g != "added EndpointSlice e1, added EndpointSlice e2" {
		t.Errorf("first EndpointSlice list: %q", g)
	}
	e1b := slice("e1", "10.0.0.9")
	s2 := []*discoveryv1.EndpointSlice{e1b, e2}
	if g := changes(withSlices(s2, &render.Delta[*discoveryv1.EndpointSlice]{Since: s1, Added: s2[:1], Removed: s1[:1]})); g != "updated EndpointSlice e1" {
		t.Errorf("an EndpointSlice delta: %q", g)
	}
	s3 := []*discoveryv1.EndpointSlice{e1b}
	if g := changes(withSlices(s3, &render.Delta[*discoveryv1.EndpointSlice]{Since: s2, Removed: s2[1:]})); g != "deleted EndpointSlice e2" {
		t.Errorf("an EndpointSlice removed by a delta: %q", g)
	}
	// Only the delta is read: an EndpointSlice of the list it leaves out
	// on purpose is not looked at; nor were the Ingresses, unchanged
	// meanwhile (nothing of them is gone).
	s4 := []*discoveryv1.EndpointSlice{e1b, slice("e3", "10.0.0.3")}
	if g := changes(withSlices(s4, &render.Delta[*discoveryv1.EndpointSlice]{Since: s3})); g != "" {
		t.Errorf("an empty EndpointSlice delta from the last list: %q", g)
	}
}

// Nor password hashes: the userlists of auth-basic-secret are shown
// without them, in diffs and in dumps of haproxy.cfg.
func TestDiffAndDumpHidePasswordHashes(t *testing.T) {
	const hash1 = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1"
	const hash2 = "$6$othersalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1"
	renderAuth := func(hash string) *haproxycfg.Output {
		t.Helper()
		cls, pt := "haproxy", networkingv1.PathTypePrefix
		in := render.Inputs{
			IngressClasses: []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: cls},
				Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}},
			Services: []*corev1.Service{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"},
				Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}},
			Secrets: []*corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "users"},
				Data: map[string][]byte{"auth": []byte("alice:" + hash + "\n")}}},
			Ingresses: []*networkingv1.Ingress{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ing",
				Annotations: map[string]string{render.AnnotationPrefix + "auth-basic-secret": "users"}},
				Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: "a.test",
					IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
						Path: "/", PathType: &pt, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}}},
		}
		tmpl, err := templates.Load("")
		if err != nil {
			t.Fatal(err)
		}
		out, err := haproxycfg.Render(render.BuildModel(in, render.Options{}), haproxycfg.Config{HTTPBind: ":80", HTTPSBind: ":443", Template: tmpl})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out.Get(haproxycfg.ConfigFile)), hash) {
			t.Fatalf("fixture: haproxy.cfg lacks the hash")
		}
		return out
	}
	a, b := renderAuth(hash1), renderAuth(hash2)
	d := FileDiff(a, b)
	if strings.Contains(d, "TVLlQcbp") || !strings.Contains(d, "password hash changed (not shown)") {
		t.Errorf("diff:\n%s", d)
	}
	if d := FileDiff(nil, a); strings.Contains(d, "TVLlQcbp") || !strings.Contains(d, "user 'alice' password <hash not shown>") {
		t.Errorf("diff from nothing:\n%s", d)
	}
	dump, err := Dump(a, nil, DumpQuery{})
	if err != nil || strings.Contains(dump, "TVLlQcbp") || !strings.Contains(dump, "password <hash not shown>") {
		t.Errorf("dump (%v):\n%s", err, dump)
	}
}

// For random texts and edits (with and without a last newline, empty
// sides, repeated lines), the trimmed diff turns a into b when applied at
// its line numbers. (Where an edit could be placed in more than one spot
// it may pick another one than difflib's diff of the whole texts.)
func TestUnifiedDiffRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"a", "ab", "abc", "b", "", "x y"}
	text := func(n int) []string {
		var lines []string
		for range n {
			lines = append(lines, words[r.IntN(len(words))]+"\n")
		}
		return lines
	}
	for i := range 3000 {
		n := r.IntN(12)
		if i%10 == 0 {
			n = 100 + r.IntN(200) // past the 256-byte blocks of commonPrefix
		}
		a := text(n)
		b := slices.Clone(a)
		for range 1 + r.IntN(3) {
			switch j := r.IntN(len(b) + 1); r.IntN(3) {
			case 0:
				b = slices.Insert(b, j, words[r.IntN(len(words))]+"\n")
			case 1:
				if j < len(b) {
					b = slices.Delete(b, j, j+1)
				}
			default:
				if j < len(b) {
					b[j] = words[r.IntN(len(words))] + "\n"
				}
			}
		}
		as, bs := strings.Join(a, ""), strings.Join(b, "")
		if r.IntN(3) == 0 {
			as = strings.TrimSuffix(as, "\n")
		}
		if r.IntN(3) == 0 {
			bs = strings.TrimSuffix(bs, "\n")
		}
		got := unifiedDiff([]byte(as), []byte(bs), "a", "b")
		if applied, err := applyUnified(difflib.SplitLines(as), got); err != nil || !slices.Equal(applied, difflib.SplitLines(bs)) {
			t.Fatalf("case %d: %q -> %q: the diff\n%s\ngives %q (%v)", i, as, bs, got, applied, err)
		}
	}
}

// unifiedDiff is writeUnifiedDiff's text, without origins.
func unifiedDiff(a, b []byte, from, to string) string {
	var w strings.Builder
	writeUnifiedDiff(&w, a, b, 0, from, to, nil)
	return w.String()
}

// hunkHeader is a unified diff's "@@ -start[,len] +start[,len] @@", as
// patch(1) reads it.
var hunkHeader = regexp.MustCompile(`^@@ -(\d+)((?:,\d+)?) \+(\d+)((?:,\d+)?) @@`)

// applyUnified applies a unified diff to lines, checking every context
// and removed line against them at the hunk's line numbers.
func applyUnified(lines []string, diff string) ([]string, error) {
	var out []string
	next := 0 // index in lines of the first line not yet copied
	diffLines := strings.SplitAfter(diff, "\n")
	for i := 0; i < len(diffLines); i++ {
		d := diffLines[i]
		m := hunkHeader.FindStringSubmatch(d)
		if m == nil {
			continue
		}
		start, _ := strconv.Atoi(m[1])
		if m[2] != ",0" {
			start-- // 1-based, except for an empty range
		}
		if start < next || start > len(lines) {
			return out, fmt.Errorf("hunk %q out of order", d)
		}
		out = append(out, lines[next:start]...)
		next = start
		for i+1 < len(diffLines) && diffLines[i+1] != "" && !strings.HasPrefix(diffLines[i+1], "@@") {
			i++
			body := diffLines[i][1:]
			switch diffLines[i][0] {
			case ' ', '-':
				if next >= len(lines) || lines[next] != body {
					return out, fmt.Errorf("line %d is %q, the diff says %q", next+1, lines[min(next, len(lines)-1)], body)
				}
				if diffLines[i][0] == ' ' {
					out = append(out, body)
				}
				next++
			case '+':
				out = append(out, body)
			}
		}
	}
	return append(out, lines[next:]...), nil
}

// FileDiff reads haproxy.cfg and the route maps only where their pieces
// differ (haproxycfg.ChangedSpan): its diff of random changes is the one
// of the whole files, line numbers and origins included.
func TestFileDiffReadsSpans(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 8))
	c := cluster{services: map[string][]string{}}
	name := func(i int) string { return fmt.Sprintf("s%02d", i) }
	for i := range 40 {
		c.services[name(i)] = []string{fmt.Sprintf("10.0.0.%d", i+1)}
		c.routes = append(c.routes, name(i)+".test/="+name(i))
	}
	old := c.state(t)
	c.prev = old.model
	for step := range 80 {
		for range 1 + r.IntN(3) {
			i := r.IntN(60)
			switch r.IntN(4) {
			case 0: // an endpoint moves, or the Service comes
				c.services[name(i)] = []string{fmt.Sprintf("10.0.%d.%d", 1+r.IntN(9), i+1)}
			case 1: // a path to it
				c.routes = append(slices.Clone(c.routes), fmt.Sprintf("%s.test/p%d=%s", name(i), step, name(i)))
			case 2: // a route goes
				if len(c.routes) > 1 {
					k := r.IntN(len(c.routes))
					c.routes = slices.Delete(slices.Clone(c.routes), k, k+1)
				}
			default: // the Service goes
				delete(c.services, name(i))
			}
		}
		next := c.state(t)
		if got, want := FileDiff(old.out, next.out), fileDiff(old.out, next.out, false); got != want {
			t.Fatalf("step %d: the diff from spans\n%s\nwant the whole files'\n%s", step, got, want)
		}
		old, c.prev = next, next.model
	}
}
