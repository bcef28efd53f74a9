package descriptor

import (
	"slices"
	"strings"
)

// Descriptor is one deployment: a name, a platform and the functions it
// wires (DESIGN §4). Field names in YAML/JSON are the JSON tags.
type Descriptor struct {
	// Name is the deployment name, ^[a-z][a-z0-9-]{0,62}$. It prefixes
	// consumer groups (butter.<name>.<function>) and default stream names.
	Name string `json:"name"`
	// Platform runs every function of the deployment: node, python, go,
	// exec, http or image (see the Platform constants).
	Platform string `json:"platform"`
	// Version is optional; the deployer fills it with a hash of the code and
	// the descriptor when empty, so it is left empty here.
	Version string `json:"version,omitempty"`
	// Description is free text for humans.
	Description string `json:"description,omitempty"`
	// Env is set in every function's environment. Names starting BUTTER_
	// are reserved for the platform.
	Env map[string]string `json:"env,omitempty"`
	// SecretEnv is set in every function's environment like Env, but its
	// values are secrets: the deployer stores each one encrypted (as a
	// value starting SealedPrefix, in place in the stored descriptor),
	// never returns it, and decrypts it only into the environment of the
	// instances it starts. A name is in Env or SecretEnv, not both.
	SecretEnv map[string]string `json:"secretEnv,omitempty"`
	// Functions are the deployment's functions; at least one.
	Functions []Function `json:"functions"`
	// Runtime runs the deployment's instances: process or docker (the
	// Runtime constants). Empty means the deployer's --runtime.
	Runtime string `json:"runtime,omitempty"`
	// Isolation says whether the deployment's instances get processes of
	// their own (process, the default) or share one fnbox and one host
	// process with the other shared deployments of their platform (shared;
	// node and python only). See the Isolation constants.
	Isolation string `json:"isolation,omitempty"`
	// Bridges are the deployment's sources and sinks (DESIGN §7), run by
	// the bridge service (see bridge.go).
	Bridges []Bridge `json:"bridges,omitempty"`
}

// Platforms a descriptor may name (DESIGN §5).
const (
	PlatformNode   = "node"   // fn is <file>:<export>
	PlatformPython = "python" // fn is <file>:<export>
	PlatformGo     = "go"     // fn is a command serving the Go SDK's HTTP protocol
	PlatformExec   = "exec"   // fn is a command run once per event
	PlatformHTTP   = "http"   // fn is a command serving HTTP on $PORT
	PlatformImage  = "image"  // fn is a container image serving HTTP on $PORT
)

// Runtimes a descriptor may name (DESIGN §4): what runs its instances.
const (
	RuntimeProcess = "process" // fnbox as a process on the deployer's machine
	RuntimeDocker  = "docker"  // fnbox in a container, through the Docker engine
)

// Runtimes lists every runtime, in the order error messages give them.
var Runtimes = []string{RuntimeProcess, RuntimeDocker}

// Isolation values.
const (
	// IsolationProcess gives each instance its own fnbox and runtime
	// processes: its own env, secrets, limits and crash domain.
	IsolationProcess = "process"
	// IsolationShared runs the instance inside one shared fnbox per
	// platform, its functions loaded into one host process beside other
	// deployments': a fraction of the memory, but no env, secrets or
	// limits of its own, and a host crash restarts every function in it.
	IsolationShared = "shared"
)

// Shared reports whether the deployment is isolation: shared.
func (d *Descriptor) Shared() bool { return d.Isolation == IsolationShared }

// Isolations lists every isolation, in the order error messages give them.
var Isolations = []string{IsolationProcess, IsolationShared}

// SharedPlatforms are the platforms whose deployments may be shared: those
// whose functions load into one host process (a module in node, a module
// in python). The others run a process per function or per event.
var SharedPlatforms = []string{PlatformNode, PlatformPython}

// Platforms lists every platform, in the order error messages give them.
var Platforms = []string{PlatformNode, PlatformPython, PlatformGo, PlatformExec, PlatformHTTP, PlatformImage}

// Function is one function of a deployment: what to run and what feeds it.
type Function struct {
	// Fn locates the code; its form depends on the platform (DESIGN §5):
	// <file>:<export> for node and python, a command for go, exec and
	// http, an image reference for image.
	Fn string `json:"fn"`
	// Name names the function within the deployment. When the descriptor
	// leaves it out it is derived from Fn (see DeriveName).
	Name string `json:"name"`
	// Bindings say which events invoke the function and where its results go.
	Bindings Bindings `json:"bindings"`
	// Delivery says how events are retried, ordered and committed.
	Delivery Delivery `json:"delivery"`
	// Scale bounds the number of instances and the work each takes on.
	Scale Scale `json:"scale"`
	// Limits caps each instance's resources; empty means no cap.
	Limits Limits `json:"limits,omitzero"`
}

// Bindings wire a function to its inputs and outputs. At least one of
// Route, Timer and Streams is set.
type Bindings struct {
	// Route, if set, turns HTTP requests into events for the function.
	Route *Route `json:"route,omitempty"`
	// Timer, if set, invokes the function on a cron schedule.
	Timer *Timer `json:"timer,omitempty"`
	// Streams the function consumes, each from its own start position.
	Streams []StreamBinding `json:"streams,omitempty"`
	// Out is the stream the function's return value is written to; empty
	// means return values are dropped (route replies still answer HTTP).
	Out string `json:"out,omitempty"`
	// Emits lists the streams context.emit may write to. Naming them lets
	// the deployer create them and fnbox refuse writes anywhere else.
	Emits []string `json:"emits,omitempty"`
}

// StreamNames returns every stream the function reads or writes, inputs
// first, without duplicates: the deployer creates each of them.
func (f *Function) StreamNames() []string {
	var names []string
	b := f.Bindings
	if b.Route != nil {
		names = append(names, b.Route.Stream)
	}
	if b.Timer != nil {
		names = append(names, b.Timer.Stream)
	}
	for _, s := range b.Streams {
		names = append(names, s.Name)
	}
	names = append(names, b.Out)
	names = append(names, b.Emits...)
	names = append(names, f.Delivery.DeadLetter)
	out := names[:0]
	for _, n := range names {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// Inputs returns the streams the function consumes: its route's request
// stream and its timer's tick stream, each read from the first event
// (they exist for this function alone, so nothing written to them before
// its consumer group first joined may be skipped; expired requests are
// dead-lettered by their deadline), then its stream bindings.
func (f *Function) Inputs() []StreamBinding {
	var in []StreamBinding
	if r := f.Bindings.Route; r != nil {
		in = append(in, StreamBinding{Name: r.Stream, Offset: Offset{Kind: OffsetFirst}})
	}
	if t := f.Bindings.Timer; t != nil {
		in = append(in, StreamBinding{Name: t.Stream, Offset: Offset{Kind: OffsetFirst}})
	}
	return append(in, f.Bindings.Streams...)
}

// Route turns HTTP requests on a path prefix into request events on a
// stream and waits for the reply (DESIGN §7). In YAML it is a mapping, or
// just the context path as a string.
type Route struct {
	// Context is the path prefix served: a request to <context>/** invokes
	// the function. It starts with "/".
	Context string `json:"context"`
	// Methods are the HTTP methods served, upper case; empty means every
	// method (use Allows rather than reading it).
	Methods []string `json:"methods,omitempty"`
	// Stream carries the request events. Default "<deployment>-<function>-http".
	Stream string `json:"stream"`
	// Timeout is how long the gateway waits for the reply before
	// answering 504. Default 30s.
	Timeout Duration `json:"timeout"`
	// MaxBody is the largest request body accepted; larger ones get 413.
	// Default 1 MiB.
	MaxBody ByteSize `json:"maxBody"`
	// Auth, if set, requires callers to authenticate. Nil means the route
	// is public.
	Auth *RouteAuth `json:"auth,omitempty"`
	// Mode says what a request is: RouteModeHTTP (the default, also "")
	// wraps any request in a butter.http.request event; RouteModeCloudEvents
	// takes a CloudEvent request as the request event itself and answers
	// with the reply event in HTTP binary mode.
	Mode string `json:"mode,omitempty"`
}

// Route modes.
const (
	// RouteModeHTTP wraps any HTTP request in a butter.http.request event.
	RouteModeHTTP = "http"
	// RouteModeCloudEvents serves CloudEvents over HTTP (binary or
	// structured): the request is the event, the reply is an event.
	RouteModeCloudEvents = "cloudevents"
)

// CloudEvents reports whether the route is in RouteModeCloudEvents.
func (r *Route) CloudEvents() bool { return r.Mode == RouteModeCloudEvents }

// Allows reports whether the route serves HTTP method m.
func (r *Route) Allows(m string) bool {
	return len(r.Methods) == 0 || slices.Contains(r.Methods, strings.ToUpper(m))
}

// RouteAuth says who may call a route. A request is let in if it carries a
// valid API key (when APIKey is set) or a valid JWT (when JWT is set), and
// the credential grants every scope in Scopes.
type RouteAuth struct {
	// APIKey accepts API keys managed through the deployer.
	APIKey bool `json:"apiKey,omitempty"`
	// JWT accepts OIDC/JWT bearer tokens from one issuer.
	JWT *JWTAuth `json:"jwt,omitempty"`
	// Scopes must all be granted to the caller.
	Scopes []string `json:"scopes,omitempty"`
}

// JWTAuth says which bearer tokens a route accepts.
type JWTAuth struct {
	// Issuer must equal the token's iss claim; an http(s) URL.
	Issuer string `json:"issuer"`
	// Audience, if set, must be among the token's aud claim.
	Audience string `json:"audience,omitempty"`
	// JWKS is the URL of the issuer's signing keys. Empty means discover
	// it from <issuer>/.well-known/openid-configuration.
	JWKS string `json:"jwks,omitempty"`
}

// Timer invokes a function on a cron schedule by writing tick events to a
// stream (DESIGN §7). In YAML it is a mapping, or just the schedule as a
// string.
type Timer struct {
	// Schedule is a cron expression with optional seconds, or a descriptor
	// such as @hourly or @every 10s (see Parser).
	Schedule string `json:"schedule"`
	// Timezone is the IANA zone the schedule is read in. Default UTC, so
	// a schedule means the same on every machine.
	Timezone string `json:"timezone"`
	// Stream carries the tick events. Default "<deployment>-<function>-ticks".
	Stream string `json:"stream"`
	// CatchUp says what happens to ticks missed while the timer was down:
	// none, one (default) or all.
	CatchUp string `json:"catchUp"`
}

// Catch-up policies for ticks missed while no timer replica was running.
const (
	CatchUpNone = "none" // skip missed ticks
	CatchUpOne  = "one"  // fire once for all missed ticks (the latest)
	CatchUpAll  = "all"  // fire every missed tick, oldest first
)

// StreamBinding consumes one stream. In YAML it is a mapping, or just the
// stream name as a string.
type StreamBinding struct {
	// Name is the stream.
	Name string `json:"name"`
	// Offset is where the function's consumer group starts when it has no
	// committed position. Default latest.
	Offset Offset `json:"offset"`
	// Filter, if set, passes only events whose CloudEvents attributes
	// (or extensions) equal every given value; others are skipped and
	// committed without invoking.
	Filter map[string]string `json:"filter,omitempty"`
}

// Delivery says how events reach a function (DESIGN §6).
type Delivery struct {
	// Retries is how many times a failed invocation is retried before the
	// event is dead-lettered: up to Retries+1 attempts. Default 3.
	Retries int `json:"retries"`
	// Backoff is the wait before the first retry; it doubles each retry,
	// with jitter, up to MaxBackoff. Default 200ms.
	Backoff Duration `json:"backoff"`
	// MaxBackoff caps the wait between retries. Default 30s.
	MaxBackoff Duration `json:"maxBackoff"`
	// Timeout bounds one invocation; a timeout is a failure. Default 30s.
	Timeout Duration `json:"timeout"`
	// DeadLetter is the stream failed events go to. Default
	// "<deployment>-<function>-dlq", so no failure is ever dropped.
	DeadLetter string `json:"deadLetter"`
	// Ordering is partition (default: events of a partition one at a time,
	// retries block it), key (events of one record key one at a time, in
	// offset order, different keys concurrently; a retry blocks its key)
	// or none (a partition's events run concurrently).
	Ordering string `json:"ordering"`
	// Guarantee is at-least-once (default) or exactly-once (Kafka
	// transactions from input to out and emits).
	Guarantee string `json:"guarantee"`
	// Batch is the most events handed to one invocation. Default 1.
	Batch int `json:"batch"`
}

// Delivery orderings and guarantees.
const (
	OrderingPartition = "partition" // one event at a time per partition, in order
	OrderingKey       = "key"       // one event at a time per record key, in order
	OrderingNone      = "none"      // a partition's events concurrently

	AtLeastOnce = "at-least-once" // commit after success; a crash redelivers
	ExactlyOnce = "exactly-once"  // Kafka transactions from input to outputs
)

// Scale bounds how many instances of a function run and how much each
// takes on at once; loadmon picks the count in between (DESIGN §7).
type Scale struct {
	// Min is the fewest instances. It is a pointer because 0 is a real
	// choice (scale to zero when idle) that differs from leaving it out
	// (default 1). Parse always sets it; read it with MinReplicas.
	Min *int `json:"min"`
	// Max is the most instances. Default the larger of 8 and Min.
	Max int `json:"max"`
	// Concurrency is how many events one instance processes at once.
	// Default 1 with ordering partition, 16 with ordering key or none.
	Concurrency int `json:"concurrency"`
	// LagPerReplica is the consumer lag one instance is expected to
	// carry: loadmon runs ceil(lag / LagPerReplica) instances at least
	// (KEDA's lagThreshold). Default 1000.
	LagPerReplica int64 `json:"lagPerReplica"`
	// ActivationLag is the lag above which a function scaled to zero
	// wakes (KEDA's activationLagThreshold). Default 0: any lag wakes it.
	ActivationLag int64 `json:"activationLag"`
	// IdleAfter is how long a function with min 0 must have had no lag
	// and no event in flight before it goes to zero instances. Default 5m.
	IdleAfter Duration `json:"idleAfter"`
}

// MinReplicas returns Min, or the default when it is not set.
func (s Scale) MinReplicas() int {
	if s.Min == nil {
		return DefaultMinReplicas
	}
	return *s.Min
}

// Limits caps each instance's resources, in Kubernetes quantity notation.
// Empty means no cap.
type Limits struct {
	// Memory is a byte size like 256Mi, 1Gi or 500M.
	Memory string `json:"memory,omitempty"`
	// CPU is a number of cores like 0.5, 2 or 500m.
	CPU string `json:"cpu,omitempty"`
}

// MemoryBytes returns Memory in bytes, 0 when unset.
func (l Limits) MemoryBytes() int64 {
	n, err := ParseByteSize(l.Memory)
	if err != nil {
		return 0
	}
	return int64(n)
}

// MilliCPU returns CPU in thousandths of a core, 0 when unset.
func (l Limits) MilliCPU() int64 {
	n, err := parseMilliCPU(l.CPU)
	if err != nil {
		return 0
	}
	return n
}
