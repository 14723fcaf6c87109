package haproxycfg

import (
	"fmt"
	"strings"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// HAProxy's configuration syntax is the threat model for every string an
// object contributes: a space or tab starts another argument, '#' starts a
// comment, a newline another directive, '\' escapes, '"' quotes weakly and
// expands "$VAR" and "${VAR}" from the environment, and arguments that are
// log-format strings (header values, redirect locations, "return" headers)
// evaluate "%[...]" sample expressions such as %[env(HOME)] even inside
// single quotes. Go's %q is none of this.
//
// So every object string that reaches the configuration goes through one of
// the two functions below, and they refuse what no quoting can carry (NUL,
// CR, LF and the other control bytes end a line or a string in HAProxy's
// parser).

// quoteArg returns s as one HAProxy argument that HAProxy reads back as
// exactly s: strongly quoted ('...'), where nothing is interpreted, with
// each single quote written as '\” (close, escaped quote, reopen; HAProxy
// joins adjacent quoted parts into one argument).
func quoteArg(s string) (string, error) {
	// HAProxy's keyword parsers take an empty argument ('') for the end of
	// the arguments ("hdr X-A ''": "'hdr' expects <name> and <value>").
	if s == "" {
		return "", fmt.Errorf("an empty value cannot be written as an HAProxy argument")
	}
	if err := render.CheckArgBytes(s); err != nil {
		return "", err
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'", nil
}

// quoteLogFormat is quoteArg for arguments HAProxy parses as a log-format
// string: '%' is doubled so that it is a literal percent sign and never
// the start of a sample expression.
func quoteLogFormat(s string) (string, error) {
	return quoteArg(strings.ReplaceAll(s, "%", "%%"))
}

// unquotable is what mustQuoteArg panics with: a value that every parser
// should have refused reached the configuration. The backend or canary
// being rendered recovers it and fails closed (failClosed) instead of
// taking the process down.
type unquotable struct{ err error }

// mustQuoteArg is quoteArg for values already validated to hold no control
// character; a failure is a bug in that validation.
func mustQuoteArg(s string) string {
	q, err := quoteArg(s)
	if err != nil {
		panic(unquotable{err})
	}
	return q
}

func mustQuoteLogFormat(s string) string {
	q, err := quoteLogFormat(s)
	if err != nil {
		panic(unquotable{err})
	}
	return q
}

// failClosed runs build; if a value could not be quoted it returns false
// and the caller writes the fail-closed form instead.
func failClosed(build func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, is := r.(unquotable); !is {
				panic(r)
			}
			ok = false
		}
	}()
	build()
	return true
}
