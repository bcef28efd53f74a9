package kit

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/buttercompass/butter/proto/topics"
)

// Service is the lifecycle every platform service shares (Caddy's
// provision → run → cleanup): Provision connects and binds, Serve runs
// until its context is done and drains, Close releases what Provision took
// whatever happened before.
type Service interface {
	Provision(ctx context.Context) error
	Serve(ctx context.Context) error
	Close()
	// Addr is where the service listens, once provisioned.
	Addr() string
}

// RunService provisions s, prints banner to out with %s replaced by the
// address it listens on, serves until ctx is done and closes s.
func RunService(ctx context.Context, s Service, out io.Writer, banner string) error {
	defer s.Close()
	if err := s.Provision(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, banner+"\n", s.Addr())
	return s.Serve(ctx)
}

// Command is a service's command-line program: what its main wires.
type Command struct {
	// Name is the program's name, e.g. butter-gateway: the prefix of its
	// errors and its Kafka client id.
	Name string
	// Service is the service.name of its spans, e.g. gateway.
	Service string
	// Flags registers the service's own flags.
	Flags func(fs *flag.FlagSet)
	// Kafka is the service's Kafka configuration; its flags are registered
	// alongside, and its client id set to Name.
	Kafka *KafkaConfig
	// Run runs the service until ctx is done (SIGINT or SIGTERM), logging
	// to logger. Spans are exported to _butter.traces (and OTLP when
	// OTEL_EXPORTER_OTLP_ENDPOINT is set) through the global provider.
	Run func(ctx context.Context, logger *slog.Logger) error
}

// Main parses the command line, runs c and exits: 0 after a clean stop,
// 1 with the error on stderr otherwise. It is the whole of a service's
// main.
func Main(c Command) {
	fs := flag.CommandLine
	c.Flags(fs)
	c.Kafka.RegisterFlags(fs)
	logLevel := fs.String("log-level", EnvOr("BUTTER_LOG_LEVEL", "info"), "debug, info, warn or error (env BUTTER_LOG_LEVEL)")
	sample := RegisterTraceSample(fs)
	_ = fs.Parse(os.Args[1:]) // flag.CommandLine exits on a bad flag
	if err := ApplyTraceSample(*sample); err != nil {
		fmt.Fprintln(os.Stderr, c.Name+":", err)
		os.Exit(2)
	}
	if err := c.main(*logLevel); err != nil {
		fmt.Fprintln(os.Stderr, c.Name+":", err)
		os.Exit(1)
	}
}

func (c Command) main(logLevel string) error {
	if err := EnvError(); err != nil {
		return err
	}
	logger, err := NewLogger(os.Stderr, logLevel)
	if err != nil {
		return err
	}
	c.Kafka.ClientID = c.Name
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	spans, err := c.Kafka.NewClient()
	if err != nil {
		return err
	}
	defer spans.Close()
	shutdown, err := StartTelemetry(ctx, TelemetryConfig{
		Service: c.Service, Kafka: spans, Topic: c.Kafka.Namespace().Topic(topics.Traces), Logger: logger,
	})
	if err != nil {
		return err
	}
	defer func() { _ = shutdown(context.WithoutCancel(ctx)) }()
	return c.Run(ctx, logger)
}
