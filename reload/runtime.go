package reload

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Runtime API commands for the current worker, sent through the master socket.
//
// HAProxy answers runtime commands with free text and, through the 2.6 master
// socket, without severity prefixes (see MasterCLI). Each helper therefore states
// what success looks like for its command, verified on 2.6.12 and 3.0.11:
// most commands answer nothing on success and a sentence on error.
//
// Runtime changes live in the worker's memory only: a reload re-reads files from
// disk, so callers must also write the same change into the next generation.

// RuntimeError is a runtime command HAProxy answered with an error.
type RuntimeError struct {
	Command string
	Answer  string
}

func (e *RuntimeError) Error() string {
	return fmt.Sprintf("haproxy runtime %q: %s", e.Command, e.Answer)
}

// workerExpect runs a worker command and checks its answer with ok.
func (c *MasterCLI) workerExpect(ctx context.Context, cmd string, ok func(answer string) bool) (string, error) {
	out, err := c.Worker(ctx, cmd)
	if err != nil {
		return out, err
	}
	if !ok(out) {
		return out, &RuntimeError{Command: cmd, Answer: strings.TrimSpace(out)}
	}
	return out, nil
}

func isEmpty(answer string) bool { return strings.TrimSpace(answer) == "" }

func hasPrefix(prefix string) func(string) bool {
	return func(answer string) bool { return strings.HasPrefix(strings.TrimSpace(answer), prefix) }
}

// cliArg escapes one argument for the CLI: the parser splits on spaces and ';'
// and treats a backslash as an escape for the next character (quotes are not
// special). Newlines cannot be sent at all.
func cliArg(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("runtime: empty argument")
	}
	if strings.ContainsAny(s, "\n\r\x00") {
		return "", fmt.Errorf("runtime: argument %q contains a newline or NUL", s)
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case ' ', '\t', ';', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String(), nil
}

func cliArgs(args ...string) (string, error) {
	out := make([]string, len(args))
	for i, a := range args {
		esc, err := cliArg(a)
		if err != nil {
			return "", err
		}
		out[i] = esc
	}
	return strings.Join(out, " "), nil
}

// MapEntry is one entry of a runtime map.
type MapEntry struct {
	ID    string // HAProxy's entry pointer, e.g. "0x55cbd6866300"
	Key   string
	Value string
}

// AddMapEntry adds key → value to map mapName (the map's file name as the config
// references it, e.g. "maps/exact.map" with default-path config). An existing
// key gets a second entry; use SetMapEntry to change a value.
func (c *MasterCLI) AddMapEntry(ctx context.Context, mapName, key, value string) error {
	args, err := cliArgs(mapName, key, value)
	if err != nil {
		return err
	}
	_, err = c.workerExpect(ctx, "add map "+args, isEmpty)
	return err
}

// SetMapEntry changes the value of an existing key ("entry not found." otherwise).
func (c *MasterCLI) SetMapEntry(ctx context.Context, mapName, key, value string) error {
	args, err := cliArgs(mapName, key, value)
	if err != nil {
		return err
	}
	_, err = c.workerExpect(ctx, "set map "+args, isEmpty)
	return err
}

// DelMapEntry deletes all entries with key ("Key not found." if there is none).
func (c *MasterCLI) DelMapEntry(ctx context.Context, mapName, key string) error {
	args, err := cliArgs(mapName, key)
	if err != nil {
		return err
	}
	_, err = c.workerExpect(ctx, "del map "+args, isEmpty)
	return err
}

// ClearMap removes every entry of the map.
func (c *MasterCLI) ClearMap(ctx context.Context, mapName string) error {
	args, err := cliArgs(mapName)
	if err != nil {
		return err
	}
	_, err = c.workerExpect(ctx, "clear map "+args, isEmpty)
	return err
}

// ShowMap lists the entries of a map.
func (c *MasterCLI) ShowMap(ctx context.Context, mapName string) ([]MapEntry, error) {
	args, err := cliArgs(mapName)
	if err != nil {
		return nil, err
	}
	// Every entry line starts with its pointer ("0x..."); anything else is an
	// error such as "Unknown map identifier".
	isEntries := func(out string) bool {
		for _, line := range strings.Split(out, "\n") {
			if line != "" && !strings.HasPrefix(line, "0x") {
				return false
			}
		}
		return true
	}
	out, err := c.workerExpect(ctx, "show map "+args, isEntries)
	if err != nil {
		return nil, err
	}
	var entries []MapEntry
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		// "<id> <key> <value>": keys cannot contain a raw space on the wire, values can.
		parts := strings.SplitN(line, " ", 3)
		e := MapEntry{ID: parts[0]}
		if len(parts) > 1 {
			e.Key = parts[1]
		}
		if len(parts) > 2 {
			e.Value = parts[2]
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// SetServerAddr changes a server's address (and port when port > 0), e.g. to
// point a pre-allocated slot server at a new endpoint without reloading.
func (c *MasterCLI) SetServerAddr(ctx context.Context, backend, server, addr string, port int) error {
	target, err := cliArgs(backend + "/" + server)
	if err != nil {
		return err
	}
	a, err := cliArg(addr)
	if err != nil {
		return err
	}
	cmd := "set server " + target + " addr " + a
	if port > 0 {
		cmd += " port " + strconv.Itoa(port)
	}
	// Success answers differ by version ("IP changed from ...", "port changed
	// from ...", "no need to change the addr ..." on 2.6; "nothing changed" on 3.0);
	// errors are "No such server.", "Invalid addr ...", "Unknown command...".
	ok := func(out string) bool {
		out = strings.TrimSpace(out)
		return out == "" || strings.Contains(out, " changed from ") ||
			strings.HasPrefix(out, "no need to change") || out == "nothing changed"
	}
	_, err = c.workerExpect(ctx, cmd, ok)
	return err
}

// Server admin states accepted by SetServerState.
const (
	StateReady = "ready"
	StateDrain = "drain"
	StateMaint = "maint"
)

// SetServerState sets a server's admin state: StateReady, StateDrain or StateMaint.
func (c *MasterCLI) SetServerState(ctx context.Context, backend, server, state string) error {
	switch state {
	case StateReady, StateDrain, StateMaint:
	default:
		return fmt.Errorf("runtime: invalid server state %q", state)
	}
	target, err := cliArgs(backend + "/" + server)
	if err != nil {
		return err
	}
	_, err = c.workerExpect(ctx, "set server "+target+" state "+state, isEmpty)
	return err
}

// AddServer adds a dynamic server ("add server <backend>/<name> <addr:port>
// [params...]"). The backend needs a dynamic balance algorithm (roundrobin,
// leastconn, first, random). HAProxy adds it in maintenance: follow with
// SetServerState(..., StateReady).
func (c *MasterCLI) AddServer(ctx context.Context, backend, server, addrPort string, params ...string) error {
	args, err := cliArgs(append([]string{backend + "/" + server, addrPort}, params...)...)
	if err != nil {
		return err
	}
	_, err = c.workerExpect(ctx, "add server "+args, hasPrefix("New server registered."))
	return err
}

// DelServer removes a dynamic server. HAProxy requires it to be in maintenance
// and without connections first.
func (c *MasterCLI) DelServer(ctx context.Context, backend, server string) error {
	args, err := cliArgs(backend + "/" + server)
	if err != nil {
		return err
	}
	_, err = c.workerExpect(ctx, "del server "+args, hasPrefix("Server deleted."))
	return err
}

// ServerState is one server's line of "show servers state".
type ServerState struct {
	Backend    string
	ID         int
	Name       string
	Addr       string
	Port       int
	AdminState string // "ready", "drain" or "maint" (decoded from srv_admin_state)
	OpState    string // "down", "up" or "stopping" (from srv_op_state)
}

// ServersState lists the servers of a backend ("show servers state <backend>").
func (c *MasterCLI) ServersState(ctx context.Context, backend string) ([]ServerState, error) {
	args, err := cliArgs(backend)
	if err != nil {
		return nil, err
	}
	// Format version 1 answers start with "1"; errors are "Can't find backend." etc.
	out, err := c.workerExpect(ctx, "show servers state "+args, func(out string) bool {
		return out == "1" || strings.HasPrefix(out, "1\n")
	})
	if err != nil {
		return nil, err
	}
	return parseServersState(out)
}

func parseServersState(out string) ([]ServerState, error) {
	var servers []ServerState
	for _, line := range strings.Split(out, "\n")[1:] {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state
		// srv_uweight srv_iweight srv_time_since_last_change srv_check_status
		// srv_check_result srv_check_health srv_check_state srv_agent_state
		// bk_f_forced_id srv_f_forced_id srv_fqdn srv_port ...
		f := strings.Fields(line)
		if len(f) < 19 {
			return nil, fmt.Errorf("show servers state: short line %q", line)
		}
		s := ServerState{Backend: f[1], Name: f[3], Addr: f[4]}
		s.ID, _ = strconv.Atoi(f[2])
		s.Port, _ = strconv.Atoi(f[18])
		admin, err := strconv.Atoi(f[6])
		if err != nil {
			return nil, fmt.Errorf("show servers state: admin state %q: %w", f[6], err)
		}
		s.AdminState = adminState(admin)
		switch f[5] {
		case "0":
			s.OpState = "down"
		case "1", "2":
			s.OpState = "up"
		case "3":
			s.OpState = "stopping"
		}
		servers = append(servers, s)
	}
	return servers, nil
}

// adminState decodes srv_admin_state, which HAProxy prints in decimal (SRV_ADMF_*
// in server-t.h). Not client-native's misc.GetServerAdminState: it parses the
// field as hex, so e.g. 4 (config "disabled") decodes as ready and 16 (inherited
// drain) as maint.
func adminState(flags int) string {
	const (
		fMaint = 0x01 // forced maintenance (CLI, stats page)
		iMaint = 0x02 // inherited from a tracked server
		cMaint = 0x04 // "disabled" in the configuration
		fDrain = 0x08 // forced drain
		iDrain = 0x10 // inherited drain
		rMaint = 0x20 // DNS resolution failed
		hMaint = 0x40 // hostname not resolved at start
	)
	switch {
	case flags&(fMaint|iMaint|cMaint|rMaint|hMaint) != 0:
		return StateMaint
	case flags&(fDrain|iDrain) != 0:
		return StateDrain
	}
	return StateReady
}
