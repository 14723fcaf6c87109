package render

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// htpasswdSecret is Secret default/htpasswd holding file under key auth.
func htpasswdSecret(file string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "htpasswd"},
		Data: map[string][]byte{"auth": []byte(file)}}
}

// manyUsers is an htpasswd file of n users sharing one hash.
func manyUsers(n int, hash string) string {
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, "user%d:%s\n", i, hash)
	}
	return sb.String()
}

// Well-formed hashes of each scheme, with the cost part to fill in.
func bcryptWith(variant, cost string) string {
	return "$2" + variant + "$" + cost + "$abcdefghijklmnopqrstuu" + strings.Repeat("A", 31)
}
func sha512With(rounds string) string { return "$6$" + rounds + "saltsalt$" + strings.Repeat("A", 86) }
func sha256With(rounds string) string { return "$5$" + rounds + "saltsalt$" + strings.Repeat("A", 43) }
func yescryptWith(params, salt string) string {
	return "$y$" + params + "$" + salt + "$" + strings.Repeat("A", 43)
}

// hashVerdict is what classifyHash makes of a hash: "ok", "costly",
// "unsupported" (the user is left out) or "malformed" (the file is
// invalid).
func hashVerdict(h string) string {
	c, p := classifyHash(h)
	switch {
	case p != nil && p.unsupported:
		return "unsupported"
	case p != nil:
		return "malformed"
	case c.tooCostly:
		return "costly"
	}
	return "ok"
}

// AcceptedHashes are hashes classifyHash lets through, at the limits: the
// HAProxy tests check that `haproxy -c` accepts each of them.
func AcceptedHashes() []string {
	return []string{
		bcryptWith("a", "04"), bcryptWith("b", "05"), bcryptWith("y", "05"),
		sha512With(""), sha512With("rounds=1000$"), sha512With("rounds=5000$"),
		sha256With(""), sha256With("rounds=1000$"), sha256With("rounds=5000$"),
		"$5$$" + strings.Repeat("A", 43),
		"$1$saltsalt$" + strings.Repeat("A", 22), "$1$$" + strings.Repeat("A", 22),
		yescryptWith("j75", "abcdefghijklmnop"), yescryptWith("j85", "hKAxoeUghYrflYy604H.X."), yescryptWith("j/T", "abcdefghijklmnop"),
		yescryptWith("j75", ""), yescryptWith("j75", "AAA"),
	}
}

func TestClassifyHashLimits(t *testing.T) {
	for _, h := range AcceptedHashes() {
		if v := hashVerdict(h); v != "ok" {
			t.Errorf("%s: %s, want ok", h, v)
		}
	}
	for _, tt := range []struct{ hash, want string }{
		// bcrypt: cost 5 is the limit; crypt(3) refuses below 4.
		{bcryptWith("y", "06"), "costly"},
		{bcryptWith("y", "16"), "costly"},
		{bcryptWith("y", "31"), "costly"},
		{bcryptWith("y", "03"), "malformed"},
		{bcryptWith("x", "05"), "unsupported"},
		{"$2y$05$short", "malformed"},
		// SHA-crypt: rounds up to 5000; crypt(3) refuses below 1000
		// and leading zeros.
		{sha512With("rounds=5001$"), "costly"},
		{sha512With("rounds=999999999$"), "costly"},
		{sha256With("rounds=5001$"), "costly"},
		{sha512With("rounds=999$"), "malformed"},
		{sha512With("rounds=01000$"), "malformed"},
		{sha512With("rounds=1000000000$"), "malformed"},
		{"$6$saltsalt$" + strings.Repeat("A", 43), "malformed"},
		{"$5$saltsalt$" + strings.Repeat("A", 86), "malformed"},
		{"$6$saltsaltsaltsalts$" + strings.Repeat("A", 86), "malformed"},
		// MD5-crypt has no cost parameter.
		{"$1$saltsalt$" + strings.Repeat("A", 21), "malformed"},
		// yescrypt: N·r up to 16384 (j85: N=2^10... r=8 is j75).
		{yescryptWith("j7T", "abcdefghijklmnop"), "costly"},
		{yescryptWith("j9T", "abcdefghijklmnop"), "costly"},
		{yescryptWith("jjj", "abcdefghijklmnop"), "costly"},
		{yescryptWith("j.T", "abcdefghijklmnop"), "malformed"},
		{yescryptWith("j75", "A"), "malformed"},
		{yescryptWith("j75", "AA"), "malformed"},
		{yescryptWith("j75", "A."), "ok"},
		{yescryptWith("jk5", "abcdefghijklmnop"), "unsupported"},
		{"$y$j75$abcdefghijklmnop$" + strings.Repeat("A", 42), "unsupported"},
		{"$y$k9T$abcdefghijklmnop$" + strings.Repeat("A", 43), "unsupported"},
		// Schemes not accepted.
		{"$apr1$saltsalt$" + strings.Repeat("A", 22), "unsupported"},
		{"abmF1QH4PEr.E", "unsupported"},
		{"$7$CU..../....t4AVX9PuT5Udk6uzqf8Pn1$" + strings.Repeat("A", 43), "unsupported"},
		{"$gy$j9T$abcdefghijklmnop$" + strings.Repeat("A", 43), "unsupported"},
		{"{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=", "unsupported"},
		{"plain", "unsupported"},
	} {
		if v := hashVerdict(tt.hash); v != tt.want {
			t.Errorf("%s: %s, want %s", tt.hash, v, tt.want)
		}
	}
}

func TestParseHTPasswdLeavesOut(t *testing.T) {
	file := "# users\nalice:" + bcryptWith("y", "05") + "\nbob:" + bcryptWith("y", "31") + "\ncarol:$apr1$saltsalt$" + strings.Repeat("A", 22) +
		"\ndave:" + sha512With("rounds=999999999$") + "\n"
	f, err := parseHTPasswd([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.users) != 1 || f.users[0].Name != "alice" {
		t.Errorf("users %v, want alice only", f.users)
	}
	if got := listUsers(f.tooCostly, false); got != "bob (line 3), dave (line 5)" {
		t.Errorf("too costly: %s", got)
	}
	if got := listUsers(f.unsupported, false); got != "carol (line 4)" {
		t.Errorf("unsupported: %s", got)
	}
	// A malformed hash still makes the whole file invalid, named by line.
	if _, err := parseHTPasswd([]byte("alice:" + bcryptWith("y", "05") + "\nbob:" + sha512With("rounds=999$") + "\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("malformed rounds: %v", err)
	}
}

func TestAuthProblemsNameUsersNotHashes(t *testing.T) {
	hash := sha512With("rounds=999999999$")
	secret := htpasswdSecret("alice:" + bcryptWith("y", "05") + "\nmallory:" + hash + "\n")
	var problems []Problem
	b := &builder{secrets: map[string]*corev1.Secret{"default/htpasswd": secret}, capture: &problems}
	r := b.reporter("Ingress", "default", "web")
	users := b.authUsers(r, "f", "default", "htpasswd", 1)
	if len(users) != 1 || users[0].Name != "alice" {
		t.Errorf("users %v", users)
	}
	if len(problems) != 1 {
		t.Fatalf("problems %v", problems)
	}
	p := problems[0]
	if p.Reason != AuthHashTooCostly || !strings.Contains(p.Message, "default/htpasswd") || !strings.Contains(p.Message, "mallory (line 2") ||
		strings.Contains(p.Message, "AAAA") || strings.Contains(p.Message, "saltsalt") {
		t.Errorf("problem %+v", p)
	}
}

func TestAuthParseBudget(t *testing.T) {
	costly := bcryptWith("y", "05") // ~2 ms each, the most an accepted hash costs
	per := int64(bcryptMicrosPerRound << 5)
	fits := int(authParseBudgetMicros / per)
	for _, tt := range []struct {
		users, backends int
		want            bool
	}{
		{fits, 1, true},
		{fits + 1, 1, false},
		{fits / 2, 2, true},
		{fits/2 + 1, 2, false},
		{1, 1, true},
	} {
		var problems []Problem
		b := &builder{secrets: map[string]*corev1.Secret{"default/htpasswd": htpasswdSecret(manyUsers(tt.users, costly))}, capture: &problems}
		users := b.authUsers(b.reporter("Ingress", "default", "web"), "f", "default", "htpasswd", tt.backends)
		if got := users != nil; got != tt.want {
			t.Errorf("%d users in %d backends: served %v, want %v (%v)", tt.users, tt.backends, got, tt.want, problems)
		}
		if !tt.want && (len(problems) != 1 || problems[0].Reason != AuthSecretTooCostly) {
			t.Errorf("%d users in %d backends: problems %v", tt.users, tt.backends, problems)
		}
	}
	md5 := "$1$saltsalt$" + strings.Repeat("A", 22)
	var problems []Problem
	b := &builder{secrets: map[string]*corev1.Secret{"default/htpasswd": htpasswdSecret(manyUsers(1000, md5))}, capture: &problems}
	if users := b.authUsers(b.reporter("Ingress", "default", "web"), "f", "default", "htpasswd", 1); len(users) != 1000 {
		t.Errorf("1000 MD5-crypt users: %d served (%v)", len(users), problems)
	}
}

// A namespace's userlists together stay within authNamespaceBudgetMicros:
// tenant's Ingresses, each within its own budget, are charged in backend
// name order, and those past the namespace's budget get no users (401,
// reported). Another namespace's users are never cut for it. Both builds
// agree, and a build that changes nothing keeps the cut backends' pointers.
func TestAuthNamespaceBudget(t *testing.T) {
	costly := bcryptWith("y", "05")
	per := int64(bcryptMicrosPerRound << 5)
	users := int(authParseBudgetMicros / per) // as many as one Ingress may have
	perIngress := int64(users) * per
	fit := int(authNamespaceBudgetMicros / perIngress)
	in := Inputs{IngressClasses: []*networkingv1.IngressClass{ourClass(true)}}
	for _, ns := range []string{"tenant", "other"} {
		sec := htpasswdSecret(manyUsers(users, costly))
		sec.Namespace = ns
		in.Secrets = append(in.Secrets, sec)
		in.Services = append(in.Services, service(ns, "web", corev1.ServicePort{Name: "http", Port: 80}))
		in.EndpointSlices = append(in.EndpointSlices, slice(ns, "web", "web-1", "http", 8080, "10.0.0.1"))
		n := 1
		if ns == "tenant" {
			n = fit + 2
		}
		for i := range n {
			ing := ingress(ns, fmt.Sprintf("app-%02d", i), i, fmt.Sprintf("%s-%d.example", ns, i), pathSpec{"Prefix", "/", "web", 80})
			annotate(AnnotationPrefix+"auth-basic-secret", "htpasswd")(ing)
			in.Ingresses = append(in.Ingresses, ing)
		}
	}
	full := BuildModel(in, Options{})
	var inc Engine
	m := inc.Build(in, Options{})
	for name, m := range map[string]*Model{"full": full, "incremental": m} {
		served := map[string]bool{}
		for _, be := range m.Backends {
			if be.Policy != nil {
				served[be.Namespace+"/"+be.Ingress] = be.Users != nil
			}
		}
		var over []string
		for _, p := range m.Problems {
			if p.Reason == AuthSecretTooCostly {
				over = append(over, p.Namespace+"/"+p.Name)
			}
		}
		want := []string{fmt.Sprintf("tenant/app-%02d", fit), fmt.Sprintf("tenant/app-%02d", fit+1)}
		if fmt.Sprint(over) != fmt.Sprint(want) {
			t.Errorf("%s: over the namespace budget: %v, want %v", name, over, want)
		}
		if !served["other/app-00"] || !served["tenant/app-00"] || served[want[0]] || served[want[1]] {
			t.Errorf("%s: users served %v", name, served)
		}
	}
	again := inc.Build(in, Options{Previous: m})
	for i := range m.Backends {
		if again.Backends[i] != m.Backends[i] {
			t.Errorf("backend %s is a new pointer after a build that changed nothing", m.Backends[i].Name)
		}
	}
}
