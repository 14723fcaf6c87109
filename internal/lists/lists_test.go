package lists

import "testing"

func TestSame(t *testing.T) {
	a := []int{1, 2, 3}
	b := append([]int(nil), a...)
	if !Same(a, a) || !Same(a[:0], b[:0]) || Same(a, b) || Same(a, a[:2]) || Same(a[1:], a) {
		t.Error("Same: the same slice only (empty ones alike)")
	}
}

func TestResized(t *testing.T) {
	buf := Resized[int](nil, 8)
	if len(buf) != 8 || cap(buf) != 9 {
		t.Fatalf("new buffer: len %d cap %d, want 8 and an eighth more", len(buf), cap(buf))
	}
	buf[0] = 7
	if again := Resized(buf, 9); &again[0] != &buf[0] || again[0] != 7 || len(again) != 9 {
		t.Error("a buffer with room is reused as it is")
	}
	if grown := Resized(buf, 10); &grown[0] == &buf[0] {
		t.Error("a buffer too short is made again")
	}
}
