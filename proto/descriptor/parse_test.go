package descriptor

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
)

// problemsOf parses src as t.yaml and returns its problems as strings,
// failing the test if the error is something other than Problems.
func problemsOf(t *testing.T, src string) []string {
	t.Helper()
	_, err := Parse("t.yaml", []byte(src))
	if err == nil {
		return nil
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Parse error is %T, not Problems: %v", err, err)
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// mustParse parses src and fails the test on any problem.
func mustParse(t *testing.T, src string) *Descriptor {
	t.Helper()
	d, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return d
}

func TestDesignExample(t *testing.T) {
	d, err := ParseFile("testdata/design-example.yaml")
	if err != nil {
		t.Fatalf("ParseFile:\n%v", err)
	}
	five, one := 5, 1
	want := &Descriptor{
		Name:        "orders",
		Platform:    "node",
		Version:     "1.4.0",
		Description: "order handling",
		Env:         map[string]string{"LOG_LEVEL": "info"},
		Functions: []Function{{
			Fn:   "handler.js:onOrder",
			Name: "on-order",
			Bindings: Bindings{
				Route: &Route{
					Context: "/orders", Methods: []string{"POST"}, Stream: "orders-http",
					Timeout: DefaultRouteTimeout, MaxBody: DefaultMaxBody,
				},
				Timer: &Timer{Schedule: "*/10 * * * * *", Timezone: "UTC", Stream: "orders-on-order-ticks", CatchUp: "one"},
				Streams: []StreamBinding{{
					Name:   "orders",
					Offset: Offset{Kind: OffsetFirst},
					Filter: map[string]string{"type": "com.example.order.created"},
				}},
				Out:   "order-results",
				Emits: []string{"audit"},
			},
			Delivery: Delivery{
				Retries: five, Backoff: Duration(200 * time.Millisecond), MaxBackoff: Duration(30 * time.Second),
				Timeout: Duration(30 * time.Second), DeadLetter: "orders-dlq", Ordering: "partition",
				Guarantee: "at-least-once", Batch: 1,
			},
			Scale:  Scale{Min: &one, Max: 8, Concurrency: 16, LagPerReplica: DefaultLagPerReplica, IdleAfter: DefaultIdleAfter},
			Limits: Limits{Memory: "256Mi", CPU: "0.5"},
		}},
	}
	if !reflect.DeepEqual(d, want) {
		got, _ := json.MarshalIndent(d, "", "  ")
		exp, _ := json.MarshalIndent(want, "", "  ")
		t.Fatalf("parsed:\n%s\nwant:\n%s", got, exp)
	}
	if got := d.Functions[0].Limits.MemoryBytes(); got != 256<<20 {
		t.Errorf("MemoryBytes = %d, want %d", got, 256<<20)
	}
	if got := d.Functions[0].Limits.MilliCPU(); got != 500 {
		t.Errorf("MilliCPU = %d, want 500", got)
	}
	wantStreams := []string{"orders-http", "orders-on-order-ticks", "orders", "order-results", "audit", "orders-dlq"}
	if got := d.Functions[0].StreamNames(); !reflect.DeepEqual(got, wantStreams) {
		t.Errorf("StreamNames = %q, want %q", got, wantStreams)
	}
}

// TestBadDescriptor checks that every mistake in testdata/bad.yaml is
// reported, once, at its position, in file order.
func TestBadDescriptor(t *testing.T) {
	_, err := ParseFile("testdata/bad.yaml")
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("ParseFile error = %v, want Problems", err)
	}
	want := []string{
		`testdata/bad.yaml:3:7 name: "Orders" is not a valid name: use 1-63 characters of a-z, 0-9 and -, starting with a letter`,
		`testdata/bad.yaml:5:25 env.BUTTER_TOKEN: names starting BUTTER_ are reserved for the platform`,
		`testdata/bad.yaml:7:9 functions[0].fn: "handler.js" is not <file>:<export>, like handler.js:onOrder`,
		`testdata/bad.yaml:9:25 functions[0].bindings.route.context: "orders" must start with /`,
		`testdata/bad.yaml:9:49 functions[0].bindings.route.methods[1]: "FETCH" is not an HTTP method: use GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, CONNECT or TRACE`,
		`testdata/bad.yaml:10:26 functions[0].bindings.timer.schedule: "0 25 * * *" is not a schedule: end of range (25) above maximum (23): 25; use cron with optional seconds ("*/10 * * * * *", "0 9 * * MON-FRI") or @every 10s, @hourly, @daily`,
		`testdata/bad.yaml:10:50 functions[0].bindings.timer.timezone: "Mars/Base" is not a time zone: use an IANA name like Europe/Berlin, or UTC`,
		`testdata/bad.yaml:10:70 functions[0].bindings.timer.catchUp: "some" is not a catch-up policy: use none, one or all`,
		`testdata/bad.yaml:14:19 functions[0].bindings.streams[1].offset: "frist" is not first, latest, a number, an RFC 3339 time or a partition map`,
		`testdata/bad.yaml:15:17 functions[0].bindings.streams[2].name: "Refunds": stream names are 1-201 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit`,
		`testdata/bad.yaml:16:12 functions[0].bindings.out: "_butter.events" is an internal stream: functions may read it but not write to it`,
		`testdata/bad.yaml:17:14 functions[0].bindings.emits: expected a list, got a string`,
		`testdata/bad.yaml:18:17 functions[0].delivery.retires: unknown field (did you mean "retries"?)`,
		`testdata/bad.yaml:18:38 functions[0].delivery.backoff: 30 is not a duration: add a unit, like 30s or 30ms`,
		`testdata/bad.yaml:18:52 functions[0].delivery.ordering: "random" is not an ordering: use partition, key or none`,
		`testdata/bad.yaml:18:67 functions[0].delivery.batch: must be at least 1`,
		`testdata/bad.yaml:19:19 functions[0].scale.min: 4 is more than max 2`,
		`testdata/bad.yaml:19:43 functions[0].scale.concurrency: must be at least 1`,
		`testdata/bad.yaml:20:23 functions[0].limits.memory: "lots" is not a size: write bytes, or a number with Ki, Mi, Gi, KB, MB or GB`,
		`testdata/bad.yaml:21:5 functions[1].bindings: needs at least one of route, timer or streams`,
		`testdata/bad.yaml:23:5 functions[2].name: the name derived from fn, "on-order", is already the name of functions[1]: set name to tell them apart`,
		`testdata/bad.yaml:27:14 functions[3].bindings.route.context: "/orders" is already the context of functions[2]`,
		`testdata/bad.yaml:28:16 functions[3].bindings.streams: expected a list, got a string`,
		`testdata/bad.yaml:29:1 unknown: unknown field; the fields here are name, platform, version, runtime, isolation, description, env, secretEnv, functions, bridges`,
	}
	got := make([]string, len(ps))
	for i, p := range ps {
		got[i] = p.String()
	}
	diffLines(t, got, want)
	if err.Error() != strings.Join(want, "\n") {
		t.Errorf("Error() is not the problems one per line:\n%s", err)
	}
}

// diffLines reports the lines missing from got and the ones not wanted.
func diffLines(t *testing.T, got, want []string) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	var b strings.Builder
	b.WriteString("problems differ\n got:\n")
	for _, g := range got {
		b.WriteString("\t" + g + "\n")
	}
	b.WriteString(" want:\n")
	for _, w := range want {
		b.WriteString("\t" + w + "\n")
	}
	t.Error(b.String())
}

func TestJSON(t *testing.T) {
	const js = `{
	"name": "orders",
	"platform": "node",
	"functions": [{
		"fn": "handler.js:onOrder",
		"bindings": {
			"route": {"context": "\/orders", "methods": ["POST"]},
			"streams": [{"name": "orders", "offset": {"0": 42, "1": 17}}]
		},
		"delivery": {"retries": 0, "timeout": "5s"}
	}],
	"description": "caf\u00e9 \ud83d\ude00"
}`
	d := mustParse(t, js)
	f := d.Functions[0]
	if f.Bindings.Route.Context != "/orders" {
		t.Errorf("context = %q; \\/ in JSON must read as /", f.Bindings.Route.Context)
	}
	if d.Description != "café 😀" {
		t.Errorf("description = %q; JSON escapes must decode as in encoding/json", d.Description)
	}
	if want := (Offset{Kind: OffsetPartitions, Partitions: map[int32]int64{0: 42, 1: 17}}); !reflect.DeepEqual(f.Bindings.Streams[0].Offset, want) {
		t.Errorf("offset = %+v, want %+v", f.Bindings.Streams[0].Offset, want)
	}
	if f.Delivery.Retries != 0 || f.Delivery.Timeout != Duration(5*time.Second) {
		t.Errorf("delivery = %+v; explicit retries: 0 must stay 0", f.Delivery)
	}

	// Positions in JSON point into the JSON as sent, even after escapes
	// yaml.v3 cannot read were rewritten.
	got := problemsOf(t, `{"description": "a\/b\ud83d\ude00", "nmae": "x"}`)
	want := []string{
		`t.yaml:1:1 functions: required: at least one function`,
		`t.yaml:1:1 name: required: name the deployment, like orders`,
		`t.yaml:1:1 platform: required: one of node, python, go, exec, http or image`,
		`t.yaml:1:37 nmae: unknown field (did you mean "name"?)`,
	}
	diffLines(t, got, want)
}

// TestRoundTrip checks that a parsed descriptor's JSON parses back to the
// same descriptor: that JSON is what the deployer stores.
func TestRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, f := range files {
		d, err := ParseFile(f)
		if err != nil {
			continue // the bad examples
		}
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("%s: Marshal: %v", f, err)
		}
		d2, err := Parse(f+".json", b)
		if err != nil {
			t.Fatalf("%s: reparse:\n%v\n%s", f, err, b)
		}
		b2, _ := json.Marshal(d2)
		if string(b) != string(b2) {
			t.Errorf("%s: round trip changed the descriptor:\n%s\n%s", f, b, b2)
		}
		// encoding/json alone reads the stored form too.
		var d3 Descriptor
		if err := json.Unmarshal(b, &d3); err != nil {
			t.Fatalf("%s: json.Unmarshal: %v", f, err)
		}
		b3, _ := json.Marshal(&d3)
		if string(b) != string(b3) {
			t.Errorf("%s: json.Unmarshal changed the descriptor:\n%s\n%s", f, b, b3)
		}
	}
}

func TestSyntaxErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"unclosed flow", "name: x\nfunctions: [\n", `t.yaml:2: invalid YAML: did not find expected node content`},
		{"bad indent", "name: x\n  platform: node\n", `t.yaml:2: invalid YAML: mapping values are not allowed in this context`},
		{"first line", `{"a": "\q"}`, `t.yaml:1: invalid YAML: found unknown escape character`},
		{"bad utf-8", "name: x\nplatform: n\xffode\n", `t.yaml:2:12: invalid YAML: invalid leading UTF-8 octet`},
		{"control char", "name: x\x01\n", `t.yaml:1:8: invalid YAML: control characters are not allowed`},
		{"tab indent", "name: x\n\tplatform: node\n", `t.yaml:2: invalid YAML: found a tab character that violates indentation`},
		{"empty", "", `t.yaml: the descriptor is empty: it needs name, platform and functions`},
		{"comments only", "# nothing\n", `t.yaml: the descriptor is empty: it needs name, platform and functions`},
		{"empty document", "---\n", `t.yaml: the descriptor is empty: it needs name, platform and functions`},
		{"two documents", "name: a\n---\nname: b\n", `t.yaml:2:1: a descriptor is one YAML document; remove this second one (after ---) or put it in its own file`},
		{"stray end marker", "name: a\nplatform: go\n---\n", `t.yaml:1:1 functions: required: at least one function`},
		{"a list", "- name: a\n", `t.yaml:1:1: a descriptor is a mapping with name, platform and functions; got a list`},
		{"a string", "orders\n", `t.yaml:1:1: a descriptor is a mapping with name, platform and functions; got a string`},
		{"unknown anchor", "name: *x\n", `t.yaml:1: invalid YAML: unknown anchor 'x' referenced`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			diffLines(t, problemsOf(t, tc.src), []string{tc.want})
		})
	}
}

// TestUTF16 checks that a descriptor saved as UTF-16 (PowerShell's
// default) parses like its UTF-8 original.
func TestUTF16(t *testing.T) {
	data, err := os.ReadFile("testdata/design-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	le := []byte{0xFF, 0xFE}
	for _, u := range utf16.Encode([]rune(string(data))) {
		le = append(le, byte(u), byte(u>>8))
	}
	d, err := Parse("t.yaml", le)
	if err != nil {
		t.Fatalf("Parse of UTF-16LE:\n%v", err)
	}
	if d.Name != "orders" || d.Functions[0].Name != "on-order" {
		t.Errorf("UTF-16LE parsed as %+v", d)
	}
}

func TestTooLarge(t *testing.T) {
	src := "name: x\ndescription: " + strings.Repeat("a", MaxSize) + "\n"
	diffLines(t, problemsOf(t, src), []string{"t.yaml: the descriptor is 1048598 bytes; the most accepted is 1048576"})
}

// TestAliases checks YAML anchors, aliases and merge keys, which let
// functions share settings, and that they cannot blow up.
func TestAliases(t *testing.T) {
	d := mustParse(t, `
name: shop
platform: node
x-delivery: &delivery { retries: 7, timeout: 10s }
functions:
  - fn: a.js:one
    bindings: { streams: [a] }
    delivery: *delivery
  - fn: a.js:two
    bindings: { streams: [b] }
    delivery: { <<: *delivery, retries: 1 }
`)
	if got := d.Functions[0].Delivery; got.Retries != 7 || got.Timeout != Duration(10*time.Second) {
		t.Errorf("functions[0].delivery = %+v, want the anchored values", got)
	}
	if got := d.Functions[1].Delivery; got.Retries != 1 || got.Timeout != Duration(10*time.Second) {
		t.Errorf("functions[1].delivery = %+v, want the merge with retries overridden", got)
	}

	diffLines(t, problemsOf(t, `
name: shop
platform: node
functions:
  - fn: a.js:one
    bindings: { streams: [a] }
    delivery: &d { <<: *d }
`), []string{"t.yaml:7:24 functions[0].delivery: merges (<<) nest too deep"})

	diffLines(t, problemsOf(t, `
name: shop
platform: node
functions:
  - fn: a.js:one
    bindings: { streams: [a] }
    delivery: { <<: [1] }
`), []string{"t.yaml:7:22 functions[0].delivery: << merges a mapping or a list of mappings, got an integer"})

	// A billion laughs: 2 000 functions, each emitting to 1 000 streams,
	// in a few kilobytes.
	var b strings.Builder
	b.WriteString("name: shop\nplatform: node\nx-e: &e [")
	b.WriteString(strings.Repeat("a,", 1000))
	b.WriteString("a]\nx-f: &f {fn: a.js:b, bindings: {streams: [s], emits: *e}}\nfunctions: [")
	b.WriteString(strings.Repeat("*f,", 2000))
	b.WriteString("*f]\n")
	// The expansion is counted and cut at a bound, which is what keeps the
	// rejection cheap; the message proves the bound, not a stopwatch.
	diffLines(t, problemsOf(t, b.String()), []string{"t.yaml: the descriptor expands to more than 262144 values through aliases"})
}

func TestParseFileMissing(t *testing.T) {
	_, err := ParseFile(filepath.Join(t.TempDir(), "butter.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ParseFile of a missing file = %v, want os.ErrNotExist", err)
	}
	var ps Problems
	if errors.As(err, &ps) {
		t.Fatalf("a read error is not a problem with the descriptor: %v", err)
	}
}

func TestBadCharAt(t *testing.T) {
	for _, tc := range []struct {
		in        string
		line, col int
	}{
		{"abc", 0, 0},
		{"a\x01", 1, 2},
		{"ab\ncé\xff", 2, 3},
		{"\t\r\n\u0085ok", 0, 0},
		{"x\n\n\ufffe", 3, 1},
		{"a\r\nb\rc\u2028d\x01", 4, 2},
	} {
		line, col := badCharAt([]byte(tc.in))
		if line != tc.line || col != tc.col {
			t.Errorf("badCharAt(%q) = %d:%d, want %d:%d", tc.in, line, col, tc.line, tc.col)
		}
	}
}
