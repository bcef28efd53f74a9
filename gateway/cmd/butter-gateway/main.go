// Command butter-gateway runs the HTTP gateway alone; `butter up` runs the
// same in-process.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/buttercompass/butter/gateway/service"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

func main() {
	cfg := service.DefaultConfig()
	cfg.RegisterFlags(flag.CommandLine)
	cfg.Kafka.RegisterFlags(flag.CommandLine)
	logLevel := flag.String("log-level", kit.EnvOr("BUTTER_LOG_LEVEL", "info"), "debug, info, warn or error (env BUTTER_LOG_LEVEL)")
	flag.Parse()
	if err := run(cfg, *logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "butter-gateway:", err)
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
	cfg.Kafka.ClientID = "butter-gateway"
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	spans, err := cfg.Kafka.NewClient()
	if err != nil {
		return err
	}
	defer spans.Close()
	shutdown, err := kit.StartTelemetry(ctx, kit.TelemetryConfig{
		Service: "gateway", Kafka: spans, Topic: cfg.Kafka.Namespace().Topic(topics.Traces), Logger: logger,
	})
	if err != nil {
		return err
	}
	defer func() { _ = shutdown(context.WithoutCancel(ctx)) }()
	return service.Run(ctx, cfg, os.Stdout)
}
