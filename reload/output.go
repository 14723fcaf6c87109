package reload

import (
	"bytes"
	"io"
	"regexp"
	"slices"
	"strconv"
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

// proxyStopped is a stop notice: on stderr with the worker's PID, or
// through a log line without it.
var proxyStopped = regexp.MustCompile(`^(?:\[WARNING\] +\((\d+)\) : )?Proxy \S+ stopped \(cumulated conns: FE: (\d+), BE: (\d+)\)\.$`)

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
	if m := proxyStopped.FindSubmatch(line); m != nil {
		o.stopped(m)
		if o.log.Core().Enabled(zap.DebugLevel) {
			o.log.Debug(string(line))
		}
		return
	}
	o.log.Info(string(line))
}

// stopped adds a notice (proxyStopped's submatches) to the burst.
func (o *outputLog) stopped(m [][]byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := &o.burst
	b.lines++
	if len(m[1]) > 0 {
		b.proxies++
		fe, _ := strconv.ParseInt(string(m[2]), 10, 64)
		be, _ := strconv.ParseInt(string(m[3]), 10, 64)
		b.fe += fe
		b.be += be
		if pid, err := strconv.Atoi(string(m[1])); err == nil && !slices.Contains(b.workers, pid) {
			b.workers = append(b.workers, pid)
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
