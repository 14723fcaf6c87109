// Package admin is the sidecar's own HTTP servers. Two listeners with
// different audiences:
//
//   - the health address (--health-addr, all interfaces by default) is for
//     the kubelet and Prometheus: /healthz, /readyz, /startupz, /metrics.
//     It shows nothing of the configuration but counts.
//   - the debug address (--debug-addr, loopback by default, reached with
//     `kubectl exec` or `kubectl port-forward`) is for people: /status,
//     /explain, /config and /history. It reveals the routing table and
//     every problem, so it is
//     never exposed by default.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Health serves the probes.
type Health struct {
	// Live returns an error when the sidecar is stuck and should be
	// restarted (/healthz answers 503 with it).
	Live func() error
	// Ready returns nil when HAProxy serves a configuration that was once
	// complete (rendered from the source by this run, or by an earlier
	// one and kept while the source cannot be read), else why not
	// (/readyz). Only a pod that has never served is unready.
	Ready func() error
	// Started reports whether a configuration rendered from the source
	// (by this run after validation, or by an earlier one) is current, so
	// that an HAProxy started now starts on it (/startupz).
	Started func() bool
	// Degraded, when set, lists faults that leave HAProxy serving but
	// need attention (the API server unreachable, the source not read yet
	// after a restart, a rejected configuration, a manifest that cannot
	// be read, a repaired config-dir). /readyz stays 200 with them, since
	// taking the load balancer out of its Service would turn a fault into
	// an outage, and names them in its body.
	Degraded func() []string
	// Metrics, when set, is served on /metrics (Prometheus).
	Metrics http.Handler
}

// Handler returns the probe routes.
func (h *Health) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		probe(w, h.Live, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ready := h.Ready
		if ready == nil {
			ready = func() error { return errors.New("no configuration served yet") }
		}
		ok := "ok"
		if h.Degraded != nil {
			for _, d := range h.Degraded() {
				ok += "\ndegraded: " + d
			}
		}
		probe(w, ready, ok)
	})
	mux.HandleFunc("GET /startupz", func(w http.ResponseWriter, _ *http.Request) {
		probe(w, func() error {
			if h.Started == nil || !h.Started() {
				return errors.New("no configuration from the source written yet")
			}
			return nil
		}, "ok")
	})
	if h.Metrics != nil {
		mux.Handle("GET /metrics", h.Metrics)
	}
	return mux
}

func probe(w http.ResponseWriter, check func() error, ok string) {
	if check != nil {
		if err := check(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	fmt.Fprintln(w, ok)
}

// Debug serves what people need to see what the load balancer does.
type Debug struct {
	// Status is served as JSON on /status: what the sidecar and HAProxy
	// are doing.
	Status func(context.Context) Status
	// Explain serves /explain?url=URL: which rule of the configuration
	// being served answers that request, and why. An error means the URL
	// is unusable (400).
	Explain func(url string) (string, error)
	// Config serves /config?file=PATH|ingress=NS/NAME|host=HOST: the
	// configuration HAProxy runs, or part of it. errNotFound-like errors
	// (Config returns found=false) answer 404.
	Config func(q ConfigQuery) (text string, found bool, err error)
	// History serves /history?n=N (newest first) and /history/ID.
	History func(n int) any
	Pass    func(id int64) (any, bool)
}

// ConfigQuery is /config's query string.
type ConfigQuery struct {
	File, Ingress, Host string
}

// DefaultHistory is how many passes /history lists without ?n=.
const DefaultHistory = 50

func writeJSON(w http.ResponseWriter, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(body, '\n'))
}

// Handler returns the debug routes.
func (d *Debug) Handler() http.Handler {
	mux := http.NewServeMux()
	// Go's profiler: CPU, heap, goroutines (go tool pprof
	// http://127.0.0.1:10255/debug/pprof/profile). Loopback only, like
	// the rest of this listener.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	if d.Config != nil {
		mux.HandleFunc("GET /config", func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			cq := ConfigQuery{File: q.Get("file"), Ingress: q.Get("ingress"), Host: q.Get("host")}
			set := 0
			for _, v := range []string{cq.File, cq.Ingress, cq.Host} {
				if v != "" {
					set++
				}
			}
			if set > 1 {
				http.Error(w, "give at most one of file=, ingress= and host=", http.StatusBadRequest)
				return
			}
			text, found, err := d.Config(cq)
			switch {
			case err != nil && !found:
				http.Error(w, err.Error(), http.StatusNotFound)
				return
			case err != nil:
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, text)
		})
	}
	if d.History != nil {
		mux.HandleFunc("GET /history", func(w http.ResponseWriter, r *http.Request) {
			n := DefaultHistory
			if v := r.URL.Query().Get("n"); v != "" {
				var err error
				if n, err = strconv.Atoi(v); err != nil || n < 1 {
					http.Error(w, "n must be a positive number", http.StatusBadRequest)
					return
				}
			}
			writeJSON(w, d.History(n))
		})
	}
	if d.Pass != nil {
		mux.HandleFunc("GET /history/{id}", func(w http.ResponseWriter, r *http.Request) {
			id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
			if err != nil {
				http.Error(w, "the id is a number", http.StatusBadRequest)
				return
			}
			p, ok := d.Pass(id)
			if !ok {
				http.Error(w, fmt.Sprintf("no pass %d in the history (it keeps the last ones only)", id), http.StatusNotFound)
				return
			}
			writeJSON(w, p)
		})
	}
	if d.Status != nil {
		mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			defer cancel()
			writeJSON(w, d.Status(ctx))
		})
	}
	if d.Explain != nil {
		mux.HandleFunc("GET /explain", func(w http.ResponseWriter, r *http.Request) {
			urls := r.URL.Query()["url"]
			if len(urls) == 0 {
				http.Error(w, "want ?url=http(s)://host/path (repeatable)", http.StatusBadRequest)
				return
			}
			var b strings.Builder
			for i, u := range urls {
				text, err := d.Explain(u)
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

// Limits of an admin listener.
type Limits struct {
	MaxConns                                                  int
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxHeaderBytes                                            int
}

// DefaultLimits apply to every admin listener. A flood of connections
// (idle keep-alives, half-sent headers) must never use up the sidecar's
// file descriptors, which it needs to read manifests and talk to HAProxy,
// nor keep a probe out: see connLimiter. Idle or slow connections are
// closed after a few seconds anyway.
var DefaultLimits = Limits{
	MaxConns:          64,
	ReadHeaderTimeout: 5 * time.Second,
	ReadTimeout:       10 * time.Second,
	WriteTimeout:      30 * time.Second,
	IdleTimeout:       15 * time.Second,
	MaxHeaderBytes:    16 << 10,
}

// DebugLimits are DefaultLimits with room for a 30-second CPU profile
// (/debug/pprof/profile) and a large /history.
var DebugLimits = func() Limits {
	l := DefaultLimits
	l.WriteTimeout = 2 * time.Minute
	return l
}()

// Listen opens addr for Serve, so that a caller learns at once that the
// address is taken.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin server %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves h on ln with DefaultLimits until ctx is done.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *zap.Logger) error {
	return DefaultLimits.Serve(ctx, ln, h, log)
}

// Serve serves h on ln with these limits until ctx is done.
func (l Limits) Serve(ctx context.Context, ln net.Listener, h http.Handler, log *zap.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
	lim := newConnLimiter(ln, l.MaxConns)
	srv.ConnState = lim.state
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if log != nil {
		log.Info("admin server listening", zap.String("addr", ln.Addr().String()))
	}
	if err := srv.Serve(lim); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin server %s: %w", ln.Addr(), err)
	}
	return nil
}

// connLimiter keeps at most max connections open. It never stops
// accepting: a connection over the limit evicts the oldest one that is
// not in the middle of a request (connected but silent, or idle between
// requests), or is closed itself when all are busy. Waiting in the
// kernel's accept queue instead would put a kubelet probe behind
// thousands of silent connections of a flood, each holding its slot until
// a timeout.
type connLimiter struct {
	net.Listener
	max int

	mu    sync.Mutex
	conns map[net.Conn]*connInfo
}

type connInfo struct {
	state http.ConnState
	since time.Time
}

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: ln, max: max, conns: map[net.Conn]*connInfo{}}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if len(l.conns) >= l.max {
			var victim net.Conn
			var oldest time.Time
			for vc, info := range l.conns {
				if info.state == http.StateActive {
					continue
				}
				if victim == nil || info.since.Before(oldest) {
					victim, oldest = vc, info.since
				}
			}
			if victim == nil {
				l.mu.Unlock()
				c.Close() // every slot is serving a request
				continue
			}
			delete(l.conns, victim)
			victim.Close()
		}
		l.conns[c] = &connInfo{state: http.StateNew, since: time.Now()}
		l.mu.Unlock()
		return c, nil
	}
}

// state is the http.Server's ConnState hook.
func (l *connLimiter) state(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch s {
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, c)
	default:
		if info, ok := l.conns[c]; ok {
			info.state, info.since = s, time.Now()
		}
	}
}
