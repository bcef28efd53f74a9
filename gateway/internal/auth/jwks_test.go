package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/buttercompass/butter/gateway/internal/auth/authtest"
	"github.com/buttercompass/butter/proto/kit/kittest"
)

// clock is a settable clock for KeySets.now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestUnreachableJWKSIsNotHammered: while an issuer's key set cannot be
// fetched, requests fail without each one fetching it again; nor is
// discovery of an unreachable issuer retried per request.
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
	hits.Store(0)
	for range 20 {
		if _, err := ks.Discover(context.Background(), srv.URL); err == nil {
			t.Fatal("discovered a failing issuer")
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("%d discovery fetches for 20 requests within MinRefetch, want 1", n)
	}
}

// TestJWKSRotation: a token naming a new kid is accepted once the set is
// refetched (at most every MinRefetch), and a key the issuer dropped stops
// working when the cached set expires.
func TestJWKSRotation(t *testing.T) {
	is := authtest.NewIssuer(t)
	ks := NewKeySets(nil)
	c := &clock{t: time.Now()}
	ks.now = c.now
	ctx := context.Background()
	if _, err := ks.Key(ctx, is.JWKSURL, "r1"); err != nil {
		t.Fatal(err)
	}
	is.Rotate(t, "e1", "e2")
	// Just fetched: an unknown kid does not refetch yet.
	if _, err := ks.Key(ctx, is.JWKSURL, "e2"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("new kid within MinRefetch: %v", err)
	}
	if n := is.Fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
	c.add(MinRefetch + time.Second)
	if k, err := ks.Key(ctx, is.JWKSURL, "e2"); err != nil || k.KeyID != "e2" {
		t.Fatalf("new kid after MinRefetch: %v %v", k.KeyID, err)
	}
	// r1 is gone from the new set at once; the cache holds what it fetched.
	if _, err := ks.Key(ctx, is.JWKSURL, "r1"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("dropped kid: %v", err)
	}
	// Known keys are served from the cache until CacheTTL.
	before := is.Fetches.Load()
	for range 10 {
		if _, err := ks.Key(ctx, is.JWKSURL, "e1"); err != nil {
			t.Fatal(err)
		}
	}
	if n := is.Fetches.Load(); n != before {
		t.Errorf("%d fetches for cached keys", n-before)
	}
	is.Rotate(t, "e2")
	c.add(CacheTTL + time.Second)
	if _, err := ks.Key(ctx, is.JWKSURL, "e1"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("dropped kid after CacheTTL: %v", err)
	}
}

// TestJWKSFetchHoldsNoLock: while one issuer's JWKS hangs, another
// issuer's keys are served, a request for the hung one gives up with its
// own context, and all waiting requests share one fetch.
func TestJWKSFetchHoldsNoLock(t *testing.T) {
	release := make(chan struct{})
	var hung atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		http.Error(w, "late", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv(slow, release))
	is := authtest.NewIssuer(t)
	ks := NewKeySets(nil)

	// Ten requests for the hung issuer, each with a context that ends.
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err := ks.Key(ctx, slow.URL, "k")
			errs <- err
		})
	}
	// Meanwhile the other issuer answers.
	if _, err := ks.Key(context.Background(), is.JWKSURL, "r1"); err != nil {
		t.Fatalf("other issuer while one hangs: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("request for the hung issuer: %v, want its own deadline", err)
		}
	}
	kittest.Eventually(t, "the hung fetch reaches the issuer", func() error {
		if hung.Load() == 0 {
			return errors.New("no fetch yet")
		}
		return nil
	})
	if n := hung.Load(); n != 1 {
		t.Errorf("%d fetches of the hung JWKS for 10 requests, want 1", n)
	}
}

// srv returns the cleanup of a server whose handler waits on release.
func srv(s *httptest.Server, release chan struct{}) func() {
	return func() {
		close(release)
		s.Close()
	}
}
