package monitor

import (
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/obs"
)

// TestLoadFromHeartbeats: the rate is each live instance's processed
// growth between its last two beats, summed; in-flight events add up;
// an instance whose last beat says it stops, or that went silent, is
// gone.
func TestLoadFromHeartbeats(t *testing.T) {
	c := newCatalog("d", "s", "h", slog.New(slog.DiscardHandler))
	t0 := time.Now()
	beat := func(inst string, at time.Duration, processed int64, inFlight int, stopping bool) {
		c.beat(obs.Heartbeat{Deployment: "dep", Function: "fn", Instance: inst, Time: t0.Add(at),
			Processed: processed, InFlight: inFlight, Stopping: stopping}, t0.Add(at))
	}
	key := control.ScaleKey("dep", "fn")
	beat("a", 0, 100, 0, false)
	beat("a", 5*time.Second, 600, 2, false) // 100/s
	beat("b", 0, 0, 0, false)
	beat("b", 5*time.Second, 250, 1, false)  // 50/s
	beat("b", 4*time.Second, 9999, 9, false) // older than the last: ignored
	rate, running, inFlight := c.Load(key, t0.Add(6*time.Second))
	if math.Abs(rate-150) > 1e-9 || running != 2 || inFlight != 3 {
		t.Fatalf("load = %.1f/s, %d running, %d in flight; want 150/s, 2, 3", rate, running, inFlight)
	}
	beat("b", 6*time.Second, 300, 0, true)
	if _, running, _ = c.Load(key, t0.Add(7*time.Second)); running != 1 {
		t.Fatalf("%d running after b stopped, want 1", running)
	}
	if _, running, _ = c.Load(key, t0.Add(5*time.Second+liveFor+time.Second)); running != 0 {
		t.Fatalf("%d running after a went silent, want 0", running)
	}
}
