package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"
)

// toJSON turns a document (YAML or JSON) into JSON, as
// k8s.io/apimachinery's yaml.ToJSON does: JSON as it is, YAML through
// sigs.k8s.io/yaml. YAML in the block style `kubectl get -o yaml` writes
// goes through fastYAMLToJSON instead, about twenty times faster, which
// gives the same bytes; anything else it leaves to sigs.k8s.io/yaml.
// fast says which one converted it.
func toJSON(raw []byte) (js []byte, fast bool, err error) {
	if utilyaml.IsJSONBuffer(raw) {
		return raw, false, nil
	}
	if js, ok := fastYAMLToJSON(raw); ok {
		return js, true, nil
	}
	js, err = sigsyaml.YAMLToJSON(raw)
	return js, false, err
}

// fastYAMLToJSON converts the subset of YAML that Kubernetes' YAML writers
// (sigs.k8s.io/yaml, go-yaml's emitter: kubectl, helm, kustomize) produce
// into exactly the JSON sigs.k8s.io/yaml.YAMLToJSON gives for it: the
// same values (YAML 1.1 scalars as go-yaml v2 resolves them), keys sorted
// as encoding/json sorts a map's, strings escaped as encoding/json does.
// ok is false for anything outside the subset, which the caller then
// converts with sigs.k8s.io/yaml; the fuzz test FuzzFastYAML checks the
// two agree wherever ok is true.
//
// The subset: printable ASCII without tabs; block mappings and block
// sequences (`- `, also at its key's column); keys that are plain words
// or double-quoted, each once per mapping; values that are plain
// scalars on one line, single- or double-quoted scalars on one line,
// `{}`, `[]`, or literal block scalars (`|`, `|-`, `|+`) without blank
// lines of spaces; comment lines. Not in it: flow collections, folded
// scalars, multi-line plain or quoted scalars, anchors, aliases, tags,
// merge keys, directives, complex keys, trailing comments.
func fastYAMLToJSON(raw []byte) ([]byte, bool) {
	js, _, ok := fastYAMLConvert(raw)
	return js, ok
}

// itemJSON is the JSON of a YAML List's item cut by splitYAMLList: the
// one entry of the sequence its lines are, as the whole List's JSON has
// it. fast says whether fastYAMLToJSON converted it.
func itemJSON(raw []byte) (js []byte, fast bool, err error) {
	if js, entries, ok := fastYAMLConvert(raw); ok && entries == 1 {
		return js[1 : len(js)-1], true, nil
	}
	js, err = sigsyaml.YAMLToJSON(raw)
	if err != nil {
		return nil, false, err
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(js, &entries); err != nil || len(entries) != 1 {
		return nil, false, errors.New("not one sequence entry")
	}
	return entries[0], false, nil
}

// fastYAMLConvert is fastYAMLToJSON; entries is the number of entries
// when the document is a sequence, -1 when it is a mapping.
func fastYAMLConvert(raw []byte) (js []byte, entries int, ok bool) {
	// Documents end in a line break (splitDocuments adds it): a literal
	// block scalar's last line keeps its break only when it has one.
	if len(raw) == 0 || raw[len(raw)-1] != '\n' {
		return nil, 0, false
	}
	for _, c := range raw {
		if (c < 0x20 && c != '\n') || c > 0x7e {
			return nil, 0, false
		}
	}
	f := fastYAML{b: raw, out: make([]byte, 0, len(raw)+len(raw)/4)}
	if bytes.HasPrefix(raw, []byte("---")) {
		// The document start line the splitter leaves on a first document.
		e := f.lineEnd(0)
		if rest := bytes.TrimSpace(raw[3:e]); len(rest) > 0 && rest[0] != '#' {
			return nil, 0, false
		}
		f.p = e
	}
	l, ok := f.peek()
	if !ok {
		return nil, 0, false
	}
	entries = -1
	if bytes.HasPrefix(f.content(l), []byte("- ")) {
		ok = f.seq(l.ind)
		entries = f.seqLen
	} else {
		ok = f.mapping(l.ind, nil)
	}
	if !ok {
		return nil, 0, false
	}
	if _, more := f.peek(); more {
		return nil, 0, false
	}
	return f.out, entries, true
}

type fastYAML struct {
	b      []byte
	p      int // the next line to read
	out    []byte
	seqLen int // entries of the last sequence read
	// entries is a stack of the entries of the mappings being read.
	entries []mapEntry
}

// line is one line of b: its indentation, its content without trailing
// spaces [cs, ce), and where the next line starts.
type line struct {
	ind, cs, ce, next int
}

func (f *fastYAML) lineEnd(p int) int {
	if i := bytes.IndexByte(f.b[p:], '\n'); i >= 0 {
		return p + i + 1
	}
	return len(f.b)
}

func (f *fastYAML) content(l line) []byte { return f.b[l.cs:l.ce] }

// peek returns the next line that is neither blank nor a comment, without
// consuming it; ok is false at the end.
func (f *fastYAML) peek() (line, bool) {
	for p := f.p; p < len(f.b); {
		next := f.lineEnd(p)
		cs := p
		for cs < next && f.b[cs] == ' ' {
			cs++
		}
		ce := next
		for ce > cs && (f.b[ce-1] == '\n' || f.b[ce-1] == ' ') {
			ce--
		}
		if ce > cs && f.b[cs] != '#' {
			return line{ind: cs - p, cs: cs, ce: ce, next: next}, true
		}
		p = next
	}
	return line{}, false
}

// mapping reads a block mapping at column m; first, if not nil, is its
// first entry's text (after a sequence entry's "- ").
func (f *fastYAML) mapping(m int, first []byte) bool {
	base := len(f.entries) // this mapping's entries are f.entries[base:]
	defer func() { f.entries = f.entries[:base] }()
	start := len(f.out)
	f.out = append(f.out, '{')
	for {
		text := first
		if text == nil {
			l, ok := f.peek()
			if !ok || l.ind < m {
				break
			}
			if l.ind > m {
				return false
			}
			text = f.content(l)
			f.p = l.next
		}
		first = nil
		key, rest, ok := splitKey(text)
		if !ok {
			return false
		}
		if len(f.entries) > base {
			f.out = append(f.out, ',')
		}
		e := mapEntry{key: key, start: len(f.out)}
		f.out = appendJSONString(f.out, key)
		f.out = append(f.out, ':')
		if !f.value(m, rest, true) {
			return false
		}
		e.end = len(f.out)
		f.entries = append(f.entries, e)
	}
	f.out = append(f.out, '}')
	entries := f.entries[base:]
	sorted := true
	for i := 1; i < len(entries); i++ {
		switch c := bytes.Compare(entries[i-1].key, entries[i].key); {
		case c == 0:
			return false // go-yaml keeps the last, JSON decoders may merge
		case c > 0:
			sorted = false
		}
	}
	if sorted {
		return true
	}
	// encoding/json writes a map's keys sorted.
	slices.SortFunc(entries, func(a, b mapEntry) int { return bytes.Compare(a.key, b.key) })
	for i := 1; i < len(entries); i++ {
		if bytes.Equal(entries[i-1].key, entries[i].key) {
			return false
		}
	}
	old := slices.Clone(f.out[start:])
	f.out = append(f.out[:start], '{')
	for i, e := range entries {
		if i > 0 {
			f.out = append(f.out, ',')
		}
		f.out = append(f.out, old[e.start-start:e.end-start]...)
	}
	f.out = append(f.out, '}')
	return true
}

// mapEntry is one entry of a mapping being read: its key and where its
// `"key":value` is in out.
type mapEntry struct {
	key        []byte
	start, end int
}

// seq reads a block sequence whose entries' dashes are at column s.
func (f *fastYAML) seq(s int) bool {
	f.out = append(f.out, '[')
	n := 0
	for {
		l, ok := f.peek()
		if !ok || l.ind < s {
			break
		}
		c := f.content(l)
		if l.ind > s {
			return false
		}
		if !bytes.HasPrefix(c, []byte("- ")) {
			break // the next key of a mapping at the same column
		}
		rest := c[2:]
		if len(rest) == 0 || rest[0] == ' ' || bytes.HasPrefix(rest, []byte("- ")) || rest[0] == '-' && len(rest) == 1 {
			return false
		}
		f.p = l.next
		if n > 0 {
			f.out = append(f.out, ',')
		}
		n++
		if _, _, isKey := splitKey(rest); isKey {
			if !f.mapping(s+2, rest) {
				return false
			}
			continue
		}
		if !f.value(s, rest, false) {
			return false
		}
	}
	f.out = append(f.out, ']')
	f.seqLen = n
	return true
}

// value reads the value of a mapping key at column n (inMapping) or of a
// sequence entry whose dash is at column n; rest is what follows the
// key's colon or the dash on its line.
func (f *fastYAML) value(n int, rest []byte, inMapping bool) bool {
	if len(rest) == 0 {
		l, ok := f.peek()
		switch {
		case ok && l.ind > n && bytes.HasPrefix(f.content(l), []byte("- ")):
			return f.seq(l.ind)
		case ok && l.ind > n:
			return f.mapping(l.ind, nil)
		case ok && l.ind == n && inMapping && bytes.HasPrefix(f.content(l), []byte("- ")):
			return f.seq(n)
		}
		f.out = append(f.out, "null"...)
		return true
	}
	switch {
	case rest[0] == '|':
		return f.literal(n, rest)
	case string(rest) == "{}" || string(rest) == "[]":
		f.out = append(f.out, rest...)
	case rest[0] == '"':
		s, ok := doubleQuoted(rest)
		if !ok {
			return false
		}
		f.out = appendJSONString(f.out, s)
	case rest[0] == '\'':
		s, ok := singleQuoted(rest)
		if !ok {
			return false
		}
		f.out = appendJSONString(f.out, s)
	default:
		var ok bool
		if f.out, ok = appendPlain(f.out, rest); !ok {
			return false
		}
	}
	// A more indented line would continue a multi-line scalar (or be an
	// error): not in the subset.
	if l, ok := f.peek(); ok && l.ind > n {
		return false
	}
	return true
}

// literal reads a literal block scalar whose header (`|`, `|-`, `|+`) is
// on a line of the node at column n.
func (f *fastYAML) literal(n int, header []byte) bool {
	var chomp byte
	switch string(header) {
	case "|":
	case "|-", "|+":
		chomp = header[1]
	default:
		return false
	}
	var s []byte
	indent := -1
	pendingBreaks := 0 // empty lines after the last content line
	p := f.p
	for p < len(f.b) {
		next := f.lineEnd(p)
		text := bytes.TrimSuffix(f.b[p:next], []byte("\n"))
		if len(text) == 0 {
			pendingBreaks++
			p = next
			continue
		}
		ind := 0
		for ind < len(text) && text[ind] == ' ' {
			ind++
		}
		if ind == len(text) {
			return false // a blank line of spaces: go-yaml's rules differ by place
		}
		if indent < 0 {
			if ind <= n {
				break
			}
			indent = ind
		}
		if ind < indent {
			break
		}
		for range pendingBreaks {
			s = append(s, '\n')
		}
		pendingBreaks = 0
		s = append(s, text[indent:]...)
		s = append(s, '\n')
		p = next
	}
	if indent < 0 {
		if pendingBreaks > 0 {
			return false
		}
		s = nil
	}
	switch chomp {
	case '-':
		s = bytes.TrimSuffix(s, []byte("\n"))
	case '+':
		for range pendingBreaks {
			s = append(s, '\n')
		}
	}
	f.p = p
	f.out = appendJSONString(f.out, string(s))
	return true
}

// splitKey splits a mapping entry's text `key: rest` or `key:`; ok is
// false when text is not one, or its key is not a plain word or a
// double-quoted string that go-yaml reads as a string.
func splitKey(text []byte) (key, rest []byte, ok bool) {
	var k []byte
	if text[0] == '"' {
		end := quotedEnd(text)
		if end < 0 {
			return nil, nil, false
		}
		s, ok := doubleQuoted(text[:end])
		if !ok {
			return nil, nil, false
		}
		key, text = []byte(s), text[end:]
		if len(text) == 0 || text[0] != ':' || len(text) > 1 && text[1] != ' ' {
			return nil, nil, false
		}
		return key, bytes.TrimLeft(text[1:], " "), true
	}
	i := bytes.Index(text, []byte(": "))
	if i < 0 {
		if text[len(text)-1] != ':' {
			return nil, nil, false
		}
		i = len(text) - 1
	}
	k = text[:i]
	if len(k) == 0 || !plainWordStart(k[0]) || k[len(k)-1] == ' ' || bytes.Contains(k, []byte(" #")) || bytes.IndexByte(k, ':') >= 0 {
		return nil, nil, false
	}
	if _, special := yamlWords[string(k)]; special {
		return nil, nil, false
	}
	return k, bytes.TrimLeft(text[i+1:], " "), true
}

// plainWordStart: a plain scalar starting with this byte is a string
// for go-yaml v2 unless it is one of yamlWords (its resolve table).
func plainWordStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// yamlWords are go-yaml v2's plain scalars starting with a letter that
// are not strings, as JSON (sigs.k8s.io/yaml's conversion).
var yamlWords = map[string]string{
	"y": "true", "Y": "true", "yes": "true", "Yes": "true", "YES": "true",
	"true": "true", "True": "true", "TRUE": "true",
	"on": "true", "On": "true", "ON": "true",
	"n": "false", "N": "false", "no": "false", "No": "false", "NO": "false",
	"false": "false", "False": "false", "FALSE": "false",
	"off": "false", "Off": "false", "OFF": "false",
	"null": "null", "Null": "null", "NULL": "null",
}

// appendPlain appends the JSON of a one-line plain scalar value.
func appendPlain(out, v []byte) ([]byte, bool) {
	if bytes.Contains(v, []byte(" #")) || bytes.Contains(v, []byte(": ")) || v[len(v)-1] == ':' {
		return out, false
	}
	c := v[0]
	switch {
	case plainWordStart(c):
		if js, special := yamlWords[string(v)]; special {
			return append(out, js...), true
		}
		return appendJSONString(out, v), true
	case isCanonicalInt(v):
		return append(out, v...), true
	case c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == '/' || c == '_' || c == '$' || c == '(' || c == '=' || c == '~' || c == '^' || c == '\\' || c == ';' || c == ')' || c == '<':
		// Numbers, timestamps, addresses, paths...: go-yaml decides.
		js, ok := resolvePlain(v)
		return append(out, js...), ok
	}
	// Indicators (- ? : , [ ] { } # & * ! | > ' " % @ `) and the rest.
	return out, false
}

// isCanonicalInt: an int go-yaml reads in base 10 and that JSON writes
// back the same (no sign, leading zero or underscore; fits in an int64).
func isCanonicalInt(v []byte) bool {
	d := v
	if len(d) > 0 && d[0] == '-' {
		d = d[1:]
		if len(d) == 1 && d[0] == '0' {
			return false
		}
	}
	if len(d) == 0 || len(d) > 18 || d[0] == '0' && len(d) > 1 {
		return false
	}
	for _, c := range d {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// resolved caches resolvePlain's answers: endpoint addresses and the like
// repeat through a file. Bounded; past the bound, answers are not kept.
var (
	resolved     sync.Map // string → []byte (nil: not a scalar the subset takes)
	resolvedSize atomic.Int64
)

const resolvedMax = 1 << 14

// resolvePlain asks sigs.k8s.io/yaml what a plain scalar is, as a
// mapping's value (go-yaml's resolve and sigs.k8s.io/yaml's conversion
// do not depend on where the scalar is, but alone `---` would be a
// document marker).
func resolvePlain(v []byte) ([]byte, bool) {
	if js, ok := resolved.Load(string(v)); ok {
		return js.([]byte), js.([]byte) != nil
	}
	js, err := sigsyaml.YAMLToJSON([]byte("v: " + string(v) + "\n"))
	if err != nil || !bytes.HasPrefix(js, []byte(`{"v":`)) || !bytes.HasSuffix(js, []byte("}")) {
		js = nil
	} else if js = js[len(`{"v":`) : len(js)-1]; len(js) == 0 || js[0] == '{' || js[0] == '[' {
		js = nil
	}
	if resolvedSize.Load() < resolvedMax {
		if _, loaded := resolved.LoadOrStore(string(v), js); !loaded {
			resolvedSize.Add(1)
		}
	}
	return js, js != nil
}

// quotedEnd is the index after the closing quote of the double-quoted
// scalar text starts with, or -1.
func quotedEnd(text []byte) int {
	for i := 1; i < len(text); i++ {
		switch text[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// doubleQuoted is the string of a double-quoted scalar that is all of v
// (spaces after it allowed).
func doubleQuoted(v []byte) (string, bool) {
	end := quotedEnd(v)
	if end < 0 || len(bytes.TrimRight(v[end:], " ")) > 0 {
		return "", false
	}
	body := v[1 : end-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return string(body), true
	}
	var s []byte
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c != '\\' {
			s = append(s, c)
			continue
		}
		i++
		switch body[i] {
		case '\\', '"', '/':
			s = append(s, body[i])
		case 'n':
			s = append(s, '\n')
		case 't':
			s = append(s, '\t')
		case 'r':
			s = append(s, '\r')
		case 'b':
			s = append(s, '\b')
		case 'f':
			s = append(s, '\f')
		case 'u':
			if i+4 >= len(body) {
				return "", false
			}
			r, err := strconv.ParseUint(string(body[i+1:i+5]), 16, 32)
			if err != nil || r >= 0xd800 && r <= 0xdfff {
				return "", false
			}
			s = append(s, string(rune(r))...)
			i += 4
		default:
			return "", false
		}
	}
	return string(s), true
}

// singleQuoted is the string of a single-quoted scalar that is all of v.
func singleQuoted(v []byte) (string, bool) {
	var s []byte
	for i := 1; i < len(v); i++ {
		if v[i] != '\'' {
			s = append(s, v[i])
			continue
		}
		if i+1 < len(v) && v[i+1] == '\'' {
			s = append(s, '\'')
			i++
			continue
		}
		if len(bytes.TrimRight(v[i+1:], " ")) > 0 {
			return "", false
		}
		return string(s), true
	}
	return "", false
}

// appendJSONString appends s as encoding/json writes it (HTML characters
// escaped, as json.Marshal does).
func appendJSONString[S string | []byte](out []byte, s S) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			js, _ := json.Marshal(string(s))
			return append(out, js...)
		}
	}
	out = append(out, '"')
	out = append(out, s...)
	return append(out, '"')
}
