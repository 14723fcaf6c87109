package render

import (
	"regexp"
	"strings"
	"testing"
)

// TestRegexTranslate checks that what HAProxy gets matches what the
// Ingress says: for accepted expressions, the printed PCRE (read here by
// Go, whose syntax covers what printRegex writes) and the expression as
// ingress-nginx reads it (case-insensitive, from the start of the path)
// agree on every path of a sample, and name the same groups.
func TestRegexTranslate(t *testing.T) {
	exprs := []string{
		`/foo/.*`, `/foo/bar/(.+)`, `/foo/bar/[A-Z0-9]{3}`, `/something(/|$)(.*)`, `/?(.*)`, `/orders/?(.*)`,
		`/api/v[0-9]+/(.*)`, `/(?P<name>[^/]+)/x`, `/a|/b`, `/[^a-z]`, `/k`, `/s`, `/\d+\b`, `/x{2,3}?y`, `/\.well-known/.*`,
		`/caf[eé]`, `/(?i:ABC)`, `/(?-i:Abc)`, `/[[:alpha:]]+$`, `/\Q.*\E`,
	}
	paths := []string{"/", "/foo", "/foo/", "/foo/bar", "/foo/bar/", "/foo/bar/1", "/FOO/BAR/abc", "/foo/bar/ab",
		"/something", "/something/", "/something/new", "/somethingelse", "/orders", "/orders/1", "/api/v1/x", "/API/V12/",
		"/name/x", "/a", "/b", "/c/b", "/1", "/K", "/\u212a", "/S", "/123", "/123a", "/xxy", "/xxxy", "/.well-known/acme",
		"/cafe", "/CAFE", "/abc", "/ABC", "/Abc", "/abc/d", "/.*", "/x.*", "/a\nb"}
	for _, e := range exprs {
		rp, err := translateRegex(e)
		if strings.ContainsAny(e, "é") {
			if err == nil {
				t.Errorf("%q: non-ASCII accepted", e)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", e, err)
			continue
		}
		if strings.ContainsAny(rp.pattern, " #'\"$%\n") {
			t.Errorf("%q: printed %q holds a character HAProxy could read", e, rp.pattern)
		}
		want := regexp.MustCompile(`(?i)^(?:` + e + `)`)
		got, err := regexp.Compile(`^(?:` + rp.pattern + `)`)
		if err != nil {
			t.Errorf("%q: printed %q: %v", e, rp.pattern, err)
			continue
		}
		if got.NumSubexp() != want.NumSubexp() || rp.captures != want.NumSubexp() {
			t.Errorf("%q: %d groups printed, %d counted, want %d", e, got.NumSubexp(), rp.captures, want.NumSubexp())
		}
		for _, p := range paths {
			// HAProxy matches bytes: the Kelvin sign is not a "k" there.
			if strings.ContainsRune(p, '\u212a') {
				continue
			}
			if w, g := want.FindStringSubmatch(p), got.FindStringSubmatch(p); strings.Join(w, "\x00") != strings.Join(g, "\x00") || (w == nil) != (g == nil) {
				t.Errorf("%q on %q: printed %q gives %q, want %q", e, p, rp.pattern, g, w)
			}
		}
	}
}

// TestRegexCost checks the cost bounds on their own.
func TestRegexCost(t *testing.T) {
	for expr, ok := range map[string]bool{
		`/(.*)`: true, `/[^/]+/(.*)x`: true, `/([^/]+)/([^/]+)/(.*)`: true, `/a+b+c+`: true, `/(/|$)(.*)`: true,
		`/(ab|cd)+`: false, `/(a+)+`: false, `/(a*)*`: false, `/(a?){5}`: false, `/(.*)(.*)x`: false, `/[0-9]+(.*)x`: false,
		`/.*x.*y`: false, `/(?:ab|cd|ef){2}(?:ab|cd|ef){2}(?:ab|cd|ef){2}`: false, `/(?:ab|cd){4}`: false, `/a{1000}`: false,
		`/(?:x|y)(?:ab|cd)(?:ab|cd)`: true, `/api/v[0-9]+(/|$)(.*)`: true, `/(.*)(.*)`: true, `/(.*)(.*)(.*)`: false,
		`/[a-z]+(/|$)(.*)`: true, `/[a-z]+(/|x)(.*)`: true, `/[a-z]+(/|x)(.*)y`: false,
	} {
		if _, err := translateRegex(expr); (err == nil) != ok {
			t.Errorf("%q: accepted %v, want %v (%v)", expr, err == nil, ok, err)
		}
	}
}
