package reload

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"time"
)

// The worker's own CLI socket. Through the master, each "@1" command of a
// batch costs the master a connection to the worker and a wait for its
// answer: two set-server commands took 0.28-0.30 ms on an idle machine
// (2.6.12 and 3.0.11, a kept prompt-mode session), against 0.08 ms
// written straight to a worker's "stats socket", connection included.
// Under load every hop waits for a core: at 10k Ingresses the runtime
// commands of an endpoint move were half of its time through the master.
//
// A connection per batch, never kept: a reload (the sidecar's or
// anyone's) hands the socket's path to the new worker when it binds, and
// a kept connection would stay with the old one, which would go on
// accepting commands while it no longer serves new connections. A new
// connection reaches whichever worker bound the path last: the current
// one.

// maxWorkerSocket is the longest worker socket path: HAProxy binds
// a UNIX socket under a temporary name ("<path>.<pid>.tmp", and keeps the
// old one as "<path>.<pid>.bak") and renames it, and that name must fit
// sun_path's 108 bytes with its NUL: 95 leaves room for a 7-digit PID
// (Linux's largest pid_max, 4194304).
const maxWorkerSocket = 95

// WorkerSocketFor is the worker socket that goes with the master socket
// at master: beside it, named after it, so that two HAProxies with two
// master sockets never share one. "" when the path would be too long for
// HAProxy to bind, or holds a control character no quoting carries in
// haproxy.cfg (Send then goes through the master).
func WorkerSocketFor(master string) string {
	if master == "" {
		return ""
	}
	p := strings.TrimSuffix(master, ".sock") + "-worker.sock"
	if CheckWorkerSocket(p) != nil {
		return ""
	}
	return p
}

// CheckWorkerSocket says why HAProxy could not bind a worker socket at p,
// or nil: it must be absolute, at most 95 bytes (maxWorkerSocket), and
// free of control characters, which no quoting carries in haproxy.cfg.
func CheckWorkerSocket(p string) error {
	switch {
	case !filepath.IsAbs(p):
		return fmt.Errorf("%q is not an absolute path", p)
	case len(p) > maxWorkerSocket:
		return fmt.Errorf("%q is %d bytes; HAProxy binds at most %d (a UNIX socket's path, with room for its temporary name)", p, len(p), maxWorkerSocket)
	case strings.IndexFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
		return fmt.Errorf("%q holds a control character", p)
	}
	return nil
}

// workerRoundTrip sends one line of commands to WorkerSocket and returns
// the answers. reached is false, with no error, when there is no worker
// socket or it cannot be connected to (an HAProxy started on a
// configuration without one, or a template that does not declare it):
// the caller sends the line through the master instead. After the line is
// written, an error means what ran is not known.
func (c *MasterCLI) workerRoundTrip(ctx context.Context, line string) (out string, reached bool, err error) {
	if c.WorkerSocket == "" {
		return "", false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.WorkerSocket)
	if err != nil {
		return "", false, nil
	}
	defer conn.Close()
	first, _, _ := strings.Cut(line, ";")
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	// Without "prompt" the worker runs the line and closes the
	// connection after the last answer.
	if _, err := io.WriteString(conn, line+"\n"); err != nil {
		return "", true, fmt.Errorf("worker socket %s: send %q: %w", c.WorkerSocket, first, err)
	}
	b, err := io.ReadAll(conn)
	answer := strings.TrimRight(string(b), "\n")
	if err != nil && !isConnReset(err) {
		return answer, true, fmt.Errorf("worker socket %s: %q: read: %w (answer so far: %q)", c.WorkerSocket, first, err, answer)
	}
	return answer, true, nil
}
