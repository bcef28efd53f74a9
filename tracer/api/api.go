// Package api holds the shapes of the tracer's JSON API (GET /v1/...), so
// the tracer that writes them and the clients that read them (the butter
// CLI, the web UI's tests) share one definition instead of typing each
// shape twice.
//
// Every list answers a Page: its items, newest first, and Next, an opaque
// cursor to pass back as ?cursor= for the following page (empty on the
// last page). Errors are RFC 9457 problem details
// (application/problem+json).
package api

import (
	"encoding/json"
	"time"
)

// Paths of the API, relative to the tracer's base URL.
const (
	PathTraces         = "/v1/traces"
	PathLineage        = "/v1/lineage"
	PathLogs           = "/v1/logs"
	PathPlatformEvents = "/v1/platform-events"
	PathOverview       = "/v1/overview"
)

// DefaultLimit and MaxLimit bound the items of one page (?limit=).
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Page is one page of a list.
type Page[T any] struct {
	Items []T `json:"items"`
	// Next is the cursor of the following page; empty when this is the last.
	Next string `json:"next,omitempty"`
}

// Span statuses, as OpenTelemetry's status codes in lower case.
const (
	StatusUnset = "unset"
	StatusOK    = "ok"
	StatusError = "error"
)

// Span is one span of a trace.
type Span struct {
	TraceID      string `json:"traceId,omitempty"`
	SpanID       string `json:"spanId"`
	ParentSpanID string `json:"parentSpanId,omitempty"`
	// Service is the resource's service.name: gateway, fnbox, deployer,
	// timer, bridge, or a function's own.
	Service string `json:"service"`
	Name    string `json:"name"`
	// Kind is server, client, producer, consumer or internal.
	Kind       string    `json:"kind,omitempty"`
	Start      time.Time `json:"start"`
	DurationMs float64   `json:"durationMs"`
	// Status is StatusUnset, StatusOK or StatusError.
	Status        string `json:"status"`
	StatusMessage string `json:"statusMessage,omitempty"`
	// Deployment and Function are the span's butter.deployment and
	// butter.function attributes (span first, then resource).
	Deployment string         `json:"deployment,omitempty"`
	Function   string         `json:"function,omitempty"`
	Attributes map[string]any `json:"attributes,omitempty"`
	Events     []SpanEvent    `json:"events,omitempty"`
}

// SpanEvent is an event recorded on a span (an exception, a retry).
type SpanEvent struct {
	Name       string         `json:"name"`
	Time       time.Time      `json:"time"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// Trace is the answer of GET /v1/traces/{traceId}: its spans by start time.
type Trace struct {
	TraceID string `json:"traceId"`
	Spans   []Span `json:"spans"`
}

// TraceSummary is one item of GET /v1/traces.
type TraceSummary struct {
	TraceID string `json:"traceId"`
	// Root is the name of the span without a parent, RootService its
	// service; when the trace's root is not indexed (its parent came in a
	// client's traceparent), the earliest span whose parent is missing.
	Root        string    `json:"root,omitempty"`
	RootService string    `json:"rootService,omitempty"`
	Start       time.Time `json:"start"`
	DurationMs  float64   `json:"durationMs"`
	// Status is StatusError when any span failed, else StatusOK.
	Status   string   `json:"status"`
	Spans    int      `json:"spans"`
	Errors   int      `json:"errors"`
	Services []string `json:"services"`
}

// Event is where an event sits on a user stream and the attributes that
// place it in a chain: the items of GET /v1/lineage.
type Event struct {
	Stream    string    `json:"stream"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Source    string    `json:"source"`
	Subject   string    `json:"subject,omitempty"`
	Time      time.Time `json:"time"`
	// CausationID is the id of the event that caused this one.
	CausationID string `json:"causationId,omitempty"`
	// CorrelationID is the id of the first event of the chain.
	CorrelationID string `json:"correlationId,omitempty"`
	// TraceID is the trace of its traceparent, to open its trace.
	TraceID string `json:"traceId,omitempty"`
	// Function is deployment/function that produced it, when its source is
	// a function's (butter://deployment/function).
	Function string `json:"function,omitempty"`
	// BatchIDs are the ids of every event of the batch this event is the
	// result of (butterbatchids), when the function took a batch; it is a
	// descendant of each of them, its CausationID names the first.
	BatchIDs []string `json:"batchIds,omitempty"`
	// DeadLetter holds the error when this record is a dead letter: the
	// failed event (same id) with the error of its last attempt, and
	// DeadLetterFunction the function that failed on it.
	DeadLetter         string `json:"deadLetter,omitempty"`
	DeadLetterFunction string `json:"deadLetterFunction,omitempty"`
}

// Lineage is the answer of GET /v1/lineage?stream=&id=.
type Lineage struct {
	Event Event `json:"event"`
	// Ancestors follow causationid from the event's cause up to the root,
	// the root last.
	Ancestors []Event `json:"ancestors"`
	// Descendants are the events caused by it, directly or not, on any
	// stream, breadth first; each one's CausationID names its parent.
	// Dead letters of the event (same id) are among them.
	Descendants []Event `json:"descendants"`
}

// Log is one log line of GET /v1/logs.
type Log struct {
	Time       time.Time `json:"time"`
	Deployment string    `json:"deployment"`
	Function   string    `json:"function,omitempty"`
	Instance   string    `json:"instance,omitempty"`
	Level      string    `json:"level"`
	Message    string    `json:"message"`
	Origin     string    `json:"origin,omitempty"`
	EventID    string    `json:"eventId,omitempty"`
	TraceID    string    `json:"traceId,omitempty"`
}

// PlatformEvent is one item of GET /v1/platform-events: an event of
// _butter.events.
type PlatformEvent struct {
	Offset        int64           `json:"offset"`
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Source        string          `json:"source"`
	Time          time.Time       `json:"time"`
	Resource      string          `json:"resource,omitempty"`
	Actor         string          `json:"actor,omitempty"`
	Category      string          `json:"category,omitempty"`
	Severity      string          `json:"severity,omitempty"`
	CausationID   string          `json:"causationId,omitempty"`
	CorrelationID string          `json:"correlationId,omitempty"`
	Data          json.RawMessage `json:"data,omitempty"`
}

// Overview is the answer of GET /v1/overview.
type Overview struct {
	Time        time.Time            `json:"time"`
	Deployments []DeploymentOverview `json:"deployments"`
}

// DeploymentOverview is a deployment and its functions.
type DeploymentOverview struct {
	Name      string             `json:"name"`
	Version   string             `json:"version"`
	Actor     string             `json:"actor,omitempty"`
	Updated   time.Time          `json:"updated"`
	Functions []FunctionOverview `json:"functions"`
}

// FunctionOverview is what one function is doing now.
type FunctionOverview struct {
	Name       string   `json:"name"`
	Inputs     []string `json:"inputs,omitempty"`
	Out        string   `json:"out,omitempty"`
	DeadLetter string   `json:"deadLetter,omitempty"`
	// Replicas are instances whose heartbeat is recent and not the last.
	Replicas int `json:"replicas"`
	// Lag is how many events of its inputs its consumer group has not
	// committed yet; -1 when unknown.
	Lag int64 `json:"lag"`
	// EventsInPerSec is the rate of handled events over the last two
	// heartbeats; EventsOutPerSec the rate of events it wrote over the
	// last minute.
	EventsInPerSec  float64 `json:"eventsInPerSec"`
	EventsOutPerSec float64 `json:"eventsOutPerSec"`
	// Errors counts failed attempts reported by live instances.
	Errors int64 `json:"errors"`
	// DeadLetters counts events it dead-lettered, LastDeadLetter the error
	// of the latest.
	DeadLetters    int64  `json:"deadLetters"`
	LastDeadLetter string `json:"lastDeadLetter,omitempty"`
	// P50Ms and P99Ms are invocation times from its invoke spans of the
	// last 15 minutes; P95Ms the latest heartbeats' figure.
	P50Ms float64 `json:"p50Ms"`
	P99Ms float64 `json:"p99Ms"`
	P95Ms float64 `json:"p95Ms"`
}

// PathStreams lists streams; PathStreams/{stream}/events reads one.
const PathStreams = "/v1/streams"

// Stream is one item of GET /v1/streams: a stream and its partitions.
type Stream struct {
	Stream string `json:"stream"`
	// Internal is set for the platform's _butter.* streams.
	Internal   bool        `json:"internal,omitempty"`
	Partitions []Partition `json:"partitions"`
	// Events is how many events the partitions hold (end - start summed;
	// transaction markers count too).
	Events int64 `json:"events"`
}

// Partition is a partition's first and next offsets.
type Partition struct {
	Partition int32 `json:"partition"`
	Start     int64 `json:"start"`
	End       int64 `json:"end"`
}

// StreamEvent is one event of GET /v1/streams/{stream}/events: where it
// sits, its attributes and its data.
type StreamEvent struct {
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Key       string    `json:"key,omitempty"`
	Timestamp time.Time `json:"timestamp"`
	// Raw is set for a record that is not a CloudEvent (written by another
	// Kafka client): its attributes are the platform's butter.raw ones.
	Raw bool `json:"raw,omitempty"`
	// Attributes are the CloudEvents attributes and extensions.
	Attributes map[string]string `json:"attributes"`
	// Data is the data when it is JSON; DataText otherwise (as text, or
	// base64 when it is not UTF-8, DataBase64 set).
	Data       json.RawMessage `json:"data,omitempty"`
	DataText   string          `json:"dataText,omitempty"`
	DataBase64 bool            `json:"dataBase64,omitempty"`
}
