package runtime

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// tailLines is how many lines LineWriter keeps for Tail (a FunctionError's Stack).
const tailLines = 20

// LineWriter forwards a function process's output to Dst a whole line at a
// time (fnbox turns each write into a log record, so half lines would split
// records) and remembers the last lines: the last one is the message of a
// failure, as with most command-line tools.
type LineWriter struct {
	Dst     io.Writer
	mu      sync.Mutex
	partial []byte
	tail    []string
}

func (w *LineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.line(w.partial[:i+1])
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

// line handles one complete line, newline included.
func (w *LineWriter) line(l []byte) {
	if w.Dst != nil {
		w.Dst.Write(l) // a failing log sink must not fail the function
	}
	if s := strings.TrimSpace(string(l)); s != "" {
		w.tail = append(w.tail, s)
		if len(w.tail) > tailLines {
			w.tail = w.tail[1:]
		}
	}
}

// Flush passes on a last line without a newline.
func (w *LineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.line(append(w.partial, '\n'))
		w.partial = nil
	}
}

// Last returns the last non-empty line.
func (w *LineWriter) Last() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.tail) == 0 {
		return ""
	}
	return w.tail[len(w.tail)-1]
}

// Tail returns the last lines, joined.
func (w *LineWriter) Tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.tail, "\n")
}
