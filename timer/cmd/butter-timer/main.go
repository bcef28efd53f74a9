// Command butter-timer runs a timer replica alone: it fires tick events on
// cron schedules from descriptors and from its API, exactly once per
// scheduled time however many replicas run. `butter up` runs the same
// in-process.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/timer/service"
)

func main() {
	cfg := service.DefaultConfig()
	cfg.RegisterFlags(flag.CommandLine)
	cfg.Kafka.RegisterFlags(flag.CommandLine)
	logLevel := flag.String("log-level", kit.EnvOr("BUTTER_LOG_LEVEL", "info"), "debug, info, warn or error (env BUTTER_LOG_LEVEL)")
	flag.Parse()
	if err := run(cfg, *logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "butter-timer:", err)
		os.Exit(1)
	}
}

func run(cfg service.Config, logLevel string) error {
	if err := kit.EnvError(); err != nil {
		return err
	}
	logger, err := kit.NewLogger(os.Stderr, logLevel)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	cfg.Kafka.ClientID = "butter-timer"
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return service.Run(ctx, cfg, os.Stdout)
}
