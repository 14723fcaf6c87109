package kube

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Dial waits for a server that refuses connections, retrying at most
// APIDialRetryMax apart, and connects once it listens; the outage is
// logged once when it starts and once when it ends, with its length, and
// State shows it meanwhile. A request's context still ends the wait.
func TestAPIHealthDialWaits(t *testing.T) {
	// A port nobody listens on, for now.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	core, logs := observer.New(zapcore.InfoLevel)
	h := &APIHealth{Log: zap.New(core)}

	// The context ends the wait.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	start := time.Now()
	if _, err := h.Dial(ctx, "tcp", addr); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("dial with nothing listening: %v, want connection refused", err)
	}
	cancel()
	if took := time.Since(start); took > 300*time.Millisecond+APIDialRetryMax {
		t.Errorf("dial returned %v after its context ended", took-300*time.Millisecond)
	}
	st := h.State()
	if st.Up || st.DownSince == nil || !strings.Contains(st.LastError, "refused") || st.Outages != 1 {
		t.Fatalf("state during the outage: %+v", st)
	}

	// A dial waiting when the server starts listening connects.
	const listenAfter = 1500 * time.Millisecond
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	go func() {
		time.Sleep(listenAfter)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("listen again on %s: %v", addr, err)
			return
		}
		srv.Listener = l
		srv.Start()
	}()
	t.Cleanup(func() { time.Sleep(listenAfter); srv.Close() })
	start = time.Now()
	conn, err := h.Dial(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatalf("dial while the server comes back: %v", err)
	}
	conn.Close()
	took := time.Since(start)
	t.Logf("connected %v after the dial started, the server listening after %v", took.Round(time.Millisecond), listenAfter)
	// At most one retry interval late (plus scheduling on a busy machine).
	if late := took - listenAfter; late > APIDialRetryMax+500*time.Millisecond {
		t.Errorf("connected %v after the server listened, want within the retry cap %v", late, APIDialRetryMax)
	}
	if h.State().Up {
		t.Error("a connection alone marked the API server up; only an answer does")
	}

	// An answer ends the outage.
	client := &http.Client{Transport: h.WrapTransport(&http.Transport{DialContext: h.Dial})}
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if st := h.State(); !st.Up || st.DownSince != nil || st.LastSuccess == nil || st.SinceSync(time.Now()) != 0 {
		t.Errorf("state after an answer: %+v", st)
	}
	var started, again, ended int
	var lineTimes []time.Time
	for _, e := range logs.All() {
		switch {
		case strings.Contains(e.Message, "still unreachable"):
			again++
			lineTimes = append(lineTimes, e.Time)
			if n, ok := e.ContextMap()["failed_attempts"].(int64); !ok || n < 1 {
				t.Errorf("a retry's line %v does not count the attempts since the line before", e.ContextMap())
			}
		case strings.Contains(e.Message, "unreachable"):
			started++
			lineTimes = append(lineTimes, e.Time)
		case strings.Contains(e.Message, "reachable again"):
			ended++
			if d, ok := e.ContextMap()["outage"].(time.Duration); !ok || d < listenAfter {
				t.Errorf("end of the outage logged with %v, want its length", e.ContextMap())
			}
		}
	}
	// Dozens of refused attempts in about 2 s: a line at the start, one
	// 1 s later, the next 2 s after that (backing off like the retries),
	// and one at the end.
	if started != 1 || again < 1 || again > 2 || ended != 1 {
		t.Errorf("%d lines for the outage's start, %d while it lasted and %d for its end, want 1, 1 or 2, and 1: %v", started, again, ended, logs.All())
	}
	for i := 1; i < len(lineTimes); i++ {
		if gap, want := lineTimes[i].Sub(lineTimes[i-1]), apiHealthLogFirst<<(i-1); gap < want {
			t.Errorf("line %d of the outage came %v after the one before, want at least %v", i+1, gap, want)
		}
	}
}

// A request that runs out of its own time on a server that accepts and
// never answers (a stopped or cut-off API server) marks it unreachable;
// one its caller cancels does not.
func TestAPIHealthSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var held []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	h := &APIHealth{}
	client := &http.Client{Transport: h.WrapTransport(&http.Transport{DialContext: h.Dial})}
	get := func(ctx context.Context) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			t.Fatal("a server that never answers answered")
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	get(ctx)
	if st := h.State(); !st.Up {
		t.Errorf("a request its caller cancelled marked the API server down: %+v", st)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	get(ctx)
	if st := h.State(); st.Up || !strings.Contains(st.LastError, "deadline") {
		t.Errorf("a request that ran out of time: %+v, want down with the deadline", st)
	}
}
