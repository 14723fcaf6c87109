package reload

import (
	"bytes"
	"io"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/lines"
)

// NewOutputLog relays the output of an HAProxy the sidecar starts
// (ProcessOptions.Output) into log, one entry per line (in JSON logs
// HAProxy's lines stay apart from the sidecar's, and each reads as HAProxy
// wrote it), except the notice an old worker writes for each of its
// proxies when a reload stops it: "Proxy X stopped (cumulated conns: FE:
// n, BE: m).", on stderr and again through the proxy's log line. At 50k
// Ingresses that is about 20,000 lines a reload, which buried the access
// log and the sidecar's own entries and was a sixth of what the sidecar
// allocated (verified on HAProxy 2.6 and 3.0; the "quiet" setting that
// silences them also closes the standard output the access log goes to).
// They are summed into one entry ("HAProxy's old worker stopped its
// proxies") a second after the last; each is still logged at debug level.
func NewOutputLog(log *zap.Logger) io.Writer {
	return newOutputLog(log, stopQuiet)
}

// stopQuiet is how long after the last stop notice their sum is logged.
const stopQuiet = time.Second

// stopNotice is what a stop notice says: "[WARNING]  (PID) : Proxy X
// stopped (cumulated conns: FE: n, BE: m)." on stderr, or the same
// without its first part through a log line (pid -1).
type stopNotice struct {
	pid    int
	fe, be int64
}

// parseStopNotice reads a stop notice, or says line is not one. It reads
// in place: a reload at 50k Ingresses writes 20,000 of them, and a
// regular expression's submatches were 6% of what a 50k run allocated.
func parseStopNotice(line []byte) (n stopNotice, ok bool) {
	n.pid = -1
	if rest, found := bytes.CutPrefix(line, []byte("[WARNING] ")); found {
		rest = bytes.TrimLeft(rest, " ")
		if rest, found = bytes.CutPrefix(rest, []byte("(")); !found {
			return n, false
		}
		var pid int64
		if pid, rest, ok = leadingNumber(rest); !ok {
			return n, false
		}
		if line, found = bytes.CutPrefix(rest, []byte(") : ")); !found {
			return n, false
		}
		n.pid = int(pid)
	}
	rest, found := bytes.CutPrefix(line, []byte("Proxy "))
	if !found {
		return n, false
	}
	name := bytes.IndexAny(rest, " \t\n\f\r")
	if name <= 0 {
		return n, false
	}
	if rest, found = bytes.CutPrefix(rest[name:], []byte(" stopped (cumulated conns: FE: ")); !found {
		return n, false
	}
	if n.fe, rest, ok = leadingNumber(rest); !ok {
		return n, false
	}
	if rest, found = bytes.CutPrefix(rest, []byte(", BE: ")); !found {
		return n, false
	}
	if n.be, rest, ok = leadingNumber(rest); !ok {
		return n, false
	}
	return n, string(rest) == ")."
}

// leadingNumber reads the decimal digits b starts with (at least one).
func leadingNumber(b []byte) (v int64, rest []byte, ok bool) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		if v < (1<<62)/10 { // past that, more than any count: kept there
			v = v*10 + int64(b[i]-'0')
		}
		i++
	}
	return v, b[i:], i > 0
}

type outputLog struct {
	log   *zap.Logger
	quiet time.Duration

	mu    sync.Mutex
	burst stopBurst
	timer *time.Timer
}

// stopBurst sums the stop notices since the last entry about them.
type stopBurst struct {
	workers []int
	// proxies counts the notices on stderr (one per proxy), lines all.
	proxies, lines int
	fe, be         int64
}

func newOutputLog(log *zap.Logger, quiet time.Duration) io.Writer {
	o := &outputLog{log: log, quiet: quiet}
	return &lines.Writer{Line: o.line}
}

func (o *outputLog) line(line []byte) {
	line = bytes.TrimRight(line, "\r")
	if len(line) == 0 {
		return
	}
	if n, ok := parseStopNotice(line); ok {
		o.stopped(n)
		if o.log.Core().Enabled(zap.DebugLevel) {
			o.log.Debug(string(line))
		}
		return
	}
	o.log.Info(string(line))
}

// stopped adds a notice to the burst.
func (o *outputLog) stopped(n stopNotice) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := &o.burst
	b.lines++
	if n.pid >= 0 {
		b.proxies++
		b.fe += n.fe
		b.be += n.be
		if !slices.Contains(b.workers, n.pid) {
			b.workers = append(b.workers, n.pid)
		}
	}
	if o.timer == nil {
		o.timer = time.AfterFunc(o.quiet, o.flush)
	} else {
		o.timer.Reset(o.quiet)
	}
}

// flush logs the burst's sum.
func (o *outputLog) flush() {
	o.mu.Lock()
	b := o.burst
	o.burst = stopBurst{}
	o.mu.Unlock()
	if b.lines == 0 {
		return
	}
	o.log.Info("HAProxy's old worker stopped its proxies",
		zap.Ints("workers", b.workers), zap.Int("proxies", b.proxies), zap.Int("lines", b.lines),
		zap.Int64("frontend_connections", b.fe), zap.Int64("backend_connections", b.be))
}
