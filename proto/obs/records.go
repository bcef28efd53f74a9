package obs

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/envelope"
)

// Log is one line of a function's log on _butter.logs: a context.log call,
// or a line the function's process printed.
type Log struct {
	// Deployment and Function name who logged.
	Deployment string `json:"deployment"`
	Function   string `json:"function,omitempty"`
	// Instance is the fnbox instance (its --instance) that ran the code.
	Instance string `json:"instance,omitempty"`
	// EventID is the id of the event being processed; empty for lines
	// printed outside any invocation.
	EventID string `json:"eventId,omitempty"`
	// TraceID is the W3C trace id (32 hex) of the event, to join logs with
	// traces; empty when the event carried no traceparent.
	TraceID string `json:"traceId,omitempty"`
	// Level is debug, info, warn or error.
	Level string `json:"level"`
	// Message is the line, without its trailing newline.
	Message string `json:"message"`
	// Origin says where the line came from: OriginContext, OriginStdout or
	// OriginStderr.
	Origin string `json:"origin,omitempty"`
	// Time is when the line was logged.
	Time time.Time `json:"time"`
}

// Origins of a Log line.
const (
	OriginContext = "context" // context.log (Host.Log)
	OriginStdout  = "stdout"  // the function process's standard output
	OriginStderr  = "stderr"  // the function process's standard error
	OriginFnbox   = "fnbox"   // fnbox about an invocation: failed, retrying, dead-lettered
)

// Log levels, as slog names them in lower case.
const (
	LevelDebug = "debug"
	LevelInfo  = "info"
	LevelWarn  = "warn"
	LevelError = "error"
)

// Heartbeat is what a running fnbox instance says about one function every
// HeartbeatInterval on _butter.heartbeats: loadmon reads the load, the
// tracer and `butter status` the liveness. An instance is gone when its
// heartbeats stop for a few intervals.
type Heartbeat struct {
	// Deployment, Function and Instance say who beats.
	Deployment string `json:"deployment"`
	Function   string `json:"function"`
	Instance   string `json:"instance"`
	// Time is when the heartbeat was taken.
	Time time.Time `json:"time"`
	// InFlight is the number of events being processed right now.
	InFlight int `json:"inFlight"`
	// Processed counts the events handled since the instance started:
	// succeeded, filtered out or dead-lettered.
	Processed int64 `json:"processed"`
	// Errors counts failed invocation attempts since the instance started.
	Errors int64 `json:"errors"`
	// P95Ms is the 95th percentile of the invocation duration over the
	// last interval, in milliseconds; 0 when nothing ran.
	P95Ms float64 `json:"p95Ms"`
	// Partitions are the stream partitions assigned to this instance.
	Partitions []Partition `json:"partitions"`
	// Stopping is set on the last heartbeat of an instance shutting down,
	// so loadmon need not wait for the beats to stop.
	Stopping bool `json:"stopping,omitempty"`
	// Admin is the host:port of the instance's admin server (/livez,
	// /readyz, /metrics), for scrapers and `butter get`; empty when the
	// instance serves none.
	Admin string `json:"admin,omitempty"`
}

// HeartbeatInterval is how often fnbox sends a Heartbeat.
const HeartbeatInterval = 5 * time.Second

// Partition is a partition of a stream.
type Partition struct {
	Stream    string `json:"stream"`
	Partition int32  `json:"partition"`
}

// ErrNotObs is wrapped by ParseLog and ParseHeartbeat for a record that is
// not of the expected type: skip it, the topics are open to other writers.
var ErrNotObs = errors.New("record is not a butter observability event")

// Record returns l as a record for topic (topics.Logs in the namespace),
// keyed by deployment/function so a function's lines stay in order.
func (l Log) Record(topic string) (*kgo.Record, error) {
	return record(topic, TypeLog, Source(l.Deployment, l.Function), l.Deployment+"/"+l.Function, l.Time, l)
}

// Record returns h as a record for topic (topics.Heartbeats in the
// namespace), keyed by deployment/function/instance.
func (h Heartbeat) Record(topic string) (*kgo.Record, error) {
	return record(topic, TypeHeartbeat, Source(h.Deployment, h.Function), h.Deployment+"/"+h.Function+"/"+h.Instance, h.Time, h)
}

// ParseLog decodes a record of _butter.logs.
func ParseLog(r *kgo.Record) (Log, error) {
	var l Log
	return l, parse(r, TypeLog, &l)
}

// ParseHeartbeat decodes a record of _butter.heartbeats.
func ParseHeartbeat(r *kgo.Record) (Heartbeat, error) {
	var h Heartbeat
	return h, parse(r, TypeHeartbeat, &h)
}

func record(topic, typ, source, key string, t time.Time, v any) (*kgo.Record, error) {
	e := envelope.New(source, typ)
	if !t.IsZero() {
		e.SetTime(t.UTC())
	}
	e.SetExtension(envelope.ExtPartitionKey, key)
	if err := e.SetData(event.ApplicationJSON, v); err != nil {
		return nil, fmt.Errorf("encode %s: %w", typ, err)
	}
	r, err := envelope.ToRecord(topic, e)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", typ, err)
	}
	return r, nil
}

func parse(r *kgo.Record, typ string, v any) error {
	d := envelope.FromRecord(r)
	if d.Raw || d.Event.Type() != typ {
		return fmt.Errorf("decode %s at %s/%d/%d: %w", typ, r.Topic, r.Partition, r.Offset, ErrNotObs)
	}
	if err := json.Unmarshal(d.Event.Data(), v); err != nil {
		return fmt.Errorf("decode %s at %s/%d/%d: %w", typ, r.Topic, r.Partition, r.Offset, err)
	}
	return nil
}
