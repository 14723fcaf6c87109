// Package lines splits a child process's output into whole lines. The
// sidecar relays HAProxy's output into its own log one entry per line;
// the end-to-end tests keep the sidecar's output without HAProxy's access
// log lines. Both need the same thing: a writer that sees lines, not the
// arbitrary chunks a pipe delivers.
package lines

import (
	"bytes"
	"sync"
)

// DefaultMax is the longest partial line a Writer holds when Max is zero.
const DefaultMax = 64 << 10

// Writer hands each whole line written to it to Line, without its "\n",
// in the order written. A partial line longer than Max (DefaultMax when
// zero) is handed on as it is, so that output that never ends a line
// cannot grow memory without end. A final line without "\n" stays held.
//
// One Writer may serve as both standard output and standard error of a
// process: Write is safe for concurrent use, and Line is never called
// concurrently.
type Writer struct {
	// Line receives each line. The slice is valid only during the call.
	Line func(line []byte)
	Max  int

	mu      sync.Mutex
	partial []byte
}

func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	rest := w.partial
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		w.Line(rest[:i])
		rest = rest[i+1:]
	}
	max := w.Max
	if max == 0 {
		max = DefaultMax
	}
	if len(rest) > max {
		w.Line(rest)
		rest = nil
	}
	// Keep the partial line at the front of the buffer, so that it does
	// not creep along a buffer that grows with everything ever written.
	w.partial = append(w.partial[:0], rest...)
	return len(p), nil
}
