package commands

import (
	"flag"

	"github.com/spf13/cobra"

	"github.com/buttercompass/butter/broker-bridge/broker"
)

func (a *app) brokerCmd() *cobra.Command {
	var cfg broker.Config
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run the embedded Kafka-protocol broker alone",
		Long: `Run the embedded broker alone: a single-node, persistent Kafka-protocol
broker any Kafka client (franz-go, librdkafka/kcat, the Java client) can use.
Acknowledged events survive kill -9; with --sync they also survive a power
cut.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Logger = a.logger()
			return broker.Run(cmd.Context(), cfg, a.io.Out)
		},
	}
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	cmd.Flags().AddGoFlagSet(fs)
	cmd.Flags().BoolVar(&cfg.Repair, "repair", false, "if the data dir cannot be loaded, move what is broken to <data>/broker/quarantine/<time>/ and start without it (logged)")
	return cmd
}
