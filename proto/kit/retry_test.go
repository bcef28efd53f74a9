package kit

import (
	"context"
	"testing"
	"time"
)

func TestBackoffStep(t *testing.T) {
	t.Parallel()
	b := Backoff{Base: 100 * time.Millisecond, Max: time.Second}
	for attempt, want := range map[int]time.Duration{
		0: 100 * time.Millisecond, 1: 100 * time.Millisecond, 2: 200 * time.Millisecond,
		4: 800 * time.Millisecond, 5: time.Second, 1000: time.Second,
	} {
		if got := b.Step(attempt); got != want {
			t.Errorf("Step(%d) = %s, want %s", attempt, got, want)
		}
	}
	if got := (Backoff{Base: time.Second}).Step(200); got <= 0 {
		t.Errorf("uncapped Step(200) = %s, want a positive wait (no overflow)", got)
	}
	if got := (Backoff{}).Delay(3); got != 0 {
		t.Errorf("zero Backoff Delay = %s, want 0", got)
	}
}

func TestBackoffJitter(t *testing.T) {
	t.Parallel()
	for _, full := range []bool{false, true} {
		b := Backoff{Base: time.Second, Max: 8 * time.Second, FullJitter: full}
		lo := 2 * time.Second // half the 4s step of attempt 3
		if full {
			lo = 0
		}
		seen := map[time.Duration]bool{}
		for range 1000 {
			d := b.Delay(3)
			if d < lo || d > 4*time.Second {
				t.Fatalf("FullJitter=%v: Delay(3) = %s, want within [%s, 4s]", full, d, lo)
			}
			seen[d] = true
		}
		if len(seen) < 100 {
			t.Errorf("FullJitter=%v: 1000 delays took only %d values: no jitter", full, len(seen))
		}
	}
}

func TestSleepAndPoll(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	if !Sleep(ctx, time.Millisecond) {
		t.Fatal("Sleep(1ms) reported an early end")
	}
	n := 0
	if err := Poll(ctx, time.Millisecond, func() bool { n++; return n == 3 }); err != nil || n != 3 {
		t.Fatalf("Poll = %v after %d calls, want nil after 3", err, n)
	}
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep on a done context reported the whole wait")
	}
	if err := Poll(ctx, time.Hour, func() bool { return false }); err != context.Canceled {
		t.Fatalf("Poll on a done context = %v, want context.Canceled", err)
	}
}
