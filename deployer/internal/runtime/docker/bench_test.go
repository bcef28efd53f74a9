package docker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkColdStart measures a docker cold start with a warm image: from
// Start of a python function's container to its first event handled (the
// event is already on the stream). Reported as ms/start.
func BenchmarkColdStart(b *testing.B) {
	g := newRig(b)
	rt := g.runtime()
	g.produce(0, 1)
	ctx := context.Background()
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		// A new deployment each time: its consumer group starts at the
		// first event, so the one event is handled again.
		name := fmt.Sprintf("count%d", i)
		s := spec(strings.Replace(pyDesc, "name: count", "name: "+name, 1), map[string]string{"handler.py": pyHandler})
		s.Deployment = name
		start := time.Now()
		in, err := rt.Start(ctx, s)
		if err != nil {
			b.Fatal(err)
		}
		g.awaitResults(map[int]bool{}, 1)
		total += time.Since(start)
		if err := rt.Stop(ctx, in.ID); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/start")
}
