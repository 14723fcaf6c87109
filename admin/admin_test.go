package admin

import (
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
