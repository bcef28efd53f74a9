package stdio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/fnbox/runtime/runtimetest"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
)

// languages are the platforms under test, with the locators of the
// testdata functions.
var languages = []struct {
	platform, file, bytes string
}{
	{"node", "handler.js", "bytes"},
	{"python", "handler.py", "bytes_"},
}

func need(t *testing.T, platform string) {
	t.Helper()
	p := platforms[platform]
	if _, err := exec.LookPath(p.command); err != nil {
		t.Fatalf("%s is not on PATH: %s", p.command, p.install)
	}
}

// start starts a runtime of the given functions (name → fn) from testdata.
func start(t *testing.T, platform string, fns map[string]string) (runtime.Runtime, error) {
	t.Helper()
	need(t, platform)
	var b strings.Builder
	fmt.Fprintf(&b, "name: unit\nplatform: %s\nenv: { FIXTURE_ENV: yes }\nfunctions:\n", platform)
	for name, fn := range fns {
		fmt.Fprintf(&b, "  - { fn: %q, name: %s, bindings: { streams: [in] } }\n", fn, name)
	}
	desc, err := descriptor.Parse("unit.yaml", []byte(b.String()))
	if err != nil {
		t.Fatalf("parse descriptor: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rt, err := Start(ctx, runtime.Spec{Deployment: desc, Dir: "testdata/" + platform, Env: map[string]string{"SPEC_ENV": "set"}})
	if err == nil {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := rt.Close(ctx); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	return rt, err
}

func invoke(rt runtime.Runtime, fn string, d envelope.Delivery) (runtime.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return rt.Invoke(ctx, runtime.Invocation{Function: fn, Events: []envelope.Delivery{d}, Deadline: time.Now().Add(10 * time.Second)}, runtimetest.NewTestHost(nil))
}

func event(t *testing.T, ct string, data []byte) envelope.Delivery {
	t.Helper()
	e := envelope.New("/unit", "com.example.unit")
	if err := e.SetData(ct, data); err != nil {
		t.Fatal(err)
	}
	return envelope.Delivery{Event: e, Stream: "in"}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		platform, fn string
		want         []string
	}{
		{"node", "handler.js:missing", []string{"handler.js", `export "missing" is missing`, "crash"}},
		{"node", "nofile.js:x", []string{"nofile.js", "Cannot find module"}},
		{"node", "throws.js:x", []string{"throws.js:2", "Error: config missing"}},
		{"python", "handler.py:missing", []string{"handler.py", `function "missing" is missing`, "crash"}},
		{"python", "nofile.py:x", []string{"nofile.py", "FileNotFoundError"}},
		{"python", "throws.py:x", []string{"throws.py:2", "RuntimeError: config missing"}},
	}
	for _, c := range cases {
		t.Run(c.platform+"/"+c.fn, func(t *testing.T) {
			_, err := start(t, c.platform, map[string]string{"f": c.fn})
			if !errors.Is(err, runtime.ErrLoad) {
				t.Fatalf("Start error %v, want ErrLoad", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestHostCrash kills the host from inside a function: that invocation
// fails, and the next one gets a fresh host.
func TestHostCrash(t *testing.T) {
	for _, l := range languages {
		t.Run(l.platform, func(t *testing.T) {
			rt, err := start(t, l.platform, map[string]string{"crash": l.file + ":crash", "env": l.file + ":env"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := invoke(rt, "crash", event(t, "application/json", []byte("1"))); !errors.Is(err, errHostExited) {
				t.Fatalf("crash: error %v, want errHostExited", err)
			}
			res, err := invoke(rt, "env", event(t, "application/json", []byte("1")))
			if err != nil {
				t.Fatalf("invoke after crash: %v", err)
			}
			if string(res.Data) != `{"fixture":"yes","spec":"set"}` {
				t.Errorf("env = %s, want the descriptor's and the spec's variables", res.Data)
			}
		})
	}
}

// TestStuckHostIsReplaced: a handler that never returns times out, and
// the host stuck in it is killed after stuckGrace, so later invocations
// run in a new host instead of timing out behind it.
func TestStuckHostIsReplaced(t *testing.T) {
	for _, l := range languages {
		t.Run(l.platform, func(t *testing.T) {
			rt, err := start(t, l.platform, map[string]string{"spin": l.file + ":spin", "env": l.file + ":env"})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			d, _ := ctx.Deadline()
			_, err = rt.Invoke(ctx, runtime.Invocation{Function: "spin", Events: []envelope.Delivery{event(t, "application/json", []byte("1"))}, Deadline: d}, runtimetest.NewTestHost(nil))
			if !errors.Is(err, runtime.ErrTimeout) {
				t.Fatalf("spin: %v, want a timeout", err)
			}
			// Within invoke's 10 s deadline: the host is killed 5 s after
			// the timeout, and the invocation runs in a new one.
			res, err := invoke(rt, "env", event(t, "application/json", []byte("1")))
			if err != nil && errors.Is(err, errHostExited) {
				res, err = invoke(rt, "env", event(t, "application/json", []byte("1")))
			}
			if err != nil || string(res.Data) != `{"fixture":"yes","spec":"set"}` {
				t.Fatalf("after a stuck invocation: %s, %v", res.Data, err)
			}
		})
	}
}

// TestBinaryAndEvent checks binary data both ways and the event fields a
// handler sees.
func TestBinaryAndEvent(t *testing.T) {
	for _, l := range languages {
		t.Run(l.platform, func(t *testing.T) {
			rt, err := start(t, l.platform, map[string]string{"bytes": l.file + ":" + l.bytes, "echo": l.file + ":echo"})
			if err != nil {
				t.Fatal(err)
			}
			res, err := invoke(rt, "bytes", event(t, "application/octet-stream", []byte{0xff, 0x00, 0x01}))
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Data) != "\x01\x00\xff" || res.ContentType != "application/octet-stream" {
				t.Errorf("bytes = %q (%s), want reversed input as octet-stream", res.Data, res.ContentType)
			}

			d := event(t, "text/plain", []byte("hi"))
			d.Event.SetExtension("tenant", "acme")
			d.Partition, d.Offset = 2, 42
			res, err = invoke(rt, "echo", d)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(res.Data, &got); err != nil {
				t.Fatal(err)
			}
			for k, want := range map[string]any{"data": "hi", "type": "com.example.unit", "source": "/unit", "id": d.Event.ID(),
				"stream": "in", "partition": 2.0, "offset": 42.0, "datacontenttype": "text/plain"} {
				if got[k] != want {
					t.Errorf("event.%s = %#v, want %#v", k, got[k], want)
				}
			}
			if ext, _ := got["extensions"].(map[string]any); ext["tenant"] != "acme" {
				t.Errorf("extensions = %v, want tenant acme", got["extensions"])
			}
		})
	}
}

// TestNodeNestedExportAndClose checks dotted exports, and that Close waits
// for an invocation in flight.
func TestNodeNestedExportAndClose(t *testing.T) {
	rt, err := start(t, "node", map[string]string{"nested": "handler.js:nested.fn", "wait": "handler.js:wait"})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := invoke(rt, "nested", event(t, "application/json", []byte("1"))); err != nil || string(res.Data) != "nested" {
		t.Fatalf("nested = %q, %v", res.Data, err)
	}
	done := make(chan error, 1)
	host := runtimetest.NewTestHost(nil)
	go func() {
		inv := runtime.Invocation{Function: "wait", Events: []envelope.Delivery{event(t, "application/json", []byte("1"))},
			Deadline: time.Now().Add(10 * time.Second)}
		res, err := rt.Invoke(context.Background(), inv, host)
		if err == nil && string(res.Data) != "late" {
			err = fmt.Errorf("wait = %q", res.Data)
		}
		done <- err
	}()
	// Close only once the invocation runs in the host: it logs first.
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for deadline := time.Now().Add(10 * time.Second); len(host.Logs()) == 0; <-poll.C {
		if time.Now().After(deadline) {
			t.Fatal("the wait function never started")
		}
	}
	if err := rt.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("in-flight invocation across Close: %v", err)
	}
	if _, err := invoke(rt, "nested", event(t, "application/json", []byte("1"))); err == nil {
		t.Error("Invoke after Close succeeded")
	}
}

func TestDataCoding(t *testing.T) {
	cases := []struct {
		ct, data, wire string
		b64            bool
	}{
		{"application/json", `{"a":1}`, `{"a":1}`, false},
		{"", `[1]`, `[1]`, false},
		{"application/json", `not json`, `"not json"`, false},
		{"text/plain", `hi`, `"hi"`, false},
		{"application/cloudevents+json; charset=utf-8", `1`, `1`, false},
		{"application/octet-stream", "\xff", `"/w=="`, true},
		{"application/json", ``, `null`, false},
	}
	for _, c := range cases {
		raw, b64 := encodeData([]byte(c.data), c.ct)
		if string(raw) != c.wire || b64 != c.b64 {
			t.Errorf("encodeData(%q, %q) = %s, %v; want %s, %v", c.data, c.ct, raw, b64, c.wire, c.b64)
		}
		if c.data == "not json" {
			continue // declared JSON but is not: it reaches the handler as a string, one way
		}
		back, _, err := decodeData(raw, c.ct, b64)
		if err != nil || string(back) != c.data {
			t.Errorf("decodeData(%s) = %q, %v; want %q", raw, back, err, c.data)
		}
	}
}

// TestPythonHostPaths checks the python host's paths that the conformance
// suite does not reach: a deployment of plain functions never imports
// asyncio, a plain function's awaitable result is awaited, a plain
// function past its deadline times out without stopping the host, and
// async handlers run on the loop module code took at import.
func TestPythonHostPaths(t *testing.T) {
	rt, err := start(t, "python", map[string]string{"modules": "handler.py:modules", "awaitable": "handler.py:awaitable", "sleepy": "handler.py:sleepy"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	res, err := invoke(rt, "modules", event(t, "application/json", []byte(`1`)))
	if err != nil || string(res.Data) != `{"asyncio":false}` {
		t.Errorf("modules = %s, %v; want asyncio not imported by a deployment of plain functions", res.Data, err)
	}
	res, err = invoke(rt, "awaitable", event(t, "application/json", []byte(`7`)))
	if err != nil || string(res.Data) != `{"awaited":7}` {
		t.Errorf("awaitable = %s, %v; want {\"awaited\":7}", res.Data, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = rt.Invoke(ctx, runtime.Invocation{Function: "sleepy", Events: []envelope.Delivery{event(t, "application/json", []byte(`0.5`))},
		Deadline: time.Now().Add(100 * time.Millisecond)}, runtimetest.NewTestHost(nil))
	if !errors.Is(err, runtime.ErrTimeout) {
		t.Errorf("sleepy past its deadline: %v, want ErrTimeout", err)
	}
	// Its late reply says the host is not stuck in it: it is not killed.
	p := rt.(*Runtime).proc
	pctx, pcancel := context.WithTimeout(context.Background(), stuckGrace-time.Second)
	defer pcancel()
	began := time.Now()
	if err := kit.Poll(pctx, 10*time.Millisecond, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.overdue) == 0
	}); err != nil {
		p.mu.Lock()
		t.Fatalf("the timed-out call of a plain function never replied: the host would be killed as stuck (overdue %v, invs %v)", p.overdue, len(p.invs))
	}
	t.Logf("late reply after %v", time.Since(began))
	res, err = invoke(rt, "sleepy", event(t, "application/json", []byte(`0`)))
	if err != nil || string(res.Data) != `{"slept":0}` {
		t.Errorf("sleepy after a timeout = %s, %v; want {\"slept\":0}", res.Data, err)
	}

	// Two plain calls at once, with one worker already idle: they must
	// not queue behind each other (the first waits for the second).
	gate, err := start(t, "python", map[string]string{"gate": "handler.py:gate", "modules": "handler.py:modules"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := invoke(gate, "modules", event(t, "application/json", []byte(`1`))); err != nil {
		t.Fatal(err) // leaves one worker idle
	}
	waited := make(chan error, 1)
	go func() {
		res, err := invoke(gate, "gate", event(t, "application/json", []byte(`"wait"`)))
		if err == nil && string(res.Data) != "passed" {
			err = fmt.Errorf("gate = %s", res.Data)
		}
		waited <- err
	}()
	if res, err := invoke(gate, "gate", event(t, "application/json", []byte(`"release"`))); err != nil || string(res.Data) != "released" {
		t.Errorf("release = %s, %v", res.Data, err)
	}
	if err := <-waited; err != nil {
		t.Errorf("the waiting call: %v", err)
	}

	loops, err := start(t, "python", map[string]string{"same": "loops.py:same_loop"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	res, err = invoke(loops, "same", event(t, "application/json", []byte(`1`)))
	if err != nil || string(res.Data) != `{"same":true}` {
		t.Errorf("same_loop = %s, %v; want the handler on the loop taken at import", res.Data, err)
	}
}

// TestLargeEvent sends an event far larger than one pipe read, so both
// hosts put a message line together from many chunks.
func TestLargeEvent(t *testing.T) {
	for _, l := range languages {
		t.Run(l.platform, func(t *testing.T) {
			rt, err := start(t, l.platform, map[string]string{"echo": l.file + ":echo"})
			if err != nil {
				t.Fatal(err)
			}
			text := strings.Repeat("0123456789abcdé", 100_000) // 1.6 MB, multi-byte characters across chunk borders
			for range 2 {
				res, err := invoke(rt, "echo", event(t, "text/plain", []byte(text)))
				if err != nil {
					t.Fatal(err)
				}
				var got struct{ Data string }
				if err := json.Unmarshal(res.Data, &got); err != nil {
					t.Fatal(err)
				}
				if got.Data != text {
					t.Fatalf("echoed data of %d bytes, want the %d sent", len(got.Data), len(text))
				}
			}
		})
	}
}

// TestPythonOneThread runs the python host with BUTTER_PYTHON_THREADS=1:
// plain functions that wait on context calls, one after the other and
// several at once, still get their answers read.
func TestPythonOneThread(t *testing.T) {
	need(t, "python")
	desc, err := descriptor.Parse("unit.yaml", []byte("name: unit\nplatform: python\nfunctions:\n  - { fn: handler.py:emits, name: emits, bindings: { streams: [in] } }\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rt, err := Start(ctx, runtime.Spec{Deployment: desc, Dir: "testdata/python", Env: map[string]string{"BUTTER_PYTHON_THREADS": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	for range 3 {
		if res, err := invoke(rt, "emits", event(t, "application/json", []byte(`1`))); err != nil || !strings.HasPrefix(string(res.Data), "refused") {
			t.Fatalf("emits = %s, %v; want the refusal of the undeclared stream", res.Data, err)
		}
	}
	errs := make(chan error, 5)
	for range 5 {
		go func() {
			res, err := invoke(rt, "emits", event(t, "application/json", []byte(`2`)))
			if err == nil && !strings.HasPrefix(string(res.Data), "refused") {
				err = fmt.Errorf("emits = %s", res.Data)
			}
			errs <- err
		}()
	}
	for range 5 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
