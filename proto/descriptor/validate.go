package descriptor

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/buttercompass/butter/proto/topics"
)

// This file holds the rules about values (DESIGN §4, §6, §7). It runs on
// the decoded Descriptor, before defaults, and finds positions through
// the decoder's record of where each field was.

// Upper bounds on counts: far above any real use, they catch a typo'd
// extra digit before it becomes ten thousand containers.
const (
	maxRetries     = 10000
	maxBatch       = 10000
	maxConcurrency = 10000
)

// MaxReplicas bounds scale.min and scale.max: each replica is an fnbox
// process (on one machine with the process runtime), so scale.min: 1000
// would start a thousand of them.
const MaxReplicas = 64

// MaxStreams bounds the streams one descriptor names (bound, out, emits,
// dead letters, route and timer streams): each is a topic the deployer
// creates at deploy, and thousands made the broker refuse connections.
const MaxStreams = 100

var (
	namePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	// A version names a directory and appears in instance names: no path
	// separators, no leading dot.
	versionPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)
	envPattern     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// CloudEvents attribute names: lower-case letters and digits, at most
	// 20 of them (CloudEvents 1.0 §3.1.1).
	attrPattern = regexp.MustCompile(`^[a-z0-9]{1,20}$`)
	// An export is a JavaScript or Python identifier, or a dotted path of
	// them (handlers.onOrder).
	exportPattern = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$`)
)

// httpMethods are the methods a route may list, in message order.
var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}

// checker reports rule violations at the recorded positions.
type checker struct {
	d *decoder
}

// present reports whether the file set field p (to a non-null value).
func (c checker) present(p string) bool {
	_, ok := c.d.pos[p]
	return ok
}

// report adds a problem about field p, unless p or a field containing it
// was already reported while decoding. A field the file left out is
// placed at the nearest field around it that the file has.
func (c checker) report(p, format string, args ...any) {
	for q := p; ; q = parent(q) {
		if c.d.broken[q] {
			return
		}
		if q == "" {
			break
		}
	}
	var at mark
	for q := p; ; q = parent(q) {
		if m, ok := c.d.pos[q]; ok {
			at = m
			break
		}
		if q == "" {
			break
		}
	}
	c.d.probs = append(c.d.probs, Problem{File: c.d.file, Line: at.line, Column: at.col, Field: p, Message: fmt.Sprintf(format, args...)})
}

// parent strips the last step off a field path; it always shortens it.
func parent(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// validate checks every rule and reports through the decoder.
func validate(desc *Descriptor, d *decoder) {
	c := checker{d}
	switch {
	case !c.present("name"):
		c.report("name", "required: name the deployment, like orders")
	case !namePattern.MatchString(desc.Name):
		c.report("name", "%s", badName(desc.Name))
	}
	if c.present("version") && !ValidVersion(desc.Version) {
		c.report("version", "%q is not a valid version: use 1-128 characters of letters, digits, ., _, + and -, starting with a letter or digit, like 1.4.0", desc.Version)
	}
	switch {
	case !c.present("platform"):
		c.report("platform", "required: one of %s", orList(Platforms))
	case !slices.Contains(Platforms, desc.Platform):
		c.report("platform", "%q is not a platform: use %s", desc.Platform, orList(Platforms))
	case desc.Platform == PlatformImage:
		// Refused until a runtime runs a user's image: it would pass here
		// and then crash-loop with "platform is not available".
		c.report("platform", "%q is not available yet: use http with the command that serves $PORT, or node, python, go or exec; runtime: docker runs those in a container", desc.Platform)
	}
	if c.present("runtime") && !slices.Contains(Runtimes, desc.Runtime) {
		c.report("runtime", "%q is not a runtime: use %s, or leave it out for the deployer's --runtime", desc.Runtime, orList(Runtimes))
	}
	c.isolation(desc)
	for k := range desc.Env {
		p := key("env", k)
		switch {
		case !envPattern.MatchString(k):
			c.report(p, "%q is not an environment variable name: use letters, digits and _, not starting with a digit", k)
		case strings.HasPrefix(strings.ToUpper(k), "BUTTER_"):
			c.report(p, "names starting BUTTER_ are reserved for the platform")
		}
	}
	c.secretEnv(desc)
	switch {
	case !c.present("functions"):
		c.report("functions", "required: at least one function")
	case len(desc.Functions) == 0:
		c.report("functions", "needs at least one function")
	}
	names := map[string]int{}
	contexts := map[string]int{}
	derivedNames := map[int]bool{}
	for i := range desc.Functions {
		c.function(desc, i, names, contexts, derivedNames)
	}
	c.streamCount(desc)
	c.bridges(desc)
}

// isolation checks isolation and what a shared deployment cannot have:
// its functions run in one process with other deployments', which has one
// environment and one cgroup, so env, secrets and limits of its own are
// refused rather than silently dropped or leaked to the neighbours.
func (c checker) isolation(desc *Descriptor) {
	if !c.present("isolation") {
		return
	}
	if !slices.Contains(Isolations, desc.Isolation) {
		c.report("isolation", "%q is not an isolation: use %s, or leave it out for process", desc.Isolation, orList(Isolations))
		return
	}
	if !desc.Shared() {
		return
	}
	if slices.Contains(Platforms, desc.Platform) && !slices.Contains(SharedPlatforms, desc.Platform) {
		c.report("isolation", "shared is for %s, whose functions load into one host process; %s functions run processes of their own: use isolation: process", strings.Join(SharedPlatforms, " and "), desc.Platform)
	}
	const why = "a shared deployment runs in one process with the other shared deployments, which has one environment"
	if len(desc.Env) > 0 {
		c.report("env", "%s: use isolation: process to set env", why)
	}
	if len(desc.SecretEnv) > 0 {
		c.report("secretEnv", "%s, readable by all of them: use isolation: process to set secretEnv", why)
	}
	for i := range desc.Functions {
		p := index("functions", i) + ".limits"
		for _, field := range []string{"memory", "cpu"} {
			if c.present(p + "." + field) {
				c.report(p+"."+field, "a shared deployment runs in one process with the other shared deployments, which has one cgroup: use isolation: process to set limits")
			}
		}
	}
}

// streamCount reports the first stream past MaxStreams distinct ones, in
// the order the functions name them. Streams left to defaults (a route's,
// a timer's, a dead letter) count one each; internal streams are not
// created, so they do not count.
func (c checker) streamCount(desc *Descriptor) {
	seen := map[string]bool{}
	for i := range desc.Functions {
		f := &desc.Functions[i]
		p := index("functions", i)
		bp := p + ".bindings"
		type named struct{ name, path string }
		var all []named
		derived := func(set, field, path string) named {
			if set != "" {
				return named{set, path + "." + field}
			}
			return named{"\x00" + path + "." + field, path} // a default: unique
		}
		if f.Bindings.Route != nil {
			all = append(all, derived(f.Bindings.Route.Stream, "stream", bp+".route"))
		}
		if f.Bindings.Timer != nil {
			all = append(all, derived(f.Bindings.Timer.Stream, "stream", bp+".timer"))
		}
		for j, s := range f.Bindings.Streams {
			all = append(all, named{s.Name, index(bp+".streams", j) + ".name"})
		}
		if f.Bindings.Out != "" {
			all = append(all, named{f.Bindings.Out, bp + ".out"})
		}
		for j, s := range f.Bindings.Emits {
			all = append(all, named{s, index(bp+".emits", j)})
		}
		all = append(all, derived(f.Delivery.DeadLetter, "deadLetter", p+".delivery"))
		for _, n := range all {
			if n.name == "" || topics.IsInternal(n.name) || seen[n.name] {
				continue
			}
			seen[n.name] = true
			if len(seen) > MaxStreams {
				c.report(n.path, "is stream number %d of this descriptor: at most %d, each is a topic the deployer creates; split the deployment", len(seen), MaxStreams)
				return
			}
		}
	}
}

// ValidVersion reports whether v may be a deployment version.
func ValidVersion(v string) bool { return versionPattern.MatchString(v) }

func badName(s string) string {
	return fmt.Sprintf("%q is not a valid name: use 1-63 characters of a-z, 0-9 and -, starting with a letter", s)
}

// orList writes "a, b or c".
func orList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

// function checks functions[i]. names and contexts map each function name
// and route context seen so far to its function's index; derivedNames
// marks the functions whose name was derived.
func (c checker) function(desc *Descriptor, i int, names, contexts map[string]int, derivedNames map[int]bool) {
	f := &desc.Functions[i]
	p := index("functions", i)
	switch {
	case !c.present(p + ".fn"):
		c.report(p+".fn", "required: what to run, like handler.js:onOrder")
	default:
		c.fn(p+".fn", desc.Platform, f.Fn)
	}

	// Names are compared after derivation: two functions left unnamed can
	// still collide. whose says where a taken name came from.
	name, derived := f.Name, false
	whose := func(j int) string {
		if derivedNames[j] {
			return fmt.Sprintf("functions[%d] (derived from its fn)", j)
		}
		return fmt.Sprintf("functions[%d]", j)
	}
	switch {
	case c.present(p + ".name"):
		if !namePattern.MatchString(name) {
			c.report(p+".name", "%s", badName(name))
			name = ""
		} else if j, dup := names[name]; dup {
			c.report(p+".name", "%q is already the name of %s", name, whose(j))
		}
	case f.Fn != "":
		name, derived = DeriveName(desc.Platform, f.Fn), true
		if j, dup := names[name]; dup {
			c.report(p+".name", "the name derived from fn, %q, is already the name of %s: set name to tell them apart", name, whose(j))
		}
	}
	if _, dup := names[name]; name != "" && !dup {
		names[name] = i
		derivedNames[i] = derived
	}

	b := &f.Bindings
	bp := p + ".bindings"
	if b.Route == nil && b.Timer == nil && len(b.Streams) == 0 &&
		!c.d.broken[bp+".route"] && !c.d.broken[bp+".timer"] && !c.d.broken[bp+".streams"] {
		c.report(bp, "needs at least one of route, timer or streams")
	}
	if b.Route != nil {
		c.route(bp+".route", b.Route, i, contexts)
	}
	if b.Timer != nil {
		c.timer(bp+".timer", b.Timer)
	}
	bound := map[string]bool{}
	for j, s := range b.Streams {
		sp := index(bp+".streams", j)
		switch {
		case !c.present(sp + ".name"):
			c.report(sp+".name", "required: the stream to consume")
		case c.readable(sp+".name", s.Name) && bound[s.Name]:
			c.report(sp+".name", "%q is bound twice", s.Name)
		}
		bound[s.Name] = true
		for k := range s.Filter {
			if !attrPattern.MatchString(k) {
				c.report(key(sp+".filter", k), "%q is not a CloudEvents attribute name: use 1-20 characters of a-z and 0-9", k)
			}
		}
	}
	if c.present(bp + ".out") {
		c.writable(bp+".out", b.Out)
	}
	emitted := map[string]bool{}
	for j, s := range b.Emits {
		ep := index(bp+".emits", j)
		if c.writable(ep, s) && emitted[s] {
			c.report(ep, "%q is listed twice", s)
		}
		emitted[s] = true
	}

	c.delivery(p+".delivery", &f.Delivery)
	c.scale(p+".scale", &f.Scale, f.Delivery)
	c.limits(p+".limits", f.Limits)
}

// fn checks a function locator against its platform's form (DESIGN §5).
func (c checker) fn(p, platform, fn string) {
	if strings.TrimSpace(fn) == "" {
		c.report(p, "must not be empty")
		return
	}
	switch platform {
	case PlatformNode, PlatformPython:
		file, export, ok := strings.Cut(fn, ":")
		switch {
		case !ok || file == "":
			c.report(p, "%q is not <file>:<export>, like handler.js:onOrder", fn)
		case strings.HasPrefix(file, "/") || slices.Contains(strings.Split(file, "/"), ".."):
			c.report(p, "%q: the file must be inside the function's code, so no leading / and no ..", fn)
		case !exportPattern.MatchString(export):
			c.report(p, "%q is not an export name in %q: use the function's name in the file, like onOrder", export, fn)
		}
	case PlatformImage:
		if strings.ContainsAny(fn, " \t\r\n") {
			c.report(p, "%q is not an image reference: no spaces, like ghcr.io/acme/orders:1.2", fn)
		}
	}
}

// readable checks the name of a stream functions read; internal streams
// are allowed (functions may bind to _butter.events).
func (c checker) readable(p, name string) bool {
	if err := topics.ValidateStreamName(name); err != nil {
		c.report(p, "%v", err)
		return false
	}
	return true
}

// writable checks the name of a stream the platform writes for the
// function. Internal streams are refused: a function writing to
// _butter.events could forge the audit trail, one writing to
// _butter.deployments could redeploy anything.
func (c checker) writable(p, name string) bool {
	if !c.readable(p, name) {
		return false
	}
	if topics.IsInternal(name) {
		c.report(p, "%q is an internal stream: functions may read it but not write to it", name)
		return false
	}
	return true
}

func (c checker) route(p string, r *Route, fn int, contexts map[string]int) {
	cp := p + ".context"
	switch ctx := r.Context; {
	case !c.present(cp):
		c.report(cp, "required: the path the route serves, like /orders")
	case !strings.HasPrefix(ctx, "/"):
		c.report(cp, "%q must start with /", ctx)
	case strings.ContainsAny(ctx, "?# \t\r\n"):
		c.report(cp, "%q must be a path, without query, fragment or spaces", ctx)
	case path.Clean(ctx) != ctx:
		c.report(cp, "%q is not a clean path: write %q", ctx, path.Clean(ctx))
	default:
		if j, dup := contexts[ctx]; dup {
			c.report(cp, "%q is already the context of functions[%d]", ctx, j)
		} else {
			contexts[ctx] = fn
		}
	}
	if c.present(p+".methods") && len(r.Methods) == 0 {
		c.report(p+".methods", "lists no method: leave methods out to serve every method")
	}
	seen := map[string]bool{}
	for j, m := range r.Methods {
		mp := index(p+".methods", j)
		up := strings.ToUpper(m)
		switch {
		case !slices.Contains(httpMethods, up):
			c.report(mp, "%q is not an HTTP method: use %s", m, orList(httpMethods))
		case seen[up]:
			c.report(mp, "%q is listed twice", m)
		}
		seen[up] = true
	}
	if c.present(p + ".stream") {
		c.writable(p+".stream", r.Stream)
	}
	if c.present(p+".timeout") && r.Timeout == 0 {
		c.report(p+".timeout", "must be more than 0")
	}
	if c.present(p+".maxBody") && r.MaxBody <= 0 {
		c.report(p+".maxBody", "must be more than 0")
	}
	if r.Mode != "" && r.Mode != RouteModeHTTP && r.Mode != RouteModeCloudEvents {
		c.report(p+".mode", "%q is not a route mode: use %s or %s", r.Mode, RouteModeHTTP, RouteModeCloudEvents)
	}
	if a := r.Auth; a != nil {
		ap := p + ".auth"
		if !a.APIKey && a.JWT == nil && !c.d.broken[ap+".jwt"] && !c.d.broken[ap+".apiKey"] {
			c.report(ap, "lets nobody in: set apiKey: true, jwt, or both; leave auth out for a public route")
		}
		if j := a.JWT; j != nil {
			jp := ap + ".jwt"
			if !c.present(jp + ".issuer") {
				c.report(jp+".issuer", "required: the issuer's URL, as in the tokens' iss claim")
			} else {
				c.httpURL(jp+".issuer", j.Issuer)
			}
			if c.present(jp + ".jwks") {
				c.httpURL(jp+".jwks", j.JWKS)
			}
		}
		for j, s := range a.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\r\n") {
				c.report(index(ap+".scopes", j), "%q is not a scope: scopes are single words", s)
			}
		}
	}
}

// httpURL checks an absolute http or https URL.
func (c checker) httpURL(p, s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		c.report(p, "%q is not an http(s) URL", s)
	}
}

var catchUps = []string{CatchUpNone, CatchUpOne, CatchUpAll}

func (c checker) timer(p string, t *Timer) {
	sp := p + ".schedule"
	switch {
	case !c.present(sp):
		c.report(sp, "required: when to fire, like \"0 * * * *\" or @every 10s")
	case hasZonePrefix(t.Schedule):
		c.report(sp, "put the time zone in timezone, not in the schedule")
	default:
		if err := ValidateSchedule(t.Schedule); err != nil {
			c.report(sp, "%v", err)
		}
	}
	if c.present(p + ".timezone") {
		c.timezone(p+".timezone", t.Timezone)
	}
	if c.present(p + ".stream") {
		c.writable(p+".stream", t.Stream)
	}
	if c.present(p+".catchUp") && !slices.Contains(catchUps, t.CatchUp) {
		c.report(p+".catchUp", "%q is not a catch-up policy: use %s", t.CatchUp, orList(catchUps))
	}
}

func (c checker) timezone(p, tz string) {
	if tz == "Local" {
		c.report(p, "Local depends on the machine the timer runs on: name a zone like Europe/Berlin, or UTC")
		return
	}
	if _, err := time.LoadLocation(tz); err != nil {
		c.report(p, "%q is not a time zone: use an IANA name like Europe/Berlin, or UTC", tz)
	}
}

var (
	orderings  = []string{OrderingPartition, OrderingKey, OrderingNone}
	guarantees = []string{AtLeastOnce, ExactlyOnce}
)

func (c checker) delivery(p string, dl *Delivery) {
	switch {
	case dl.Retries < 0:
		c.report(p+".retries", "must not be negative")
	case dl.Retries > maxRetries:
		c.report(p+".retries", "must be at most %d", maxRetries)
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"backoff", dl.Backoff}, {"maxBackoff", dl.MaxBackoff}, {"timeout", dl.Timeout}} {
		if c.present(p+"."+d.name) && d.v == 0 {
			c.report(p+"."+d.name, "must be more than 0")
		}
	}
	if backoff, maxBackoff := or(dl.Backoff, DefaultBackoff), or(dl.MaxBackoff, DefaultMaxBackoff); backoff > maxBackoff {
		if c.present(p + ".maxBackoff") {
			c.report(p+".maxBackoff", "%v is less than backoff %v", maxBackoff, backoff)
		} else {
			c.report(p+".backoff", "%v is more than maxBackoff, which defaults to %v", backoff, maxBackoff)
		}
	}
	if c.present(p + ".deadLetter") {
		c.writable(p+".deadLetter", dl.DeadLetter)
	}
	if c.present(p+".ordering") && !slices.Contains(orderings, dl.Ordering) {
		c.report(p+".ordering", "%q is not an ordering: use %s", dl.Ordering, orList(orderings))
	}
	switch {
	case c.present(p+".guarantee") && !slices.Contains(guarantees, dl.Guarantee):
		c.report(p+".guarantee", "%q is not a guarantee: use %s", dl.Guarantee, orList(guarantees))
	case dl.Guarantee == ExactlyOnce && dl.Ordering != "" && dl.Ordering != OrderingPartition:
		// Transactions commit a partition's offsets in order; events
		// finishing out of order could not be committed exactly once.
		c.report(p+".guarantee", "exactly-once needs ordering: partition")
	}
	if c.present(p + ".batch") {
		switch {
		case dl.Batch < 1:
			c.report(p+".batch", "must be at least 1")
		case dl.Batch > maxBatch:
			c.report(p+".batch", "must be at most %d", maxBatch)
		}
	}
}

func (c checker) scale(p string, s *Scale, dl Delivery) {
	if s.Min != nil {
		switch {
		case *s.Min < 0:
			c.report(p+".min", "must not be negative (0 scales to zero when idle)")
		case *s.Min > MaxReplicas:
			c.report(p+".min", "must be at most %d", MaxReplicas)
		}
	}
	if c.present(p + ".max") {
		switch {
		case s.Max < 1:
			c.report(p+".max", "must be at least 1 (use min: 0 to scale to zero)")
		case s.Max > MaxReplicas:
			c.report(p+".max", "must be at most %d", MaxReplicas)
		case s.Min != nil && *s.Min > s.Max:
			c.report(p+".min", "%d is more than max %d", *s.Min, s.Max)
		}
	}
	if c.present(p + ".concurrency") {
		switch {
		case s.Concurrency < 1:
			c.report(p+".concurrency", "must be at least 1")
		case s.Concurrency > maxConcurrency:
			c.report(p+".concurrency", "must be at most %d", maxConcurrency)
		}
	}
	if c.present(p+".lagPerReplica") && s.LagPerReplica < 1 {
		c.report(p+".lagPerReplica", "must be at least 1")
	}
	if c.present(p+".activationLag") && s.ActivationLag < 0 {
		c.report(p+".activationLag", "must not be negative (0: any lag wakes the function)")
	}
	if c.present(p+".idleAfter") && s.IdleAfter < Duration(time.Second) {
		c.report(p+".idleAfter", "must be at least 1s")
	}
}

func (c checker) limits(p string, l Limits) {
	if c.present(p + ".memory") {
		if n, err := ParseByteSize(l.Memory); err != nil {
			c.report(p+".memory", "%v", err)
		} else if n <= 0 {
			c.report(p+".memory", "must be more than 0")
		}
	}
	if c.present(p + ".cpu") {
		if n, err := parseMilliCPU(l.CPU); err != nil {
			c.report(p+".cpu", "%v", err)
		} else if n <= 0 {
			c.report(p+".cpu", "must be more than 0")
		}
	}
}
