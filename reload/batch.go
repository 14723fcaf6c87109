package reload

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Batch collects runtime commands for the current worker so that Send
// delivers them in as few master-CLI connections as possible: one pass's
// changes (a thousand map entries after a large apply) no longer cost a
// connection each. The CLI runs ';'-separated commands of one line in
// order, each with its own "@1" (verified on 2.6.12 and 3.0.11).
type Batch struct {
	cmds []string
	err  error // the first argument that cannot be sent
}

// Len is the number of commands.
func (b *Batch) Len() int { return len(b.cmds) }

// Commands are the commands as Send writes them, escaped, without the
// "@1" that sends each to the current worker: what history records and
// diff predicts is byte for byte what is sent.
func (b *Batch) Commands() []string { return slices.Clone(b.cmds) }

// Err is the first argument that cannot be sent (Send returns it).
func (b *Batch) Err() error { return b.err }

func (b *Batch) add(verb string, args ...string) {
	a, err := cliArgs(args...)
	if err != nil {
		if b.err == nil {
			b.err = err
		}
		return
	}
	b.cmds = append(b.cmds, verb+" "+a)
}

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
		if b.err == nil {
			b.err = err
		}
		return
	}
	b.add("set server", backend+"/"+server)
	b.cmds[len(b.cmds)-1] += " addr " + a + " port " + strconv.Itoa(port)
}

// SetServerFQDN makes a server resolve name (a server with resolvers,
// an ExternalName backend's): HAProxy keeps its address until the name
// resolves, then takes the answer. A name, never an address: the sidecar
// does not resolve names itself.
func (b *Batch) SetServerFQDN(backend, server, name string) {
	n, err := cliArg(name)
	if err != nil {
		if b.err == nil {
			b.err = err
		}
		return
	}
	b.add("set server", backend+"/"+server)
	b.cmds[len(b.cmds)-1] += " fqdn " + n
}

// SetServerState sets a server's admin state (StateReady, StateDrain,
// StateMaint).
func (b *Batch) SetServerState(backend, server, state string) {
	switch state {
	case StateReady, StateDrain, StateMaint:
	default:
		if b.err == nil {
			b.err = fmt.Errorf("runtime: invalid server state %q", state)
		}
		return
	}
	b.add("set server", backend+"/"+server)
	b.cmds[len(b.cmds)-1] += " state " + state
}

// maxBatchLine keeps each line well under HAProxy's CLI buffer
// (tune.bufsize, 16 KiB by default).
const maxBatchLine = 8 << 10

// Send runs the batch's commands in order. Every command of this batch
// answers nothing on success, or for "set server ... addr" and "...
// fqdn" a sentence saying what changed; any other answer is an error, returned as a
// *RuntimeError. The commands after a failed one may have run: a caller
// must treat HAProxy's state as unknown after an error (the controller
// reloads).
func (c *MasterCLI) Send(ctx context.Context, b *Batch) error {
	if b.err != nil {
		return b.err
	}
	for start := 0; start < len(b.cmds); {
		var line strings.Builder
		end := start
		for end < len(b.cmds) && (end == start || line.Len()+len(b.cmds[end])+6 < maxBatchLine) {
			if end > start {
				line.WriteString("; ")
			}
			line.WriteString("@1 " + b.cmds[end])
			end++
		}
		out, err := c.roundTrip(ctx, line.String(), true)
		if err != nil {
			return err
		}
		for _, answer := range strings.Split(out, "\n") {
			answer = strings.TrimSpace(answer)
			if answer == "" || strings.Contains(answer, " changed from ") || strings.Contains(answer, " changed its FQDN from ") ||
				strings.HasPrefix(answer, "no need to change") || answer == "nothing changed" {
				continue
			}
			return &RuntimeError{Command: fmt.Sprintf("batch of %d commands starting with %q", end-start, b.cmds[start]), Answer: answer}
		}
		start = end
	}
	return nil
}
