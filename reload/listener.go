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
	inProxy, found := false, false
	for len(cfg) > 0 {
		line := cfg
		if i := bytes.IndexByte(cfg, '\n'); i >= 0 {
			line, cfg = cfg[:i], cfg[i+1:]
		} else {
			cfg = nil
		}
		// The line's first word, as bytes.Fields splits it, without the
		// slice of every word Fields makes: at 50k Ingresses haproxy.cfg
		// has about a million lines, read at each reload.
		word := bytes.TrimLeftFunc(line, unicode.IsSpace)
		if end := bytes.IndexFunc(word, unicode.IsSpace); end >= 0 {
			word = word[:end]
		}
		if len(word) == 0 || word[0] == '#' {
			continue
		}
		if sectionKeywords[string(word)] {
			inProxy = string(word) == "frontend" || string(word) == "listen"
			continue
		}
		switch string(word) {
		case "disabled":
			return false
		case "bind":
			found = found || inProxy
		}
	}
	return found
}
