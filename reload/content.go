package reload

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"sort"
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
func (c Contents) Names() []string {
	names := make([]string, 0, len(c))
	for name := range c {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// fileSum stands for a file's bytes: its size and SHA-256. The store keeps
// these of the live generation, not the bytes (which, in pieces, it never
// has whole), to tell an unchanged generation and the files it can link
// from the last one instead of writing them again.
type fileSum struct {
	size int64
	sum  [sha256.Size]byte
}

// sums are the fileSums of a generation's files by name.
type sums map[string]fileSum

// sumsOf hashes every file of c.
func sumsOf(c Contents) (sums, error) {
	s := make(sums, len(c))
	h := sha256.New()
	for name, content := range c {
		h.Reset()
		n, err := content.WriteTo(h)
		if err != nil {
			return nil, fmt.Errorf("files: reading %s: %w", name, err)
		}
		var fs fileSum
		fs.size = n
		h.Sum(fs.sum[:0])
		s[name] = fs
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
