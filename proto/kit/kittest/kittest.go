// Package kittest is what every module's tests share: polling for a
// condition instead of sleeping (nats-server's checkFor).
package kittest

import (
	"testing"
	"time"
)

// Timeout bounds every wait in tests: generous for -race on a busy
// two-core machine, and polling returns as soon as the condition holds.
const Timeout = 90 * time.Second

// Eventually polls cond every 20ms until it returns nil, failing the test
// with cond's last error after Timeout.
func Eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, Timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
