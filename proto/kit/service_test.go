package kit

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
)

type lifecycle struct {
	calls        []string
	provisionErr error
}

func (l *lifecycle) Provision(context.Context) error {
	l.calls = append(l.calls, "provision")
	return l.provisionErr
}
func (l *lifecycle) Serve(context.Context) error { l.calls = append(l.calls, "serve"); return nil }
func (l *lifecycle) Close()                      { l.calls = append(l.calls, "close") }
func (l *lifecycle) Addr() string                { return "127.0.0.1:1" }

func TestRunServiceLifecycle(t *testing.T) {
	var out bytes.Buffer
	ok := &lifecycle{}
	if err := RunService(context.Background(), ok, &out, "svc on http://%s"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"provision", "serve", "close"}; !slices.Equal(ok.calls, want) {
		t.Errorf("calls %v, want %v", ok.calls, want)
	}
	if out.String() != "svc on http://127.0.0.1:1\n" {
		t.Errorf("banner %q", out.String())
	}

	boom := errors.New("boom")
	failed := &lifecycle{provisionErr: boom}
	if err := RunService(context.Background(), failed, &out, "%s"); !errors.Is(err, boom) {
		t.Fatalf("err %v, want the provision error", err)
	}
	if want := []string{"provision", "close"}; !slices.Equal(failed.calls, want) {
		t.Errorf("calls after a failed provision %v, want %v: no serve, but close", failed.calls, want)
	}
}
