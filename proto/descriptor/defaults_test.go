package descriptor

import (
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	d := mustParse(t, `
name: shop
platform: node
functions:
  - fn: orders.js:onOrder
    bindings: { route: /orders, timer: "@hourly", streams: [orders] }
  - fn: audit.js:record
    bindings: { streams: [audit] }
    delivery: { ordering: none }
    scale: { min: 12 }
  - fn: idle.js:wake
    bindings: { streams: [rare] }
    delivery: { retries: 0 }
    scale: { min: 0 }
`)
	f := d.Functions[0]
	if f.Name != "on-order" {
		t.Errorf("name = %q, want on-order (derived from fn)", f.Name)
	}
	r := f.Bindings.Route
	if r.Stream != "shop-on-order-http" || r.Timeout != DefaultRouteTimeout || r.MaxBody != MiB || r.Methods != nil || r.Auth != nil {
		t.Errorf("route = %+v, want the defaults", r)
	}
	if !r.Allows("DELETE") || !r.Allows("get") {
		t.Errorf("a route without methods must allow every method")
	}
	tm := f.Bindings.Timer
	if *tm != (Timer{Schedule: "@hourly", Timezone: "UTC", Stream: "shop-on-order-ticks", CatchUp: "one"}) {
		t.Errorf("timer = %+v, want the defaults", tm)
	}
	if o := f.Bindings.Streams[0].Offset; o.Kind != OffsetLatest {
		t.Errorf("offset = %v, want latest", o.Kind)
	}
	want := Delivery{
		Retries: 3, Backoff: Duration(200 * time.Millisecond), MaxBackoff: Duration(30 * time.Second),
		Timeout: Duration(30 * time.Second), DeadLetter: "shop-on-order-dlq", Ordering: "partition",
		Guarantee: "at-least-once", Batch: 1,
	}
	if f.Delivery != want {
		t.Errorf("delivery = %+v, want %+v", f.Delivery, want)
	}
	if f.Scale.MinReplicas() != 1 || f.Scale.Max != 8 || f.Scale.Concurrency != DefaultConcurrency {
		t.Errorf("scale = min %d max %d concurrency %d, want 1, 8, 16", f.Scale.MinReplicas(), f.Scale.Max, f.Scale.Concurrency)
	}
	if f.Limits != (Limits{}) || f.Limits.MemoryBytes() != 0 || f.Limits.MilliCPU() != 0 {
		t.Errorf("limits = %+v, want none", f.Limits)
	}

	audit := d.Functions[1]
	if audit.Scale.Concurrency != DefaultConcurrency {
		t.Errorf("concurrency with ordering none = %d, want %d", audit.Scale.Concurrency, DefaultConcurrency)
	}
	if audit.Scale.Max != 12 {
		t.Errorf("max with min 12 = %d, want 12 (raised to min)", audit.Scale.Max)
	}

	idle := d.Functions[2]
	if idle.Delivery.Retries != 0 {
		t.Errorf("retries: 0 became %d; an explicit 0 is not a missing value", idle.Delivery.Retries)
	}
	if idle.Scale.Min == nil || *idle.Scale.Min != 0 || idle.Scale.MinReplicas() != 0 {
		t.Errorf("min: 0 became %v; scale to zero must survive defaults", idle.Scale.Min)
	}
	if (Scale{}).MinReplicas() != DefaultMinReplicas {
		t.Errorf("MinReplicas of an unset Min is not the default")
	}
}

func TestMethodsUpperCased(t *testing.T) {
	d := mustParse(t, binding("route: {context: /a, methods: [get, Post]}"))
	r := d.Functions[0].Bindings.Route
	if len(r.Methods) != 2 || r.Methods[0] != "GET" || r.Methods[1] != "POST" {
		t.Errorf("methods = %q, want [GET POST]", r.Methods)
	}
	if !r.Allows("post") || r.Allows("DELETE") {
		t.Errorf("Allows disagrees with methods %q", r.Methods)
	}
}

func TestDeriveName(t *testing.T) {
	for _, tc := range []struct{ platform, fn, want string }{
		{"node", "handler.js:onOrder", "on-order"},
		{"node", "src/handlers.js:handlers.onOrder", "on-order"},
		{"node", "h.js:HTTPHandler", "http-handler"},
		{"node", "h.js:parseJSON", "parse-json"},
		{"node", "h.js:handleV2", "handle-v2"},
		{"node", "h.js:v2Handler", "v2-handler"},
		{"node", "h.js:_private", "private"},
		{"node", "h.js:$", "fn"},
		{"python", "app.py:handle_order", "handle-order"},
		{"python", "app.py:__call__", "call"},
		{"python", "app.py:2fa", "fn-2fa"},
		{"exec", "./bin/score.sh --fast", "score"},
		{"exec", `C:\tools\Score.exe`, "score"},
		{"http", "node server.js", "node"},
		{"go", "./cmd/orders", "orders"},
		{"image", "ghcr.io/acme/orders:1.2", "orders"},
		{"image", "localhost:5000/acme/orders@sha256:abc", "orders"},
		{"image", "nginx", "nginx"},
		{"node", "h.js:aVeryLongExportNameThatGoesOnAndOnAndOnForeverAndEverUntilTheEndOfTime", "a-very-long-export-name-that-goes-on-and-on-and-on-forever-and"},
		{"node", "h.js:émoji", "moji"},
	} {
		got := DeriveName(tc.platform, tc.fn)
		if got != tc.want {
			t.Errorf("DeriveName(%q, %q) = %q, want %q", tc.platform, tc.fn, got, tc.want)
		}
		if !namePattern.MatchString(got) {
			t.Errorf("DeriveName(%q, %q) = %q, which is not a valid name", tc.platform, tc.fn, got)
		}
	}
}

func TestDefaultStreamNames(t *testing.T) {
	if got := RouteStream("shop", "orders"); got != "shop-orders-http" {
		t.Errorf("RouteStream = %q", got)
	}
	if got := TimerStream("shop", "orders"); got != "shop-orders-ticks" {
		t.Errorf("TimerStream = %q", got)
	}
	if got := DeadLetterStream("shop", "orders"); got != "shop-orders-dlq" {
		t.Errorf("DeadLetterStream = %q", got)
	}
}
