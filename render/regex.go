package render

import (
	"cmp"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
)

// Regular-expression paths (use-regex), as ingress-nginx matches them
// (docs/user-guide/ingress-path-matching.md): a path is a case-insensitive
// expression anchored at the start of the path only ("^" + path, NGINX's
// `location ~*`), every path of the host follows once one Ingress of the
// host asks, and the first match wins in order of descending path length.
//
// HAProxy matches them with PCRE2, which backtracks: an expression is
// given to it only after Go's RE2 parser accepted it (no backreferences,
// lookaround or possessive quantifiers) and its cost is bounded
// (checkRegexCost). It reaches HAProxy printed again from the parsed tree
// (printRegex) with every character that is not a letter or digit
// escaped, so no text of the Ingress is ever interpreted by HAProxy's
// config or map file parsers.

// MaxRegexLength bounds a regular-expression path.
const MaxRegexLength = 1024

const (
	// maxRegexInst bounds the compiled program (RE2's instructions): a
	// repetition count multiplies it ("a{1000}" is 1000 instructions).
	maxRegexInst = 1000
	// maxRegexBranching bounds the product of the choices PCRE may try
	// again at one position: alternations' branches, optional parts and
	// bounded repetitions' ranges.
	maxRegexBranching = 256
)

// regexPath is a path of an Ingress with use-regex, translated.
type regexPath struct {
	// pattern is the PCRE expression HAProxy matches against the path,
	// with no anchor (the caller adds "^").
	pattern  string
	captures int
}

// translateRegex validates a regular-expression path and prints it for
// PCRE2.
func translateRegex(path string) (regexPath, error) {
	if len(path) > MaxRegexLength {
		return regexPath{}, fmt.Errorf("a regular expression must be at most %d characters, got %d", MaxRegexLength, len(path))
	}
	if path == "" || path[0] != '/' {
		return regexPath{}, fmt.Errorf("%s: must start with '/'", truncate(path))
	}
	for i := 0; i < len(path); i++ {
		if c := path[i]; c <= ' ' || c >= 0x7f {
			return regexPath{}, fmt.Errorf("%s: byte 0x%02x at offset %d is not allowed (printable ASCII only; percent-encode the rest)", truncate(path), c, i)
		}
	}
	// ingress-nginx's locations are case-insensitive (~*).
	re, err := syntax.Parse(path, syntax.Perl|syntax.FoldCase)
	if err != nil {
		if se, ok := err.(*syntax.Error); ok {
			return regexPath{}, fmt.Errorf("%s: not a regular expression RE2 accepts: %s", truncate(path), se.Code)
		}
		return regexPath{}, fmt.Errorf("%s: not a regular expression RE2 accepts", truncate(path))
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil || len(prog.Inst) > maxRegexInst {
		return regexPath{}, fmt.Errorf("%s: too large once compiled (at most %d instructions)", truncate(path), maxRegexInst)
	}
	if err := checkRegexCost(re); err != nil {
		return regexPath{}, fmt.Errorf("%s: %v", truncate(path), err)
	}
	var b strings.Builder
	if err := printRegex(&b, re); err != nil {
		return regexPath{}, fmt.Errorf("%s: %v", truncate(path), err)
	}
	return regexPath{pattern: b.String(), captures: re.MaxCap()}, nil
}

// checkRegexCost refuses the shapes that make a backtracking matcher
// take more than linear time in the path's length (measured through
// HAProxy 2.6 on 4 to 8 kB paths: "(.*)(.*)x" 14 to 28 ms a request,
// "([0-9]+)(.*)x" 80 ms, one ".*" or "[^/]+/(.*)" under 1 ms; PCRE2's
// match limit is what ends them; TestHostileRegex):
//   - a repetition of anything that can itself match in more than one
//     way ("(a+)+", "(a|ab)*", "(a?){9}");
//   - more than one unbounded repetition that PCRE cannot make
//     possessive, that is one not followed by a character it cannot
//     match ("[^/]+/" is possessive, ".*x" is not);
//   - more than maxRegexBranching combinations of choices.
func checkRegexCost(re *syntax.Regexp) error {
	c := costWalk{branching: 1, possessive: map[*syntax.Regexp]bool{}}
	// The repetition that ends the expression never gives characters
	// back: nothing after it can fail (a path matches from its start and
	// may go on after the match).
	if rep := lastRep(re); rep != nil {
		c.possessive[rep] = true
	}
	if err := c.walk(re); err != nil {
		return err
	}
	if c.unbounded > 1 {
		return fmt.Errorf("more than one repetition (*, + or {n,}) that can match the same characters as what follows it: matching could take quadratic time")
	}
	if c.branching > maxRegexBranching {
		return fmt.Errorf("more than %d combinations of alternatives and optional parts", maxRegexBranching)
	}
	return nil
}

type costWalk struct {
	unbounded int
	branching int
	// possessive are the unbounded repetitions followed by a character
	// they cannot match.
	possessive map[*syntax.Regexp]bool
}

func (c *costWalk) mul(n int) {
	c.branching = min(c.branching*max(n, 1), maxRegexBranching+1)
}

func (c *costWalk) walk(re *syntax.Regexp) error {
	switch re.Op {
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		sub := re.Sub[0]
		once := re.Op == syntax.OpQuest || re.Op == syntax.OpRepeat && re.Max == 1
		if !once && variable(sub) {
			return fmt.Errorf("a repetition of an expression that can match in more than one way (nested quantifiers): matching could take exponential time")
		}
		switch {
		case unboundedRep(re) != nil:
			if !c.possessive[re] {
				c.unbounded++
			}
		case re.Op == syntax.OpQuest:
			c.mul(2)
		default:
			c.mul(re.Max - re.Min + 1)
		}
		return c.walk(sub)
	case syntax.OpAlternate:
		c.mul(len(re.Sub))
	case syntax.OpConcat:
		for i, s := range re.Sub {
			if rep := tailRep(s); rep != nil && i+1 < len(re.Sub) && disjoint(rep.Sub[0], re.Sub[i+1]) {
				c.possessive[rep] = true
			}
		}
	}
	for _, s := range re.Sub {
		if err := c.walk(s); err != nil {
			return err
		}
	}
	return nil
}

// lastRep is the unbounded repetition re ends with, looking into groups
// and concatenations, or nil.
func lastRep(re *syntax.Regexp) *syntax.Regexp {
	switch re.Op {
	case syntax.OpCapture:
		return lastRep(re.Sub[0])
	case syntax.OpConcat:
		return lastRep(re.Sub[len(re.Sub)-1])
	}
	return unboundedRep(re)
}

// unboundedRep returns re when it is an unbounded repetition.
func unboundedRep(re *syntax.Regexp) *syntax.Regexp {
	if re.Op == syntax.OpStar || re.Op == syntax.OpPlus || re.Op == syntax.OpRepeat && re.Max < 0 {
		return re
	}
	return nil
}

// tailRep is the unbounded repetition of one character that re ends
// with (looking into groups and concatenations), or nil.
func tailRep(re *syntax.Regexp) *syntax.Regexp {
	switch re.Op {
	case syntax.OpCapture:
		return tailRep(re.Sub[0])
	case syntax.OpConcat:
		return tailRep(re.Sub[len(re.Sub)-1])
	}
	if r := unboundedRep(re); r != nil && singleChar(r.Sub[0]) {
		return r
	}
	return nil
}

// singleChar reports whether re matches exactly one character.
func singleChar(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return true
	case syntax.OpLiteral:
		return len(re.Rune) == 1
	case syntax.OpCapture:
		return singleChar(re.Sub[0])
	}
	return false
}

// variable reports whether re can match in more than one way.
func variable(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpAlternate:
		return true
	case syntax.OpRepeat:
		return re.Min != re.Max || variable(re.Sub[0])
	}
	for _, s := range re.Sub {
		if variable(s) {
			return true
		}
	}
	return false
}

// charSet is the set of bytes re can match as its first character; ok is
// false when that is not known or re may match nothing.
func charSet(re *syntax.Regexp) (set [256]bool, ok bool) {
	switch re.Op {
	case syntax.OpLiteral:
		if len(re.Rune) == 0 {
			return set, false
		}
		addRune(&set, re.Rune[0], re.Flags&syntax.FoldCase != 0)
		return set, true
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1] && r < 256; r++ {
				set[r] = true
			}
		}
		return set, true
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		for i := range set {
			set[i] = true
		}
		return set, true
	case syntax.OpEndText:
		// The end of the path: no character a repetition gives back is
		// there.
		return set, true
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			b, ok := charSet(sub)
			if !ok {
				return set, false
			}
			for i := range set {
				set[i] = set[i] || b[i]
			}
		}
		return set, true
	case syntax.OpCapture, syntax.OpPlus:
		return charSet(re.Sub[0])
	case syntax.OpConcat:
		return charSet(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min > 0 {
			return charSet(re.Sub[0])
		}
	}
	return set, false
}

func addRune(set *[256]bool, r rune, fold bool) {
	if r < 256 {
		set[r] = true
	}
	if fold {
		if r >= 'a' && r <= 'z' {
			set[r-'a'+'A'] = true
		} else if r >= 'A' && r <= 'Z' {
			set[r-'A'+'a'] = true
		}
	}
}

// disjoint reports whether the character rep repeats can never be the
// first character of next: PCRE then makes the repetition possessive
// (it never gives characters back), so it costs no backtracking.
func disjoint(rep, next *syntax.Regexp) bool {
	a, ok := charSet(rep)
	if !ok {
		return false
	}
	b, ok := charSet(next)
	if !ok {
		return false
	}
	for i := range a {
		if a[i] && b[i] {
			return false
		}
	}
	return true
}

// printRegex writes re as a PCRE2 expression with the same matches and
// the same numbered groups, using only letters, digits, escapes and
// operators: no space, quote, '#', '%' or '$' that a config or map file
// line could read.
func printRegex(b *strings.Builder, re *syntax.Regexp) error {
	switch re.Op {
	case syntax.OpNoMatch:
		b.WriteString("(?!)")
	case syntax.OpEmptyMatch:
		b.WriteString("(?:)")
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if r >= 0x80 {
				return fmt.Errorf("non-ASCII characters are not supported")
			}
			if re.Flags&syntax.FoldCase != 0 && isLetter(r) {
				lo, up := r|0x20, r&^0x20
				fmt.Fprintf(b, "[%c%c]", up, lo)
				continue
			}
			printChar(b, r)
		}
	case syntax.OpCharClass:
		b.WriteByte('[')
		n := 0
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], min(re.Rune[i+1], 0xff)
			if lo > 0xff {
				continue // HAProxy matches bytes: case folds beyond ASCII
			}
			printChar(b, lo)
			if hi > lo {
				b.WriteByte('-')
				printChar(b, hi)
			}
			n++
		}
		if n == 0 {
			// A class of only characters beyond a byte: nothing matches.
			return printRegex(b, &syntax.Regexp{Op: syntax.OpNoMatch})
		}
		b.WriteByte(']')
	case syntax.OpAnyCharNotNL:
		b.WriteString(`[^\x0a]`)
	case syntax.OpAnyChar:
		b.WriteString(`[\x00-\xff]`)
	case syntax.OpBeginLine, syntax.OpBeginText, syntax.OpEndLine:
		return fmt.Errorf("'^' and multi-line '$' are not supported: a path is matched from its start, and has one line")
	case syntax.OpEndText:
		b.WriteString(`\z`)
	case syntax.OpWordBoundary:
		b.WriteString(`\b`)
	case syntax.OpNoWordBoundary:
		b.WriteString(`\B`)
	case syntax.OpCapture:
		b.WriteByte('(')
		if err := printRegex(b, re.Sub[0]); err != nil {
			return err
		}
		b.WriteByte(')')
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		b.WriteString("(?:")
		if err := printRegex(b, re.Sub[0]); err != nil {
			return err
		}
		b.WriteByte(')')
		switch re.Op {
		case syntax.OpStar:
			b.WriteByte('*')
		case syntax.OpPlus:
			b.WriteByte('+')
		case syntax.OpQuest:
			b.WriteByte('?')
		default:
			b.WriteString("{" + strconv.Itoa(re.Min))
			if re.Max != re.Min {
				b.WriteByte(',')
				if re.Max >= 0 {
					b.WriteString(strconv.Itoa(re.Max))
				}
			}
			b.WriteByte('}')
		}
		if re.Flags&syntax.NonGreedy != 0 {
			b.WriteByte('?')
		}
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if err := printRegex(b, s); err != nil {
				return err
			}
		}
	case syntax.OpAlternate:
		b.WriteString("(?:")
		for i, s := range re.Sub {
			if i > 0 {
				b.WriteByte('|')
			}
			if err := printRegex(b, s); err != nil {
				return err
			}
		}
		b.WriteByte(')')
	default:
		return fmt.Errorf("unsupported construct %v", re.Op)
	}
	return nil
}

func isLetter(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }

// printChar writes one byte: letters and digits as they are, anything
// else as \xHH.
func printChar(b *strings.Builder, r rune) {
	if isLetter(r) || r >= '0' && r <= '9' || r == '/' {
		b.WriteRune(r)
		return
	}
	fmt.Fprintf(b, `\x%02x`, r)
}

// regexTarget checks a rewrite-target for a regular-expression route:
// "$1".."$9" name the groups of the path that matched; any other '$' is
// refused. It returns the target as HAProxy's replace-path writes it
// (\1..\9).
func regexTarget(target string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(target); i++ {
		c := target[i]
		if c == '\\' {
			return "", fmt.Errorf("%s: '\\' is not allowed", truncate(target))
		}
		if c != '$' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(target) || target[i+1] < '0' || target[i+1] > '9' {
			return "", fmt.Errorf("%s: '$' must be followed by a group number ($1 to $9)", truncate(target))
		}
		n := int(target[i+1] - '0')
		if i+2 < len(target) && target[i+2] >= '0' && target[i+2] <= '9' {
			return "", fmt.Errorf("%s: groups are $1 to $9", truncate(target))
		}
		b.WriteString(`\` + strconv.Itoa(n))
		i++
	}
	return b.String(), nil
}

// RegexHost is a host (exact, wildcard, or "" for rules without host)
// whose paths are matched as regular expressions, in HAProxy's order.
type RegexHost struct {
	Host     string
	HostKind HostKind
	// Owner is the namespace of the oldest Ingress with a path on the
	// host. When one of its Ingresses asks for regular expressions,
	// First holds every path of that namespace on the host (ingress-nginx:
	// all of the host's paths follow), matched before the host's Exact
	// and Prefix paths of other namespaces.
	Owner string
	First []RegexRoute
	// After are other namespaces' regular-expression paths, matched only
	// when nothing else of the host did: a younger tenant's expression
	// never takes a request an older one's path serves.
	After []RegexRoute
}

// RegexRoute is a route matched by a regular expression.
type RegexRoute struct {
	Route *Route
	// Pattern is the PCRE expression matched against the path, from its
	// start (HAProxy and explain add "^").
	Pattern string
}

// regexRouting finds the hosts with regular-expression paths among
// routes (sorted by routeOrder). hosts, when not nil, are the route
// order prefixes of those hosts (hostOrderPrefix), so that only their
// routes are read.
func regexRouting(routes []*Route, hosts []string) []RegexHost {
	var out []RegexHost
	if hosts == nil {
		for i := 0; i < len(routes); {
			j := i + 1
			p := hostOrderPrefix(routes[i].order)
			for j < len(routes) && strings.HasPrefix(routes[j].order, p) {
				j++
			}
			if h, ok := regexHost(routes[i:j]); ok {
				out = append(out, h)
			}
			i = j
		}
		return out
	}
	for _, p := range hosts {
		i, _ := slices.BinarySearchFunc(routes, p, func(r *Route, p string) int { return strings.Compare(r.order, p) })
		j := i
		for j < len(routes) && strings.HasPrefix(routes[j].order, p) {
			j++
		}
		if h, ok := regexHost(routes[i:j]); ok {
			out = append(out, h)
		}
	}
	return out
}

// hostOrderPrefix is the part of a route order naming its host.
func hostOrderPrefix(order string) string {
	// The first byte is the host kind (0 for exact hosts); the host ends
	// at the next 0.
	return order[:1+strings.IndexByte(order[1:], 0)+1]
}

func regexHost(routes []*Route) (RegexHost, bool) {
	owner := -1
	any := false
	for i, r := range routes {
		any = any || r.Match == MatchRegex
		if owner < 0 || olderRoute(r, routes[owner]) < 0 {
			owner = i
		}
	}
	if !any {
		return RegexHost{}, false
	}
	o := routes[owner]
	h := RegexHost{Host: o.Host, HostKind: o.HostKind, Owner: o.Origin.Namespace}
	ownerRegex := false
	for _, r := range routes {
		if r.Match == MatchRegex && r.Origin.Namespace == h.Owner {
			ownerRegex = true
		}
	}
	for _, r := range routes {
		switch {
		case ownerRegex && r.Origin.Namespace == h.Owner:
			h.First = append(h.First, RegexRoute{Route: r, Pattern: routePattern(r)})
		case r.Match == MatchRegex:
			h.After = append(h.After, RegexRoute{Route: r, Pattern: r.Regex})
		}
	}
	slices.SortStableFunc(h.First, byNginxOrder)
	slices.SortStableFunc(h.After, byNginxOrder)
	return h, true
}

// routePattern is what a route matches in regular-expression mode: its
// expression, or for an Exact or Prefix path of the host its text taken
// literally, case-insensitive and matched from the start (as
// ingress-nginx's `location ~* "^<path>"`).
func routePattern(r *Route) string {
	if r.Match == MatchRegex {
		return r.Regex
	}
	var b strings.Builder
	for _, c := range []byte(r.Path) {
		if isLetter(rune(c)) {
			fmt.Fprintf(&b, "[%c%c]", c&^0x20, c|0x20)
			continue
		}
		printChar(&b, rune(c))
	}
	return b.String()
}

// byNginxOrder is ingress-nginx's order of a host's locations: longest
// path first, equal lengths in descending text order.
func byNginxOrder(x, y RegexRoute) int {
	return cmp.Or(cmp.Compare(len(y.Route.Path), len(x.Route.Path)), strings.Compare(y.Route.Path, x.Route.Path))
}

// olderRoute orders routes by their Ingresses' age, as conflicts are
// settled (older).
func olderRoute(a, b *Route) int {
	return cmp.Or(cmp.Compare(a.created, b.created),
		cmp.Compare(a.Origin.Namespace, b.Origin.Namespace), cmp.Compare(a.Origin.Name, b.Origin.Name))
}

// matchRegex reports whether the route's expression matches path, as
// HAProxy's "^" + pattern does (explain).
func matchRegex(pattern, path string) bool {
	re, err := regexp.Compile(`^(?:` + pattern + `)`)
	return err == nil && re.MatchString(path)
}

// parseRegexPath reads a path of an Ingress with use-regex: whatever its
// pathType, it is a regular expression (ingress-nginx writes every path
// of such a host as `location ~* "^<path>"`).
func parseRegexPath(ns, host string, hk HostKind, field string, p networkingv1.HTTPIngressPath, pt networkingv1.PathType) parsedPath {
	path := p.Path
	if path == "" {
		path = "/"
	}
	rp, err := translateRegex(path)
	if err != nil {
		return parsedPath{problem: warning(field+".path", InvalidRegex, "%v; path skipped", err)}
	}
	if p.Backend.Service == nil {
		return parsedPath{problem: warning(field+".backend", UnsupportedBackend, "only service backends are supported; path skipped")}
	}
	pp := parsedPath{
		host: host, hk: hk, field: field, path: path, match: MatchRegex, pt: pt,
		key:     host + path,
		backend: parseBackend(ns, field, true, &p.Backend),
		regex:   &rp,
	}
	pp.order = routeOrder(hk, host, MatchRegex, pp.key)
	return pp
}

// regexAnnotations settles use-regex and rewrite-target's groups once
// the annotations are read: ingress-nginx's rewrite-target with groups
// turns use-regex on (NGINX's rewrite matches the location's
// expression) unless use-regex says otherwise; groups "$1" to "$9" are
// read only with use-regex; a target that fails is reported and not
// applied. (A group no path has is empty, as in NGINX and HAProxy.)
func regexAnnotations(a *parsedAnnotations, report func(key string, p *localProblem)) {
	t := a.route.RewriteTarget
	if a.useRegex == Unset && a.route.RewriteWholePath && namesGroup(t) {
		a.useRegex = True
	}
	if t == "" {
		return
	}
	key := a.keys["rewrite-target"]
	var err error
	switch {
	case a.useRegex == True:
		_, err = regexTarget(t)
	case namesGroup(t):
		err = fmt.Errorf("%s names a group ($1), which needs use-regex: true", truncate(t))
	case a.route.RewriteWholePath && strings.Contains(t, "$"):
		err = fmt.Errorf("%s: NGINX variables ($name) are not supported", truncate(t))
	}
	if err != nil {
		report(key, warning(annotationField(key), InvalidAnnotation, "value %v; annotation ignored", err))
		a.route.RewriteTarget, a.route.RewriteWholePath = "", false
	}
}

// RegexReplacement is a rewrite-target of regular-expression paths as
// HAProxy's replace-path writes it ("$1" becomes "\1"); the target was
// checked by regexAnnotations.
func RegexReplacement(target string) string {
	out, _ := regexTarget(target)
	return out
}

// namesGroup reports whether t has a '$' followed by a digit.
func namesGroup(t string) bool {
	for i := 0; i+1 < len(t); i++ {
		if t[i] == '$' && t[i+1] >= '0' && t[i+1] <= '9' {
			return true
		}
	}
	return false
}

// regexHostOf returns the regular-expression paths of host (of kind hk),
// nil when it has none.
func (m *Model) regexHostOf(hk HostKind, host string) *RegexHost {
	for i := range m.Regex {
		if h := &m.Regex[i]; h.HostKind == hk && h.Host == host {
			return h
		}
	}
	return nil
}

// explainRegex tries the First (or After) expressions of h on path as
// HAProxy's map_reg does, first match wins, and notes the lookup.
func (m *Model) explainRegex(e *Explanation, h *RegexHost, after bool, path string) *Route {
	routes := h.First
	if after {
		routes = h.After
	}
	if len(routes) == 0 {
		return nil
	}
	l := Lookup{Map: RegexMapFile, Key: h.Host + path}
	if after {
		l.Key += " (after the host's other paths)"
	}
	defer func() { e.Lookups = append(e.Lookups, l) }()
	for _, rr := range routes {
		if matchRegex(rr.Pattern, path) {
			l.Found = rr.Route.Path
			return rr.Route
		}
	}
	return nil
}
