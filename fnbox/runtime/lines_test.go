package runtime

import (
	"bytes"
	"strings"
	"testing"
)

// TestLineWriterBoundsPartialLines: output without newlines is passed on
// once over maxPartial instead of held, the whole line still reaches Dst
// byte for byte, and Tail keeps only the start of a long line.
func TestLineWriterBoundsPartialLines(t *testing.T) {
	var dst bytes.Buffer
	w := &LineWriter{Dst: &dst}
	chunk := strings.Repeat("x", 32<<10)
	for range 64 { // 2 MiB, no newline
		_, _ = w.Write([]byte(chunk))
		if len(w.partial) > maxPartial+len(chunk) {
			t.Fatalf("holds %d bytes of a line", len(w.partial))
		}
	}
	_, _ = w.Write([]byte("x\nlast words\nno newline"))
	w.Flush()
	want := strings.Repeat(chunk, 64) + "x\nlast words\nno newline\n"
	if dst.String() != want {
		t.Fatalf("Dst got %d bytes, want %d", dst.Len(), len(want))
	}
	if w.Last() != "no newline" {
		t.Errorf("Last %q", w.Last())
	}
	tail := strings.Split(w.Tail(), "\n")
	if len(tail) != 3 || len(tail[0]) != tailLineMax || tail[1] != "last words" {
		t.Errorf("Tail has %d lines, the first %d bytes", len(tail), len(tail[0]))
	}
}
