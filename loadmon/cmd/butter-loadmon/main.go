// Command butter-loadmon runs a load monitor replica alone: it reads every
// function's consumer lag and heartbeats and writes scale decisions to
// _butter.scale, one decision per change however many replicas run.
// `butter up` runs the same in-process.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/buttercompass/butter/loadmon/service"
	"github.com/buttercompass/butter/proto/kit"
)

func main() {
	cfg := service.DefaultConfig()
	kit.Main(kit.Command{
		Name:    "butter-loadmon",
		Service: "loadmon",
		Flags:   cfg.RegisterFlags,
		Kafka:   &cfg.Kafka,
		Run: func(ctx context.Context, logger *slog.Logger) error {
			cfg.Logger = logger
			return service.Run(ctx, cfg, os.Stdout)
		},
	})
}
