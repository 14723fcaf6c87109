package render

import (
	"fmt"
	"strings"
)

// ingress-nginx's configuration-snippet and server-snippet are NGINX
// configuration text, which the sidecar never applies as text. Most real
// snippets only set or hide headers, though (security headers, a header
// for the endpoints), and a few repeat a default. A snippet made only of
// the directives below is translated into the headers annotation's rules,
// typed and validated like any other annotation value; a snippet with any
// other directive is not applied at all, as before, and reported as
// unsupported naming that directive.
//
//	add_header NAME VALUE [always]        response NAME: VALUE
//	more_set_headers "NAME: VALUE"...     response NAME: VALUE ("NAME:" removes)
//	more_clear_headers NAME...            response NAME:
//	proxy_set_header NAME VALUE           request NAME: VALUE ("" removes)
//	proxy_hide_header NAME                response NAME:
//	client_max_body_size 0                nothing: no body limit is the default
//	chunked_transfer_encoding on|off      nothing: HAProxy keeps the endpoint's framing
//	proxy_ssl_verify off                  nothing: the default (backend-verify)

// maxSnippetBytes bounds the text read; maxSnippetStatements its directives.
const (
	maxSnippetBytes      = 16 << 10
	maxSnippetStatements = 64
)

// untranslatable is a snippet that cannot be applied as header rules: it
// is unsupported (raw NGINX configuration), not an invalid value.
type untranslatable struct{ why string }

func (u untranslatable) Error() string { return u.why }

func refuseSnippet(format string, args ...any) error {
	return untranslatable{fmt.Sprintf(format, args...)}
}

// snippetHeaders converts a snippet annotation's value into the headers
// annotation's lines ("" when nothing is left to apply).
func snippetHeaders(v string, _ nginxContext) (string, error) {
	rules, err := translateSnippet(v)
	if err != nil {
		return "", err
	}
	lines := make([]string, len(rules))
	for i, r := range rules {
		lines[i] = r.String()
	}
	return strings.Join(lines, "\n"), nil
}

// translateSnippet reads a snippet's directives into header rules.
func translateSnippet(v string) ([]HeaderRule, error) {
	if len(v) > maxSnippetBytes {
		return nil, refuseSnippet("longer than %d bytes", maxSnippetBytes)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 || c == 0x7f) && c != '\n' && c != '\r' && c != '\t' {
			return nil, refuseSnippet("control character %q at offset %d", rune(c), i)
		}
	}
	stmts, err := nginxStatements(v)
	if err != nil {
		return nil, err
	}
	if len(stmts) > maxSnippetStatements {
		return nil, refuseSnippet("more than %d directives", maxSnippetStatements)
	}
	var rules []HeaderRule
	rule := func(response bool, name, value string) error {
		r := HeaderRule{Response: response, Name: name, Value: value}
		if err := r.check(); err != nil {
			return refuseSnippet("%s: %v", name, err)
		}
		rules = append(rules, r)
		return nil
	}
	for _, st := range stmts {
		dir, args := st[0], st[1:]
		bad := func(want string) error {
			return refuseSnippet("directive %s: want %s", truncate(dir), want)
		}
		switch dir {
		case "add_header":
			if len(args) < 2 || len(args) > 3 || len(args) == 3 && args[2] != "always" {
				return nil, bad("add_header NAME VALUE [always]")
			}
			if args[1] == "" {
				continue // NGINX adds no header with an empty value
			}
			if err := rule(true, args[0], args[1]); err != nil {
				return nil, err
			}
		case "more_set_headers", "more_clear_headers":
			if len(args) == 0 {
				return nil, bad(dir + " with at least one header")
			}
			for _, arg := range args {
				if strings.HasPrefix(arg, "-") {
					return nil, refuseSnippet("directive %s: option %s (by status or content type) is not translated", dir, truncate(arg))
				}
				name, value, colon := strings.Cut(arg, ":")
				if dir == "more_clear_headers" {
					value = ""
				} else if !colon {
					return nil, refuseSnippet("directive more_set_headers: %s has no ':' (want \"NAME: VALUE\")", truncate(arg))
				}
				if strings.Contains(name, "*") {
					return nil, refuseSnippet("directive %s: header patterns (%s) are not translated", dir, truncate(name))
				}
				if err := rule(true, strings.TrimSpace(name), strings.TrimSpace(value)); err != nil {
					return nil, err
				}
			}
		case "proxy_set_header":
			if len(args) != 2 {
				return nil, bad("proxy_set_header NAME VALUE")
			}
			if err := rule(false, args[0], args[1]); err != nil {
				return nil, err
			}
		case "proxy_hide_header":
			if len(args) != 1 {
				return nil, bad("proxy_hide_header NAME")
			}
			if err := rule(true, args[0], ""); err != nil {
				return nil, err
			}
		case "client_max_body_size":
			if len(args) != 1 || args[0] != "0" {
				return nil, refuseSnippet("directive client_max_body_size: only 0 (no limit, the default) is translated; set proxy-body-size for a limit")
			}
		case "chunked_transfer_encoding":
			if len(args) != 1 || args[0] != "on" && args[0] != "off" {
				return nil, bad("chunked_transfer_encoding on|off")
			}
		case "proxy_ssl_verify":
			if len(args) != 1 || args[0] != "off" {
				return nil, refuseSnippet("directive proxy_ssl_verify: only off (the default) is translated; set backend-verify and backend-ca-secret to verify")
			}
		default:
			return nil, refuseSnippet("directive %s is raw NGINX configuration (only header directives are translated)", truncate(dir))
		}
	}
	return rules, nil
}

// nginxStatements splits NGINX configuration text into its statements,
// each a directive and its arguments, quotes and escapes read as NGINX
// reads them. A block ('{') is refused: none of the translated directives
// has one.
func nginxStatements(v string) ([][]string, error) {
	var stmts [][]string
	var cur []string
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(v) && v[i] != '\n' {
				i++
			}
		case c == ';':
			if len(cur) == 0 {
				return nil, refuseSnippet("an empty statement (';' at offset %d)", i)
			}
			stmts = append(stmts, cur)
			cur = nil
			i++
		case c == '{' || c == '}':
			return nil, refuseSnippet("a block ('%c' at offset %d) is raw NGINX configuration", c, i)
		case c == '"' || c == '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(v) && v[j] != c; j++ {
				if v[j] == '\\' && j+1 < len(v) {
					j++
				}
				b.WriteByte(v[j])
			}
			if j == len(v) {
				return nil, refuseSnippet("a quote opened at offset %d is not closed", i)
			}
			cur = append(cur, b.String())
			i = j + 1
		default:
			var b strings.Builder
			j := i
			for ; j < len(v) && !strings.ContainsRune(" \t\r\n;{}", rune(v[j])); j++ {
				if v[j] == '\\' && j+1 < len(v) {
					j++
				}
				b.WriteByte(v[j])
			}
			cur = append(cur, b.String())
			i = j
		}
	}
	if len(cur) > 0 {
		return nil, refuseSnippet("the last directive (%s) has no ';'", truncate(cur[0]))
	}
	return stmts, nil
}
