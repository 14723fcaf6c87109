package render

import (
	"fmt"
	"slices"
	"strings"
)

// Header rules (the headers annotation): headers set on or removed from the
// request the endpoints get, and the response the client gets. They are
// also what ingress-nginx's configuration-snippet and server-snippet become
// when a snippet holds only header directives (snippet.go): the most common
// snippets by far, and the only part of a snippet the sidecar can apply as
// typed values instead of configuration text.

// HeaderRule is one line of the headers annotation.
type HeaderRule struct {
	// Response: the rule acts on the response to the client (every one,
	// HAProxy's own answers included); otherwise on the request the
	// endpoints get.
	Response bool
	Name     string
	// Value replaces any header of the name; "" removes them. It may hold
	// HeaderVariables, replaced per request.
	Value string
}

// MaxHeaderRules bounds the lines of a headers annotation, MaxHeaderValue
// a value's length.
const (
	MaxHeaderRules = 32
	MaxHeaderValue = 1024
)

// HeaderVariables are the NGINX variables a header value may hold. The
// first three are the path's Service (as in upstream-vhost); the others are
// the request's, and $request_uri is known only while the request is read.
var HeaderVariables = []string{"$host", "$namespace", "$remote_addr", "$req_id", "$request_uri", "$scheme", "$service_name", "$service_port"}

// requestOnlyVariables are not known when the response is written.
var requestOnlyVariables = []string{"$request_uri"}

// HeaderPart is a piece of a header value: literal text, or a variable.
type HeaderPart struct {
	Text     string
	Variable string
}

// HeaderValueParts splits a validated value into text and variables (a
// variable's whole name, as NGINX reads it; a '$' no name follows is text).
func HeaderValueParts(v string) []HeaderPart {
	var parts []HeaderPart
	text := 0
	for i := 0; i < len(v); i++ {
		if v[i] != '$' {
			continue
		}
		name := variableAt(v[i:])
		if name == "" {
			continue
		}
		if text < i {
			parts = append(parts, HeaderPart{Text: v[text:i]})
		}
		parts = append(parts, HeaderPart{Variable: name})
		i += len(name) - 1
		text = i + 1
	}
	if text < len(v) {
		parts = append(parts, HeaderPart{Text: v[text:]})
	}
	return parts
}

// variableAt returns the HeaderVariables name s starts with, "" if none.
func variableAt(s string) string {
	if w := variableWord(s); slices.Contains(HeaderVariables, w) {
		return w
	}
	return ""
}

// variableWord is the '$' that starts s and the name after it, as NGINX
// reads a variable's name: a letter or '_', then letters, digits and '_'.
func variableWord(s string) string {
	if len(s) < 2 || !(s[1] == '_' || s[1] >= 'a' && s[1] <= 'z' || s[1] >= 'A' && s[1] <= 'Z') {
		return s[:1]
	}
	end := 1
	for end < len(s) && (s[end] == '_' || s[end] >= 'a' && s[end] <= 'z' || s[end] >= 'A' && s[end] <= 'Z' || s[end] >= '0' && s[end] <= '9') {
		end++
	}
	return s[:end]
}

// forbiddenHeaderRules frame the message or route it: set by a rule, they
// would change how HAProxy or the endpoint reads it (request smuggling) or
// where it goes. Host has upstream-vhost.
var forbiddenHeaderRules = append(slices.Clone(forbiddenCopyHeaders), "proxy-authorization")

// parseHeaderRules reads the headers annotation: one rule a line,
// "request Name: value" or "response Name: value"; an empty value removes
// the header. Blank lines and lines starting with '#' are skipped.
func parseHeaderRules(v string) ([]HeaderRule, error) {
	var rules []HeaderRule
	for n, line := range strings.Split(v, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r, err := parseHeaderRule(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", n+1, err)
		}
		rules = append(rules, r)
		if len(rules) > MaxHeaderRules {
			return nil, fmt.Errorf("more than %d rules", MaxHeaderRules)
		}
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("no rule: want lines of request|response Name: value")
	}
	return rules, nil
}

func parseHeaderRule(line string) (HeaderRule, error) {
	const want = "want request|response Name: value (an empty value removes the header)"
	side, rest, _ := strings.Cut(line, " ")
	var r HeaderRule
	switch side {
	case "request":
	case "response":
		r.Response = true
	default:
		return r, fmt.Errorf("%s: %s", truncate(side), want)
	}
	name, value, ok := strings.Cut(strings.TrimSpace(rest), ":")
	if !ok {
		return r, fmt.Errorf("no ':' after the name: %s", want)
	}
	r.Name, r.Value = name, strings.TrimSpace(value)
	return r, r.check()
}

// check validates a rule: a header name HAProxy takes as one argument, a
// value of printable text with only HeaderVariables.
func (r HeaderRule) check() error {
	if r.Name == "" || len(r.Name) > 64 || strings.Trim(r.Name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != "" {
		return fmt.Errorf("header name %s: want letters, digits, '-', '_' and '.' (at most 64)", truncate(r.Name))
	}
	lower := strings.ToLower(r.Name)
	if slices.Contains(forbiddenHeaderRules, lower) || (lower == "host" && !r.Response) {
		return fmt.Errorf("header %s frames or routes the message and cannot be set by a rule (the request's Host: upstream-vhost)", r.Name)
	}
	if err := checkText(r.Value, MaxHeaderValue); err != nil {
		return fmt.Errorf("value of %s: %v", r.Name, err)
	}
	for i := 0; i < len(r.Value); i++ {
		if r.Value[i] != '$' {
			continue
		}
		word := variableWord(r.Value[i:])
		if word == "$" {
			continue // a '$' no name follows is text
		}
		if !slices.Contains(HeaderVariables, word) {
			return fmt.Errorf("value of %s: variable %s is not supported: want only %s", r.Name, truncate(word), strings.Join(HeaderVariables, ", "))
		}
		if r.Response && slices.Contains(requestOnlyVariables, word) {
			return fmt.Errorf("value of %s: %s is not known when the response is written", r.Name, word)
		}
		i += len(word) - 1
	}
	return nil
}

// String is the rule as the annotation writes it.
func (r HeaderRule) String() string {
	side := "request"
	if r.Response {
		side = "response"
	}
	if r.Value == "" {
		return side + " " + r.Name + ":"
	}
	return side + " " + r.Name + ": " + r.Value
}
