package bench

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	deployersvc "github.com/buttercompass/butter/deployer/service"
	"github.com/buttercompass/butter/proto/descriptor"
)

// TestPlatform runs, at a tiny size, one of each kind of measurement made
// through an in-process deployer: a docker cold start, the idle memory of
// two docker deployments, a wake from zero and a backlog with loadmon on
// the process runtime. It needs a Docker engine and `make images`, and
// fails without them. The full set (100 idle functions, both runtimes
// everywhere) is for `make bench` only.
func TestPlatform(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not on PATH: the bench runs real runtime processes")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cfg := QuickConfig()
	cfg.Events, cfg.Requests, cfg.Warmup = 200, 10, 2
	cfg.ColdStarts, cfg.IdleFunctions = 1, 2
	cfg.TempDir = t.TempDir()
	keep := []string{
		DeployColdStartRow(deployersvc.RuntimeDocker, descriptor.PlatformNode),
		idleMeasurementName(deployersvc.RuntimeDocker),
		idleMeasurementName(IdleShared(deployersvc.RuntimeProcess)),
		DeployColdStartRow(IdleShared(deployersvc.RuntimeProcess), descriptor.PlatformPython),
		WakeRow(deployersvc.RuntimeProcess),
		BacklogRow(deployersvc.RuntimeProcess),
	}
	cfg.Extra = slices.DeleteFunc(Platform(), func(m Measurement) bool { return !slices.Contains(keep, m.Name) })
	if len(cfg.Extra) != len(keep) {
		t.Fatalf("Platform() has %d of the measurements %q", len(cfg.Extra), keep)
	}
	cfg.Progress = &progressLog{t: t, start: time.Now()}

	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		name, limit string
		count       int
	}{
		{DeployColdStartRow(deployersvc.RuntimeDocker, descriptor.PlatformNode), RowReplyP50, 1},
		{RowIdleNode, "", 1},
		{DeployColdStartRow(IdleShared(deployersvc.RuntimeProcess), descriptor.PlatformPython), RowReplyP50, 1},
		{IdleTotalRow(2, deployersvc.RuntimeDocker, ""), "-", 2},
		{IdlePerFunctionRow(deployersvc.RuntimeDocker), RowIdleNode, 2},
		{IdleTotalRow(2, IdleShared(deployersvc.RuntimeProcess), ""), "-", 2},
		{IdleTotalRow(2, IdleShared(deployersvc.RuntimeProcess), "PSS"), "-", 2},
		{IdlePerFunctionRow(IdleShared(deployersvc.RuntimeProcess)), RowIdleNode, 2},
		{WakeRow(deployersvc.RuntimeProcess), RowReplyP50, 1},
		{BacklogDecisionRow(deployersvc.RuntimeProcess), RowReplyP50, 1},
		{BacklogReadyRow(deployersvc.RuntimeProcess), RowReplyP50, 1},
		{BacklogRow(deployersvc.RuntimeProcess), RowReplyP50, 1},
	} {
		row, ok := rep.Row(w.name)
		switch {
		case !ok:
			t.Errorf("no row %q", w.name)
		case !(row.Value > 0):
			t.Errorf("%s: figure %v, want > 0", w.name, row.Value)
		case w.limit == "-" && !row.NoLimit, w.limit != "-" && row.Limit != w.limit:
			t.Errorf("%s compares with %q (no limit: %v), want %q", w.name, row.Limit, row.NoLimit, w.limit)
		case row.Count != w.count:
			t.Errorf("%s counted %d, want %d", w.name, row.Count, w.count)
		}
	}
	dec, _ := rep.Row(BacklogDecisionRow(deployersvc.RuntimeProcess))
	second, _ := rep.Row(BacklogRow(deployersvc.RuntimeProcess))
	if dec.Value > second.Value {
		t.Errorf("scale decision after %.0fms, later than the second replica's first result after %.0fms", dec.Value, second.Value)
	}
	var md strings.Builder
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	t.Log(md.String())
}

// TestPlatformWithoutDocker: a docker measurement with no Docker engine
// fails the run before anything is measured, saying how to get one and
// the images.
func TestPlatformWithoutDocker(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	cfg := QuickConfig()
	cfg.TempDir = t.TempDir()
	cfg.Extra = slices.DeleteFunc(Platform(), func(m Measurement) bool { return !m.Docker })
	ran := false
	cfg.Extra = append(cfg.Extra, Measurement{Name: "spy", Run: func(context.Context, *Env, *Report) error { ran = true; return nil }})
	_, err := Run(t.Context(), cfg)
	if !errors.Is(err, errNoDocker) || !strings.Contains(err.Error(), "make images") || !strings.Contains(err.Error(), "DOCKER_HOST") {
		t.Fatalf("Run without an engine = %v, want %v saying DOCKER_HOST and make images", err, errNoDocker)
	}
	if ran {
		t.Error("a measurement ran without a Docker engine")
	}
}

// TestProcessMemory reads the memory of this process and finds a child
// under it, as the process idle memory rows do for fnbox and node.
func TestProcessMemory(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	children, err := childrenOf()
	if err != nil {
		t.Fatal(err)
	}
	if pids := tree(children, os.Getpid()); !slices.Contains(pids, cmd.Process.Pid) {
		t.Errorf("processes under the test %v lack its child %d", pids, cmd.Process.Pid)
	}
	m, err := readMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.rss <= 0 || m.pss <= 0 || m.pss > m.rss {
		t.Errorf("memory %+v MiB, want 0 < PSS ≤ RSS", m)
	}
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median = %v, want 2", got)
	}
}
