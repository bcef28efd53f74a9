package runtime

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestGate(t *testing.T) {
	var g Gate
	inv := Invocation{Function: "f", Deadline: time.Now().Add(time.Hour)}
	ctx, done, err := g.Enter(context.Background(), inv)
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := ctx.Deadline(); !ok || !d.Equal(inv.Deadline) {
		t.Fatalf("Enter did not apply the invocation deadline: %v %v", d, ok)
	}

	// Close waits for the invocation in flight: with it still running and
	// a short ctx, Close reports it.
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if first, err := g.Close(short); !first || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with an invocation in flight = %v, %v", first, err)
	}
	if !g.Closed() {
		t.Fatal("Closed() after Close")
	}
	if _, _, err := g.Enter(context.Background(), inv); err == nil {
		t.Fatal("Enter after Close was admitted")
	}
	done()
	if first, err := g.Close(context.Background()); first || err != nil {
		t.Fatalf("second Close = %v, %v; want false, nil", first, err)
	}
}
