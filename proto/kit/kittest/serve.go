package kittest

import (
	"context"
	"sync"
	"testing"

	"github.com/buttercompass/butter/proto/kit"
)

// Serve provisions s (failing the test if it cannot), serves it in the
// background and returns stop, which ends Serve, reports its error and
// closes s. stop runs at cleanup too; calling it earlier (to restart a
// service in a test) is fine.
func Serve(t testing.TB, s kit.Service) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := s.Provision(ctx); err != nil {
		s.Close()
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(sctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			scancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
			s.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}
