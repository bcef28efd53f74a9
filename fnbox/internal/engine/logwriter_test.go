package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/fnbox/runtime/exec"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

// lines collects what a lineWriter emits.
type lines struct {
	mu  sync.Mutex
	got []string
}

func (l *lines) emit(s string) { l.mu.Lock(); l.got = append(l.got, s); l.mu.Unlock() }

// TestLineWriterBoundsLines: lines are split at newlines whatever the
// writes, CRLF loses its CR, and a line longer than max is passed on as
// its first max+1 bytes (so the limiter marks it) while the rest of it is
// skipped, never buffered.
func TestLineWriterBoundsLines(t *testing.T) {
	var l lines
	w := &lineWriter{max: 8, emit: l.emit}
	for _, p := range []string{"one\ntw", "o\r\nthree", "\n", "0123456789abcdef", "ghij", "klm\nfour\n"} {
		if n, err := w.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("write %q: %d %v", p, n, err)
		}
	}
	want := []string{"one", "two", "three", "012345678", "four"}
	if fmt.Sprint(l.got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", l.got, want)
	}
	// A megabyte without a newline holds no more than a line in memory.
	big := strings.Repeat("x", 1<<20)
	_, _ = w.Write([]byte(big))
	if len(w.buf) > w.max+1 || cap(w.buf) > 1<<10 {
		t.Errorf("buffer grew to len %d cap %d", len(w.buf), cap(w.buf))
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestLogLimiter: a burst passes, then Rate lines per second; the rest are
// counted, and one notice per interval says how many were dropped; long
// lines are cut at MaxLine on a character boundary and marked.
func TestLogLimiter(t *testing.T) {
	var mu sync.Mutex
	var notices []obs.Log
	reg := prometheus.NewRegistry()
	m := newLogMetrics(reg)
	lm := newLogLimiter(LogLimits{Rate: 10, Burst: 20, MaxLine: 10, NoticeEvery: 20 * time.Millisecond}, m, "d",
		func(l obs.Log) { mu.Lock(); notices = append(notices, l); mu.Unlock() })
	c := &fakeClock{t: time.Now()}
	lm.now = c.now

	admitted := 0
	for range 100 {
		l := obs.Log{Message: "x"}
		if lm.admit(&l) {
			admitted++
		}
	}
	if admitted != 20 {
		t.Fatalf("%d of 100 lines at once admitted, want the burst of 20", admitted)
	}
	c.add(time.Second)
	admitted = 0
	for range 100 {
		l := obs.Log{Message: "x"}
		if lm.admit(&l) {
			admitted++
		}
	}
	if admitted != 10 {
		t.Fatalf("%d lines admitted a second later, want the rate of 10", admitted)
	}
	waitFor(t, "drop notice", func() bool { mu.Lock(); defer mu.Unlock(); return len(notices) > 0 })
	mu.Lock()
	total := 0
	for _, n := range notices {
		total += droppedIn(t, n.Message)
		if n.Level != obs.LevelWarn {
			t.Errorf("notice level %q", n.Level)
		}
	}
	mu.Unlock()
	if total != 170 {
		t.Errorf("notices count %d dropped lines, want 170", total)
	}
	if got := testutil.ToFloat64(m.dropped.WithLabelValues("d")); got != 170 {
		t.Errorf("dropped counter %v, want 170", got)
	}

	c.add(time.Hour)
	l := obs.Log{Message: "ab€€€€€€"} // € is 3 bytes: byte 10 is inside one
	if !lm.admit(&l) {
		t.Fatal("refused after an hour")
	}
	if want := "ab€€" + fmt.Sprintf(truncatedMark, 10); l.Message != want {
		t.Errorf("cut line %q, want %q", l.Message, want)
	}
}

var droppedRE = regexp.MustCompile(`^fnbox: (\d+) log lines dropped`)

// droppedIn returns the count of a drop notice, failing on anything else.
func droppedIn(t *testing.T, msg string) int {
	t.Helper()
	m := droppedRE.FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("not a drop notice: %q", msg)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// floodScript prints a 100,000-byte line, then 292,969 lines of 1,024
// bytes (300 MB) on stderr as fast as it can, then answers.
const floodScript = `#!/bin/sh
head -c 100000 /dev/zero | tr '\0' y >&2
echo >&2
line=$(head -c 1023 /dev/zero | tr '\0' x)
yes "$line" | head -n 292969 >&2
echo '{"done":true}'
`

const floodLines = 1 + 292969

// TestLogFloodIsBounded: a real process printing 300 MB to stderr makes at
// most the burst plus the rate over the time it ran of log records, plus
// drop notices whose counts add up to every line not written; the long
// line is cut and marked; and the function's result still arrives.
func TestLogFloodIsBounded(t *testing.T) {
	env := newEnv(t)
	env.stream("in", 1)
	env.stream("results", 1)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "flood.sh"), []byte(floodScript), 0o755); err != nil {
		t.Fatal(err)
	}
	d := parse(t, `name: flood
platform: exec
functions:
  - fn: ./flood.sh
    name: flood
    bindings:
      streams: [{name: in, offset: first}]
      out: results
    delivery: { timeout: 10m, retries: 0 }
`)
	lim := LogLimits{Rate: 100, Burst: 200, MaxLine: 16 << 10}
	reg := prometheus.NewRegistry()
	eng, err := New(Config{Kafka: env.kafk, Deployment: d, Instance: "flood-1", Logger: testLogger(), Metrics: reg, Logs: lim,
		HeartbeatInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rt, err := exec.Start(ctx, runtime.Spec{Deployment: d, Dir: dir,
		Stdout: eng.LogWriter(obs.OriginStdout, obs.LevelInfo), Stderr: eng.LogWriter(obs.OriginStderr, obs.LevelWarn)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- eng.Run(ctx, rt) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine run: %v", err)
		}
		_ = rt.Close(context.Background())
	}
	t.Cleanup(stop)

	env.produce("in", 1, events("f", "test.flood", 1)...)
	out := env.read("results", 1, false)
	elapsed := time.Since(start)
	if len(out) != 1 || !strings.Contains(string(out[0].Event.Data()), "done") {
		t.Fatalf("result: %v", out)
	}
	stop() // writes the pending drop notice

	logs := readLogs(t, env, "flood")
	var records, notices, dropped int
	var cut bool
	for _, l := range logs {
		if l.Origin == "" {
			notices++
			dropped += droppedIn(t, l.Message)
			continue
		}
		records++
		if strings.HasPrefix(l.Message, "yyy") {
			cut = strings.HasSuffix(l.Message, fmt.Sprintf(truncatedMark, lim.MaxLine)) && len(l.Message) < lim.MaxLine+100
		}
	}
	bound := lim.Burst + int(elapsed.Seconds()+1)*lim.Rate
	t.Logf("300 MB in %s: %d log records, %d notices for %d dropped lines (bound %d)", elapsed.Round(time.Millisecond), records, notices, dropped, bound)
	if records > bound {
		t.Errorf("%d log records, want at most %d (burst %d + %d/s over %s)", records, bound, lim.Burst, lim.Rate, elapsed)
	}
	if records+dropped != floodLines {
		t.Errorf("%d written + %d counted as dropped = %d, want every one of %d lines accounted for", records, dropped, records+dropped, floodLines)
	}
	if max := int(elapsed.Seconds()) + 2; notices == 0 || notices > max {
		t.Errorf("%d drop notices, want 1 to %d (one per second at most)", notices, max)
	}
	if !cut {
		t.Error("the 100,000-byte line is not in the logs cut and marked")
	}
	if got := testutil.ToFloat64(eng.logs.dropped); int(got) != dropped {
		t.Errorf("dropped counter %v, notices say %d", got, dropped)
	}
}

// readLogs returns the logs of deployment written so far.
func readLogs(t *testing.T, env *env, deployment string) []obs.Log {
	t.Helper()
	cl := env.client(kgo.ConsumeTopics(topics.Logs), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	adm := env.client()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	listed, err := kadm.NewClient(adm).ListEndOffsets(ctx, topics.Logs)
	if err != nil {
		t.Fatal(err)
	}
	ends := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	seen := map[int32]int64{}
	var out []obs.Log
	for !reached(seen, ends) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read logs: %v (at %v of %v)", ctx.Err(), seen, ends)
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen[r.Partition] = r.Offset + 1
			if l, err := obs.ParseLog(r); err == nil && l.Deployment == deployment {
				out = append(out, l)
			}
		})
	}
	return out
}

func reached(seen, ends map[int32]int64) bool {
	for p, end := range ends {
		if seen[p] < end {
			return false
		}
	}
	return true
}
