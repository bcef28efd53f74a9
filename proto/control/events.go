package control

import (
	"fmt"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/buttercompass/butter/proto/envelope"
)

// Extensions of platform events, besides causationid and correlationid
// (envelope.ExtCausationID, envelope.ExtCorrelationID).
const (
	// ExtActor is who did it: a token subject, "token" for the shared
	// deployer token, "anonymous" when the API runs without auth, or
	// "system" for the platform itself.
	ExtActor = "actor"
	// ExtCategory is one of the Category constants.
	ExtCategory = "category"
	// ExtSeverity is one of the Severity constants.
	ExtSeverity = "severity"
	// ExtResource is what it is about, "<kind>/<name>" (see Resource).
	ExtResource = "resource"
)

// Categories (ExtCategory): what kind of thing an event records.
const (
	CategoryAction = "action" // someone asked for something, and its outcome
	CategoryState  = "state"  // something changed state on its own
	CategoryAlarm  = "alarm"  // something needs attention
	CategorySystem = "system" // the platform itself (start, stop, rebuild)
)

// Severities (ExtSeverity).
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityError    = "error"
	SeverityCritical = "critical"
)

// Actors the platform uses itself.
const (
	ActorAnonymous = "anonymous" // API without auth configured
	ActorToken     = "token"     // holder of the shared deployer token
	ActorSystem    = "system"    // the platform, e.g. the reconciler
)

// Outcome suffixes: an action event <resource>.<action> is followed by
// <resource>.<action>.completed or .failed, whose causationid is the
// action event's id.
const (
	SuffixCompleted = ".completed"
	SuffixFailed    = ".failed"
)

// Resource kinds (the first part of ExtResource and of event types).
const (
	KindDeployment = "deployment"
	KindInstance   = "instance"
	KindAuth       = "auth"
)

// Event types of the deployer. Every action type has its .completed and
// .failed outcomes.
const (
	TypeDeploymentCreate          = "deployment.create"
	TypeDeploymentCreateCompleted = TypeDeploymentCreate + SuffixCompleted
	TypeDeploymentCreateFailed    = TypeDeploymentCreate + SuffixFailed

	TypeDeploymentUpdate          = "deployment.update"
	TypeDeploymentUpdateCompleted = TypeDeploymentUpdate + SuffixCompleted
	TypeDeploymentUpdateFailed    = TypeDeploymentUpdate + SuffixFailed

	TypeDeploymentDelete          = "deployment.delete"
	TypeDeploymentDeleteCompleted = TypeDeploymentDelete + SuffixCompleted
	TypeDeploymentDeleteFailed    = TypeDeploymentDelete + SuffixFailed

	TypeDeploymentReplay          = "deployment.replay"
	TypeDeploymentReplayCompleted = TypeDeploymentReplay + SuffixCompleted
	TypeDeploymentReplayFailed    = TypeDeploymentReplay + SuffixFailed

	// TypeInstanceCrash (category alarm, severity error) says an fnbox
	// instance exited without being asked to; data is InstanceCrash.
	TypeInstanceCrash = "instance.crash"

	// TypeInstanceOOMKilled (category alarm, severity error) says the
	// kernel killed a process of an fnbox instance for going over the
	// memory its deployment's limits.memory allows; data is InstanceCrash.
	TypeInstanceOOMKilled = "instance.oomkilled"

	// TypeAuthReject (category alarm, severity warning) says a call was
	// refused for a missing or wrong credential; data is AuthReject.
	TypeAuthReject = "auth.reject"
)

// SourceDeployer is the CloudEvents source of the deployer's events.
const SourceDeployer = "/butter/deployer"

// Resource names a resource for ExtResource: Resource("deployment",
// "orders") is "deployment/orders".
func Resource(kind, name string) string { return kind + "/" + name }

// Info is what a platform event says about itself beyond its type.
type Info struct {
	// Resource is "<kind>/<name>"; it is also the event subject, so all
	// events of a resource share a record key.
	Resource string
	// Actor is who caused it (ExtActor).
	Actor string
	// Category is one of the Category constants; default action.
	Category string
	// Severity is one of the Severity constants; default info.
	Severity string
}

// NewEvent returns a platform event of type typ from source with info as
// extensions and data encoded as JSON (nil data means none). It starts a
// chain: its correlationid is its own id. Use Outcome or Child for events
// caused by it.
func NewEvent(source, typ string, info Info, data any) (event.Event, error) {
	e := envelope.New(source, typ)
	e.SetExtension(envelope.ExtCorrelationID, e.ID())
	return e, fill(&e, info, data)
}

// Child returns a platform event of type typ caused by parent: causationid
// = parent's id, correlationid = parent's correlationid.
func Child(parent event.Event, source, typ string, info Info, data any) (event.Event, error) {
	e := envelope.Child(parent, source, typ)
	return e, fill(&e, info, data)
}

// Outcome returns the .completed (cause nil) or .failed event of action,
// with action's resource, actor and source. A failure has severity error
// and its data gets the error message under "error" when data is nil or a
// map[string]any.
func Outcome(action event.Event, cause error, data any) (event.Event, error) {
	info := Info{
		Resource: envelope.Extension(action, ExtResource),
		Actor:    envelope.Extension(action, ExtActor),
		Category: CategoryAction,
		Severity: SeverityInfo,
	}
	typ := action.Type() + SuffixCompleted
	if cause != nil {
		typ = action.Type() + SuffixFailed
		info.Severity = SeverityError
		switch m := data.(type) {
		case nil:
			data = map[string]any{"error": cause.Error()}
		case map[string]any:
			m["error"] = cause.Error()
		}
	}
	return Child(action, action.Source(), typ, info, data)
}

func fill(e *event.Event, info Info, data any) error {
	if info.Category == "" {
		info.Category = CategoryAction
	}
	if info.Severity == "" {
		info.Severity = SeverityInfo
	}
	if info.Actor == "" {
		info.Actor = ActorSystem
	}
	if info.Resource != "" {
		e.SetSubject(info.Resource)
		e.SetExtension(ExtResource, info.Resource)
	}
	e.SetExtension(ExtActor, info.Actor)
	e.SetExtension(ExtCategory, info.Category)
	e.SetExtension(ExtSeverity, info.Severity)
	if data != nil {
		if err := e.SetData(event.ApplicationJSON, data); err != nil {
			return fmt.Errorf("encode data of %s event: %w", e.Type(), err)
		}
	}
	return nil
}

// IsOutcome reports whether typ is a .completed or .failed type.
func IsOutcome(typ string) bool {
	return strings.HasSuffix(typ, SuffixCompleted) || strings.HasSuffix(typ, SuffixFailed)
}

// DeploymentChange is the data of deployment.create and deployment.update
// (and their outcomes).
type DeploymentChange struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Previous is the version replaced, for updates.
	Previous string `json:"previous,omitempty"`
	// Functions are the deployment's function names.
	Functions []string `json:"functions,omitempty"`
	// Error is set on .failed outcomes.
	Error string `json:"error,omitempty"`
}

// ReplayRequest is the data of deployment.replay: which function's
// consumer groups are reset, on which stream, to where.
type ReplayRequest struct {
	Deployment string `json:"deployment"`
	Function   string `json:"function,omitempty"`
	Stream     string `json:"stream,omitempty"`
	From       string `json:"from"`
	// Offsets is set on the .completed outcome: group → stream →
	// partition → offset committed.
	Offsets map[string]map[string]map[int32]int64 `json:"offsets,omitempty"`
	// Error is set on .failed outcomes.
	Error string `json:"error,omitempty"`
}

// InstanceCrash is the data of instance.crash.
type InstanceCrash struct {
	Deployment string `json:"deployment"`
	Version    string `json:"version"`
	Instance   string `json:"instance"`
	Error      string `json:"error"`
	// Restarts is how many times the replica has crashed in a row.
	Restarts int `json:"restarts"`
}

// AuthReject is the data of auth.reject.
type AuthReject struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Reason string `json:"reason"`
	Remote string `json:"remote,omitempty"`
}
