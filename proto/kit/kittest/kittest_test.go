package kittest

import (
	"errors"
	"testing"
)

func TestEventuallyReturnsOnceCondHolds(t *testing.T) {
	n := 0
	Eventually(t, "third call", func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("cond called %d times, want 3", n)
	}
}
