// Package topics names every Kafka topic the platform uses and says how each
// is created. Services never type a topic name: they use these constants.
package topics

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// InternalPrefix starts the name of every platform-owned topic. Users may
// read these streams (functions can bind to _butter.events) but the stream
// API refuses to create or delete them.
const InternalPrefix = "_butter."

// Internal topics (DESIGN §2). Each is created by the broker at start, or by
// the first service that needs it when running against an existing cluster.
const (
	Deployments = InternalPrefix + "deployments" // compacted desired state, key = deployment name
	Scale       = InternalPrefix + "scale"       // scale decisions from loadmon
	Heartbeats  = InternalPrefix + "heartbeats"  // fnbox liveness and load
	Replies     = InternalPrefix + "replies"     // request-response replies
	Traces      = InternalPrefix + "traces"      // OTLP protobuf span batches
	Logs        = InternalPrefix + "logs"        // function logs
	Events      = InternalPrefix + "events"      // platform audit events
	Checkpoints = InternalPrefix + "checkpoints" // compacted bridge positions
	Timers      = InternalPrefix + "timers"      // compacted timer state
	APIKeys     = InternalPrefix + "apikeys"     // compacted gateway API keys (hashed), key = key id
	Requests    = InternalPrefix + "requests"    // async gateway requests and their responses, compacted and kept a day, key = request id
)

// Stream defaults (DESIGN §2).
const (
	// DefaultPartitions is the partition count of a stream created without one.
	DefaultPartitions int32 = 4
	// DefaultRetention is how long a stream keeps events unless told otherwise.
	DefaultRetention = 7 * 24 * time.Hour
	// Forever is the retention that never deletes (Kafka's retention.ms=-1).
	Forever time.Duration = -1
)

// Spec says how a topic is created.
type Spec struct {
	// Name is the topic name, without any prefix.
	Name string
	// Partitions is the partition count; 0 means DefaultPartitions.
	Partitions int32
	// Retention is how long records are kept; 0 means DefaultRetention and
	// Forever (-1) keeps them forever.
	Retention time.Duration
	// Compact turns on log compaction: the latest record per key is kept.
	// With Retention Forever that is cleanup.policy=compact; with a finite
	// retention it is compact,delete, so records older than the retention
	// go too, latest or not (the embedded broker applies retention to every
	// topic, so this also makes a Kafka cluster behave the same).
	Compact bool
}

// Stream returns the spec of a user stream with the defaults filled in.
func Stream(name string) Spec {
	return Spec{Name: name, Partitions: DefaultPartitions, Retention: DefaultRetention}
}

// Configs returns the Kafka topic configs that create this spec.
func (s Spec) Configs() map[string]string {
	cfg := map[string]string{"retention.ms": strconv.FormatInt(s.retentionMs(), 10)}
	switch {
	case s.Compact && s.retentionMs() < 0:
		cfg["cleanup.policy"] = "compact"
	case s.Compact:
		cfg["cleanup.policy"] = "compact,delete"
	}
	return cfg
}

// PartitionCount returns Partitions, or DefaultPartitions when unset.
func (s Spec) PartitionCount() int32 {
	if s.Partitions <= 0 {
		return DefaultPartitions
	}
	return s.Partitions
}

func (s Spec) retentionMs() int64 {
	switch {
	case s.Retention < 0:
		return -1
	case s.Retention == 0:
		return DefaultRetention.Milliseconds()
	default:
		return s.Retention.Milliseconds()
	}
}

// Internal returns the specs of every internal topic. Compacted topics keep
// state (latest per key); the others are logs with a retention fitting their
// use: replies are worthless after the requester's deadline, traces and
// logs are diagnostics, platform events are an audit trail kept forever.
func Internal() []Spec {
	const day = 24 * time.Hour
	return []Spec{
		{Name: Deployments, Partitions: 1, Compact: true, Retention: Forever},
		{Name: Scale, Partitions: 1, Retention: day},
		{Name: Heartbeats, Partitions: 1, Retention: time.Hour},
		{Name: Replies, Partitions: DefaultPartitions, Retention: time.Hour},
		{Name: Traces, Partitions: DefaultPartitions, Retention: 3 * day},
		{Name: Logs, Partitions: DefaultPartitions, Retention: DefaultRetention},
		{Name: Events, Partitions: 1, Retention: Forever},
		{Name: Checkpoints, Partitions: 1, Compact: true, Retention: Forever},
		{Name: Timers, Partitions: DefaultPartitions, Compact: true, Retention: Forever},
		{Name: APIKeys, Partitions: 1, Compact: true, Retention: Forever},
		{Name: Requests, Partitions: DefaultPartitions, Compact: true, Retention: day},
	}
}

// IsInternal reports whether name is a platform-owned topic.
func IsInternal(name string) bool { return strings.HasPrefix(name, InternalPrefix) }

var streamName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,200}$`)

// ErrInvalidStreamName is returned (wrapped) for a stream name users may not
// use; the message says the rule.
var ErrInvalidStreamName = errors.New("stream names are 1-201 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit")

// ValidateStreamName checks a user stream name (DESIGN §2). Internal names
// (_butter.*) pass: they may be read and bound to, only not created by users.
func ValidateStreamName(name string) error {
	if IsInternal(name) && streamName.MatchString(strings.TrimPrefix(name, InternalPrefix)) {
		return nil
	}
	if !streamName.MatchString(name) {
		return fmt.Errorf("%q: %w", name, ErrInvalidStreamName)
	}
	return nil
}

// Namespace maps stream names to topic names under an optional prefix
// (--topic-prefix), so several platforms can share one Kafka cluster.
type Namespace string

// Topic returns the Kafka topic holding stream.
func (n Namespace) Topic(stream string) string { return string(n) + stream }

// Stream returns the stream held by topic, and false if topic is outside
// this namespace.
func (n Namespace) Stream(topic string) (string, bool) {
	if !strings.HasPrefix(topic, string(n)) {
		return "", false
	}
	return strings.TrimPrefix(topic, string(n)), true
}

// ConsumerGroup returns the consumer group of a deployment's function
// (DESIGN §4): every function is its own group.
func (n Namespace) ConsumerGroup(deployment, function string) string {
	return string(n) + "butter." + deployment + "." + function
}

// ParseRetention reads a retention as users write it: a Go duration
// ("36h", "90m"), a number of days ("7d"), or -1 for forever.
func ParseRetention(s string) (time.Duration, error) {
	if s == "-1" {
		return Forever, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err == nil && n > 0 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, nil
	}
	return 0, fmt.Errorf("retention %q: want a positive duration (36h, 7d) or -1 for forever", s)
}
