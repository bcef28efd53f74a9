package kit

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/buttercompass/butter/proto/topics"
)

// TelemetryConfig says where a service's spans go.
type TelemetryConfig struct {
	// Service is the resource's service.name, e.g. "gateway". Required:
	// the tracer groups spans by it.
	Service string
	// Kafka, when set, exports spans as OTLP protobuf to Topic so the
	// tracer collects them without any collector (DESIGN §8). nil: no Kafka
	// export. The client stays the caller's; shutdown does not close it.
	Kafka *kgo.Client
	// Topic receives the spans; default topics.Traces. Under a
	// --topic-prefix pass KafkaConfig.Namespace().Topic(topics.Traces).
	Topic string
	// Logger receives export errors, which OpenTelemetry otherwise prints
	// with the standard log package outside the JSON logs; default
	// slog.Default().
	Logger *slog.Logger
}

// NewTracerProvider returns a tracer provider for cfg without touching the
// OpenTelemetry globals, for a process that runs several services (butter
// up) and wants each one's spans under its own service.name.
//
// Exporters, each behind its own BatchSpanProcessor: Kafka when cfg.Kafka is
// set, and OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (configured by the standard
// OTEL_EXPORTER_OTLP_* variables). With neither, spans are still created, so
// trace ids propagate and appear in logs, but they are dropped.
// OTEL_RESOURCE_ATTRIBUTES adds resource attributes; OTEL_TRACES_SAMPLER and
// OTEL_BSP_* tune sampling and batching as the SDK documents.
func NewTracerProvider(ctx context.Context, cfg TelemetryConfig) (*sdktrace.TracerProvider, error) {
	if cfg.Service == "" {
		return nil, errors.New("start telemetry: TelemetryConfig.Service is empty; name the service")
	}
	// Service name last so it beats OTEL_SERVICE_NAME: under butter up all
	// services share one environment and must still be told apart.
	res, err := resource.New(ctx,
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithAttributes(attribute.String("service.name", cfg.Service)),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("detect telemetry resource: %w", err)
	}

	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	var exporters []*otlptrace.Exporter
	stopAll := func() {
		for _, e := range exporters {
			_ = e.Shutdown(ctx)
		}
	}
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
		e, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("create OTLP/HTTP span exporter: %w", err)
		}
		exporters = append(exporters, e)
	}
	if cfg.Kafka != nil {
		topic := cfg.Topic
		if topic == "" {
			topic = topics.Traces
		}
		e, err := otlptrace.New(ctx, KafkaSpanClient(cfg.Kafka, topic))
		if err != nil {
			stopAll()
			return nil, fmt.Errorf("create kafka span exporter: %w", err)
		}
		exporters = append(exporters, e)
	}
	for _, e := range exporters {
		opts = append(opts, sdktrace.WithBatcher(e))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}

// StartTelemetry installs a tracer provider for cfg (see [NewTracerProvider])
// as the global one, with the W3C TraceContext and Baggage propagators, and
// routes OpenTelemetry's internal errors to cfg.Logger. Call shutdown before
// exit, with a deadline: it flushes spans still in batches.
func StartTelemetry(ctx context.Context, cfg TelemetryConfig) (shutdown func(context.Context) error, err error) {
	tp, err := NewTracerProvider(ctx, cfg)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("opentelemetry error", KeyError, err)
	}))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(Propagator())
	return func(ctx context.Context) error {
		if err := tp.Shutdown(ctx); err != nil {
			return fmt.Errorf("shut down tracer provider: %w", err)
		}
		return nil
	}, nil
}

// Propagator returns the propagator every service uses: W3C TraceContext
// (traceparent, tracestate, the same pair the envelope carries as the
// CloudEvents distributed tracing extension, DESIGN §3) and Baggage.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// TraceSampleEnv is the environment variable behind --trace-sample.
const TraceSampleEnv = "BUTTER_TRACE_SAMPLE"

// RegisterTraceSample adds --trace-sample to fs: the share (0..1) of new
// traces recorded. It is parent-based: a span whose parent was sampled is,
// one whose parent was not is not, so a trace is whole or absent across
// services. Give the parsed value to ApplyTraceSample.
func RegisterTraceSample(fs *flag.FlagSet) *float64 {
	def := 1.0
	if v, err := strconv.ParseFloat(os.Getenv(TraceSampleEnv), 64); err == nil {
		def = v
	}
	return fs.Float64("trace-sample", def, "share of new traces recorded, 0..1, parent-based (env "+TraceSampleEnv+")")
}

// ApplyTraceSample makes ratio the sampling of every tracer provider made
// afterwards in this process and in the processes it starts (fnbox
// instances): it selects OpenTelemetry's parentbased_traceidratio sampler
// through OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, which the SDK
// reads.
func ApplyTraceSample(ratio float64) error {
	if ratio < 0 || ratio > 1 || ratio != ratio {
		return fmt.Errorf("check --trace-sample %v: give a share of traces between 0 and 1", ratio)
	}
	if err := os.Setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"); err != nil {
		return err
	}
	return os.Setenv("OTEL_TRACES_SAMPLER_ARG", strconv.FormatFloat(ratio, 'g', -1, 64))
}
