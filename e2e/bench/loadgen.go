package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ClientTimeout bounds one request of the load clients, as Front.Get's
// deadline does for the close clients.
const ClientTimeout = 2 * time.Second

// Target is a host the load clients ask for, with the bodies that are right
// for it ("service=<echo>\n" of each echo behind its Service).
type Target struct {
	Host   string
	Bodies map[string]bool
}

// TargetOf is Ingress i of s (path /) with the echo backends of its
// Service in group 0, as named by the suite's StartEcho calls.
func TargetOf(s Spec, i int) Target {
	t := Target{Host: Host(i), Bodies: map[string]bool{}}
	n := 2 + s.ServiceOf(i)%2
	for k := range n {
		t.Bodies["service=a"+strconv.Itoa((s.ServiceOf(i)+k)%GroupSize)+"\n"] = true
	}
	return t
}

// ClientKind is how a load client uses connections.
type ClientKind string

const (
	// KeepAlive clients send every request over one persistent connection
	// (net/http's Transport), opening a new one when HAProxy closed it.
	KeepAlive ClientKind = "keep-alive"
	// Close clients send each request with "Connection: close" on a new
	// connection (Front.Get, as the probe does).
	Close ClientKind = "close"
)

// ClientStats is what the clients of one kind saw.
type ClientStats struct {
	Kind     ClientKind
	Clients  int
	Interval time.Duration // between requests of one client; 0: back to back
	Sent     int64         // requests sent (answered or failed)
	Failed   int64         // non-2xx, connection error, timeout or wrong body
	// Retried counts keep-alive requests net/http sent again on a new
	// connection because HAProxy had closed the idle one they were written
	// to (a GET is retried so, as RFC 9112 9.3.1 allows); they count as
	// sent once and succeeded or failed on the retry.
	Retried int64
	// Conns counts connections opened (keep-alive: new connections; close:
	// every request).
	Conns     int64
	Latencies []time.Duration // one per request that succeeded
	Errors    []string        // the first few failures
}

// Clients is load of one kind running until Stop.
type Clients struct {
	stats  ClientStats
	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartClients starts n clients of kind, each sending requests to
// 127.0.0.1:port, cycling over the targets: one every interval (a late
// request is not made up for), or back to back when interval is 0.
func StartClients(kind ClientKind, n, port int, targets []Target, interval time.Duration) *Clients {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Clients{stats: ClientStats{Kind: kind, Clients: n, Interval: interval}, cancel: cancel}
	for w := range n {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.run(ctx, kind, port, targets, w, interval)
		}()
	}
	return c
}

func (c *Clients) run(ctx context.Context, kind ClientKind, port int, targets []Target, w int, interval time.Duration) {
	var sent, failed, retried, conns int64
	var lat []time.Duration
	var errs []string
	fail := func(target Target, msg string) {
		failed++
		if len(errs) < 5 {
			errs = append(errs, time.Now().UTC().Format("15:04:05.000")+" "+target.Host+": "+msg)
		}
	}
	front := Front{HTTPPort: port}
	var client *http.Client
	if kind == KeepAlive {
		client = &http.Client{Timeout: ClientTimeout, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1,
			DialContext: (&net.Dialer{Timeout: time.Second}).DialContext}}
		defer client.CloseIdleConnections()
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/"
	next := time.Now()
	for k := w; ctx.Err() == nil; k++ {
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				select {
				case <-ctx.Done():
					continue
				case <-time.After(d):
				}
			}
			next = next.Add(interval)
			if now := time.Now(); next.Before(now) {
				next = now
			}
		}
		target := targets[k%len(targets)]
		start := time.Now()
		switch kind {
		case Close:
			a, err := front.Get(target.Host, "/", false)
			if ctx.Err() != nil {
				break // stopped mid-request: not counted
			}
			sent++
			conns++
			switch {
			case err != nil:
				fail(target, err.Error())
			case a.Status < 200 || a.Status > 299 || !target.Bodies["service="+a.Echo+"\n"]:
				fail(target, fmt.Sprintf("status %d echo %q", a.Status, a.Echo))
			default:
				lat = append(lat, time.Since(start))
			}
		case KeepAlive:
			attempts, fresh := 0, 0
			trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
				attempts++
				if !i.Reused {
					fresh++
				}
			}}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, url, nil)
			req.Host = target.Host
			req.Header.Set("User-Agent", "haproxy-sidecar-bench")
			resp, err := client.Do(req)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(io.LimitReader(resp.Body, 4096))
				resp.Body.Close()
			}
			if ctx.Err() != nil {
				break
			}
			sent++
			conns += int64(fresh)
			if attempts > 1 {
				retried++
			}
			switch {
			case err != nil:
				fail(target, err.Error())
			case resp.StatusCode < 200 || resp.StatusCode > 299 || !target.Bodies[string(body)]:
				fail(target, fmt.Sprintf("status %d body %q", resp.StatusCode, body))
			default:
				lat = append(lat, time.Since(start))
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Sent += sent
	c.stats.Failed += failed
	c.stats.Retried += retried
	c.stats.Conns += conns
	c.stats.Latencies = append(c.stats.Latencies, lat...)
	for _, e := range errs {
		if len(c.stats.Errors) < 10 {
			c.stats.Errors = append(c.stats.Errors, e)
		}
	}
}

// Pace says how the clients send: "back to back" or "one request every
// <interval>".
func (s ClientStats) Pace() string {
	if s.Interval <= 0 {
		return "back to back"
	}
	return "one request every " + s.Interval.String()
}

// Stop ends the clients and returns what they saw. A request cut short by
// Stop is not counted.
func (c *Clients) Stop() ClientStats {
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Latencies = slices.Clone(s.Latencies)
	slices.Sort(s.Latencies)
	return s
}

// ThroughputResult is one fixed-duration throughput run.
type ThroughputResult struct {
	OK, Failed int64
	Duration   time.Duration
	FirstError string
}

// Throughput sends GET path for host to 127.0.0.1:port over conns
// keep-alive connections, each request as soon as the previous answer on
// its connection was read, for d. It counts the answers accepted by want
// that arrived within d (others as failed; a connection HAProxy closed is
// reopened).
func Throughput(port int, host, path string, conns int, d time.Duration, want func(status int, body []byte) bool) ThroughputResult {
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: haproxy-sidecar-bench\r\n\r\n")
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conn net.Conn
			var br *bufio.Reader
			var okN, failedN int64
			defer func() { ok.Add(okN); failed.Add(failedN) }()
			fail := func(err error) {
				failedN++
				firstErr.CompareAndSwap(nil, err.Error())
				if conn != nil {
					conn.Close()
					conn = nil
				}
			}
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			for time.Now().Before(deadline) {
				if conn == nil {
					c, err := net.DialTimeout("tcp", addr, time.Second)
					if err != nil {
						fail(err)
						continue
					}
					conn, br = c, bufio.NewReaderSize(c, 16<<10)
					if err := conn.SetDeadline(deadline.Add(ClientTimeout)); err != nil {
						fail(err)
						continue
					}
				}
				if _, err := conn.Write(req); err != nil {
					fail(err)
					continue
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					fail(err)
					continue
				}
				body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
				resp.Body.Close()
				if err != nil {
					fail(err)
					continue
				}
				if time.Now().After(deadline) {
					break
				}
				if !want(resp.StatusCode, body) {
					fail(fmt.Errorf("status %d body %q", resp.StatusCode, body))
					continue
				}
				okN++
				if resp.Close {
					conn.Close()
					conn = nil
				}
			}
		}()
	}
	wg.Wait()
	r := ThroughputResult{OK: ok.Load(), Failed: failed.Load(), Duration: d}
	if e, _ := firstErr.Load().(string); e != "" {
		r.FirstError = e
	}
	return r
}
