// Command butter-deployer runs the deployer alone (the control-plane API
// and the container manager); `butter up` runs the same in-process.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/buttercompass/butter/deployer/service"
	"github.com/buttercompass/butter/proto/kit"
)

func main() {
	cfg := service.DefaultConfig()
	cfg.RegisterFlags(flag.CommandLine)
	cfg.Kafka.RegisterFlags(flag.CommandLine)
	logLevel := flag.String("log-level", kit.EnvOr("BUTTER_LOG_LEVEL", "info"), "debug, info, warn or error (env BUTTER_LOG_LEVEL)")
	flag.Parse()
	if err := run(cfg, *logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "butter-deployer:", err)
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
	cfg.Kafka.ClientID = "butter-deployer"
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return service.Run(ctx, cfg, os.Stdout)
}
