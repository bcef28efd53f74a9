// Command butter-bridge runs a bridge replica alone: the sources and sinks
// declared in descriptors' bridges: sections (vCenter events, webhooks in,
// HTTP sinks out), with webhooks and /livez, /readyz, /metrics on one port
// (default 127.0.0.1:8085). `butter up` runs the same in-process.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/buttercompass/butter/broker-bridge/bridge/service"
	"github.com/buttercompass/butter/proto/kit"
)

func main() {
	cfg := service.DefaultConfig()
	kit.Main(kit.Command{
		Name:    "butter-bridge",
		Service: "bridge",
		Flags:   cfg.RegisterFlags,
		Kafka:   &cfg.Kafka,
		Run: func(ctx context.Context, logger *slog.Logger) error {
			cfg.Logger = logger
			return service.Run(ctx, cfg, os.Stdout)
		},
	})
}
