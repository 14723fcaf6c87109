package reload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// MasterCLI talks to HAProxy's master CLI (haproxy -W -S <socket>): commands for
// the master itself (show proc, reload) and, prefixed with "@1", for the current
// worker (the runtime API: maps, servers; see runtime.go).
//
// Why not client-native's runtime client for all of this: verified against
// client-native v6.2.0 with HAProxy 2.6.12, its master-socket mode sends
// "set severity-output number;@1 <cmd>;quit". On 2.6 the master does not know
// "set severity-output", so every answer starts with an "Unknown command" help
// text, and worker errors carry no "[3]:" severity prefix, so they are not
// detected: SetServerAddr on a missing server returns nil, GetServersState fails
// to parse. On 3.0 the master accepts it, so the client works there. It also
// caches the HAProxy version in a process-wide variable, which is wrong for a
// process that talks to more than one HAProxy (our tests run 2.6 and 3.0 side by
// side), and its Reload refuses anything older than 2.7. So this file speaks the
// line protocol directly and every runtime command checks HAProxy's answer text,
// which is the same on 2.6 and 3.0.
//
// Each call opens its own connection: a reload closes master-CLI connections, and
// one connection per command keeps answers from an old master instance from being
// mistaken for a new one's. Send alone keeps one open between batches, in prompt
// mode, and checks it is still open before each (session.go).
type MasterCLI struct {
	// Socket is the master socket path given to haproxy -S.
	Socket string
	// Timeout bounds one command (connect, write, read) when ctx has no earlier
	// deadline. Zero means 10s.
	Timeout time.Duration
	// ReloadTimeout bounds how long Reload waits for the new worker when ctx has no
	// earlier deadline. Zero means DefaultReloadTimeout.
	ReloadTimeout time.Duration
	// ConfigDir, if set, is the directory of the -f config file; ReloadError
	// locations under it are made relative (as in Check).
	ConfigDir string
	// WorkerSocket, if set, is the worker's own CLI socket (a "stats socket
	// ... level admin" line of the configuration, WorkerSocketFor): Send
	// writes its batches there when it answers (worker.go).
	WorkerSocket string

	// sessions holds the connection Send keeps open (session.go).
	sessions sessions
}

// NewMasterCLI returns a client for the master socket at path.
func NewMasterCLI(socket string) *MasterCLI { return &MasterCLI{Socket: socket} }

func (c *MasterCLI) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 10 * time.Second
}

// Master sends one command to the master process and returns its answer.
func (c *MasterCLI) Master(ctx context.Context, cmd string) (string, error) {
	return c.roundTrip(ctx, cmd, true)
}

// Worker sends one command to the current worker ("@1 <cmd>") and returns its raw
// answer. HAProxy reports errors as text, so callers must interpret the answer;
// the typed helpers in runtime.go do.
func (c *MasterCLI) Worker(ctx context.Context, cmd string) (string, error) {
	return c.roundTrip(ctx, "@1 "+cmd, true)
}

// roundTrip sends line and reads until the master closes the connection. With
// quit, a "quit" line follows so the master closes after answering; a separate
// line (not ";quit") so it still runs when the first line fails to parse.
func (c *MasterCLI) roundTrip(ctx context.Context, line string, quit bool) (string, error) {
	if strings.ContainsAny(line, "\n\r") {
		return "", fmt.Errorf("master cli: command contains a newline: %q", line)
	}
	if quit {
		return c.roundTripMsg(ctx, line)
	}
	return c.send(ctx, line+"\n")
}

// roundTripMsg sends msg, which may end with a payload (Batch), and a
// "quit" line, and reads until the master closes the connection.
func (c *MasterCLI) roundTripMsg(ctx context.Context, msg string) (string, error) {
	return c.send(ctx, msg+"\nquit\n")
}

func (c *MasterCLI) send(ctx context.Context, msg string) (string, error) {
	line, _, _ := strings.Cut(msg, "\n")
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()

	conn, err := c.dial(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Unblock reads when ctx is canceled (not just when it expires).
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	if _, err := io.WriteString(conn, msg); err != nil {
		return "", fmt.Errorf("master cli %s: send %q: %w", c.Socket, line, err)
	}
	out, err := io.ReadAll(conn)
	answer := strings.TrimRight(string(out), "\n")
	if err != nil && !isConnReset(err) {
		return answer, fmt.Errorf("master cli %s: %q: read: %w (answer so far: %q)", c.Socket, line, err, answer)
	}
	return answer, nil
}

// dial connects to the master socket, retrying while it is absent or refusing:
// during a reload the master re-executes itself and the socket is briefly gone
// (seen on 2.6 as ECONNREFUSED right after a reload).
func (c *MasterCLI) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", c.Socket)
		if err == nil {
			return conn, nil
		}
		if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("master cli: dial %s: %w", c.Socket, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("master cli: dial %s: %w (last: %v)", c.Socket, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func isConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Proc is one line of the master's "show proc".
type Proc struct {
	PID     int    `json:"pid"`
	Type    string `json:"type"`    // "master", "worker", or a program name's type
	Reloads int    `json:"reloads"` // for a worker: how many reloads it has survived
	Uptime  string `json:"uptime"`
	Version string `json:"version"`
}

// ProcStatus is the parsed "show proc" answer.
type ProcStatus struct {
	Master Proc `json:"master"`
	// Reloads is the master's reload counter; FailedReloads counts failed reloads
	// since the last successful one (HAProxy resets it on success).
	Reloads       int `json:"reloads"`
	FailedReloads int `json:"failed_reloads"`
	// Workers are the current workers (normally one); OldWorkers are previous
	// generations still finishing their connections after a reload.
	Workers    []Proc `json:"workers"`
	OldWorkers []Proc `json:"old_workers"`
}

// CurrentWorker returns the PID of the current worker, or 0 if none is listed.
func (p ProcStatus) CurrentWorker() int {
	if len(p.Workers) == 0 {
		return 0
	}
	return p.Workers[0].PID
}

// "4972  master  1 [failed: 0]  0d00h04m21s  2.6.12-1+deb12u4"
var procLineRe = regexp.MustCompile(`^(\d+)\s+(\S+)\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?\s+(\S+)\s*(\S*)`)

// ShowProc runs "show proc" on the master.
func (c *MasterCLI) ShowProc(ctx context.Context) (ProcStatus, error) {
	out, err := c.Master(ctx, "show proc")
	if err != nil {
		return ProcStatus{}, err
	}
	return parseShowProc(out)
}

func parseShowProc(out string) (ProcStatus, error) {
	var st ProcStatus
	section := "master"
	sawMaster := false
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "#<PID>"):
			continue
		case line == "# workers":
			section = "workers"
			continue
		case line == "# old workers":
			section = "old"
			continue
		case strings.HasPrefix(line, "#"):
			section = "other" // "# programs"
			continue
		}
		m := procLineRe.FindStringSubmatch(line)
		if m == nil {
			if section == "other" {
				continue
			}
			return st, fmt.Errorf("show proc: unexpected line %q in %q", line, out)
		}
		p := Proc{Type: m[2], Uptime: m[5], Version: m[6]}
		p.PID, _ = strconv.Atoi(m[1])
		p.Reloads, _ = strconv.Atoi(m[3])
		switch section {
		case "master":
			st.Master, sawMaster = p, true
			st.Reloads = p.Reloads
			st.FailedReloads, _ = strconv.Atoi(m[4])
		case "workers":
			st.Workers = append(st.Workers, p)
		case "old":
			st.OldWorkers = append(st.OldWorkers, p)
		}
	}
	if !sawMaster {
		return st, fmt.Errorf("show proc: no master line in %q", out)
	}
	return st, nil
}

// OldWorkers returns how many previous worker generations are still alive
// (draining connections after reloads).
func (c *MasterCLI) OldWorkers(ctx context.Context) (int, error) {
	st, err := c.ShowProc(ctx)
	if err != nil {
		return 0, err
	}
	return len(st.OldWorkers), nil
}

// Version asks the master for its version ("show version").
func (c *MasterCLI) Version(ctx context.Context) (HAProxyVersion, error) {
	out, err := c.Master(ctx, "show version")
	if err != nil {
		return HAProxyVersion{}, err
	}
	return parseVersion(bareVersionRe, strings.TrimSpace(out))
}

// ReloadResult describes a successful reload.
type ReloadResult struct {
	Worker     int    // PID of the new current worker
	Reloads    int    // the master's reload counter afterwards
	OldWorkers int    // previous workers still alive right after the reload
	Log        string // startup log returned by HAProxy 2.7+ ("" on 2.6)
}

// ReloadError is returned when HAProxy refused a reload (the old worker keeps
// serving with the old configuration).
type ReloadError struct {
	// Log is the startup log from HAProxy 2.7+. On 2.6 the master prints it only
	// on its own stderr: Supervisor.Reload fills it from there.
	Log         string
	Diagnostics []Diagnostic // parsed from Log
	Status      ProcStatus   // "show proc" after the attempt (2.6) or zero
}

// Alerts returns only the ALERT diagnostics.
func (e *ReloadError) Alerts() []Diagnostic { return alertsIn(e.Diagnostics) }

func (e *ReloadError) Error() string {
	var alerts []string
	for _, d := range e.Diagnostics {
		if d.Severity == "ALERT" {
			alerts = append(alerts, d.String())
		}
	}
	if len(alerts) > 0 {
		return "haproxy reload failed: " + strings.Join(alerts, "; ")
	}
	if e.Log != "" {
		return "haproxy reload failed: " + lastLines(e.Log, 3)
	}
	return fmt.Sprintf("haproxy reload failed (failed reloads: %d)", e.Status.FailedReloads)
}

// DefaultReloadTimeout bounds a reload when nothing else does: about 18
// times the 1.7 s a reload of 10k Ingresses takes here until the new worker
// runs. A master that has not finished by then is parsing something that
// does not end (see ReloadTimeoutError).
const DefaultReloadTimeout = 30 * time.Second

// ReloadTimeoutError is returned by Reload when the new worker did not come
// within ReloadTimeout. The master re-executes itself to reload and is
// single-threaded: while it parses, its socket refuses connections (3.0
// never answers the "reload" already sent) and it would take no further
// reload. The old worker keeps serving meanwhile (verified on 2.6.12 and
// 3.0.11 with a lua-load script that loops), but only as long as the master
// lives: killed, its workers stop accepting at once and exit about 1.5 s
// later. Supervisor.RestartStuck replaces such a master.
type ReloadTimeoutError struct {
	Timeout time.Duration
	// Master is the PID of the master that was asked to reload.
	Master int
	// Err is the last error while waiting.
	Err error
}

func (e *ReloadTimeoutError) Error() string {
	return fmt.Sprintf("HAProxy's master (pid %d) did not finish reloading within %s: %v", e.Master, e.Timeout, e.Err)
}

func (e *ReloadTimeoutError) Unwrap() error { return e.Err }

// Reload asks the master to reload (re-read the configuration through the path
// given to -f, start a new worker, soft-stop the old ones) and waits until the
// outcome is known. A refused reload returns a *ReloadError; the old worker keeps
// serving. Reloads must come from one caller at a time: on 2.6 the outcome is
// inferred from counters another reload would also move.
//
// Written here rather than using client-native's Reload, which requires 2.7+:
//   - 2.7+ answers "Success=1|0", then "--" and the startup log.
//   - 2.6 answers nothing and closes the connection when the master re-executes.
//     Success is then confirmed with "show proc": the reload counter went up, the
//     failed counter is 0, and the current worker is a new PID. Answers from the
//     master before it re-executed still show the old counter, so they are ignored.
func (c *MasterCLI) Reload(ctx context.Context) (ReloadResult, error) {
	timeout := c.ReloadTimeout
	if timeout <= 0 {
		timeout = DefaultReloadTimeout
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	before, err := c.ShowProc(ctx)
	if err != nil {
		return ReloadResult{}, fmt.Errorf("reload: %w", err)
	}
	res, err := c.reload(ctx, before)
	if err != nil && parent.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		var re *ReloadError
		if !errors.As(err, &re) {
			return res, &ReloadTimeoutError{Timeout: timeout, Master: before.Master.PID, Err: err}
		}
	}
	return res, err
}

func (c *MasterCLI) reload(ctx context.Context, before ProcStatus) (ReloadResult, error) {
	out, err := c.roundTrip(ctx, "reload", false)
	if err != nil {
		// The master may have re-executed before answering; show proc tells.
		out = ""
	}
	if status, log, ok := parseReloadAnswer(out); ok {
		if !status {
			return ReloadResult{Log: log}, &ReloadError{Log: log, Diagnostics: ParseDiagnostics(log, c.ConfigDir)}
		}
		st, err := c.waitReloaded(ctx, before)
		if err != nil {
			return ReloadResult{Log: log}, err
		}
		return ReloadResult{Worker: st.CurrentWorker(), Reloads: st.Reloads, OldWorkers: len(st.OldWorkers), Log: log}, nil
	}
	st, err := c.waitReloaded(ctx, before)
	if err != nil {
		return ReloadResult{}, err
	}
	return ReloadResult{Worker: st.CurrentWorker(), Reloads: st.Reloads, OldWorkers: len(st.OldWorkers)}, nil
}

// parseReloadAnswer parses the 2.7+ answer "Success=1\n--\n<log>". ok is false
// for anything else (2.6's empty answer).
func parseReloadAnswer(out string) (success bool, log string, ok bool) {
	status, log, _ := strings.Cut(out, "\n--\n")
	switch strings.TrimSpace(status) {
	case "Success=1":
		return true, log, true
	case "Success=0":
		return false, log, true
	}
	return false, "", false
}

// waitReloaded polls "show proc" until the reload counter is above before's, then
// decides: failed counter > 0 means the reload was refused; otherwise wait for a
// current worker with a new PID.
func (c *MasterCLI) waitReloaded(ctx context.Context, before ProcStatus) (ProcStatus, error) {
	var last ProcStatus
	var lastErr error
	for {
		st, err := c.ShowProc(ctx)
		switch {
		case err != nil:
			lastErr = err // the master may be re-executing; retry
		case st.Master.PID != before.Master.PID:
			return st, fmt.Errorf("reload: master changed from pid %d to %d (restarted, not reloaded)", before.Master.PID, st.Master.PID)
		case st.Reloads > before.Reloads && st.FailedReloads > 0:
			return st, &ReloadError{Status: st}
		case st.Reloads > before.Reloads && st.CurrentWorker() != 0 && st.CurrentWorker() != before.CurrentWorker():
			return st, nil
		default:
			last, lastErr = st, nil
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("reload: no new worker (reloads %d -> %d, worker %d -> %d, last error: %v): %w",
				before.Reloads, last.Reloads, before.CurrentWorker(), last.CurrentWorker(), lastErr, ctx.Err())
		// Every poll interval is added to a reload's latency, half of
		// it on average; show proc is cheap.
		case <-time.After(10 * time.Millisecond):
		}
	}
}
