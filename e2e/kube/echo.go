package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// Echo is an in-process HTTP backend standing in for a Service's pods. Every
// response body is exactly "service=<Service>\n", so a routing test can tell
// which backend answered; request details come back as headers:
//
//	X-Echo-Service: <Service>
//	X-Echo-Host:    the Host header the backend received
//	X-Echo-Path:    the request URI the backend received
type Echo struct {
	Service string
	Addr    string // host:port it listens on (the actual port if 0 was asked)
	URL     string // "http://" + Addr

	srv      *http.Server
	served   chan error
	requests atomic.Int64
}

// StartEcho listens on addr (typically BackendIP(i)+":port") and serves until
// the test ends. Run it inside the namespace: BackendIP addresses exist only
// there.
func StartEcho(t testing.TB, service, addr string) *Echo {
	t.Helper()
	e, err := NewEcho(service, addr)
	if err != nil {
		t.Fatalf("start echo backend: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("stop echo backend %s: %v", service, err)
		}
	})
	return e
}

// NewEcho is StartEcho for callers that manage the lifetime themselves (for
// example a backend that must go away mid-test); call Close when done.
func NewEcho(service, addr string) (*Echo, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("echo %s: listen on %s: %w", service, addr, err)
	}
	e := &Echo{
		Service: service,
		Addr:    l.Addr().String(),
		URL:     "http://" + l.Addr().String(),
		served:  make(chan error, 1),
	}
	e.srv = &http.Server{Handler: http.HandlerFunc(e.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	go func() { e.served <- e.srv.Serve(l) }()
	return e, nil
}

func (e *Echo) serveHTTP(w http.ResponseWriter, r *http.Request) {
	e.requests.Add(1)
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Echo-Service", e.Service)
	h.Set("X-Echo-Host", r.Host)
	h.Set("X-Echo-Path", r.URL.RequestURI())
	fmt.Fprintf(w, "service=%s\n", e.Service)
}

// Requests returns how many requests this backend has answered.
func (e *Echo) Requests() int64 { return e.requests.Load() }

// Close stops the backend; established connections are closed too, so a
// proxy in front of it sees the backend as really gone.
func (e *Echo) Close() error {
	if err := e.srv.Close(); err != nil {
		return fmt.Errorf("close echo %s: %w", e.Service, err)
	}
	if err := <-e.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("echo %s: serve: %w", e.Service, err)
	}
	return nil
}

// HTTPClient returns a client for requests inside the namespace. It never
// uses a proxy and keeps no idle connections, so every request opens a new
// connection (which is what load-balancing and routing assertions need).
func HTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			DisableKeepAlives: true,
			DialContext:       (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		},
		Timeout: 10 * time.Second,
	}
}

// Get fetches url with HTTPClient and returns the status code and body.
func Get(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", fmt.Errorf("build request for %s: %w", url, err)
	}
	resp, err := HTTPClient().Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, "", fmt.Errorf("GET %s: read body: %w", url, err)
	}
	return resp.StatusCode, string(body), nil
}
