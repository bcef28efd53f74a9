package runtime

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// tailLines is how many lines LineWriter keeps for Tail (a FunctionError's Stack).
const tailLines = 20

// maxPartial bounds the start of a line held while its newline has not
// come: a process printing without newlines must not grow fnbox's memory.
// Beyond it what came is passed on as is (Dst, fnbox's log writer, cuts
// long lines itself), and Tail keeps only the line's first tailLineMax
// bytes.
const (
	maxPartial  = 64 << 10
	tailLineMax = 1 << 10
)

// LineWriter forwards a function process's output to Dst a whole line at a
// time (fnbox turns each write into a log record, so half lines would split
// records) and remembers the last lines: the last one is the message of a
// failure, as with most command-line tools.
type LineWriter struct {
	Dst     io.Writer
	mu      sync.Mutex
	partial []byte
	tail    []string
	// long is set while the rest of a line longer than maxPartial comes:
	// its start is already passed on and in tail.
	long bool
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
		if w.long {
			w.pass(w.partial[:i+1])
			w.long = false
		} else {
			w.line(w.partial[:i+1])
		}
		w.partial = w.partial[i+1:]
	}
	if len(w.partial) > maxPartial {
		if !w.long {
			w.remember(string(w.partial[:tailLineMax]))
		}
		w.pass(w.partial)
		w.partial, w.long = nil, true
	}
	return len(p), nil
}

// pass writes b on to Dst.
func (w *LineWriter) pass(b []byte) {
	if w.Dst != nil {
		w.Dst.Write(b) // a failing log sink must not fail the function
	}
}

// remember adds a line to the tail.
func (w *LineWriter) remember(s string) {
	if s = strings.TrimSpace(s); s != "" {
		w.tail = append(w.tail, s)
		if len(w.tail) > tailLines {
			w.tail = w.tail[1:]
		}
	}
}

// line handles one complete line, newline included.
func (w *LineWriter) line(l []byte) {
	w.pass(l)
	w.remember(string(l[:min(len(l), tailLineMax)]))
}

// Flush passes on a last line without a newline.
func (w *LineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 || w.long {
		if w.long {
			w.pass(append(w.partial, '\n'))
		} else {
			w.line(append(w.partial, '\n'))
		}
		w.partial, w.long = nil, false
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
