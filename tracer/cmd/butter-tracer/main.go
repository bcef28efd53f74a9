// Command butter-tracer runs a tracer replica alone: it indexes the
// platform's traces, logs, platform events and event lineage into its own
// data dir and serves the API and web UI. `butter up` runs the same
// in-process.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/tracer/service"
)

func main() {
	cfg := service.DefaultConfig()
	kit.Main(kit.Command{
		Name:    "butter-tracer",
		Service: "tracer",
		Flags:   cfg.RegisterFlags,
		Kafka:   &cfg.Kafka,
		Run: func(ctx context.Context, logger *slog.Logger) error {
			cfg.Logger = logger
			return service.Run(ctx, cfg, os.Stdout)
		},
	})
}
