package runtimetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/descriptor"
)

// TestHost is an in-memory Host for runtime tests: it records every call
// and enforces the declared-stream rule like fnbox does, so a runtime's
// tests exercise the real contract without a broker. Request answers
// {"reply": <request data>} as JSON.
type TestHost struct {
	fn       *descriptor.Function
	mu       sync.Mutex
	emits    []runtime.Emit
	requests []runtime.Emit
	logs     []LogLine
}

// LogLine is one Host.Log call recorded by TestHost.
type LogLine struct {
	Level slog.Level
	Msg   string
}

var _ runtime.Host = (*TestHost)(nil)

// NewTestHost returns a TestHost for fn; a nil fn declares no streams.
func NewTestHost(fn *descriptor.Function) *TestHost { return &TestHost{fn: fn} }

// declared reports whether the function may write to stream.
func (h *TestHost) declared(stream string) bool {
	return h.fn != nil && (stream == h.fn.Bindings.Out || slices.Contains(h.fn.Bindings.Emits, stream))
}

// Emit records e, or refuses it with ErrUndeclaredStream.
func (h *TestHost) Emit(ctx context.Context, e runtime.Emit) error {
	if !h.declared(e.Stream) {
		return fmt.Errorf("emit to %q: %w", e.Stream, runtime.ErrUndeclaredStream)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("emit to %q: %w", e.Stream, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.emits = append(h.emits, e)
	return nil
}

// Request records e and answers {"reply": data}.
func (h *TestHost) Request(ctx context.Context, e runtime.Emit) (runtime.Result, error) {
	if !h.declared(e.Stream) {
		return runtime.Result{}, fmt.Errorf("request on %q: %w", e.Stream, runtime.ErrUndeclaredStream)
	}
	if err := ctx.Err(); err != nil {
		return runtime.Result{}, fmt.Errorf("request on %q: %w", e.Stream, err)
	}
	h.mu.Lock()
	h.requests = append(h.requests, e)
	h.mu.Unlock()
	data := e.Data
	if !json.Valid(data) {
		data, _ = json.Marshal(string(data)) // text: reply with it as a JSON string
	}
	if len(e.Data) == 0 {
		data = []byte("null")
	}
	return runtime.Result{Data: fmt.Appendf(nil, `{"reply":%s}`, data), ContentType: "application/json"}, nil
}

// Log records a log line.
func (h *TestHost) Log(_ context.Context, level slog.Level, msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs = append(h.logs, LogLine{Level: level, Msg: msg})
}

// Emits returns the emits recorded so far.
func (h *TestHost) Emits() []runtime.Emit {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.emits)
}

// Requests returns the requests recorded so far.
func (h *TestHost) Requests() []runtime.Emit {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.requests)
}

// Logs returns the log lines recorded so far.
func (h *TestHost) Logs() []LogLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.logs)
}

// SyncBuffer is a bytes.Buffer safe for concurrent use, for Spec.Stdout
// and Spec.Stderr in tests: runtimes write to them from other goroutines.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends b.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
