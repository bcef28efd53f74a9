// Command butter-broker runs the embedded Kafka-protocol broker alone
// (the same as `butter broker`).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/kit"
)

func main() {
	var cfg broker.Config
	cfg.RegisterFlags(flag.CommandLine)
	logLevel := flag.String("log-level", kit.EnvOr("BUTTER_LOG_LEVEL", "info"), "debug, info, warn or error (env BUTTER_LOG_LEVEL)")
	flag.Parse()
	if err := run(cfg, *logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "butter-broker:", err)
		os.Exit(1)
	}
}

func run(cfg broker.Config, logLevel string) error {
	if err := kit.EnvError(); err != nil {
		return err
	}
	logger, err := kit.NewLogger(os.Stderr, logLevel)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return broker.Run(ctx, cfg, os.Stdout)
}
