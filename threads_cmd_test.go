package main

import (
	"strings"
	"testing"
)

// render writes nbthread only when --haproxy-threads says so (it reads no
// CPU limit: that is run's wiring), and refuses a count HAProxy cannot run
// (exit 1, like a bad --http-bind).
func TestRenderHAProxyThreads(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string // in stdout, or stderr for errors
		not  string
	}{
		{args: nil, code: 0, not: "nbthread"},
		{args: []string{"--haproxy-threads", "3"}, code: 0, want: "\n    nbthread 3\n"},
		{args: []string{"--haproxy-threads", "65"}, code: 1, want: "--haproxy-threads 65"},
		{args: []string{"--haproxy-threads", "-1"}, code: 1, want: "--haproxy-threads -1"},
	} {
		args := append([]string{"render", "--manifests", "testdata/hosts", "--stdout", "--no-validate"}, c.args...)
		code, out, errs := runCLI(t, args...)
		if code != c.code {
			t.Errorf("%v: exit %d, want %d; stderr %s", c.args, code, c.code, errs)
			continue
		}
		where := out
		if c.code != 0 {
			where = errs
		}
		if c.want != "" && !strings.Contains(where, c.want) {
			t.Errorf("%v: output lacks %q:\n%.600s", c.args, c.want, where)
		}
		if c.not != "" && strings.Contains(where, c.not) {
			t.Errorf("%v: output has %q", c.args, c.not)
		}
	}
}
