package engine

import (
	"bytes"
	"io"
	"sync"

	"github.com/buttercompass/butter/proto/obs"
)

// maxLine bounds one log line; a process printing without newlines is cut
// into lines of this size rather than buffered without end.
const maxLine = 64 << 10

// LogWriter returns a writer that sends every line written to it to
// _butter.logs as a Log of the given origin (obs.OriginStdout or
// obs.OriginStderr) and level: what runtime.Spec's Stdout and Stderr want.
// The lines are the deployment's, not of one function or event: a runtime
// process may host several functions.
func (e *Engine) LogWriter(origin, level string) io.Writer {
	return &lineWriter{emit: func(line string) {
		e.writeLog(obs.Log{Level: level, Message: line, Origin: origin})
	}}
}

type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) >= maxLine {
				w.emit(string(w.buf[:maxLine]))
				w.buf = append(w.buf[:0], w.buf[maxLine:]...)
				continue
			}
			return len(p), nil
		}
		w.emit(string(bytes.TrimRight(w.buf[:i], "\r")))
		w.buf = append(w.buf[:0], w.buf[i+1:]...)
	}
}
