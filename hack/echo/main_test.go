package main

import (
	_ "github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv" // defines -update for go test ./... -update

	"io"
	"net/http/httptest"
	"testing"
)

func TestHandler(t *testing.T) {
	req := httptest.NewRequest("GET", "http://web.demo.test:8080/docs/intro?x=1", nil)
	rec := httptest.NewRecorder()
	handler("web").ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Result().Body)
	if want := "service=web path=/docs/intro host=web.demo.test:8080\n"; string(body) != want {
		t.Errorf("body = %q, want %q", body, want)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
}

func TestCheckAddr(t *testing.T) {
	for _, tc := range []struct {
		addr     string
		allowAny bool
		ok       bool
	}{
		{"127.0.0.1:18081", false, true},
		{"[::1]:18081", false, true},
		{"localhost:18081", false, true},
		{":18081", false, false},
		{"0.0.0.0:18081", false, false},
		{"192.0.2.1:18081", false, false},
		{"example.com:18081", false, false},
		{"0.0.0.0:18081", true, true},
		{":18081", true, true},
		{"127.0.0.1", false, false},
	} {
		err := checkAddr(tc.addr, tc.allowAny)
		if (err == nil) != tc.ok {
			t.Errorf("checkAddr(%q, %v) = %v, want ok=%v", tc.addr, tc.allowAny, err, tc.ok)
		}
	}
}

func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"--serve", "noequals"}, {"--serve", "x=0.0.0.0:1"}, {"--serve", "a=127.0.0.1:1", "extra"}} {
		if code := run(args, io.Discard); code != 2 {
			t.Errorf("run(%q) = %d, want 2", args, code)
		}
	}
}
