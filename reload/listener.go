package reload

import "bytes"

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
		fields := bytes.Fields(line)
		if len(fields) == 0 || fields[0][0] == '#' {
			continue
		}
		keyword := string(fields[0])
		if sectionKeywords[keyword] {
			inProxy = keyword == "frontend" || keyword == "listen"
			continue
		}
		switch keyword {
		case "disabled":
			return false
		case "bind":
			found = found || inProxy
		}
	}
	return found
}
