// Command butter-timer runs a timer replica alone: it fires tick events on
// cron schedules from descriptors and from its API, exactly once per
// scheduled time however many replicas run. `butter up` runs the same
// in-process.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/timer/service"
)

func main() {
	cfg := service.DefaultConfig()
	kit.Main(kit.Command{
		Name:    "butter-timer",
		Service: "timer",
		Flags:   cfg.RegisterFlags,
		Kafka:   &cfg.Kafka,
		Run: func(ctx context.Context, logger *slog.Logger) error {
			cfg.Logger = logger
			return service.Run(ctx, cfg, os.Stdout)
		},
	})
}
