package reload

import (
	"bytes"
	"unicode"
)

// sectionKeywords start a section wherever they are indented (HAProxy's
// parser ignores leading blanks).
var sectionKeywords = map[string]bool{
	"global": true, "defaults": true, "frontend": true, "backend": true, "listen": true,
	"peers": true, "resolvers": true, "userlist": true, "mailers": true, "program": true,
	"http-errors": true, "ring": true, "cache": true, "log-forward": true, "crt-store": true,
	"fcgi-app": true, "traces": true,
}

// HasListener reports whether an haproxy.cfg certainly has a listener: a
// bind line in a frontend or listen section, and no "disabled" anywhere.
//
// `haproxy -c` refuses a configuration without a listener (see Check), but
// a reload, or a master-worker start, takes it in and serves nothing
// (verified on 2.6.12 and 3.0.11: "Loading success", connections refused).
// A reload can therefore stand in for `haproxy -c` (Store.Stage) only for a
// configuration this finds a listener in. It errs towards false: an
// unusual layout only costs the `haproxy -c` run.
func HasListener(cfg []byte) bool {
	var s listenerScan
	s.scan(cfg, true)
	return s.result()
}

// ContentHasListener is HasListener of c's bytes, read as c writes them
// (in pieces: never put together).
func ContentHasListener(c Content) (bool, error) {
	var s listenerScan
	if _, err := c.WriteTo(&s); err != nil {
		return false, err
	}
	return s.result(), nil
}

// listenerScan reads an haproxy.cfg line by line for HasListener, from
// pieces that may cut lines anywhere (it is an io.Writer).
type listenerScan struct {
	inProxy, found, disabled bool
	// partial is the start of a line the end of a piece cut.
	partial []byte
}

func (s *listenerScan) Write(p []byte) (int, error) {
	s.scan(p, false)
	return len(p), nil
}

// scan reads the lines of p; last: p ends the file (its last line needs
// no newline, and is not copied).
func (s *listenerScan) scan(p []byte, last bool) {
	for len(p) > 0 && !s.disabled {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if !last {
				s.partial = append(s.partial, p...)
				return
			}
			i = len(p)
		}
		line := p[:i]
		if len(s.partial) > 0 {
			s.partial = append(s.partial, line...)
			line = s.partial
		}
		s.line(line)
		s.partial = s.partial[:0]
		p = p[min(i+1, len(p)):]
	}
}

func (s *listenerScan) result() bool {
	if len(s.partial) > 0 && !s.disabled {
		s.line(s.partial)
		s.partial = nil
	}
	return s.found && !s.disabled
}

// line reads one line. Its first word is the one bytes.Fields would give,
// without the slice of every word Fields makes: at 50k Ingresses
// haproxy.cfg has about 80,000 lines, read at each reload.
func (s *listenerScan) line(line []byte) {
	word := bytes.TrimLeftFunc(line, unicode.IsSpace)
	if end := bytes.IndexFunc(word, unicode.IsSpace); end >= 0 {
		word = word[:end]
	}
	if len(word) == 0 || word[0] == '#' {
		return
	}
	if sectionKeywords[string(word)] {
		s.inProxy = string(word) == "frontend" || string(word) == "listen"
		return
	}
	switch string(word) {
	case "disabled":
		s.disabled = true
	case "bind":
		s.found = s.found || s.inProxy
	}
}
