// Package commands holds the butter subcommands, one file per command
// family. Every command reports failure as an error; only main exits.
package commands

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/kit"
)

// IO is where a command reads and writes, so tests can run commands
// in-process.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
}

// SilentError fails a command whose problem was already printed in full
// (for example every problem of an invalid descriptor): main exits 1
// without printing it again.
type SilentError struct{ Err error }

func (e SilentError) Error() string { return e.Err.Error() }
func (e SilentError) Unwrap() error { return e.Err }

// app is what every command shares: the streams, the Kafka settings.
type app struct {
	io    IO
	kafka kit.KafkaConfig
	// clientConfig is --client-config: a librdkafka properties file with
	// the brokers and login (see useClientConfig).
	clientConfig string
	configured   bool // useClientConfig ran
	// contextFile is --context (BUTTER_CONTEXT), data is --data of a
	// client command: where the client context is read (context.go).
	contextFile, data string
	cc                *clientContext
	ccLoaded          bool
	ccErr             error
	rootCmd           *cobra.Command
	closers           []func()
}

// Execute runs the butter command line args.
func Execute(ctx context.Context, args []string, stdio IO) error {
	a := &app{io: stdio}
	defer func() {
		for _, c := range a.closers {
			c()
		}
	}()
	root := a.root()
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func (a *app) root() *cobra.Command {
	stdio := a.io
	root := &cobra.Command{
		Use:   "butter",
		Short: "Butter Compass: functions on persistent event streams",
		Long: `Butter Compass runs functions on persistent, replayable event streams
(Kafka topics). 'butter up' starts the platform on an embedded broker; the
other commands talk to it. 'butter up' writes <data>/context.json (--data or
BUTTER_DATA, default ./.butter) with the address of every part it started;
every other command reads it, or the file of --context (BUTTER_CONTEXT), to
find the broker, its login, the deployer, the gateway, the timer and the
tracer. A flag (--brokers, --deployer, --tracer, --timer...) or its BUTTER_*
variable beats the file for that one setting; URLs and host:port are both
accepted.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	a.rootCmd = root
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)

	kafkaFlags := flag.NewFlagSet("kafka", flag.ContinueOnError)
	a.kafka.RegisterFlags(kafkaFlags)
	root.PersistentFlags().AddGoFlagSet(kafkaFlags)
	root.PersistentFlags().StringVar(&a.contextFile, "context", kit.EnvOr("BUTTER_CONTEXT", ""), "client context `file` written by butter up: the broker, its login and every service URL (env BUTTER_CONTEXT; default <data>/context.json)")
	root.PersistentFlags().StringVar(&a.data, "data", "", "data `dir` of the butter up to talk to: its context.json and client.properties (env BUTTER_DATA, default ./.butter)")
	root.PersistentFlags().StringVar(&a.clientConfig, "client-config", kit.EnvOr("BUTTER_CLIENT_CONFIG", ""), "librdkafka-format `file` with bootstrap.servers and the SASL login (env BUTTER_CLIENT_CONFIG; default <data>/client.properties when it exists)")

	root.AddCommand(
		a.upCmd(),
		a.brokerCmd(),
		a.streamCmd(),
		a.publishCmd(),
		a.validateCmd(),
		a.deployCmd(),
		a.lsCmd(),
		a.getCmd(),
		a.rmCmd(),
		a.replayCmd(),
		a.logsCmd(),
		a.fnCmd(),
		a.apikeyCmd(),
		a.principalsCmd(),
		a.traceCmd(),
		a.lineageCmd(),
		a.eventsCmd(),
		a.timersCmd(),
		a.statusCmd(),
		a.versionCmd(),
	)
	return root
}

// client returns a Kafka client for the configured cluster, closed when the
// command ends.
func (a *app) client(opts ...kgo.Opt) (*kgo.Client, error) {
	a.kafka.ClientID = "butter-cli"
	if !a.configured {
		a.configured = true
		if err := a.useContext(); err != nil {
			return nil, err
		}
		if err := a.useClientConfig(); err != nil {
			return nil, err
		}
	}
	a.kafka.Brokers = hostPorts(a.kafka.Brokers)
	cl, err := a.kafka.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to Kafka at %v: %w", a.kafka.Brokers, err)
	}
	a.closers = append(a.closers, cl.Close)
	return cl, nil
}

func (a *app) admin() (*kadm.Client, error) {
	cl, err := a.client()
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

// logger returns the JSON logger commands that run services log with.
func (a *app) logger() *slog.Logger {
	l, err := kit.NewLogger(a.io.Err, kit.EnvOr("BUTTER_LOG_LEVEL", "info"))
	if err != nil {
		l, _ = kit.NewLogger(a.io.Err, "info")
		l.Warn("BUTTER_LOG_LEVEL ignored", "err", err)
	}
	return l
}
