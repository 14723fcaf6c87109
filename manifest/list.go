package manifest

import (
	"bytes"
)

// A List document (`kubectl get -o yaml` or `-o json` of several kinds) is
// one document holding every object: decoded whole, it takes one core and
// holds the whole document as maps. It is cut instead into its skeleton
// (the document with `items: []`), which tells whether it is a List at
// all, and its items, each decoded on its own. A YAML item is decoded as
// a sequence of that one entry, its lines where they were (the same
// columns, so the same block structure), and a JSON item is the same
// bytes: each gives the JSON it has inside the List, so the objects and
// problems are those of decoding the List whole. When an item does not
// parse on its own (a cut that was not where it looked, an alias to an
// anchor in another item, a syntax error the whole document has too),
// decodeFile decodes the document whole instead.

// splitYAMLList cuts a YAML document whose `items:` key is at column 0,
// alone on its line, followed by block sequence entries (`- ` and their
// text) that all start at one column k. Each item is its entry's lines,
// a slice of raw. ok is false, and the document is decoded whole, for any
// other shape or anything the cut could read differently: tabs in
// indentation, lines between columns k and k+2 that do not start an
// entry, comments between entries, another top-level `items` key.
func splitYAMLList(raw []byte) (skeleton []byte, items [][]byte, ok bool) {
	at := -1
	if bytes.HasPrefix(raw, []byte("items:")) {
		at = 0
	} else if i := bytes.Index(raw, []byte("\nitems:")); i >= 0 {
		at = i + 1
	}
	if at < 0 {
		return nil, nil, false
	}
	lineEnd := func(p int) int {
		if i := bytes.IndexByte(raw[p:], '\n'); i >= 0 {
			return p + i + 1
		}
		return len(raw)
	}
	itemsEnd := lineEnd(at)
	if len(bytes.TrimRight(raw[at:itemsEnd], " \n")) != len("items:") {
		return nil, nil, false // `items: []`, `items: # x`, ...
	}
	k := -1              // the entries' column
	var starts []int     // each entry's first line
	blockEnd := len(raw) // where the lines after the sequence begin
	for p := itemsEnd; p < len(raw) && blockEnd == len(raw); {
		e := lineEnd(p)
		line := raw[p:e]
		ind := 0
		for ind < len(line) && line[ind] == ' ' {
			ind++
		}
		rest := line[ind:]
		entry := bytes.HasPrefix(rest, []byte("- ")) && len(rest) > 2 && rest[2] != ' '
		switch {
		case len(rest) > 0 && rest[0] == '\t':
			return nil, nil, false
		case len(bytes.TrimRight(rest, " \n")) == 0:
			// blank: belongs to the entry it is in
		case k < 0:
			if !entry {
				return nil, nil, false
			}
			k = ind
			starts = append(starts, p)
		case ind == k && entry:
			starts = append(starts, p)
		case ind >= k+2:
			// inside the entry
		case ind == 0 && rest[0] != '#' && rest[0] != '-':
			blockEnd = p // the next top-level key
		default:
			return nil, nil, false
		}
		p = e
	}
	if len(starts) == 0 || raw[len(raw)-1] != '\n' {
		return nil, nil, false
	}
	for _, part := range [][]byte{raw[:at], raw[blockEnd:]} {
		if bytes.HasPrefix(part, []byte("items")) || bytes.Contains(part, []byte("\nitems")) {
			return nil, nil, false
		}
	}
	skeleton = make([]byte, 0, at+len("items: []\n")+len(raw)-blockEnd)
	skeleton = append(skeleton, raw[:at]...)
	skeleton = append(skeleton, "items: []\n"...)
	skeleton = append(skeleton, raw[blockEnd:]...)
	for i, s := range starts {
		e := blockEnd
		if i+1 < len(starts) {
			e = starts[i+1]
		}
		items = append(items, raw[s:e:e])
	}
	return skeleton, items, true
}

// splitJSONList cuts a JSON document that is an object with an "items"
// array of objects: the skeleton is the document with `[]` for the
// array, the items are slices of the document. ok is false for any other
// shape, and for anything a JSON decoder could read differently from this
// scan (escaped keys, "items" twice); syntax errors outside the items
// make the skeleton fail to decode, inside an item its check
// (json.Valid), and the document is then decoded whole.
func splitJSONList(raw []byte) (skeleton []byte, items [][]byte, ok bool) {
	s := jsonScan{b: raw}
	s.space()
	if !s.eat('{') {
		return nil, nil, false
	}
	arrStart, arrEnd := -1, -1
	for {
		s.space()
		if s.eat('}') {
			break
		}
		keyStart := s.p
		if !s.str() {
			return nil, nil, false
		}
		key := raw[keyStart:s.p]
		if bytes.IndexByte(key, '\\') >= 0 {
			return nil, nil, false
		}
		s.space()
		if !s.eat(':') {
			return nil, nil, false
		}
		s.space()
		if string(key) == `"items"` {
			if arrStart >= 0 || s.p >= len(raw) || raw[s.p] != '[' {
				return nil, nil, false
			}
			arrStart = s.p
			s.p++
			for {
				s.space()
				if s.eat(']') {
					break
				}
				start := s.p
				if s.p >= len(raw) || raw[s.p] != '{' || !s.value() {
					return nil, nil, false
				}
				items = append(items, raw[start:s.p])
				s.space()
				if s.eat(']') {
					break
				}
				if !s.eat(',') {
					return nil, nil, false
				}
			}
			arrEnd = s.p
		} else if !s.value() {
			return nil, nil, false
		}
		s.space()
		if s.eat('}') {
			break
		}
		if !s.eat(',') {
			return nil, nil, false
		}
	}
	if arrStart < 0 || len(items) == 0 {
		return nil, nil, false
	}
	skeleton = make([]byte, 0, len(raw)-(arrEnd-arrStart)+2)
	skeleton = append(skeleton, raw[:arrStart]...)
	skeleton = append(skeleton, "[]"...)
	skeleton = append(skeleton, raw[arrEnd:]...)
	return skeleton, items, true
}

// jsonScan finds where JSON values end; it does not validate them.
type jsonScan struct {
	b []byte
	p int
}

func (s *jsonScan) space() {
	for s.p < len(s.b) {
		switch s.b[s.p] {
		case ' ', '\t', '\n', '\r':
			s.p++
		default:
			return
		}
	}
}

func (s *jsonScan) eat(c byte) bool {
	if s.p < len(s.b) && s.b[s.p] == c {
		s.p++
		return true
	}
	return false
}

// str moves past a string starting at p.
func (s *jsonScan) str() bool {
	if !s.eat('"') {
		return false
	}
	for s.p < len(s.b) {
		i := bytes.IndexAny(s.b[s.p:], `"\`)
		if i < 0 {
			return false
		}
		s.p += i
		if s.b[s.p] == '\\' {
			s.p += 2
			continue
		}
		s.p++
		return true
	}
	return false
}

// value moves past the value starting at p: a string, an object or array
// (brackets counted outside strings), or a literal.
func (s *jsonScan) value() bool {
	if s.p >= len(s.b) {
		return false
	}
	switch s.b[s.p] {
	case '"':
		return s.str()
	case '{', '[':
		depth := 0
		for s.p < len(s.b) {
			switch s.b[s.p] {
			case '"':
				if !s.str() {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.p++
					return true
				}
			}
			s.p++
		}
		return false
	default:
		for s.p < len(s.b) {
			switch s.b[s.p] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return true
			}
			s.p++
		}
		return true
	}
}
