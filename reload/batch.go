package reload

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
)

// Batch collects runtime commands for the current worker so that Send
// delivers them in as few master-CLI connections as possible: one pass's
// changes (a thousand map entries after a large apply) no longer cost a
// connection each. The CLI runs ';'-separated commands of one line in
// order, each with its own "@1" (verified on 2.6.12 and 3.0.11).
type Batch struct {
	cmds []command
	err  error // the first argument that cannot be sent
}

// command is one runtime command: its line (escaped, without "@1") and,
// for a command that takes one (set ssl cert, add ssl crt-list), the
// payload HAProxy reads after "<<" up to an empty line.
type command struct {
	line    string
	payload string
}

// Len is the number of commands.
func (b *Batch) Len() int { return len(b.cmds) }

// Commands are the commands as Send writes them, escaped, without the
// "@1" that sends each to the current worker: what history records and
// diff predicts is byte for byte what is sent, but for payloads: a
// certificate's is a private key, so it is named by its size and digest
// ("<< [certificate and key: 1834 bytes, sha256 3f2a…]"), never written
// out; a crt-list line's is written as it is.
func (b *Batch) Commands() []string {
	out := make([]string, len(b.cmds))
	for i, c := range b.cmds {
		out[i] = c.line
		if c.payload != "" {
			out[i] += " << " + c.shownPayload()
		}
	}
	return out
}

// shownPayload is how Commands shows a payload.
func (c command) shownPayload() string {
	if strings.HasPrefix(c.line, "set ssl cert ") {
		sum := sha256.Sum256([]byte(c.payload))
		return fmt.Sprintf("[certificate and key: %d bytes, sha256 %x]", len(c.payload), sum[:8])
	}
	return c.payload
}

// Err is the first argument that cannot be sent (Send returns it).
func (b *Batch) Err() error { return b.err }

func (b *Batch) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

func (b *Batch) add(verb string, args ...string) {
	a, err := cliArgs(args...)
	if err != nil {
		b.fail(err)
		return
	}
	b.cmds = append(b.cmds, command{line: verb + " " + a})
}

// addTo adds verb with arg escaped and rest as it is (already escaped).
func (b *Batch) addTo(verb, arg, rest string) {
	a, err := cliArg(arg)
	if err != nil {
		b.fail(err)
		return
	}
	b.cmds = append(b.cmds, command{line: verb + " " + a + rest})
}

// addPayload adds a command with a payload. The payload ends at the first
// empty line, so it may have none; nor a CR or NUL.
func (b *Batch) addPayload(verb, arg, payload string) {
	payload = strings.TrimRight(payload, "\n")
	switch {
	case payload == "":
		b.fail(fmt.Errorf("runtime: %s %s: empty payload", verb, arg))
		return
	case strings.Contains(payload, "\n\n") || strings.ContainsAny(payload, "\r\x00"):
		b.fail(fmt.Errorf("runtime: %s %s: the payload has an empty line, a CR or a NUL", verb, arg))
		return
	case len(payload) > MaxPayload:
		b.fail(fmt.Errorf("runtime: %s %s: a payload of %d bytes is over %d", verb, arg, len(payload), MaxPayload))
		return
	}
	a, err := cliArg(arg)
	if err != nil {
		b.fail(err)
		return
	}
	b.cmds = append(b.cmds, command{line: verb + " " + a, payload: payload})
}

// MaxPayload is the largest payload a Batch sends. HAProxy collects a
// payload in the CLI's buffer (tune.bufsize, 16 KiB by default) with the
// command before it; a certificate chain larger than this is applied by a
// reload instead (the planner asks PayloadFits).
const MaxPayload = 12 << 10

// PayloadFits reports whether a payload of n bytes can be sent.
func PayloadFits(n int) bool { return n <= MaxPayload }

// NewSSLCert creates an empty entry for a certificate file in HAProxy's
// certificate store; SetSSLCert and CommitSSLCert fill it.
func (b *Batch) NewSSLCert(file string) { b.add("new ssl cert", file) }

// SetSSLCert opens (or updates) a transaction replacing a certificate
// file's certificate chain and key with pem.
func (b *Batch) SetSSLCert(file string, pem []byte) { b.addPayload("set ssl cert", file, string(pem)) }

// CommitSSLCert makes a certificate's transaction live: every handshake
// after it gets the new certificate, the ones under way keep the old.
func (b *Batch) CommitSSLCert(file string) { b.add("commit ssl cert", file) }

// DelSSLCert takes a certificate no crt-list line uses any more out of the
// store.
func (b *Batch) DelSSLCert(file string) { b.add("del ssl cert", file) }

// AddCrtList adds a line to a crt-list: the certificate file (already in
// the store) offered for the SNI names sni. Names and file may hold no
// whitespace: the line is parsed as a crt-list file's.
func (b *Batch) AddCrtList(list, file string, sni []string) {
	line := file
	for _, s := range append([]string{file}, sni...) {
		if s == "" || strings.ContainsAny(s, " \t\n\r\x00[]!#") {
			b.fail(fmt.Errorf("runtime: crt-list line for %s: %q cannot be written in a crt-list", file, s))
			return
		}
	}
	if len(sni) > 0 {
		line += " " + strings.Join(sni, " ")
	}
	b.addPayload("add ssl crt-list", list, line)
}

// DelCrtList deletes a certificate's line from a crt-list (the file has
// one line there).
func (b *Batch) DelCrtList(list, file string) { b.add("del ssl crt-list", list, file) }

// AddMap adds key → value to map mapName (see AddMapEntry).
func (b *Batch) AddMap(mapName, key, value string) { b.add("add map", mapName, key, value) }

// SetMap changes the value of an existing key.
func (b *Batch) SetMap(mapName, key, value string) { b.add("set map", mapName, key, value) }

// DelMap deletes key.
func (b *Batch) DelMap(mapName, key string) { b.add("del map", mapName, key) }

// SetServerAddr points a server (a slot) at addr:port.
func (b *Batch) SetServerAddr(backend, server, addr string, port int) {
	a, err := cliArg(addr)
	if err != nil {
		b.fail(err)
		return
	}
	b.addTo("set server", backend+"/"+server, " addr "+a+" port "+strconv.Itoa(port))
}

// SetServerFQDN makes a server resolve name (a server with resolvers,
// an ExternalName backend's): HAProxy keeps its address until the name
// resolves, then takes the answer. A name, never an address: the sidecar
// does not resolve names itself.
func (b *Batch) SetServerFQDN(backend, server, name string) {
	n, err := cliArg(name)
	if err != nil {
		b.fail(err)
		return
	}
	b.addTo("set server", backend+"/"+server, " fqdn "+n)
}

// SetServerState sets a server's admin state (StateReady, StateDrain,
// StateMaint).
func (b *Batch) SetServerState(backend, server, state string) {
	switch state {
	case StateReady, StateDrain, StateMaint:
	default:
		b.fail(fmt.Errorf("runtime: invalid server state %q", state))
		return
	}
	b.addTo("set server", backend+"/"+server, " state "+state)
}

// maxBatchLine keeps each line well under HAProxy's CLI buffer
// (tune.bufsize, 16 KiB by default).
const maxBatchLine = 8 << 10

// Send runs the batch's commands in order. Every command of this batch
// answers nothing on success, or a sentence saying what it did (see
// answeredOK); any other answer is an error, returned as a
// *RuntimeError. The commands after a failed one may have run: a caller
// must treat HAProxy's state as unknown after an error (the controller
// reloads).
//
// Commands go ';'-separated on lines of at most maxBatchLine, each line
// to the worker's own socket (WorkerSocket) when it has one, otherwise on
// the master connection Send keeps open in prompt mode (session.go). A
// command with a payload ends its line, which goes to the master on a
// connection of its own: the payload follows "<<" on the next lines, up
// to an empty one.
func (c *MasterCLI) Send(ctx context.Context, b *Batch) error {
	if b.err != nil {
		return b.err
	}
	for start := 0; start < len(b.cmds); {
		// line goes to the master ("@1" before each command), direct
		// to the worker's own socket (WorkerSocket).
		var line, direct strings.Builder
		end := start
		// A payload goes through HAProxy's CLI buffer with its line:
		// both together stay under maxBatchLine, or the payload's
		// command starts a line of its own (MaxPayload leaves room).
		payload := false
		for end < len(b.cmds) && (end == start || line.Len()+len(b.cmds[end].line)+len(b.cmds[end].payload)+8 < maxBatchLine) {
			if end > start {
				line.WriteString("; ")
				direct.WriteString("; ")
			}
			line.WriteString("@1 " + b.cmds[end].line)
			direct.WriteString(b.cmds[end].line)
			end++
			if p := b.cmds[end-1].payload; p != "" {
				line.WriteString(" <<\n" + p + "\n")
				payload = true
				break
			}
		}
		var out string
		var err error
		reached := false
		if !payload {
			out, reached, err = c.workerRoundTrip(ctx, direct.String())
		}
		switch {
		case reached:
		case payload:
			out, err = c.roundTripMsg(ctx, line.String())
		default:
			out, err = c.sessionRoundTrip(ctx, line.String(), end-start)
		}
		if err != nil {
			return err
		}
		for _, answer := range strings.Split(out, "\n") {
			if answer = strings.TrimSpace(answer); !answeredOK(answer) {
				return &RuntimeError{Command: fmt.Sprintf("batch of %d commands starting with %q", end-start, b.cmds[start].line), Answer: answer}
			}
		}
		start = end
	}
	return nil
}

// answeredOK reports whether a line of a batch's answer says a command
// succeeded: nothing, or what HAProxy 2.6.12 and 3.0.11 answer when a
// server's address or name, or a certificate, changed. Their errors are
// other sentences ("Can't ...", "No such ...", "Key not found.").
func answeredOK(answer string) bool {
	if answer == "" || answer == "Success!" || answer == "nothing changed" || strings.HasPrefix(answer, "no need to change") {
		return true
	}
	for _, ok := range []string{" changed from ", " changed its FQDN from "} {
		if strings.Contains(answer, ok) {
			return true
		}
	}
	for _, ok := range [][2]string{
		{"New empty certificate store '", "'!"},
		{"Transaction created for certificate ", "!"},
		{"Transaction updated for certificate ", "!"},
		{"Committing ", ""}, // 3.0 adds a dot per bind line it updates
		{"Inserting certificate '", "."},
		{"Entry '", "!"},
		{"Certificate '", "' deleted!"},
	} {
		if strings.HasPrefix(answer, ok[0]) && strings.HasSuffix(answer, ok[1]) {
			return true
		}
	}
	return false
}
