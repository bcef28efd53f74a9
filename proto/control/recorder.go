package control

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/envelope"
)

// Recorder writes platform events to the events topic, synchronously:
// Record returns only once the broker acknowledged the event, so "if the
// first event cannot be stored the action fails" (DESIGN §8) is a plain
// error check.
type Recorder struct {
	cl     *kgo.Client
	topic  string
	source string
}

// NewRecorder returns a recorder writing to topic (the namespaced
// _butter.events) through cl, with source as the events' source.
func NewRecorder(cl *kgo.Client, topic, source string) *Recorder {
	return &Recorder{cl: cl, topic: topic, source: source}
}

// Record stores e and waits for the broker's acknowledgement.
func (r *Recorder) Record(ctx context.Context, e event.Event) error {
	rec, err := envelope.ToRecord(r.topic, e)
	if err != nil {
		return fmt.Errorf("record %s event: %w", e.Type(), err)
	}
	rec.Timestamp = time.Now()
	if err := r.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("record %s event on %s: %w", e.Type(), r.topic, err)
	}
	return nil
}

// Emit builds a chain-starting event (NewEvent) and records it.
func (r *Recorder) Emit(ctx context.Context, typ string, info Info, data any) (event.Event, error) {
	e, err := NewEvent(r.source, typ, info, data)
	if err != nil {
		return e, err
	}
	return e, r.Record(ctx, e)
}

// Action is a started control-plane action: its first event is stored,
// its outcome is still to come.
type Action struct {
	rec *Recorder
	// Event is the stored action event.
	Event event.Event
}

// Begin stores the action event typ (category action). An error means it
// was not stored and the caller must not carry out the action.
func (r *Recorder) Begin(ctx context.Context, typ string, info Info, data any) (*Action, error) {
	info.Category = CategoryAction
	e, err := r.Emit(ctx, typ, info, data)
	if err != nil {
		return nil, err
	}
	return &Action{rec: r, Event: e}, nil
}

// Complete records the .completed outcome. The action already happened,
// so callers log an error rather than undo anything.
func (a *Action) Complete(ctx context.Context, data any) error { return a.finish(ctx, nil, data) }

// Fail records the .failed outcome with cause.
func (a *Action) Fail(ctx context.Context, cause error, data any) error {
	return a.finish(ctx, cause, data)
}

func (a *Action) finish(ctx context.Context, cause error, data any) error {
	e, err := Outcome(a.Event, cause, data)
	if err != nil {
		return err
	}
	return a.rec.Record(ctx, e)
}
