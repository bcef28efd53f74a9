// Package obs holds the wire formats of what fnbox writes besides a
// function's own events: its log lines on _butter.logs, its liveness and load
// on _butter.heartbeats, the event types of results and replies, and the
// extensions of dead-lettered events. The tracer and loadmon read them; the
// gateway reads replies.
//
// Log lines and heartbeats are CloudEvents like every other record (DESIGN
// §3), so a function may bind to them: type TypeLog or TypeHeartbeat,
// datacontenttype application/json, data the JSON of Log or Heartbeat.
package obs

// Event types of the events fnbox writes.
const (
	// TypeResult is the type of the event a function's return value becomes
	// on its out stream and, when the input had replyto, on the reply
	// stream. Its subject is the input event's id, its causationid the same
	// id, and correlationid and traceparent are carried from the input.
	TypeResult = "butter.result"
	// TypeError is the type of the reply sent instead of a result when an
	// input with replyto was dead-lettered, so a waiting requester (the
	// gateway) can answer at once instead of timing out. Data is ErrorReply.
	TypeError = "butter.error"
	// TypeEmit is the type of an event written with context.emit when the
	// function gives none.
	TypeEmit = "butter.emit"
	// TypeRequest is the type of an event written with context.request when
	// the function gives none.
	TypeRequest = "butter.request"
	// TypeLog is the type of a Log event on _butter.logs.
	TypeLog = "butter.log"
	// TypeHeartbeat is the type of a Heartbeat event on _butter.heartbeats.
	TypeHeartbeat = "butter.heartbeat"
)

// Extensions of a dead-lettered event. The event on the dead-letter stream is
// the original one (same id, attributes and data) with these added, so it can
// be inspected and replayed as it was.
const (
	// ExtDLQError is the error of the last attempt, as text.
	ExtDLQError = "butterdlqerror"
	// ExtDLQAttempts is how many times the function was invoked (0 when the
	// event was dead-lettered without invoking, e.g. its deadline had passed).
	ExtDLQAttempts = "butterdlqattempts"
	// ExtDLQStream is the stream the event was read from.
	ExtDLQStream = "butterdlqstream"
	// ExtDLQPartition is the partition the event was read from.
	ExtDLQPartition = "butterdlqpartition"
	// ExtDLQOffset is the offset the event was read from.
	ExtDLQOffset = "butterdlqoffset"
	// ExtDLQFunction is the function (deployment/function) that failed on it.
	ExtDLQFunction = "butterdlqfunction"
)

// ExtBatchIDs is the extension that lists, on the result of a batch
// invocation (delivery.batch > 1), the ids of every event of the batch as a
// JSON array in offset order; causationid and subject name the first. Only
// results of batches of two or more events carry it.
const ExtBatchIDs = "butterbatchids"

// ErrDeadlineExpired is the ExtDLQError text of events dead-lettered because
// their deadline extension had passed before they were invoked.
const ErrDeadlineExpired = "deadline expired"

// ErrCrashed is the ExtDLQError text of poison events: events whose
// invocation killed the function's runtime host or fnbox itself as many
// times as fnbox's crash limit allows (docs/delivery.md).
const ErrCrashed = "crashed"

// ErrorReply is the data of a TypeError reply.
type ErrorReply struct {
	// Error is the error of the last attempt.
	Error string `json:"error"`
	// Attempts is how many times the function was invoked.
	Attempts int `json:"attempts"`
}

// Source returns the CloudEvents source of events written by a function of
// a deployment: butter://<deployment>/<function>.
func Source(deployment, function string) string {
	return "butter://" + deployment + "/" + function
}
