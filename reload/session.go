package reload

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"
)

// session is a master-CLI connection Send keeps open in prompt mode
// between batches: a runtime change then costs its commands' round trips
// (the master opens a connection to the worker for each "@1" command,
// whatever the client does) without a connect, a "quit" and a close of
// its own. Measured on 2.6.12 and 3.0.11 with two commands: 0.9 ms a
// batch on a new connection, 0.7 ms on the session, on two loaded cores.
//
// HAProxy closes it when the master re-executes (a reload) or after the
// CLI's idle timeout: a session that has been closed is found before a
// batch is written to it (alive) and replaced by a new one, so a batch is
// never written to a connection nobody reads. Lines with a payload (the
// master prompts for each payload line) go on a connection of their own.
type session struct {
	conn net.Conn
	r    *bufio.Reader
}

// isPrompt says whether line (since the last newline) is what the master
// writes after each command's answer in prompt mode, on 2.6 and 3.0:
// "master> ", or with its state after a failed reload,
// "master[ReloadFailed]> ".
func isPrompt(line string) bool {
	rest, ok := strings.CutPrefix(line, "master")
	if !ok || !strings.HasSuffix(rest, "> ") {
		return false
	}
	state := strings.TrimSuffix(rest, "> ")
	return state == "" || strings.HasPrefix(state, "[") && strings.HasSuffix(state, "]") && !strings.ContainsAny(state, " \n")
}

// noTarget starts the master's answer to a command for a worker it does
// not have ("@1" while no worker runs).
const noTarget = "Can't find the target PID"

type sessions struct {
	mu  sync.Mutex
	cur *session
}

// openSession connects and turns prompt mode on.
func (c *MasterCLI) openSession(ctx context.Context) (*session, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	s := &session{conn: conn, r: bufio.NewReader(conn)}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, "prompt\n"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("master cli %s: prompt: %w", c.Socket, err)
	}
	if _, err := s.answers(1); err != nil {
		conn.Close()
		return nil, fmt.Errorf("master cli %s: prompt: %w", c.Socket, err)
	}
	return s, nil
}

// alive reports whether the master has not closed the session (nor sent
// anything unasked), without waiting: a non-blocking peek at the socket
// (a read with a deadline already passed would not look at it).
func (s *session) alive() bool {
	if s.r.Buffered() > 0 {
		return false
	}
	sc, ok := s.conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var buf [1]byte
	var peekErr error
	if err := rc.Read(func(fd uintptr) bool {
		_, _, peekErr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // never wait for the poller
	}); err != nil {
		return false
	}
	// Nothing to read yet: open. Zero bytes (no error): closed; bytes:
	// nobody asked for them.
	return errors.Is(peekErr, syscall.EAGAIN)
}

// answers reads n prompts and returns what came before each of them,
// joined by newlines.
func (s *session) answers(n int) (string, error) {
	var out strings.Builder
	var line strings.Builder
	for n > 0 {
		b, err := s.r.ReadByte()
		if err != nil {
			return out.String() + line.String(), err
		}
		line.WriteByte(b)
		if b == '\n' {
			if strings.HasPrefix(line.String(), noTarget) {
				// The master drops the rest of the line (3.0) or
				// closes the connection (2.6): no more prompts come.
				return out.String() + line.String(), errors.New(strings.TrimSpace(line.String()))
			}
			out.WriteString(line.String())
			line.Reset()
			continue
		}
		if b == ' ' && isPrompt(line.String()) {
			line.Reset()
			n--
		}
	}
	return out.String(), nil
}

// sessionRoundTrip sends one line of n commands (no payload) on the kept
// session, opening one when there is none or the last was closed, and
// returns the answers. After an error the session is dropped: what ran
// is not known (the caller reloads).
func (c *MasterCLI) sessionRoundTrip(ctx context.Context, line string, n int) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	c.sessions.mu.Lock()
	defer c.sessions.mu.Unlock()
	s := c.sessions.cur
	c.sessions.cur = nil
	if s != nil && !s.alive() {
		s.conn.Close()
		s = nil
	}
	if s == nil {
		var err error
		if s, err = c.openSession(ctx); err != nil {
			return "", err
		}
	}
	first, _, _ := strings.Cut(line, ";")
	fail := func(what string, err error, answer string) (string, error) {
		s.conn.Close()
		return answer, fmt.Errorf("master cli %s: %s %q: %w (answer so far: %q)", c.Socket, what, first, err, answer)
	}
	dl, _ := ctx.Deadline()
	if err := s.conn.SetDeadline(dl); err != nil {
		return fail("deadline", err, "")
	}
	stop := context.AfterFunc(ctx, func() { _ = s.conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := io.WriteString(s.conn, line+"\n"); err != nil {
		return fail("send", err, "")
	}
	out, err := s.answers(n)
	if err != nil {
		return fail("read", err, out)
	}
	c.sessions.cur = s
	return strings.TrimRight(out, "\n"), nil
}

// Close closes the connection Send keeps open, if any.
func (c *MasterCLI) Close() error {
	c.sessions.mu.Lock()
	defer c.sessions.mu.Unlock()
	if c.sessions.cur == nil {
		return nil
	}
	err := c.sessions.cur.conn.Close()
	c.sessions.cur = nil
	return err
}
