// Command butter-gateway runs the HTTP gateway alone; `butter up` runs the
// same in-process.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/buttercompass/butter/gateway/service"
	"github.com/buttercompass/butter/proto/kit"
)

func main() {
	cfg := service.DefaultConfig()
	kit.Main(kit.Command{
		Name:    "butter-gateway",
		Service: "gateway",
		Flags:   cfg.RegisterFlags,
		Kafka:   &cfg.Kafka,
		Run: func(ctx context.Context, logger *slog.Logger) error {
			cfg.Logger = logger
			return service.Run(ctx, cfg, os.Stdout)
		},
	})
}
