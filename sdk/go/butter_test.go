package butter

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// postEvent sends one event in binary mode to h.
func postEvent(t *testing.T, h http.Handler, contentType, body string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	r.Header.Set("ce-specversion", "1.0")
	r.Header.Set("ce-id", "e1")
	r.Header.Set("ce-source", "/test")
	r.Header.Set("ce-type", "com.example.test")
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestEventFromBinaryMode(t *testing.T) {
	var got Event
	h := NewHandler(func(ctx context.Context, e Event) (any, error) { got = e; return nil, nil })
	w := postEvent(t, h, "application/json", `{"n":1}`, map[string]string{
		"ce-subject": "s", "ce-time": "2026-01-02T03:04:05Z", "ce-tenant": "acme %C3%BC",
		"ce-stream": "orders", "ce-partition": "2", "ce-offset": "42",
	})
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if got.ID != "e1" || got.Source != "/test" || got.Type != "com.example.test" || got.Subject != "s" ||
		got.Stream != "orders" || got.Partition != 2 || got.Offset != 42 || got.Time.Year() != 2026 {
		t.Errorf("event %+v", got)
	}
	if got.Extensions["tenant"] != "acme ü" || len(got.Extensions) != 1 {
		t.Errorf("extensions %v, want tenant only, decoded", got.Extensions)
	}
	var d struct{ N int }
	if err := got.DecodeData(&d); err != nil || d.N != 1 {
		t.Errorf("DecodeData: %v %+v", err, d)
	}
}

func TestResults(t *testing.T) {
	for _, tc := range []struct {
		res    any
		err    error
		status int
		ct     string
		body   string
	}{
		{nil, nil, 204, "", ""},
		{"hi", nil, 200, "text/plain; charset=utf-8", "hi"},
		{[]byte{1, 2}, nil, 200, "application/octet-stream", "\x01\x02"},
		{map[string]int{"a": 1}, nil, 200, "application/json", `{"a":1}`},
		{json.RawMessage(`[1]`), nil, 200, "application/json", `[1]`},
		{nil, errors.New("boom"), 500, "", "boom\n"},
		{nil, Permanent(errors.New("bad input")), 422, "", "bad input\n"},
	} {
		h := NewHandler(func(context.Context, Event) (any, error) { return tc.res, tc.err })
		w := postEvent(t, h, "application/json", "1", nil)
		if w.Code != tc.status || w.Body.String() != tc.body || (tc.ct != "" && w.Header().Get("Content-Type") != tc.ct) {
			t.Errorf("%v/%v: got %d %q %q, want %d %q %q", tc.res, tc.err, w.Code, w.Header().Get("Content-Type"), w.Body, tc.status, tc.ct, tc.body)
		}
	}
}

func TestPanicIsFailure(t *testing.T) {
	h := NewHandler(func(context.Context, Event) (any, error) { panic("oops") })
	if w := postEvent(t, h, "application/json", "1", nil); w.Code != 500 || !strings.Contains(w.Body.String(), "panic: oops") {
		t.Errorf("got %d %q", w.Code, w.Body)
	}
}

func TestBatch(t *testing.T) {
	batch := `[{"id":"a","source":"/s","type":"t","datacontenttype":"application/json","data":{"x":1},"stream":"in","partition":0,"offset":7,"tenant":"acme"},
		{"id":"b","source":"/s","type":"t","datacontenttype":"text/plain","data":"two"}]`
	var got []Event
	h := NewBatchHandler(func(_ context.Context, es []Event) (any, error) { got = es; return nil, nil })
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(batch))
	r.Header.Set("Content-Type", batchContentType)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 204 || len(got) != 2 {
		t.Fatalf("status %d, %d events: %s", w.Code, len(got), w.Body)
	}
	if string(got[0].Data) != `{"x":1}` || got[0].Offset != 7 || got[0].Extensions["tenant"] != "acme" || string(got[1].Data) != "two" {
		t.Errorf("events %+v", got)
	}
	// A single-event function refuses a batch for good: retrying cannot help.
	r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(batch))
	r.Header.Set("Content-Type", batchContentType)
	w = httptest.NewRecorder()
	NewHandler(func(context.Context, Event) (any, error) { return nil, nil }).ServeHTTP(w, r)
	if w.Code != http.StatusUnprocessableEntity {
		t.Errorf("batch to Handle: status %d, want 422", w.Code)
	}
}

// fakeAPI is fnbox's context API as far as the SDK needs it.
func fakeAPI(t *testing.T, got chan<- map[string]any) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(headerInvocation) != "inv1" {
			w.WriteHeader(404)
			return
		}
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		m["op"] = r.URL.Path
		got <- m
		switch {
		case m["stream"] == "secret":
			w.WriteHeader(403)
			io.WriteString(w, `{"error":"emit to \"secret\": stream is not declared","code":"undeclared_stream"}`)
		case r.URL.Path == "/request":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"reply":true}`)
		default:
			w.WriteHeader(204)
		}
	}))
	t.Cleanup(srv.Close)
	t.Setenv(EnvContextURL, srv.URL)
}

func TestContextAPI(t *testing.T) {
	got := make(chan map[string]any, 10)
	fakeAPI(t, got)
	deadline := time.Now().Add(time.Minute).UTC().Truncate(time.Millisecond)
	h := NewHandler(func(ctx context.Context, e Event) (any, error) {
		if err := Emit(ctx, "audit", map[string]int{"a": 1}, EmitOptions{Type: "ty", Subject: "su", Key: "k"}); err != nil {
			return nil, err
		}
		if err := Emit(ctx, "secret", "x", EmitOptions{}); !errors.Is(err, ErrUndeclaredStream) || !strings.Contains(err.Error(), "not declared") {
			return nil, errors.New("secret emit: " + err.Error())
		}
		reply, err := Request(ctx, "questions", []byte("raw"), EmitOptions{})
		if err != nil {
			return nil, err
		}
		Log(ctx, "hello %d", 7)
		d, ok := Deadline(ctx)
		if cd, _ := ctx.Deadline(); !ok || !d.Equal(deadline) || !cd.Equal(deadline) {
			return nil, errors.New("deadline " + d.String())
		}
		return json.RawMessage(reply), nil
	})
	w := postEvent(t, h, "application/json", "1", map[string]string{headerInvocation: "inv1", headerDeadline: deadline.Format(time.RFC3339Nano)})
	if w.Code != 200 || w.Body.String() != `{"reply":true}` {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	emit := <-got
	if emit["op"] != "/emit" || emit["stream"] != "audit" || emit["type"] != "ty" || emit["subject"] != "su" || emit["key"] != "k" {
		t.Errorf("emit body %v", emit)
	}
	<-got // secret
	if req := <-got; req["op"] != "/request" || req["dataBase64"] != "cmF3" {
		t.Errorf("request body %v", req)
	}
	if l := <-got; l["op"] != "/log" || l["message"] != "hello 7" {
		t.Errorf("log body %v", l)
	}
}

func TestNoInvocation(t *testing.T) {
	if err := Emit(context.Background(), "s", nil, EmitOptions{}); !errors.Is(err, ErrNoInvocation) {
		t.Errorf("Emit outside a call: %v, want ErrNoInvocation", err)
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	t.Setenv("PORT", strconv.Itoa(port))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, NewHandler(func(context.Context, Event) (any, error) { return "ok", nil })) }()
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	var resp *http.Response
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("1"))
		req.Header.Set("ce-id", "x")
		if resp, err = http.DefaultClient.Do(req); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("server never answered: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Errorf("answer %q", b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

// TestPlainString checks the shortcut for attribute strings agrees with
// json.Unmarshal, and declines what it cannot read as is.
func TestPlainString(t *testing.T) {
	for _, raw := range []string{`"abc"`, `""`, `"é 😀"`, `"a\"b"`, `"a\\nb"`, `"\u00e9"`, "\"\xff\"", `12`, `true`, `"a`, `"` + "\t" + `"`} {
		got, ok := plainString(json.RawMessage(raw))
		var want string
		err := json.Unmarshal([]byte(raw), &want)
		if ok && (err != nil || got != want) {
			t.Errorf("plainString(%s) = %q, json.Unmarshal = %q, %v", raw, got, want, err)
		}
		if !ok && err == nil && raw == `"abc"` {
			t.Errorf("plainString(%s) declined a plain string", raw)
		}
	}
}
