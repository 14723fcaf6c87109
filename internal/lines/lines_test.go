package lines

import (
	"slices"
	"strings"
	"testing"
)

func collect(max int) (*Writer, *[]string) {
	var got []string
	return &Writer{Max: max, Line: func(l []byte) { got = append(got, string(l)) }}, &got
}

// Lines cut anywhere by the pipe come out whole, empty lines and "\r"
// included; the last line waits for its "\n".
func TestWriterSplitsChunksIntoLines(t *testing.T) {
	w, got := collect(0)
	for _, chunk := range []string{"one\ntw", "o\r\n", "\n", "thr", "ee\nfour"} {
		if n, err := w.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	if want := []string{"one", "two\r", "", "three"}; !slices.Equal(*got, want) {
		t.Fatalf("lines %q, want %q", *got, want)
	}
	w.Write([]byte("\n"))
	if last := (*got)[len(*got)-1]; last != "four" {
		t.Errorf("last line %q, want four", last)
	}
}

// Output that never ends a line is handed on once it passes Max, and
// the buffer starts again.
func TestWriterBoundsAPartialLine(t *testing.T) {
	w, got := collect(10)
	w.Write([]byte("0123456789"))
	if len(*got) != 0 {
		t.Fatalf("a partial line of Max bytes was handed on: %q", *got)
	}
	w.Write([]byte("ab"))
	w.Write([]byte("cd\n"))
	if want := []string{"0123456789ab", "cd"}; !slices.Equal(*got, want) {
		t.Fatalf("lines %q, want %q", *got, want)
	}
	if len(w.partial) != 0 {
		t.Errorf("%d bytes still held", len(w.partial))
	}
}

// The default bound is DefaultMax.
func TestWriterDefaultMax(t *testing.T) {
	w, got := collect(0)
	w.Write([]byte(strings.Repeat("x", DefaultMax)))
	if len(*got) != 0 {
		t.Fatalf("DefaultMax bytes were handed on")
	}
	w.Write([]byte("y"))
	if len(*got) != 1 || len((*got)[0]) != DefaultMax+1 {
		t.Fatalf("got %d lines", len(*got))
	}
}
