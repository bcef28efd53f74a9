package descriptor

import (
	"path"
	"strings"
	"time"
)

// Defaults a parsed descriptor gets for what it leaves out. They follow
// what users of Kafka consumers, AWS Lambda and Knative expect; each is
// explained where the field is declared and in docs/descriptor.md.
const (
	// DefaultRetries gives a failing event four attempts in all before it
	// is dead-lettered: enough to ride out a blip, few enough that a poison
	// event does not block its partition for long.
	DefaultRetries = 3
	// DefaultBackoff is the first retry's wait, doubling after.
	DefaultBackoff = Duration(200 * time.Millisecond)
	// DefaultMaxBackoff caps the wait between retries.
	DefaultMaxBackoff = Duration(30 * time.Second)
	// DefaultTimeout bounds one invocation, as the gateway bounds a request.
	DefaultTimeout = Duration(30 * time.Second)
	// DefaultRouteTimeout is how long the gateway waits for a reply (DESIGN §7).
	DefaultRouteTimeout = Duration(30 * time.Second)
	// DefaultMaxBody is the largest request body a route accepts (DESIGN §7).
	DefaultMaxBody = MiB
	// DefaultBatch hands functions one event at a time.
	DefaultBatch = 1
	// DefaultMinReplicas keeps one instance warm; min: 0 scales to zero.
	DefaultMinReplicas = 1
	// DefaultMaxReplicas bounds scale-out when max is left out (raised to
	// min if min is larger). Loadmon never runs more instances than a
	// partition-ordered function has partitions anyway.
	DefaultMaxReplicas = 8
	// DefaultLagPerReplica is KEDA's default lagThreshold: an instance
	// per thousand events behind.
	DefaultLagPerReplica = 1000
	// DefaultIdleAfter is how long a min-0 function idles before it
	// goes to zero (Knative's scale-to-zero grace is of the same order).
	DefaultIdleAfter = Duration(5 * time.Minute)
	// DefaultConcurrency is the events in flight per instance, whatever
	// the ordering. With ordering partition they come from different
	// partitions, each still in order: what AWS Lambda's Kafka event
	// source and Knative's KafkaSource do (partitions concurrently, each
	// in order). Code that cannot take two events at once sets
	// concurrency: 1 (docs/descriptor.md).
	DefaultConcurrency = 16
	// DefaultTimezone reads schedules in UTC so they mean the same on every
	// machine.
	DefaultTimezone = "UTC"
	// DefaultCatchUp fires one tick for a stretch of missed ones: a job
	// that should have run does run, but only once.
	DefaultCatchUp = CatchUpOne
	// DefaultOrdering keeps each partition's order (DESIGN §6).
	DefaultOrdering = OrderingPartition
	// DefaultGuarantee is at-least-once (DESIGN §6).
	DefaultGuarantee = AtLeastOnce
)

// RouteStream names the stream a route writes requests to when the
// descriptor does not.
func RouteStream(deployment, function string) string {
	return deployment + "-" + function + "-http"
}

// TimerStream names the stream a timer writes ticks to when the
// descriptor does not.
func TimerStream(deployment, function string) string {
	return deployment + "-" + function + "-ticks"
}

// DeadLetterStream names the stream failed events go to when the
// descriptor does not. There is always one, so a failure is never lost.
func DeadLetterStream(deployment, function string) string {
	return deployment + "-" + function + "-dlq"
}

// DeriveName gives a function without a name one, from its fn:
//
//   - node, python: the export, kebab-cased: handler.js:onOrder → on-order;
//   - go, exec, http: the command's file name without extension:
//     ./bin/score.sh --fast → score;
//   - image: the repository's last part: ghcr.io/acme/orders:1.2 → orders.
//
// The result always matches ^[a-z][a-z0-9-]{0,62}$: characters outside it
// become '-', and a name not starting with a letter gets "fn-" in front.
func DeriveName(platform, fn string) string {
	fn = strings.TrimSpace(fn)
	var base string
	switch platform {
	case PlatformNode, PlatformPython:
		if i := strings.LastIndexByte(fn, ':'); i >= 0 {
			base = fn[i+1:]
		} else {
			base = stripExt(path.Base(fn))
		}
		// An export path (handlers.onOrder) is named after its last part.
		if i := strings.LastIndexByte(base, '.'); i >= 0 {
			base = base[i+1:]
		}
	case PlatformImage:
		ref := fn
		if i := strings.IndexByte(ref, '@'); i >= 0 {
			ref = ref[:i]
		}
		ref = ref[strings.LastIndexByte(ref, '/')+1:]
		if i := strings.IndexByte(ref, ':'); i >= 0 {
			ref = ref[:i]
		}
		base = ref
	default:
		cmd := fn
		if f := strings.Fields(fn); len(f) > 0 {
			cmd = f[0]
		}
		base = stripExt(path.Base(strings.ReplaceAll(cmd, `\`, "/")))
	}
	return kebab(base)
}

func stripExt(s string) string {
	if i := strings.LastIndexByte(s, '.'); i > 0 {
		return s[:i]
	}
	return s
}

// kebab turns an identifier into a name: onOrder → on-order,
// HTTPHandler → http-handler, on_order → on-order.
func kebab(s string) string {
	isUpper := func(c byte) bool { return c >= 'A' && c <= 'Z' }
	isLower := func(c byte) bool { return c >= 'a' && c <= 'z' }
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	var b strings.Builder
	dash := func() {
		if b.Len() > 0 && !strings.HasSuffix(b.String(), "-") {
			b.WriteByte('-')
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isUpper(c):
			if i > 0 && (isLower(s[i-1]) || isDigit(s[i-1]) ||
				(isUpper(s[i-1]) && i+1 < len(s) && isLower(s[i+1]))) {
				dash()
			}
			b.WriteByte(c + ('a' - 'A'))
		case isLower(c) || isDigit(c):
			b.WriteByte(c)
		default:
			dash()
		}
	}
	name := strings.Trim(b.String(), "-")
	if name == "" {
		return "fn"
	}
	if !isLower(name[0]) {
		name = "fn-" + name
	}
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	return name
}

// applyDefaults fills in what a valid descriptor leaves out. Every field
// whose zero value is invalid when written is defaulted on zero; retries,
// where 0 is a real choice, only when the file left it out (retriesSet).
func applyDefaults(desc *Descriptor, retriesSet func(i int) bool) {
	for i := range desc.Functions {
		f := &desc.Functions[i]
		if f.Name == "" {
			f.Name = DeriveName(desc.Platform, f.Fn)
		}
		b := &f.Bindings
		if r := b.Route; r != nil {
			for j, m := range r.Methods {
				r.Methods[j] = strings.ToUpper(m)
			}
			r.Stream = or(r.Stream, RouteStream(desc.Name, f.Name))
			r.Timeout = or(r.Timeout, DefaultRouteTimeout)
			r.MaxBody = or(r.MaxBody, DefaultMaxBody)
		}
		if t := b.Timer; t != nil {
			t.Timezone = or(t.Timezone, DefaultTimezone)
			t.Stream = or(t.Stream, TimerStream(desc.Name, f.Name))
			t.CatchUp = or(t.CatchUp, DefaultCatchUp)
		}
		dl := &f.Delivery
		if !retriesSet(i) {
			dl.Retries = DefaultRetries
		}
		dl.Backoff = or(dl.Backoff, DefaultBackoff)
		dl.MaxBackoff = or(dl.MaxBackoff, DefaultMaxBackoff)
		dl.Timeout = or(dl.Timeout, DefaultTimeout)
		dl.DeadLetter = or(dl.DeadLetter, DeadLetterStream(desc.Name, f.Name))
		dl.Ordering = or(dl.Ordering, DefaultOrdering)
		dl.Guarantee = or(dl.Guarantee, DefaultGuarantee)
		dl.Batch = or(dl.Batch, DefaultBatch)
		s := &f.Scale
		if s.Min == nil {
			v := DefaultMinReplicas
			s.Min = &v
		}
		s.Max = or(s.Max, max(DefaultMaxReplicas, *s.Min))
		s.Concurrency = or(s.Concurrency, DefaultConcurrency)
		s.LagPerReplica = or(s.LagPerReplica, DefaultLagPerReplica)
		s.IdleAfter = or(s.IdleAfter, DefaultIdleAfter)
	}
}

// or returns v, or def when v is the zero value.
func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
