package reload

import (
	"bufio"
	"fmt"
	"hash/maphash"
	"io"
	"maps"
	"os"
	"slices"
	"sync"
)

// Content is one file of a generation: bytes held whole (Bytes), or
// something that writes its bytes out without putting them together. The
// renderer keeps haproxy.cfg and the route maps in pieces (at 50k
// Ingresses over 10 MB); written through Content, a generation costs no
// copy of them. WriteTo must write the same bytes every time.
type Content interface {
	Size() int
	WriteTo(w io.Writer) (int64, error)
}

// Bytes is a Content held whole.
type Bytes []byte

// Size is len(b).
func (b Bytes) Size() int { return len(b) }

// WriteTo writes b to w.
func (b Bytes) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}

// Contents are a generation's files (names as in Files) as Content.
type Contents map[string]Content

// Contents are f's files as Contents.
func (f Files) Contents() Contents {
	c := make(Contents, len(f))
	for name, b := range f {
		c[name] = Bytes(b)
	}
	return c
}

// Validate checks the names as Files.Validate does.
func (c Contents) Validate() error {
	names := make(Files, len(c))
	for name := range c {
		names[name] = nil
	}
	return names.Validate()
}

// Names returns the file names in sorted order.
func (c Contents) Names() []string { return slices.Sorted(maps.Keys(c)) }

// fileSum stands for a file's bytes: its size and a 64-bit hash of them
// (hash/maphash, keyed with the store's own random seed). The store keeps
// these of the live generation, not the bytes (which, in pieces, it never
// has whole), to tell an unchanged generation and the files it can link
// from the last one instead of writing them again. Not SHA-256: at 50k
// Ingresses a write hashes about 11 MB, 6.5 ms on this project's machine
// against 1.1 ms, on the core the next pass needs. Two different files
// get the same sum with a chance of about 2^-64 per comparison, and no
// tenant can aim at that: the seed is drawn at each start and never
// leaves the process.
type fileSum struct {
	size int64
	sum  uint64
}

// sums are the fileSums of a generation's files by name.
type sums map[string]fileSum

// sumsOf hashes every file of c with seed.
func sumsOf(seed maphash.Seed, c Contents) (sums, error) {
	s := make(sums, len(c))
	var h maphash.Hash
	h.SetSeed(seed)
	for name, content := range c {
		h.Reset()
		n, err := content.WriteTo(&h)
		if err != nil {
			return nil, fmt.Errorf("files: reading %s: %w", name, err)
		}
		s[name] = fileSum{size: n, sum: h.Sum64()}
	}
	return s, nil
}

// equal reports whether both name the same files with the same sums.
func (s sums) equal(o sums) bool {
	if len(s) != len(o) {
		return false
	}
	for name, fs := range s {
		if ofs, ok := o[name]; !ok || ofs != fs {
			return false
		}
	}
	return true
}

// writeBuffers buffer a Content's many small pieces (a backend section is
// a few hundred bytes) into few writes of the file. Bytes larger than the
// buffer go to the file directly (bufio.Writer passes them through).
var writeBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// writeContent writes c to f through a pooled buffer.
func writeContent(f *os.File, c Content) error {
	bw := writeBuffers.Get().(*bufio.Writer)
	defer writeBuffers.Put(bw)
	bw.Reset(f)
	defer bw.Reset(nil) // the pool keeps no file
	if _, err := c.WriteTo(bw); err != nil {
		return err
	}
	return bw.Flush()
}
