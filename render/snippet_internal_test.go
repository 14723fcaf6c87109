package render

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestTranslateSnippet: the snippets the corpus carries become header
// rules; anything else is refused whole, as unsupported, naming what.
func TestTranslateSnippet(t *testing.T) {
	for _, c := range []struct {
		snippet string
		want    []string // rules as the headers annotation writes them
		refused string   // part of the reason, when refused
	}{
		{snippet: "add_header X-Frame-Options \"SAMEORIGIN\" always;\nadd_header Referrer-Policy 'strict-origin' ;",
			want: []string{"response X-Frame-Options: SAMEORIGIN", "response Referrer-Policy: strict-origin"}},
		{snippet: `more_set_headers "X-Frame-Options: DENY" 'X-A:b';more_clear_headers Server X-Powered-By;`,
			want: []string{"response X-Frame-Options: DENY", "response X-A: b", "response Server:", "response X-Powered-By:"}},
		{snippet: "proxy_set_header l5d-dst-override $service_name.$namespace.svc.cluster.local:$service_port;\nproxy_set_header Origin \"\";\nproxy_hide_header l5d-remote-ip;",
			want: []string{"request l5d-dst-override: $service_name.$namespace.svc.cluster.local:$service_port", "request Origin:", "response l5d-remote-ip:"}},
		{snippet: "# only comments and defaults\nclient_max_body_size 0;\nchunked_transfer_encoding off;\nproxy_ssl_verify off;\n"},
		{snippet: `add_header X-Quoted "a \"b\" c\\d";`, want: []string{`response X-Quoted: a "b" c\d`}},
		{snippet: "add_header X-Empty \"\";", want: nil},
		{snippet: "more_set_headers \"Request-Id: $req_id\";", want: []string{"response Request-Id: $req_id"}},
		{snippet: "rewrite ^/(.*)$ /$1 break;", refused: "directive \"rewrite\" is raw NGINX configuration"},
		{snippet: "if ($host = a) { return 403; }", refused: "a block"},
		{snippet: "add_header X-A b", refused: "has no ';'"},
		{snippet: "add_header X-A \"b;", refused: "not closed"},
		{snippet: "add_header X-A b c;", refused: "want add_header NAME VALUE [always]"},
		{snippet: "add_header Content-Length 0;", refused: "frames or routes"},
		{snippet: "proxy_set_header Host $host;", refused: "upstream-vhost"},
		{snippet: "proxy_set_header X-Uri $uri;", refused: `variable "$uri" is not supported`},
		{snippet: "add_header X-Uri $request_uri;", refused: "not known when the response is written"},
		{snippet: "more_set_headers -s 404 'X-A: b';", refused: "option \"-s\""},
		{snippet: "more_clear_headers 'X-Hidden-*';", refused: "patterns"},
		{snippet: "client_max_body_size 10m;", refused: "proxy-body-size"},
		{snippet: "proxy_ssl_verify on;", refused: "backend-verify"},
		{snippet: "add_header X-A \"a\rb\";", refused: "control character"},
		{snippet: strings.Repeat("add_header X-A b;", 65), refused: "more than 64 directives"},
		{snippet: strings.Repeat("a", maxSnippetBytes+1), refused: "longer than"},
	} {
		rules, err := translateSnippet(c.snippet)
		if c.refused != "" {
			var u untranslatable
			if err == nil || !errors.As(err, &u) || !strings.Contains(err.Error(), c.refused) {
				t.Errorf("%q: %v, want refused as untranslatable with %q", c.snippet, err, c.refused)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.snippet, err)
			continue
		}
		var got []string
		for _, r := range rules {
			got = append(got, r.String())
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%q:\n got %q\nwant %q", c.snippet, got, c.want)
		}
		// What the translation writes, the headers annotation reads back.
		if len(rules) > 0 {
			back, err := parseHeaderRules(strings.Join(got, "\n"))
			if err != nil || !slices.Equal(back, rules) {
				t.Errorf("%q: read back as %v, %v", c.snippet, back, err)
			}
		}
	}
}

// TestHeaderRules: the headers annotation's own syntax and bounds.
func TestHeaderRules(t *testing.T) {
	for _, c := range []struct {
		v, err string
	}{
		{v: "request X-A: b\n\n# c\nresponse X-B:\n"},
		{v: "request X-A: US$ 5 and $ alone"},
		{v: "", err: "no rule"},
		{v: "both X-A: b", err: "want request|response"},
		{v: "request X-A b", err: "no ':'"},
		{v: "request X A: b", err: "header name"},
		{v: "request Transfer-Encoding: chunked", err: "frames or routes"},
		{v: "response Host: x", err: "frames or routes"},
		{v: "request X-A: $HOME", err: `variable "$HOME" is not supported`},
		{v: "request X-A: " + strings.Repeat("x", MaxHeaderValue+1), err: "longer than"},
		{v: strings.Repeat("request X-A: b\n", MaxHeaderRules+1), err: "more than 32 rules"},
	} {
		_, err := parseHeaderRules(c.v)
		if (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: %v, want %q", c.v, err, c.err)
		}
	}
	parts := HeaderValueParts("a$host-$service_name$ $x")
	want := []HeaderPart{{Text: "a"}, {Variable: "$host"}, {Text: "-"}, {Variable: "$service_name"}, {Text: "$ $x"}}
	if !slices.Equal(parts, want) {
		t.Errorf("parts %v, want %v", parts, want)
	}
}
