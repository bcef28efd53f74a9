// Package runtime is the contract between fnbox and the code it runs. A
// Runtime runs the functions of one deployment on one platform (node,
// python, go, exec, http); fnbox hands it Invocations and serves the
// function's context API (emit, request, log) through a Host.
//
// The platforms live in subpackages, one each, and every one of them must
// pass the one conformance suite, runtimetest.RunConformance (a test-only
// package, so `testing` is never linked into fnbox).
package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
)

// Spec is what a platform needs to start a deployment's functions.
type Spec struct {
	// Deployment is the descriptor, with defaults applied.
	Deployment *descriptor.Descriptor
	// Functions are the names of the functions this instance runs; empty
	// means all of them.
	Functions []string
	// Dir holds the deployment's code (the unpacked archive); relative
	// paths in fn are resolved against it and commands run in it.
	Dir string
	// Env is added to the function processes' environment, after the
	// descriptor's env.
	Env map[string]string
	// Stdout and Stderr receive what the function processes print; fnbox
	// forwards each line to _butter.logs. Nil discards.
	Stdout, Stderr io.Writer
	// Logger is for the runtime's own diagnostics, not the function's.
	Logger *slog.Logger
}

// Invocation is one call of one function.
type Invocation struct {
	// Function is the function's name within the deployment.
	Function string
	// Events are the events handed over: one, or up to delivery.batch.
	Events []envelope.Delivery
	// Deadline is when the invocation is abandoned: the earlier of the
	// delivery timeout and the event's deadline extension. The runtime
	// exposes it to the function (context.deadline, remainingMs()).
	Deadline time.Time
}

// Result is what a function returned.
type Result struct {
	// Data is the returned value, encoded; nil when the function returned
	// nothing (then nothing is written to out).
	Data []byte
	// ContentType says how Data is encoded, application/json for values
	// of JS/Python functions, text/plain for strings.
	ContentType string
	// Event, when set, is the CloudEvent the function answered with (an
	// http function's reply in CloudEvents binary or structured mode); it
	// is written even without data. Its type, source, subject, dataschema
	// and extensions become the output event's, and Data and ContentType
	// are its data; fnbox still sets id, time, causationid, correlationid
	// and the trace.
	Event *event.Event
}

// Emit is a context.emit call: data for a new event on a stream. fnbox
// builds the event (source, id, causation, correlation, trace).
type Emit struct {
	Stream      string
	Data        []byte
	ContentType string
	// Type, Subject and Key are the options of emit(stream, data, opts);
	// empty means the platform default.
	Type, Subject, Key string
}

// Host is fnbox's side of the function context API, valid during one
// Invoke. It is safe for concurrent use.
type Host interface {
	// Emit writes an event to a stream the function declared in out or
	// emits; any other stream is refused with ErrUndeclaredStream. It
	// returns once the event is acknowledged, or, under exactly-once, part
	// of the transaction.
	Emit(ctx context.Context, e Emit) error
	// Request emits an event with replyto set and waits for its reply.
	Request(ctx context.Context, e Emit) (Result, error)
	// Log records a line of the function's log for the current event.
	Log(ctx context.Context, level slog.Level, msg string)
}

// Runtime runs a deployment's functions.
type Runtime interface {
	// Invoke runs one invocation and returns its result. A returned error
	// is a failure of this attempt: fnbox retries it unless it is
	// Permanent. ctx carries the invocation's deadline.
	Invoke(ctx context.Context, inv Invocation, host Host) (Result, error)
	// Close stops the runtime's processes, waiting for in-flight
	// invocations until ctx is done.
	Close(ctx context.Context) error
}

// Errors every platform reports the same way.
var (
	// ErrLoad means the code could not be loaded (syntax error, missing
	// export, command not found): a deploy error, not something to retry.
	ErrLoad = errors.New("function code failed to load")
	// ErrUndeclaredStream is returned to a function emitting to a stream
	// not listed in its out or emits bindings.
	ErrUndeclaredStream = errors.New("stream is not declared in the function's out or emits bindings")
	// ErrTimeout means the invocation ran past its deadline.
	ErrTimeout = errors.New("function timed out")
	// ErrCrashed means the process running the invocation (a node or
	// python host) died during it. fnbox counts these per event: an event
	// that keeps crashing its host is a poison event.
	ErrCrashed = errors.New("function host crashed")
	// ErrUnknownFunction means Invoke named a function this runtime does
	// not run.
	ErrUnknownFunction = errors.New("unknown function")
)

// FunctionError is a failure the function itself reported (it threw, exited
// non-zero, answered 5xx). Message and Stack come from the function.
type FunctionError struct {
	Message string
	Stack   string
	// Permanent failures skip the remaining retries and go straight to
	// the dead-letter stream (an http function's 4xx answer).
	Permanent bool
}

func (e *FunctionError) Error() string { return fmt.Sprintf("function failed: %s", e.Message) }

// IsPermanent reports whether err must not be retried.
func IsPermanent(err error) bool {
	var fe *FunctionError
	return errors.As(err, &fe) && fe.Permanent
}

// Pool runs the functions of several deployments of one platform in shared
// processes: `isolation: shared` in the descriptor (docs/descriptor.md). A
// node or python pool keeps one host process for all of them, so a hundred
// idle functions cost one interpreter, not a hundred.
type Pool interface {
	// Add loads the functions of spec's deployment into the pool's
	// processes and returns the Runtime that invokes them. A function that
	// does not load fails Add with an error wrapping ErrLoad, and leaves
	// the pool and its other deployments running. Closing the returned
	// Runtime unloads the deployment; the pool's processes go on serving
	// the others.
	Add(ctx context.Context, spec Spec) (Runtime, error)
	// Close stops the pool's processes, waiting for invocations in flight
	// until ctx is done.
	Close(ctx context.Context) error
}
