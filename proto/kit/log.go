package kit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// Fixed log keys (STYLE rule 6). Every service uses the same names so one
// query finds an event's lines across services and the tracer can join logs
// to traces.
const (
	KeyStream     = "stream"     // stream (not topic) name
	KeyPartition  = "partition"  // Kafka partition number
	KeyOffset     = "offset"     // Kafka offset
	KeyDeployment = "deployment" // deployment name
	KeyFn         = "fn"         // function name within a deployment
	KeyTraceID    = "trace_id"   // W3C trace id, hex; added by NewLogger's handler
	KeySpanID     = "span_id"    // W3C span id, hex; added by NewLogger's handler
	KeyError      = "error"      // an error being logged
)

// ParseLevel parses debug, info, warn or error (any case). It refuses slog's
// offsets like "info+2": nobody sets those on purpose and they would make a
// typo pass.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	default:
		return 0, fmt.Errorf("parse log level %q: %w", s, ErrLogLevel)
	}
}

// NewLogger returns a JSON logger writing to w at level (debug, info, warn or
// error; empty means info). Records logged with a context that carries a
// span get trace_id and span_id, so logs join traces without every call site
// adding them.
func NewLogger(w io.Writer, level string) (*slog.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl})
	return slog.New(traceHandler{h}), nil
}

// traceHandler adds the span of the record's context. It wraps rather than
// replaces so any slog.Handler keeps its formatting.
type traceHandler struct{ slog.Handler }

var _ slog.Handler = traceHandler{}

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(
			slog.String(KeyTraceID, sc.TraceID().String()),
			slog.String(KeySpanID, sc.SpanID().String()),
		)
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}
