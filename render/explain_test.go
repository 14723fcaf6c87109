package render

import "testing"

func TestParseRequestURL(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Request
		err  bool
	}{
		{in: "https://Shop.Example.com:8443/a/b?x=1&y", want: Request{HTTPS: true, Host: "Shop.Example.com:8443", Path: "/a/b", Query: "x=1&y"}},
		{in: "shop.example.com", want: Request{Host: "shop.example.com", Path: "/"}},
		{in: "http://shop.example.com/a%20b/%2F", want: Request{Host: "shop.example.com", Path: "/a%20b/%2F"}},
		{in: "ftp://shop.example.com/", err: true},
		{in: "http:///path", err: true},
		{in: "http://%zz/", err: true},
	} {
		got, err := ParseRequestURL(c.in)
		if (err != nil) != c.err || (!c.err && got != c.want) {
			t.Errorf("ParseRequestURL(%q) = %+v, %v; want %+v, error %v", c.in, got, err, c.want, c.err)
		}
	}
}

// The routing tests compare Explain with HAProxy on real requests; this
// covers what they cannot: the empty model, and the redirect port setting.
func TestExplainEdges(t *testing.T) {
	m := BuildModel(Inputs{}, Options{})
	if e := m.Explain(Request{Host: "x.test", Path: "/"}); e.Answer != AnswerNotFound || e.Route != nil || e.Backend != NotFoundBackend {
		t.Errorf("empty model: %+v", e)
	}
	m.TLSHosts = []string{"*.example.com"}
	for port, want := range map[int]string{0: "https://a.example.com/p?q", 443: "https://a.example.com/p?q", 8443: "https://a.example.com:8443/p?q"} {
		m.Settings.HTTPSRedirectPort = port
		e := m.Explain(Request{Host: "A.example.com:8080", Path: "/p", Query: "q"})
		if e.Answer != AnswerRedirect || e.Location != want {
			t.Errorf("redirect port %d: %v %q, want %q", port, e.Answer, e.Location, want)
		}
	}
}
