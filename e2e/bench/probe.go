package bench

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// PollInterval is how often a change is checked for: one request per
// millisecond, each over a new connection.
const PollInterval = time.Millisecond

// Answer is what HAProxy answered: the status and, for an echo backend,
// the name of the echo that served the request (its body is
// "service=<name>\n").
type Answer struct {
	Status int
	Echo   string
	// CertOrg is the Organization of the certificate HAProxy presented
	// (HTTPS only): the bench's certificates carry a marker there.
	CertOrg string
}

// Front is HAProxy's listeners, on loopback inside the namespace.
type Front struct {
	HTTPPort, HTTPSPort int
}

// Get sends one request for host and path over a new connection: HTTPS with
// SNI host when secure (the certificate is not verified: it is the test's
// own), plain HTTP otherwise. Every request is to 127.0.0.1.
func (f Front) Get(host, path string, secure bool) (Answer, error) {
	port := f.HTTPPort
	if secure {
		port = f.HTTPSPort
	}
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		return Answer{}, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return Answer{}, err
	}
	var rw io.ReadWriter = conn
	var org string
	if secure {
		tc := tls.Client(conn, &tls.Config{ServerName: host, InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err := tc.Handshake(); err != nil {
			return Answer{}, err
		}
		if o := tc.ConnectionState().PeerCertificates[0].Subject.Organization; len(o) > 0 {
			org = o[0]
		}
		rw = tc
	}
	if _, err := fmt.Fprintf(rw, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: haproxy-sidecar-bench\r\nConnection: close\r\n\r\n", path, host); err != nil {
		return Answer{}, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(rw), nil)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return Answer{}, err
	}
	a := Answer{Status: resp.StatusCode, CertOrg: org}
	if echo, ok := strings.CutPrefix(string(body), "service="); ok && resp.StatusCode == http.StatusOK {
		a.Echo = strings.TrimSpace(echo)
	}
	return a, nil
}

// ErrNotServed is returned by Poll when the wanted answer did not come
// within the limit.
var ErrNotServed = errors.New("not served")

// Poll asks for host and path every PollInterval until want accepts the
// answer, and returns the time from start (the API write's return) to that
// answer. It gives up at start+limit with ErrNotServed and the last answer
// or error seen.
func (f Front) Poll(start time.Time, limit time.Duration, host, path string, secure bool, want func(Answer) bool) (time.Duration, error) {
	return f.PollUntil(nil, start, limit, host, path, secure, want)
}

// PollUntil is Poll that also gives up as soon as stop is closed (the
// process that should serve has exited).
func (f Front) PollUntil(stop <-chan struct{}, start time.Time, limit time.Duration, host, path string, secure bool, want func(Answer) bool) (time.Duration, error) {
	deadline := start.Add(limit)
	next := start
	var last string
	for {
		a, err := f.Get(host, path, secure)
		now := time.Now()
		if err == nil && want(a) {
			return now.Sub(start), nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("status %d echo %q", a.Status, a.Echo)
		}
		if now.After(deadline) {
			return 0, fmt.Errorf("%w: http%s://%s%s within %s (last: %s)", ErrNotServed, map[bool]string{true: "s"}[secure], host, path, limit, last)
		}
		select {
		case <-stop:
			return 0, fmt.Errorf("%w: http%s://%s%s: the server exited after %s (last: %s)", ErrNotServed, map[bool]string{true: "s"}[secure], host, path, now.Sub(start).Round(time.Millisecond), last)
		default:
		}
		next = next.Add(PollInterval)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else {
			// Requests take longer than the interval: no catching up.
			next = now
		}
	}
}

// Served accepts any answer of an echo backend.
func Served(a Answer) bool { return a.Status == http.StatusOK && a.Echo != "" }

// EchoIn accepts an answer of an echo backend whose name starts with prefix.
func EchoIn(prefix string) func(Answer) bool {
	return func(a Answer) bool { return a.Status == http.StatusOK && strings.HasPrefix(a.Echo, prefix) }
}
