package haproxycfg

import (
	"bytes"
	"strings"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/lists"
)

// ChangedSpan is what a diff of the file at path from old to next has to
// read when both sides keep it in pieces (haproxy.cfg, the route maps):
// the bytes of each side from the first piece that differs to the last,
// widened by whole pieces to at least context unchanged lines on each
// side and to whole lines, and line, the number of lines before them (the
// pieces before are the same on both sides). ok is false when either side
// has no such file or has it whole: then diff Get's bytes. Neither file
// is put together: at 50k Ingresses a route map is 5 MB, and /history's
// diff of each pass put both sides of every changed file together.
func ChangedSpan(old, next *Output, path string, context int) (x, y []byte, line int, ok bool) {
	if old == nil || next == nil {
		return nil, nil, 0, false
	}
	a, okA := old.file(path)
	b, okB := next.file(path)
	if !okA || !okB || a.lazy == nil || b.lazy == nil {
		return nil, nil, 0, false
	}
	p, q := piecesOf(a.lazy), piecesOf(b.lazy)
	if p == nil || q == nil {
		return nil, nil, 0, false
	}
	x, y, line = changedSpan(p, q, context)
	return x, y, line, true
}

// pieces is a file in pieces: piece i of n, in order. linesBefore, when
// set, counts the lines before piece i without reading them.
type pieces struct {
	n           int
	piece       func(i int) []byte
	linesBefore func(i int) int
}

func piecesOf(f lazyFile) *pieces {
	switch f := f.(type) {
	case *configParts:
		secs := f.Sections()
		return &pieces{n: len(secs) + 2, piece: func(i int) []byte {
			switch i {
			case 0:
				return f.Head
			case len(secs) + 1:
				return f.Tail
			}
			return secs[i-1]
		}, linesBefore: func(i int) int {
			// Origin's index of the same file (the old side's is
			// usually made already, by the last pass's diff).
			idx := f.lineIndex()
			switch {
			case i == 0:
				return 0
			case i == 1:
				return idx.head
			}
			return idx.ends[i-2]
		}}
	case *routeMapText:
		chunks := f.chunkList()
		return &pieces{n: len(chunks) + 1, piece: func(i int) []byte {
			if i == 0 {
				return []byte(routeMapHeader)
			}
			return chunks[i-1].data
		}, linesBefore: func(i int) int {
			if i == 0 {
				return 0
			}
			n := strings.Count(routeMapHeader, "\n")
			for _, c := range chunks[:i-1] {
				n += c.lines
			}
			return n
		}}
	}
	return nil
}

// changedSpan finds the pieces p and q share at the start and at the end
// (the same slices, or equal bytes), and returns the rest of each with
// context lines of what they share around it, and the lines before.
func changedSpan(p, q *pieces, context int) (x, y []byte, line int) {
	same := func(i, j int) bool {
		a, b := p.piece(i), q.piece(j)
		return lists.Same(a, b) || bytes.Equal(a, b)
	}
	start := 0
	for start < p.n && start < q.n && same(start, start) {
		start++
	}
	tail := 0 // pieces shared at the end, after start on both sides
	for tail < p.n-start && tail < q.n-start && same(p.n-1-tail, q.n-1-tail) {
		tail++
	}
	// Context before: shared pieces, back to a line start.
	lo, lines := start, 0
	for lo > 0 && (lines < context || !lineStart(p, lo)) {
		lo--
		lines += bytes.Count(p.piece(lo), []byte{'\n'})
	}
	if p.linesBefore != nil {
		line = p.linesBefore(lo)
	} else {
		for i := range lo {
			line += bytes.Count(p.piece(i), []byte{'\n'})
		}
	}
	// Context after: shared pieces, on to a line end on both sides.
	after, lines := 0, 0
	for after < tail && (lines < context || !lineStart(p, p.n-tail+after) || !lineStart(q, q.n-tail+after)) {
		lines += bytes.Count(p.piece(p.n-tail+after), []byte{'\n'})
		after++
	}
	return join(p, lo, p.n-tail+after), join(q, lo, q.n-tail+after), line
}

// lineStart says whether piece i starts a line: the last byte before it
// is a newline, or there is none.
func lineStart(s *pieces, i int) bool {
	for ; i > 0; i-- {
		if b := s.piece(i - 1); len(b) > 0 {
			return b[len(b)-1] == '\n'
		}
	}
	return true
}

// join is pieces [from, to) as one slice: a piece itself when it is one.
func join(p *pieces, from, to int) []byte {
	if to-from == 1 {
		return p.piece(from)
	}
	n := 0
	for i := from; i < to; i++ {
		n += len(p.piece(i))
	}
	out := make([]byte, 0, n)
	for i := from; i < to; i++ {
		out = append(out, p.piece(i)...)
	}
	return out
}
