package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	_ "github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv" // -update flag
)

func TestProbes(t *testing.T) {
	var ready atomic.Bool
	h := (&Server{Ready: ready.Load}).Handler()
	get := func(path string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	if got := get("/healthz"); got != 200 {
		t.Errorf("/healthz = %d", got)
	}
	if got := get("/readyz"); got != 503 {
		t.Errorf("/readyz before the first configuration = %d, want 503", got)
	}
	ready.Store(true)
	if got := get("/readyz"); got != 200 {
		t.Errorf("/readyz after = %d, want 200", got)
	}
}

func TestStatus(t *testing.T) {
	get := func(h http.Handler) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
		return rec
	}
	if got := get((&Server{}).Handler()).Code; got != http.StatusNotFound {
		t.Errorf("/status without a Status func = %d, want 404", got)
	}
	h := (&Server{Status: func(ctx context.Context) any {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("Status called without a deadline")
		}
		return map[string]int{"generation": 7}
	}}).Handler()
	rec := get(h)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("/status = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var got map[string]int
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got["generation"] != 7 {
		t.Errorf("/status body %q: %v", rec.Body.String(), err)
	}
}

func TestExplain(t *testing.T) {
	h := (&Server{Explain: func(url string) (string, error) {
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
