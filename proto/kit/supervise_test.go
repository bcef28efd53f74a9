package kit

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// waitPart works until its context ends and records that it was stopped.
func waitPart(name string, stopped *atomic.Int32) Part {
	return Part{Name: name, Run: func(ctx context.Context) error {
		<-ctx.Done()
		stopped.Add(1)
		return ctx.Err()
	}}
}

func TestSuperviseStopsAllWhenCtxEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var stopped atomic.Int32
	done := make(chan error, 1)
	go func() { done <- Supervise(ctx, waitPart("a", &stopped), waitPart("b", &stopped)) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Supervise = %v, want nil after ctx ended", err)
	}
	if stopped.Load() != 2 {
		t.Fatalf("%d parts stopped, want 2", stopped.Load())
	}
}

func TestSuperviseStopsAllWhenOnePartStops(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"fails", errors.New("boom"), "broken: boom"},
		{"returns nil early", nil, "broken stopped on its own"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var stopped atomic.Int32
			err := Supervise(context.Background(), waitPart("a", &stopped),
				Part{Name: "broken", Run: func(context.Context) error { return c.err }})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Supervise = %v, want an error with %q", err, c.want)
			}
			if stopped.Load() != 1 {
				t.Fatalf("%d parts stopped, want 1", stopped.Load())
			}
		})
	}
}

func TestAdminSuperviseStopsWhenAdminServerExits(t *testing.T) {
	t.Parallel()
	a := NewAdmin("127.0.0.1:0")
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	var stopped atomic.Int32
	done := make(chan error, 1)
	go func() { done <- a.Supervise(context.Background(), waitPart("worker", &stopped)) }()
	// The admin server's listener fails under it: the service must stop,
	// not go on without /livez and /readyz.
	a.mu.Lock()
	_ = a.ln.Close()
	a.mu.Unlock()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "admin server") {
			t.Fatalf("Supervise = %v, want an admin server error", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Supervise still running a minute after the admin server exited")
	}
	if stopped.Load() != 1 || !a.Draining() {
		t.Fatalf("worker stopped %d times, draining %v; want 1 and true", stopped.Load(), a.Draining())
	}
}

func TestAdminSuperviseDrainsBeforeStoppingParts(t *testing.T) {
	t.Parallel()
	a := NewAdmin("127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	var drainingSeen atomic.Bool
	done := make(chan error, 1)
	go func() {
		done <- a.Supervise(ctx, Part{Name: "worker", Run: func(ctx context.Context) error {
			<-ctx.Done()
			drainingSeen.Store(a.Draining())
			return nil
		}})
	}()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Supervise = %v, want nil", err)
	}
	if !drainingSeen.Load() {
		t.Fatal("the worker was stopped before /readyz turned to draining")
	}
}

func TestSuperviseBehindStopsTheBackLast(t *testing.T) {
	t.Parallel()
	a := NewAdmin("127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	var frontStopped, frontDoneFirst atomic.Bool
	done := make(chan error, 1)
	go func() {
		done <- a.SuperviseBehind(ctx,
			[]Part{{Name: "front", Run: func(ctx context.Context) error {
				<-ctx.Done()
				time.Sleep(50 * time.Millisecond) // a request finishing during the drain
				frontStopped.Store(true)
				return nil
			}}},
			[]Part{{Name: "back", Run: func(ctx context.Context) error {
				<-ctx.Done()
				frontDoneFirst.Store(frontStopped.Load())
				return nil
			}}})
	}()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("SuperviseBehind = %v, want nil", err)
	}
	if !frontDoneFirst.Load() {
		t.Fatal("the back part was cancelled before the front part had stopped")
	}
}

func TestWatchEndsTheRun(t *testing.T) {
	t.Parallel()
	done := make(chan error, 1)
	done <- errors.New("follower failed")
	var stopped atomic.Int32
	err := Supervise(context.Background(), waitPart("a", &stopped), Watch("follow", done))
	if err == nil || !strings.Contains(err.Error(), "follow: follower failed") || stopped.Load() != 1 {
		t.Fatalf("Supervise = %v with %d stopped, want the follower's error and 1 stopped", err, stopped.Load())
	}
}
