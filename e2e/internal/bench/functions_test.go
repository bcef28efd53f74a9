package bench

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/descriptor"
)

// TestFunctions runs every fnbox measurement at a tiny size on a real
// broker with real runtime processes, and checks each row is there, is
// compared with the right raw row and counted what it should.
func TestFunctions(t *testing.T) {
	for _, cmd := range []string{"node", "python3", "go"} {
		if _, err := exec.LookPath(cmd); err != nil {
			t.Fatalf("%s is not on PATH: the bench runs real runtime processes", cmd)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cfg := QuickConfig()
	cfg.Events, cfg.Requests, cfg.Warmup = 200, 10, 2
	cfg.FnEvents, cfg.ExecEvents, cfg.ColdStarts = 50, 10, 1
	cfg.TempDir = t.TempDir()
	cfg.Extra = Functions()
	cfg.Progress = &progressLog{t: t, start: time.Now()}

	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}

	want := map[string]struct {
		limit string
		count int
	}{
		ReplayRow(): {RowConsume, cfg.FnEvents},
	}
	for _, p := range FnPlatforms {
		for _, b := range FnBatches {
			n := cfg.FnEvents
			if p == descriptor.PlatformExec && b == 1 {
				n = cfg.ExecEvents
			}
			want[NoopRow(p, b)] = struct {
				limit string
				count int
			}{RowPipeline, n}
		}
	}
	for _, p := range ColdStartPlatforms {
		want[ColdStartRow(p)] = struct {
			limit string
			count int
		}{RowReplyP50, cfg.ColdStarts}
	}
	for name, w := range want {
		row, ok := rep.Row(name)
		switch {
		case !ok:
			t.Errorf("no row %q", name)
		case !(row.Value > 0):
			t.Errorf("%s: figure %v, want > 0", name, row.Value)
		case row.Limit != w.limit:
			t.Errorf("%s compares with %q, want %q", name, row.Limit, w.limit)
		case row.Count != w.count:
			t.Errorf("%s counted %d, want %d", name, row.Count, w.count)
		}
	}

	var md strings.Builder
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"| " + NoopRow(descriptor.PlatformExec, 1) + " | ", "- **cold start <platform>**", "- **" + ReplayRow() + "**"} {
		if !strings.Contains(md.String(), s) {
			t.Errorf("markdown lacks %q:\n%s", s, md.String())
		}
	}
}

// TestFunctionFailureIsReported checks that a function that cannot load
// ends its measurement with fnbox's reason, not a timeout.
func TestFunctionFailureIsReported(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cfg := QuickConfig()
	cfg.Events, cfg.Requests, cfg.Warmup = 10, 1, 0
	cfg.TempDir = t.TempDir()
	cfg.Extra = []Measurement{{Name: "broken", Run: func(ctx context.Context, env *Env, rep *Report) error {
		f, err := env.newFunction(ctx, "bench-broken", descriptor.PlatformNode, 1)
		if err != nil {
			return err
		}
		f.desc.Functions[0].Fn = "missing.js:noop"
		ctx, cancelCause := context.WithCancelCause(ctx)
		defer cancelCause(nil)
		res, err := newResults(env, f.out, nil)
		if err != nil {
			return err
		}
		defer res.close()
		return runUntil(ctx, env, f, res, 1, cancelCause, nil)
	}}}
	_, err := Run(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "fnbox stopped") || ctx.Err() != nil {
		t.Fatalf("Run = %v, want the fnbox's own failure before the deadline", err)
	}
	t.Log(err)
}

// progressLog logs each measurement as it starts, with the time since the
// test began: where a slow run spends it.
type progressLog struct {
	t     *testing.T
	start time.Time
}

func (p *progressLog) Write(b []byte) (int, error) {
	p.t.Logf("%5.1fs %s", time.Since(p.start).Seconds(), strings.TrimSpace(string(b)))
	return len(b), nil
}
