package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestUnreachableJWKSIsNotHammered: while an issuer's key set cannot be
// fetched, requests fail without each one fetching it again.
func TestUnreachableJWKSIsNotHammered(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	ks := NewKeySets(srv.Client())
	for range 20 {
		if _, err := ks.Key(context.Background(), srv.URL, "k1"); err == nil {
			t.Fatal("got a key from a failing JWKS endpoint")
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("%d fetches for 20 requests within MinRefetch, want 1", n)
	}
}
