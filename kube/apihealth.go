package kube

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
)

// APIHealth follows whether the Kubernetes API server can be reached, from
// the client's own connections and responses: an outage is logged when it
// starts (then at most every APIHealthLogEvery, with the error and the
// next retry) and when it ends (with how long it lasted), and shown by
// State on /readyz, /status and in metrics. While an outage lasts it is
// logged again at each retry, backing off like the retries themselves:
// 1 s after the first line, then 2, 4, 8 and 16 s, then every
// APIHealthLogEvery, each line with the error, the attempts since the
// line before and when the next is due (a retry every second, logged
// every second, would bury the rest of the log within minutes).
//
// It also makes the client wait for an API server that is away instead
// of failing at once (Dial). client-go's reflectors back off after every
// failed list or watch, doubling up to 30 s, and the backoff is not
// configurable through public options: after a 40 s outage of refused
// connections, a change was served 35-40 s after the API server came
// back. With Dial, a request whose connection is refused waits, retrying
// with a bounded jittered backoff (APIDialRetryMax), until the API server
// accepts it or the request's context ends: the reflector sees one slow
// list instead of a string of failures, and its backoff does not grow.
type APIHealth struct {
	Log *zap.Logger
	// Server is the API server's address (rest.Config.Host), for the log
	// and /readyz.
	Server string
	// Dialer dials each attempt (default: 30 s timeout, 30 s keep-alive,
	// as client-go's).
	Dialer *net.Dialer

	mu        sync.Mutex
	down      bool
	downSince time.Time
	lastErr   error
	lastErrAt time.Time
	lastOK    time.Time
	lastLog   time.Time
	// logGap is the wait from lastLog to the next line of this outage;
	// failures counts the failed attempts since lastLog.
	logGap   time.Duration
	failures int
	outages  int
}

// APIDialRetryMax caps the wait between two connection attempts to an API
// server that refuses them: after it returns, the next attempt is at most
// this far away (a change made then is served within it plus a relist).
const APIDialRetryMax = time.Second

// apiDialRetryMin is the first wait after a refused connection.
const apiDialRetryMin = 50 * time.Millisecond

// APIHealthLogEvery bounds how often a continuing outage is logged, once
// its lines have backed off from apiHealthLogFirst.
const APIHealthLogEvery = 30 * time.Second

// apiHealthLogFirst is the wait from an outage's first line to its
// second.
const apiHealthLogFirst = time.Second

// APIState is what /status, /readyz and metrics show about the API server.
type APIState struct {
	// Server is the API server's address.
	Server string `json:"server,omitempty"`
	// Up is false from the first failed connection or request until a
	// response comes again.
	Up bool `json:"up"`
	// DownSince is when the current outage started.
	DownSince *time.Time `json:"down_since,omitempty"`
	// LastError is the last connection or request failure, and when.
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	// LastSuccess is when the API server last answered.
	LastSuccess *time.Time `json:"last_success,omitempty"`
	// Outages counts the outages since the start.
	Outages int `json:"outages"`
}

// SinceSync is how long the source has not been known in sync with the
// API server: 0 while it is up, the time since its last answer while
// down.
func (s APIState) SinceSync(now time.Time) time.Duration {
	if s.Up {
		return 0
	}
	if s.LastSuccess != nil {
		return now.Sub(*s.LastSuccess)
	}
	if s.DownSince != nil {
		return now.Sub(*s.DownSince)
	}
	return 0
}

// Problem says what keeps the source from the API server, or "" while
// it answers: the outage (since when, and the last error), or that it
// has not answered yet. /readyz names it.
func (s APIState) Problem(now time.Time) string {
	at := ""
	if s.Server != "" {
		at = " (" + s.Server + ")"
	}
	switch {
	case !s.Up && s.DownSince != nil:
		return fmt.Sprintf("Kubernetes API server unreachable since %s (%s)%s: %s",
			s.DownSince.UTC().Format(time.RFC3339), now.Sub(*s.DownSince).Round(time.Second), at, s.LastError)
	case s.LastSuccess == nil:
		return "no answer from the Kubernetes API server" + at + " yet"
	}
	return ""
}

// State returns the current state.
func (h *APIHealth) State() APIState {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := APIState{Server: h.Server, Up: !h.down, Outages: h.outages}
	if h.down {
		t := h.downSince
		st.DownSince = &t
	}
	if h.lastErr != nil {
		st.LastError = h.lastErr.Error()
		t := h.lastErrAt
		st.LastErrorAt = &t
	}
	if !h.lastOK.IsZero() {
		t := h.lastOK
		st.LastSuccess = &t
	}
	return st
}

func (h *APIHealth) log() *zap.Logger {
	if h.Log == nil {
		return zap.NewNop()
	}
	return h.Log
}

// failed records a failed connection or request; retryIn is when the
// next attempt is due (0 when unknown).
func (h *APIHealth) failed(err error, retryIn time.Duration) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastErr, h.lastErrAt = err, now
	h.failures++
	fields := []zap.Field{zap.Error(err)}
	if h.Server != "" {
		fields = append(fields, zap.String("server", h.Server))
	}
	if retryIn > 0 {
		fields = append(fields, zap.Duration("retry_in", retryIn))
	}
	if !h.down {
		h.down, h.downSince, h.lastLog = true, now, now
		h.logGap, h.failures = apiHealthLogFirst, 0
		h.outages++
		h.log().Warn("Kubernetes API server unreachable; HAProxy keeps serving the last configuration", fields...)
		return
	}
	if now.Sub(h.lastLog) >= h.logGap {
		h.log().Warn("Kubernetes API server still unreachable", append(fields,
			zap.Duration("down_for", now.Sub(h.downSince).Round(time.Millisecond)),
			zap.Int("failed_attempts", h.failures))...)
		h.lastLog, h.failures = now, 0
		h.logGap = min(2*h.logGap, APIHealthLogEvery)
	}
}

// answered records a response from the API server.
func (h *APIHealth) answered() {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastOK = now
	if h.down {
		h.down = false
		h.log().Info("Kubernetes API server reachable again",
			zap.Duration("outage", now.Sub(h.downSince).Round(time.Millisecond)), zap.NamedError("last_error", h.lastErr))
	}
}

// Dial is a rest.Config Dial function: it connects like client-go's own
// dialer, but when the connection fails it waits and tries again, with a
// jittered backoff from 50 ms doubling up to APIDialRetryMax, until it
// succeeds or ctx (the request's) ends.
func (h *APIHealth) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	d := h.Dialer
	if d == nil {
		d = &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	}
	delay := apiDialRetryMin
	for {
		conn, err := d.DialContext(ctx, network, address)
		if err == nil {
			return conn, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		// Full jitter in the upper half: replicas that lost the API
		// server together do not come back in step.
		wait := delay/2 + rand.N(delay/2+1)
		h.failed(err, wait)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		delay = min(2*delay, APIDialRetryMax)
	}
}

// WrapTransport is a rest.Config WrapTransport: every response marks the
// API server reachable, every failed request (but one its caller
// cancelled; one that ran out of time counts) unreachable.
func (h *APIHealth) WrapTransport(rt http.RoundTripper) http.RoundTripper {
	return &healthTransport{h: h, rt: rt}
}

type healthTransport struct {
	h  *APIHealth
	rt http.RoundTripper
}

func (t *healthTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	switch {
	case err == nil && resp.StatusCode < 500:
		t.h.answered()
	case err != nil && !errors.Is(err, context.Canceled) && !errors.Is(req.Context().Err(), context.Canceled):
		// A request that ran out of its own time counts: an API server
		// that is stopped or cut off accepts connections, or keeps them
		// open, and never answers (the Lease's renewals find it first).
		t.h.failed(err, 0)
	}
	return resp, err
}

// WrappedRoundTripper lets client-go reach the transport underneath (to
// close its idle connections).
func (t *healthTransport) WrappedRoundTripper() http.RoundTripper { return t.rt }
