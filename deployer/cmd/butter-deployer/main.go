// Command butter-deployer runs the deployer alone (the control-plane API
// and the container manager); `butter up` runs the same in-process.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/buttercompass/butter/deployer/service"
	"github.com/buttercompass/butter/proto/kit"
)

func main() {
	cfg := service.DefaultConfig()
	kit.Main(kit.Command{
		Name:    "butter-deployer",
		Service: "deployer",
		Flags:   cfg.RegisterFlags,
		Kafka:   &cfg.Kafka,
		Run: func(ctx context.Context, logger *slog.Logger) error {
			cfg.Logger = logger
			return service.Run(ctx, cfg, os.Stdout)
		},
	})
}
