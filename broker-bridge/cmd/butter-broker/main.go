// Command butter-broker runs the embedded Kafka-protocol broker alone
// (the same as `butter broker`).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/buttercompass/butter/broker-bridge/broker"
)

func main() {
	var cfg broker.Config
	cfg.RegisterFlags(flag.CommandLine)
	flag.Parse()
	cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := broker.Run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "butter-broker:", err)
		os.Exit(1)
	}
}
