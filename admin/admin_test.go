package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv" // -update flag
)

func TestProbes(t *testing.T) {
	var ready, started atomic.Bool
	var stuck atomic.Bool
	h := (&Health{
		Ready: func() error {
			if !ready.Load() {
				return errors.New("HAProxy is not running")
			}
			return nil
		},
		Started: started.Load,
		Live: func() error {
			if stuck.Load() {
				return errors.New("a pass has been running for 3m0s")
			}
			return nil
		},
	}).Handler()
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	if got, _ := get("/healthz"); got != 200 {
		t.Errorf("/healthz = %d", got)
	}
	if got, body := get("/readyz"); got != 503 || !strings.Contains(body, "HAProxy is not running") {
		t.Errorf("/readyz before the first configuration = %d %q, want 503 with the reason", got, body)
	}
	if got, _ := get("/startupz"); got != 503 {
		t.Errorf("/startupz before the first configuration = %d, want 503", got)
	}
	ready.Store(true)
	started.Store(true)
	if got, _ := get("/readyz"); got != 200 {
		t.Errorf("/readyz after = %d, want 200", got)
	}
	if got, _ := get("/startupz"); got != 200 {
		t.Errorf("/startupz after = %d, want 200", got)
	}
	degraded := (&Health{Ready: func() error { return nil }, Degraded: func() []string {
		return []string{"File m/zz.yaml: cannot be read"}
	}}).Handler()
	rec := httptest.NewRecorder()
	degraded.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "degraded: File m/zz.yaml: cannot be read") {
		t.Errorf("/readyz while degraded = %d %q, want 200 naming the fault", rec.Code, rec.Body.String())
	}
	stuck.Store(true)
	if got, body := get("/healthz"); got != 503 || !strings.Contains(body, "running for") {
		t.Errorf("/healthz with a stuck loop = %d %q", got, body)
	}
	// The health address shows nothing about the configuration.
	for _, path := range []string{"/status", "/explain?url=http://a/"} {
		if got, _ := get(path); got != http.StatusNotFound {
			t.Errorf("%s on the health handler = %d, want 404", path, got)
		}
	}
}

// A connection over the limit evicts one that is not serving a request,
// so a probe gets through a flood at once; an idle keep-alive connection
// is closed after the idle timeout.
func TestServeLimits(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	limits := Limits{MaxConns: 2, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: time.Second, IdleTimeout: 300 * time.Millisecond, MaxHeaderBytes: 4096}
	go func() { done <- limits.Serve(ctx, ln, (&Health{}).Handler(), nil) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	addr := ln.Addr().String()

	// Two connections that never finish their headers fill both slots
	// (the header timeout is far away).
	var slow []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\n")); err != nil {
			t.Fatal(err)
		}
		slow = append(slow, c)
	}
	time.Sleep(100 * time.Millisecond) // both accepted

	// A probe is served at once; the oldest silent connection made room.
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("probe over the limit: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || time.Since(start) > 2*time.Second {
		t.Errorf("/healthz = %d after %s, want 200 at once", resp.StatusCode, time.Since(start))
	}
	slow[0].SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadAll(slow[0]); err != nil {
		t.Errorf("the oldest silent connection: %v, want closed by the server", err)
	}

	// The probe's idle keep-alive connection is closed too.
	start = time.Now()
	if _, err := io.ReadAll(c); err != nil {
		t.Errorf("idle connection: %v, want closed by the server", err)
	}
	if waited := time.Since(start); waited > 4*time.Second {
		t.Errorf("idle connection closed after %s, want about the idle timeout", waited)
	}
}

func TestStatus(t *testing.T) {
	get := func(h http.Handler) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
		return rec
	}
	if got := get((&Debug{}).Handler()).Code; got != http.StatusNotFound {
		t.Errorf("/status without a Status func = %d, want 404", got)
	}
	h := (&Debug{Status: func(ctx context.Context) Status {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("Status called without a deadline")
		}
		return Status{Generation: 7}
	}}).Handler()
	rec := get(h)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("/status = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got["generation"] != 7.0 {
		t.Errorf("/status body %q: %v", rec.Body.String(), err)
	}
}

func TestExplain(t *testing.T) {
	h := (&Debug{Explain: func(url string) (string, error) {
		if url == "bad" {
			return "", errors.New("not a URL")
		}
		return "explained " + url + "\n", nil
	}}).Handler()
	get := func(query string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/explain?"+query, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get("url=http://a/&url=http://b/"); code != 200 || body != "explained http://a/\n\nexplained http://b/\n" {
		t.Errorf("two URLs: %d %q", code, body)
	}
	for _, q := range []string{"", "url=bad", "url=http://a/&url=bad"} {
		if code, _ := get(q); code != http.StatusBadRequest {
			t.Errorf("%q: %d, want 400", q, code)
		}
	}
}

// The debug handler serves Go's profiler; the health handler does not.
func TestPprofOnDebugOnly(t *testing.T) {
	get := func(h http.Handler, path string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	if code := get((&Debug{}).Handler(), "/debug/pprof/"); code != 200 {
		t.Errorf("/debug/pprof/ on the debug handler: %d", code)
	}
	if code := get((&Health{}).Handler(), "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ on the health handler: %d, want 404", code)
	}
}
