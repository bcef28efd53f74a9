package kit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// startAdmin serves a on a random port until the test ends and returns its
// base URL.
func startAdmin(t *testing.T, a *Admin) string {
	t.Helper()
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + a.Addr()
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(body), resp.Header
}

func TestAdminProbes(t *testing.T) {
	a := NewAdmin("127.0.0.1:0")
	var broken atomic.Bool
	a.AddReadyCheck("db", func(context.Context) error {
		if broken.Load() {
			return errors.New("connection refused")
		}
		return nil
	})
	base := startAdmin(t, a)
	if strings.HasSuffix(base, ":0") {
		t.Fatalf("Addr %s is not the bound port", base)
	}

	if code, _, _ := get(t, base+"/livez"); code != http.StatusOK {
		t.Fatalf("/livez = %d", code)
	}
	code, body, hdr := get(t, base+"/readyz")
	if code != http.StatusOK || !strings.Contains(body, `"status":"ready"`) || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("/readyz = %d %s", code, body)
	}

	broken.Store(true)
	code, body, _ = get(t, base+"/readyz")
	var st readyStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	if code != http.StatusServiceUnavailable || st.Checks["db"] != "connection refused" {
		t.Fatalf("/readyz with failing check = %d %s", code, body)
	}

	broken.Store(false)
	if code, _, _ := get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after recovery = %d", code)
	}

	a.SetDraining()
	code, body, _ = get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Fatalf("/readyz while draining = %d %s", code, body)
	}
	if code, _, _ := get(t, base+"/livez"); code != http.StatusOK {
		t.Fatalf("/livez while draining = %d, want 200", code)
	}
}

func TestAdminReadyCheckTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	a := NewAdmin("127.0.0.1:0", ReadyCheckTimeout(timeout))
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	a.AddReadyCheck("stuck", func(context.Context) error { <-release; return nil }) // ignores ctx on purpose
	base := startAdmin(t, a)

	// The check never returns until cleanup, so any answer at all means
	// the timeout cut it off.
	code, body, _ := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "did not answer") {
		t.Fatalf("/readyz with a stuck check = %d %s", code, body)
	}
}

func TestAdminMetricsAndHandle(t *testing.T) {
	a := NewAdmin("127.0.0.1:0")
	hits := prometheus.NewCounter(prometheus.CounterOpts{Name: "kit_test_hits_total", Help: "test"})
	a.Registry().MustRegister(hits)
	a.Handle("GET /hello", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Inc()
		fmt.Fprint(w, "hi")
	}))
	a.Handle("/{name}", http.NotFoundHandler()) // a catch-all must not clash with the probes
	base := startAdmin(t, a)

	if code, body, _ := get(t, base+"/hello"); code != http.StatusOK || body != "hi" {
		t.Fatalf("/hello = %d %q", code, body)
	}
	code, body, _ := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{"go_goroutines", "process_", "kit_test_hits_total 1"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestAdminServeStopsOnCancel(t *testing.T) {
	a := NewAdmin("127.0.0.1:0", ShutdownTimeout(time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }() // Serve listens by itself
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if strings.HasSuffix(a.Addr(), ":0") {
			return errors.New("not listening yet")
		}
		resp, err := http.Get("http://" + a.Addr() + "/livez")
		if err != nil {
			return err
		}
		return resp.Body.Close()
	})
	addr := a.Addr()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := http.Get("http://" + addr + "/livez"); err == nil {
		t.Fatal("server still answers after shutdown")
	}
}

func TestAdminListenError(t *testing.T) {
	a := NewAdmin("127.0.0.1:0")
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.ln.Close() })
	b := NewAdmin(a.Addr()) // taken
	if err := b.Serve(context.Background()); err == nil || !strings.Contains(err.Error(), a.Addr()) {
		t.Fatalf("Serve on a taken port = %v, want an error naming it", err)
	}
}

// TestAdminShutdownSkipsFreshConns: a connection that sent no request (an
// HTTP client's spare) does not hold a drain up; Shutdown alone waits 5 s
// for such connections, past this admin's 1 s shutdown timeout.
func TestAdminShutdownSkipsFreshConns(t *testing.T) {
	a := NewAdmin("127.0.0.1:0", ShutdownTimeout(time.Second))
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	conn, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A request on another connection proves the server runs (and has
	// seen the spare one, accepted before it).
	resp, err := http.Get("http://" + a.Addr() + "/livez")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel with a connection that sent nothing: %v", err)
	}
}
