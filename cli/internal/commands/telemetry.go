package commands

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

// tracers are the tracer providers of the services butter up runs in one
// process, one each so that every span says which part made it
// (service.name), exported to _butter.traces with the service's own login
// and to OTEL_EXPORTER_OTLP_ENDPOINT when it is set.
type tracers struct {
	providers map[string]*sdktrace.TracerProvider
	clients   []*kgo.Client
}

// startTracers makes a provider for each of users, logged in as logins
// says; its service name is the user without "butter-".
func startTracers(ctx context.Context, logins map[string]kit.KafkaConfig, log *slog.Logger, users ...string) (*tracers, error) {
	t := &tracers{providers: map[string]*sdktrace.TracerProvider{}}
	for _, user := range users {
		kcfg := logins[user]
		kcfg.ClientID = user + "-spans"
		cl, err := kcfg.NewClient()
		if err != nil {
			t.shutdown(ctx)
			return nil, err
		}
		t.clients = append(t.clients, cl)
		tp, err := kit.NewTracerProvider(ctx, kit.TelemetryConfig{
			Service: strings.TrimPrefix(user, "butter-"), Kafka: cl, Topic: kcfg.Namespace().Topic(topics.Traces), Logger: log,
		})
		if err != nil {
			t.shutdown(ctx)
			return nil, err
		}
		t.providers[user] = tp
	}
	return t, nil
}

// of returns the provider of user.
func (t *tracers) of(user string) *sdktrace.TracerProvider { return t.providers[user] }

// shutdown flushes every provider's spans, then closes their clients.
func (t *tracers) shutdown(ctx context.Context) error {
	var errs []error
	for _, tp := range t.providers {
		errs = append(errs, tp.Shutdown(ctx))
	}
	for _, cl := range t.clients {
		cl.Close()
	}
	return errors.Join(errs...)
}
