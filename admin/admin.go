// Package admin is the sidecar's own HTTP server: liveness and readiness
// probes for the kubelet, a status page for people (and, as they come,
// metrics and more debugging).
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Server serves /healthz, /readyz, /status and /explain.
type Server struct {
	Addr string
	// Ready reports whether the first configuration has been served.
	Ready func() bool
	// Status, when set, is served as JSON on /status: what the sidecar and
	// HAProxy are doing, for people debugging a load balancer.
	Status func(context.Context) any
	// Explain, when set, serves /explain?url=URL: which rule of the
	// configuration being served answers that request, and why. An error
	// means the URL is unusable (400).
	Explain func(url string) (string, error)
	Log     *zap.Logger
}

// Handler is the server's routes, for tests and for mounting elsewhere.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.Ready == nil || !s.Ready() {
			http.Error(w, "no configuration served yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	if s.Status != nil {
		mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			defer cancel()
			body, err := json.MarshalIndent(s.Status(ctx), "", "  ")
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(append(body, '\n'))
		})
	}
	if s.Explain != nil {
		mux.HandleFunc("GET /explain", func(w http.ResponseWriter, r *http.Request) {
			urls := r.URL.Query()["url"]
			if len(urls) == 0 {
				http.Error(w, "want ?url=http(s)://host/path (repeatable)", http.StatusBadRequest)
				return
			}
			var b strings.Builder
			for i, u := range urls {
				text, err := s.Explain(u)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				if i > 0 {
					b.WriteByte('\n')
				}
				b.WriteString(text)
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, b.String())
		})
	}
	return mux
}

// Run listens until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("admin server: %w", err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if s.Log != nil {
		s.Log.Info("admin server listening", zap.String("addr", ln.Addr().String()))
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin server: %w", err)
	}
	return nil
}
