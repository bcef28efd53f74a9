package service

import (
	"net/http"
	"testing"

	"github.com/buttercompass/butter/gateway/internal/testutil"
)

// TestPprof: Go's profiles are served on the gateway's address only when
// asked for; otherwise /debug/pprof/ is an ordinary path without a route.
func TestPprof(t *testing.T) {
	c := testutil.NewCluster(t)
	off := startGateway(t, c)
	if r := call(t, "GET", off.url+"/debug/pprof/", nil, nil); r.code != http.StatusNotFound {
		t.Fatalf("without Pprof: got %d %s, want 404", r.code, r.body)
	}
	on := startGateway(t, c, func(cfg *Config) { cfg.Pprof = true })
	if r := call(t, "GET", on.url+"/debug/pprof/", nil, nil); r.code != http.StatusOK {
		t.Fatalf("with Pprof: got %d %s, want 200", r.code, r.body)
	}
	if r := call(t, "GET", on.url+"/debug/pprof/goroutine?debug=1", nil, nil); r.code != http.StatusOK {
		t.Fatalf("goroutine profile: got %d, want 200", r.code)
	}
}
