package testenv

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// LineEcho is a TCP server speaking a line protocol that is not HTTP: every
// line it reads it answers with "<name>:<line>\n" on the same connection,
// for as long as the connection stays open. With ReadProxy it first reads a
// PROXY protocol v1 header, and answers "<name>:<source>:<line>\n", source
// being the header's client address and port; a connection that does not
// begin with one is closed unanswered.
type LineEcho struct {
	Name string
	Port int

	mu    sync.Mutex
	conns int
}

// StartLineEcho listens on a free loopback port until the test ends.
func StartLineEcho(t testing.TB, name string, readProxy bool) *LineEcho {
	t.Helper()
	return StartLineEchoAt(t, name, "127.0.0.1:0", readProxy)
}

// StartLineEchoAt is StartLineEcho on addr ("198.18.0.10:0" for a free
// port of an address of the tests' network namespace).
func StartLineEchoAt(t testing.TB, name, addr string, readProxy bool) *LineEcho {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	e := &LineEcho{Name: name, Port: ln.Addr().(*net.TCPAddr).Port}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go e.serve(c, readProxy)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return e
}

func (e *LineEcho) serve(c net.Conn, readProxy bool) {
	defer c.Close()
	e.mu.Lock()
	e.conns++
	e.mu.Unlock()
	r := bufio.NewReader(c)
	prefix := e.Name + ":"
	if readProxy {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		src, err := readProxyV1(r)
		if err != nil {
			return
		}
		c.SetReadDeadline(time.Time{})
		// The answers name the header's client: tests read it there.
		prefix += src + ":"
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if _, err := fmt.Fprintf(c, "%s%s\n", prefix, strings.TrimRight(line, "\r\n")); err != nil {
			return
		}
	}
}

// readProxyV1 reads a PROXY protocol v1 header ("PROXY TCP4 <src> <dst>
// <sport> <dport>\r\n") and returns the client as "<src>:<sport>" (IPv6
// in brackets).
func readProxyV1(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	f := strings.Fields(strings.TrimSuffix(line, "\r\n"))
	if len(f) != 6 || f[0] != "PROXY" || (f[1] != "TCP4" && f[1] != "TCP6") || !strings.HasSuffix(line, "\r\n") {
		return "", fmt.Errorf("not a PROXY v1 header: %q", line)
	}
	return net.JoinHostPort(f[2], f[4]), nil
}

// Conns is how many connections the server accepted.
func (e *LineEcho) Conns() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.conns
}

// LineConn is a client connection of the line protocol.
type LineConn struct {
	net.Conn
	r *bufio.Reader
}

// DialLine connects to addr, first sending header when it is not nil (a
// PROXY header).
func DialLine(addr string, header []byte) (*LineConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if len(header) > 0 {
		if _, err := c.Write(header); err != nil {
			c.Close()
			return nil, err
		}
	}
	return &LineConn{Conn: c, r: bufio.NewReader(c)}, nil
}

// Say sends a line and returns the answer's line, without its newline,
// within 5 s.
func (c *LineConn) Say(line string) (string, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", line); err != nil {
		return "", err
	}
	answer, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(answer, "\n"), nil
}

// SayOnce sends one line on a connection of its own (after header, when
// not nil) and returns the answer.
func SayOnce(addr string, header []byte, line string) (string, error) {
	c, err := DialLine(addr, header)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.Say(line)
}
