// Command butter-bench measures the raw limits of this machine on the
// embedded broker (produce, consume, the consume→produce→commit loop,
// request→reply latency), then the gateway and the timer (HTTP
// request→response through a real fnbox, tick lag), real fnbox (no-op
// throughput per runtime, replay, cold start) and the platform through an
// in-process deployer and loadmon (cold start after a deploy with the
// process and docker runtimes, idle memory, wake from zero, backlog to a
// second replica) beside them, and prints them as a markdown table; with
// -o it also writes them to a file (`make bench` writes
// docs/benchmarks.md). The docker rows need a Docker engine and the images
// of `make images`: without them the run fails (leave them out with
// -only).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime/pprof"
	"slices"
	"syscall"

	"github.com/buttercompass/butter/e2e/internal/bench"
)

func main() {
	quick := flag.Bool("quick", false, "smoke run: few events, noisy figures")
	events := flag.Int("n", 0, "events per throughput measurement (default 200000, 5000 with -quick)")
	out := flag.String("o", "", "also write the report to `file`")
	raw := flag.Bool("raw", false, "measure only the raw Kafka limits, not the gateway, the timer, fnbox and the platform")
	idle := flag.Int("idle", 0, "idle node deployments of the idle memory rows (default 100, 10 with -quick)")
	only := flag.String("only", "", "measure, beside the raw limits, only the rows whose name matches `regexp`")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (broker, services and fnbox are in-process) to `file`")
	flag.Parse()

	cfg := bench.DefaultConfig()
	if *quick {
		cfg = bench.QuickConfig()
	}
	if *events != 0 {
		cfg.Events = *events
	}
	if *idle != 0 {
		cfg.IdleFunctions = *idle
	}
	if !*raw {
		cfg.Extra = append(append(append(bench.Services(), bench.Functions()...), bench.Platform()...), bench.Tracer()...)
	}
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			fail(fmt.Errorf("-only: %w", err))
		}
		cfg.Extra = slices.DeleteFunc(cfg.Extra, func(m bench.Measurement) bool { return !re.MatchString(m.Name) })
	}
	cfg.Progress = os.Stderr
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg, *out, os.Stdout)
	stop()
	if err != nil {
		pprof.StopCPUProfile()
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "butter-bench:", err)
	os.Exit(1)
}

// run measures, prints the report to stdout and writes it to file if one
// is named.
func run(ctx context.Context, cfg bench.Config, file string, stdout io.Writer) error {
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := rep.WriteMarkdown(&buf); err != nil {
		return err
	}
	if _, err := stdout.Write(buf.Bytes()); err != nil {
		return err
	}
	if file == "" {
		return nil
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
