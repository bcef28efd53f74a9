package kit

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestNewLoggerLevels(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "WARN")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", KeyDeployment, "shop", KeyPartition, 3)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("lines = %q, want only the warning", lines)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("not JSON: %q", lines[0])
	}
	if m["msg"] != "shown" || m["deployment"] != "shop" || m["partition"] != 3.0 {
		t.Fatalf("line = %v", m)
	}
	if _, ok := m[KeyTraceID]; ok {
		t.Fatalf("trace_id without a span: %v", m)
	}
}

func TestNewLoggerBadLevel(t *testing.T) {
	_, err := NewLogger(&bytes.Buffer{}, "verbose")
	if !errors.Is(err, ErrLogLevel) || !strings.Contains(err.Error(), `"verbose"`) {
		t.Fatalf("err = %v, want ErrLogLevel naming the value", err)
	}
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "": slog.LevelInfo, "Error": slog.LevelError} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v", in, got, err)
		}
	}
}
