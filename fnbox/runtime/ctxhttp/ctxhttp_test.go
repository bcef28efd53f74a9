package ctxhttp

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/buttercompass/butter/fnbox/runtime/runtimetest"
	"github.com/buttercompass/butter/proto/descriptor"
)

func newServer(t *testing.T) *Server {
	t.Helper()
	s, err := Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// post calls op as invocation id and returns status, content type, body.
func post(t *testing.T, s *Server, id, op, ct, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL()+"/"+op, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set(HeaderInvocation, id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

func TestAPI(t *testing.T) {
	s := newServer(t)
	fn := &descriptor.Function{Bindings: descriptor.Bindings{Out: "out", Emits: []string{"audit"}}}
	h := runtimetest.NewTestHost(fn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, done := s.Register(ctx, h)

	if st, _, body := post(t, s, id, "emit", "application/json", `{"stream":"audit","data":{"a":1},"type":"t","subject":"s","key":"k"}`); st != http.StatusNoContent {
		t.Errorf("emit: %d %s", st, body)
	}
	if st, _, body := post(t, s, id, "emit", "application/json", `{"stream":"audit","data":"plain"}`); st != http.StatusNoContent {
		t.Errorf("emit text: %d %s", st, body)
	}
	if st, _, body := post(t, s, id, "emit", "application/json", `{"stream":"audit","dataBase64":"/w=="}`); st != http.StatusNoContent {
		t.Errorf("emit binary: %d %s", st, body)
	}
	st, _, body := post(t, s, id, "emit", "application/json", `{"stream":"secret","data":1}`)
	var e struct{ Error, Code string }
	if json.Unmarshal([]byte(body), &e); st != http.StatusForbidden || e.Code != CodeUndeclaredStream {
		t.Errorf("undeclared emit: %d %s", st, body)
	}
	st, ct, body := post(t, s, id, "request", "application/json", `{"stream":"out","data":[1]}`)
	if st != http.StatusOK || ct != "application/json" || body != `{"reply":[1]}` {
		t.Errorf("request: %d %s %s", st, ct, body)
	}
	post(t, s, id, "log", "application/json", `{"level":"warn","message":"careful"}`)
	post(t, s, id, "log", "text/plain", "just text\n")
	if st, _, _ := post(t, s, id, "nope", "application/json", `{}`); st != http.StatusNotFound {
		t.Errorf("unknown op: %d", st)
	}

	emits := h.Emits()
	if len(emits) != 3 {
		t.Fatalf("emits %+v, want 3", emits)
	}
	if e := emits[0]; string(e.Data) != `{"a":1}` || e.ContentType != "application/json" || e.Type != "t" || e.Subject != "s" || e.Key != "k" {
		t.Errorf("emit 0 = %+v", e)
	}
	if e := emits[1]; string(e.Data) != "plain" || e.ContentType != "text/plain" {
		t.Errorf("emit 1 = %+v", e)
	}
	if e := emits[2]; string(e.Data) != "\xff" || e.ContentType != "application/octet-stream" {
		t.Errorf("emit 2 = %+v", e)
	}
	logs := h.Logs()
	want := []runtimetest.LogLine{{Level: slog.LevelWarn, Msg: "careful"}, {Level: slog.LevelInfo, Msg: "just text"}}
	if len(logs) != 2 || logs[0] != want[0] || logs[1] != want[1] {
		t.Errorf("logs %+v, want %+v", logs, want)
	}

	done()
	if st, _, _ := post(t, s, id, "log", "text/plain", "late"); st != http.StatusNotFound {
		t.Errorf("call after done: %d, want 404", st)
	}
	if st, _, _ := post(t, s, "guess", "log", "text/plain", "x"); st != http.StatusNotFound {
		t.Errorf("call with unknown id: %d, want 404", st)
	}
}
