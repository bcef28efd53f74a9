package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit/kittest"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/buttercompass/butter/gateway/internal/httpevent"
	"github.com/buttercompass/butter/gateway/internal/testutil"
	"github.com/buttercompass/butter/proto/kit"
)

const helloYAML = `name: hello
platform: node
functions:
  - fn: handler.js:hello
    bindings:
      route: { context: /hello, methods: [POST, GET] }
  - fn: handler.js:slow
    bindings:
      route: { context: /hello/slow, timeout: 300ms, maxBody: 1Ki }
`

// gateway is a running gateway service.
type gateway struct {
	url  string
	stop func()
}

func startGateway(t *testing.T, c *testutil.Cluster, opts ...func(*Config)) *gateway {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Kafka = kit.KafkaConfig{Brokers: []string{c.Broker.Addr()}}
	cfg.Grace = 5 * time.Second
	cfg.Takeover = 200 * time.Millisecond
	cfg.Logger, _ = kit.NewLogger(io.Discard, "info")
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := kittest.Serve(t, s)
	return &gateway{url: "http://" + s.Addr(), stop: stop}
}

type resp struct {
	code int
	hdr  http.Header
	body []byte
}

func call(t testing.TB, method, url string, body []byte, hdr map[string]string) resp {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{code: res.StatusCode, hdr: res.Header, body: b}
}

// helloHandler answers as examples/http-hello does, echoing what it got.
func helloHandler(req httpevent.Request, _ event.Event) (any, error) {
	var in struct{ Name string }
	if req.Body != nil {
		_ = json.Unmarshal([]byte(*req.Body), &in)
	}
	if in.Name == "" {
		in.Name = req.Query["name"]
	}
	if in.Name == "fail" {
		return nil, errors.New("boom")
	}
	return map[string]any{"status": 201, "headers": map[string]any{"content-type": "application/json", "x-seen-path": req.Path, "x-seen-method": req.Method},
		"body": map[string]any{"greeting": "hello " + in.Name}}, nil
}

// ready waits until the gateway serves path (routes are read asynchronously
// after a deploy).
func ready(t *testing.T, url string) {
	t.Helper()
	kittest.Eventually(t, "route "+url, func() error {
		if r := call(t, "GET", url, nil, nil); r.code == http.StatusNotFound {
			return fmt.Errorf("404: %s", r.body)
		}
		return nil
	})
}

func TestHello(t *testing.T) {
	c := testutil.NewCluster(t)
	c.Deploy("hello", helloYAML)
	c.Respond("hello", "hello", "fn", helloHandler)
	g := startGateway(t, c)

	r := call(t, "POST", g.url+"/hello/sub?x=1", []byte(`{"name":"ada"}`), map[string]string{"Content-Type": "application/json"})
	if r.code != 201 || r.hdr.Get("Content-Type") != "application/json" || r.hdr.Get("X-Seen-Path") != "/hello/sub" || r.hdr.Get("X-Seen-Method") != "POST" {
		t.Fatalf("got %d %v %s", r.code, r.hdr, r.body)
	}
	var out struct{ Greeting string }
	if err := json.Unmarshal(r.body, &out); err != nil || out.Greeting != "hello ada" {
		t.Fatalf("body %s: %v", r.body, err)
	}
	if r.hdr.Get("X-Butter-Request-Id") == "" {
		t.Error("no request id header")
	}

	t.Run("error reply is 502", func(t *testing.T) {
		r := call(t, "GET", g.url+"/hello?name=fail", nil, nil)
		if r.code != http.StatusBadGateway || !strings.Contains(string(r.body), "boom") || r.hdr.Get("Content-Type") != kit.ProblemContentType {
			t.Fatalf("got %d %s", r.code, r.body)
		}
	})
	t.Run("no route is 404", func(t *testing.T) {
		for _, p := range []string{"/nothing", "/hellox", "/"} {
			r := call(t, "GET", g.url+p, nil, nil)
			if r.code != http.StatusNotFound || r.hdr.Get("Content-Type") != kit.ProblemContentType {
				t.Fatalf("%s: got %d %s", p, r.code, r.body)
			}
		}
	})
	t.Run("method not allowed is 405", func(t *testing.T) {
		r := call(t, "DELETE", g.url+"/hello", nil, nil)
		if r.code != http.StatusMethodNotAllowed || r.hdr.Get("Allow") != "POST, GET" {
			t.Fatalf("got %d %v %s", r.code, r.hdr, r.body)
		}
	})
	t.Run("body whose event outgrows the stream is 413", func(t *testing.T) {
		// Within the route's 1 MiB, but JSON-escaped in the request event
		// it is over the stream's max.message.bytes.
		r := call(t, "POST", g.url+"/hello", bytes.Repeat([]byte("<"), 700<<10), nil)
		if r.code != http.StatusRequestEntityTooLarge || r.hdr.Get("Content-Type") != kit.ProblemContentType {
			t.Fatalf("got %d %s", r.code, r.body)
		}
		r = call(t, "POST", g.url+"/hello", bytes.Repeat([]byte("<"), 700<<10), map[string]string{"Prefer": "respond-async"})
		if r.code != http.StatusRequestEntityTooLarge {
			t.Fatalf("async: got %d %s", r.code, r.body)
		}
	})
	t.Run("oversized body is 413", func(t *testing.T) {
		r := call(t, "POST", g.url+"/hello/slow", bytes.Repeat([]byte("x"), 2048), nil)
		if r.code != http.StatusRequestEntityTooLarge {
			t.Fatalf("got %d %s", r.code, r.body)
		}
		// Chunked, so the length is not known up front.
		req, _ := http.NewRequest("POST", g.url+"/hello/slow", io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("x"), 4096))))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("chunked: got %d", res.StatusCode)
		}
	})
	t.Run("no reply is 504 after the route timeout", func(t *testing.T) {
		start := time.Now()
		r := call(t, "POST", g.url+"/hello/slow", []byte("hi"), nil)
		if r.code != http.StatusGatewayTimeout || time.Since(start) < 300*time.Millisecond {
			t.Fatalf("got %d after %s: %s", r.code, time.Since(start), r.body)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		r := call(t, "GET", g.url+"/metrics", nil, nil)
		for _, want := range []string{`butter_gateway_requests_total{code="201",route="/hello"}`, `butter_gateway_request_duration_seconds_bucket{route="/hello"`, "butter_gateway_in_flight_requests"} {
			if !strings.Contains(string(r.body), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		if r := call(t, "GET", g.url+"/readyz", nil, nil); r.code != 200 {
			t.Errorf("readyz %d %s", r.code, r.body)
		}
	})
}

func TestRoutesFollowDeployments(t *testing.T) {
	c := testutil.NewCluster(t)
	g := startGateway(t, c)
	if r := call(t, "GET", g.url+"/hello", nil, nil); r.code != http.StatusNotFound {
		t.Fatalf("before deploy: %d", r.code)
	}
	c.Deploy("hello", helloYAML)
	c.Respond("hello", "hello", "fn", helloHandler)
	ready(t, g.url+"/hello?name=x")
	c.Undeploy("hello")
	kittest.Eventually(t, "route removed", func() error {
		if r := call(t, "GET", g.url+"/hello", nil, nil); r.code != http.StatusNotFound {
			return fmt.Errorf("got %d", r.code)
		}
		return nil
	})
}

func TestConcurrentRequests(t *testing.T) {
	c := testutil.NewCluster(t)
	c.Deploy("hello", helloYAML)
	c.Respond("hello", "hello", "fn", helloHandler)
	g := startGateway(t, c)
	ready(t, g.url+"/hello?name=warm")

	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("caller-%d", i)
			req, _ := http.NewRequest("POST", g.url+"/hello", strings.NewReader(`{"name":"`+name+`"}`))
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer res.Body.Close()
			var out struct{ Greeting string }
			if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 201 || out.Greeting != "hello "+name {
				errs <- fmt.Errorf("%s: got %d %q (%v)", name, res.StatusCode, out.Greeting, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// pollAsync polls a status URL until it stops answering 202.
func pollAsync(t *testing.T, url string) resp {
	t.Helper()
	var last resp
	kittest.Eventually(t, "async result "+url, func() error {
		last = call(t, "GET", url, nil, nil)
		if last.code == http.StatusAccepted {
			return errors.New("still pending")
		}
		return nil
	})
	return last
}

func TestAsync(t *testing.T) {
	c := testutil.NewCluster(t)
	c.Deploy("hello", helloYAML)
	g := startGateway(t, c)
	ready(t, g.url+"/hello/slow") // 504s: nobody answers yet, but the route exists

	// Accept while no function runs, so the poll sees pending first.
	r := call(t, "POST", g.url+"/hello", []byte(`{"name":"later"}`), map[string]string{"Prefer": "respond-async"})
	if r.code != http.StatusAccepted {
		t.Fatalf("got %d %s", r.code, r.body)
	}
	var acc struct{ ID, Location string }
	if err := json.Unmarshal(r.body, &acc); err != nil || acc.ID == "" || r.hdr.Get("Location") != "/_butter/requests/"+acc.ID || acc.Location != r.hdr.Get("Location") {
		t.Fatalf("accept answer %v %s: %v", r.hdr, r.body, err)
	}
	if p := call(t, "GET", g.url+acc.Location, nil, nil); p.code != http.StatusAccepted {
		t.Fatalf("poll before the reply: %d %s", p.code, p.body)
	}
	if p := call(t, "GET", g.url+"/_butter/requests/nope", nil, nil); p.code != http.StatusNotFound {
		t.Fatalf("unknown id: %d %s", p.code, p.body)
	}

	// Restart the gateway between accept and reply: nothing may be lost.
	g.stop()
	c.Respond("hello", "hello", "fn", helloHandler)
	g2 := startGateway(t, c)
	p := pollAsync(t, g2.url+acc.Location)
	if p.code != 201 || !strings.Contains(string(p.body), "hello later") || p.hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("polled %d %v %s", p.code, p.hdr, p.body)
	}

	// A completed request survives a restart too.
	r = call(t, "POST", g2.url+"/hello", []byte(`{"name":"again"}`), map[string]string{"Prefer": "respond-async; wait=0"})
	if r.code != http.StatusAccepted {
		t.Fatalf("got %d %s", r.code, r.body)
	}
	loc := r.hdr.Get("Location")
	if p := pollAsync(t, g2.url+loc); p.code != 201 {
		t.Fatalf("polled %d %s", p.code, p.body)
	}
	g2.stop()
	g3 := startGateway(t, c)
	if p := call(t, "GET", g3.url+loc, nil, nil); p.code != 201 || !strings.Contains(string(p.body), "hello again") {
		t.Fatalf("after restart: %d %s", p.code, p.body)
	}
}

// TestAsyncResponseTooLarge: a response that a synchronous caller gets
// whole but that does not fit _butter.requests (base64 grows it) is kept
// as a 502 saying so, instead of staying pending until a 504.
func TestAsyncResponseTooLarge(t *testing.T) {
	c := testutil.NewCluster(t)
	c.Deploy("hello", helloYAML)
	big := strings.Repeat("a", 780<<10)
	c.Respond("hello", "hello", "fn", func(httpevent.Request, event.Event) (any, error) {
		return map[string]any{"status": 200, "body": big}, nil
	})
	g := startGateway(t, c)

	if r := call(t, "POST", g.url+"/hello", []byte(`{}`), nil); r.code != 200 || len(r.body) != len(big) {
		t.Fatalf("sync: got %d with %d bytes, want 200 with %d", r.code, len(r.body), len(big))
	}
	r := call(t, "POST", g.url+"/hello", []byte(`{}`), map[string]string{"Prefer": "respond-async"})
	if r.code != http.StatusAccepted {
		t.Fatalf("accept: got %d %s", r.code, r.body)
	}
	p := pollAsync(t, g.url+r.hdr.Get("Location"))
	if p.code != http.StatusBadGateway || !strings.Contains(string(p.body), "too large") {
		t.Fatalf("polled %d %s, want 502 response too large", p.code, p.body)
	}
}

func TestAsyncCallback(t *testing.T) {
	c := testutil.NewCluster(t)
	c.Deploy("hello", helloYAML)
	c.Respond("hello", "hello", "fn", helloHandler)
	got := make(chan []byte, 1)
	cb := newCallbackServer(t, got) // on 127.0.0.1
	g := startGateway(t, c, func(cfg *Config) { cfg.AllowPrivateCallbacks = true })
	ready(t, g.url+"/hello?name=warm")

	r := call(t, "POST", g.url+"/hello", []byte(`{"name":"cb"}`), map[string]string{"X-Butter-Callback": cb})
	if r.code != http.StatusAccepted {
		t.Fatalf("got %d %s", r.code, r.body)
	}
	select {
	case b := <-got:
		var body struct {
			ID     string
			Status int
			Body   string
		}
		if err := json.Unmarshal(b, &body); err != nil || body.Status != 201 || !strings.Contains(body.Body, "hello cb") {
			t.Fatalf("callback body %s: %v", b, err)
		}
	case <-time.After(testutil.Timeout):
		t.Fatal("no callback")
	}
	if r := call(t, "POST", g.url+"/hello", nil, map[string]string{"X-Butter-Callback": "not a url"}); r.code != http.StatusBadRequest {
		t.Fatalf("bad callback: %d", r.code)
	}

	// By default a callback into the gateway's network is refused.
	g2 := startGateway(t, c)
	ready(t, g2.url+"/hello?name=warm")
	if r := call(t, "POST", g2.url+"/hello", nil, map[string]string{"X-Butter-Callback": cb}); r.code != http.StatusBadRequest {
		t.Fatalf("private callback: %d %s", r.code, r.body)
	}
}

func TestTwoReplicas(t *testing.T) {
	c := testutil.NewCluster(t)
	c.Deploy("hello", helloYAML)
	c.Respond("hello", "hello", "fn", helloHandler)
	a, b := startGateway(t, c), startGateway(t, c)
	ready(t, a.url+"/hello?name=warm")
	ready(t, b.url+"/hello?name=warm")

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Go(func() {
			base := a.url
			if i%2 == 1 {
				base = b.url
			}
			name := fmt.Sprintf("r%d", i)
			req, _ := http.NewRequest("GET", base+"/hello?name="+name, nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != 201 || !strings.Contains(string(body), `"hello `+name+`"`) {
				errs <- fmt.Errorf("%s: %d %s", name, res.StatusCode, body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Accepted on one replica, polled on the other at once.
	r := call(t, "POST", a.url+"/hello", []byte(`{"name":"cross"}`), map[string]string{"Prefer": "respond-async"})
	if r.code != http.StatusAccepted {
		t.Fatalf("got %d %s", r.code, r.body)
	}
	if p := call(t, "GET", b.url+r.hdr.Get("Location"), nil, nil); p.code != http.StatusAccepted && p.code != 201 {
		t.Fatalf("other replica: %d %s", p.code, p.body)
	}
	if p := pollAsync(t, b.url+r.hdr.Get("Location")); p.code != 201 || !strings.Contains(string(p.body), "hello cross") {
		t.Fatalf("other replica: %d %s", p.code, p.body)
	}
}
