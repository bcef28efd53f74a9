package httprt

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit"
)

// TestConnsKeepAliveAndStale checks a connection carries the next call,
// that an idle connection the server closed is not used (the call goes on
// a new one, sent once), and that a cancelled call fails at once and
// closes its connection.
func TestConnsKeepAliveAndStale(t *testing.T) {
	var dialed atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if string(body) == "hang" {
			<-r.Context().Done()
			return
		}
		w.Write(bytes.ToUpper(body))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dialed.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	cs := &conns{addr: strings.TrimPrefix(srv.URL, "http://")}
	t.Cleanup(cs.close)
	call := func(ctx context.Context, body string) (string, error) {
		req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_, b, err := cs.do(ctx, req)
		return string(b), err
	}
	for _, in := range []string{"a", "b", "c"} {
		if got, err := call(t.Context(), in); err != nil || got != strings.ToUpper(in) {
			t.Fatalf("call %q = %q, %v", in, got, err)
		}
	}
	if n := dialed.Load(); n != 1 {
		t.Errorf("3 calls one after the other used %d connections, want 1", n)
	}

	// The server drops its idle connections: the next call sees it before
	// writing and dials a new one.
	srv.CloseClientConnections()
	if err := kit.Poll(t.Context(), time.Millisecond, func() bool {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		return len(cs.idle) == 1 && !cs.idle[0].open()
	}); err != nil {
		t.Fatal("the idle connection the server closed still looks open")
	}
	if got, err := call(t.Context(), "d"); err != nil || got != "D" {
		t.Fatalf("call after the server closed the idle connection = %q, %v", got, err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	if _, err := call(ctx, "hang"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("call past its deadline: %v, want context.DeadlineExceeded", err)
	}
	if waited := time.Since(began); waited > 10*time.Second {
		t.Errorf("call past its deadline returned after %v", waited)
	}
	// Its connection, poisoned by the deadline, is closed, not reused.
	cs.mu.Lock()
	idle := len(cs.idle)
	cs.mu.Unlock()
	if idle != 0 {
		t.Errorf("%d idle connections after a cancelled call on the only one, want 0", idle)
	}
	if got, err := call(t.Context(), "e"); err != nil || got != "E" {
		t.Fatalf("call after a cancelled one = %q, %v", got, err)
	}
}
