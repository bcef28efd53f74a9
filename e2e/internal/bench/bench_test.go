package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestRunQuick runs the whole bench in quick mode on a real embedded broker
// and checks what the figures mean, not how fast they are.
func TestRunQuick(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cfg := QuickConfig()
	cfg.TempDir = t.TempDir()

	extraRan := false
	cfg.Extra = []Measurement{{
		Name: "extra",
		Run: func(_ context.Context, env *Env, rep *Report) error {
			extraRan = true
			p, _ := rep.Row(RowPipeline)
			return rep.Add(Row{Name: "half pipeline", Value: p.Value / 2, Unit: UnitEventsPerSecond, Limit: RowPipeline, Count: p.Count})
		},
	}}

	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !extraRan {
		t.Fatal("the extra measurement did not run")
	}

	want := []string{RowProduce, RowProduceCodec, RowConsume, RowConsumeCodec, RowPipeline, RowPipelineCodec, RowCodec,
		RowReplyP50, RowReplyP99, RowReplyMean, "half pipeline"}
	var got []string
	for _, row := range rep.Rows() {
		got = append(got, row.Name)
		if !(row.Value > 0) {
			t.Errorf("row %q: figure %v, want > 0", row.Name, row.Value)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("rows %q, want %q", got, want)
	}

	for _, name := range []string{RowProduce, RowProduceCodec, RowConsume, RowConsumeCodec, RowPipeline, RowPipelineCodec, RowCodec} {
		if row, _ := rep.Row(name); row.Count != cfg.Events {
			t.Errorf("%s counted %d events, want exactly %d", name, row.Count, cfg.Events)
		}
	}
	for raw, codec := range map[string]string{RowProduce: RowProduceCodec, RowConsume: RowConsumeCodec, RowPipeline: RowPipelineCodec} {
		if row, _ := rep.Row(codec); row.Limit != raw {
			t.Errorf("%s compares with %q, want the raw row %q", codec, row.Limit, raw)
		}
	}
	if row, _ := rep.Row(RowCodec); !row.NoLimit || row.Unit != UnitNanosecondsPerEvent {
		t.Errorf("%s: unit %q, no limit %v; want %s and no limit", RowCodec, row.Unit, row.NoLimit, UnitNanosecondsPerEvent)
	}
	p50, _ := rep.Row(RowReplyP50)
	p99, _ := rep.Row(RowReplyP99)
	if p99.Value < p50.Value {
		t.Errorf("reply p99 %.3fms < p50 %.3fms", p99.Value, p50.Value)
	}
	if p50.Count != cfg.Requests {
		t.Errorf("timed %d round trips, want %d (warm-up excluded)", p50.Count, cfg.Requests)
	}
	if rep.RecordBytes < 200 || rep.RecordBytes > 300 {
		t.Errorf("mean record %.0f B, want about 250", rep.RecordBytes)
	}

	half, _ := rep.Row("half pipeline")
	if r := rep.Ratio(half); r < 0.49 || r > 0.51 {
		t.Errorf("ratio of half the pipeline rate = %.3f, want 0.5", r)
	}
	if r := rep.Ratio(p99); r != 1 {
		t.Errorf("ratio of a raw row = %v, want 1", r)
	}

	var md bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"| measurement | figure | unit | over | raw Kafka limit (same run) | ratio |",
		"| " + RowConsume + " | ",
		"| half pipeline | ",
		"make bench",
	} {
		if !strings.Contains(md.String(), s) {
			t.Errorf("markdown lacks %q:\n%s", s, md.String())
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []Config{DefaultConfig(), QuickConfig()} {
		if err := cfg.Validate(); err != nil {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	bad := Config{Events: 0, Requests: -1, Warmup: -1}
	err := bad.Validate()
	if err == nil {
		t.Fatal("zero config validated")
	}
	for _, s := range []string{"events", "requests", "warm-up", "reply timeout"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0.50, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0.001, time.Millisecond}} {
		if got := percentile(ds, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p*100, got, c.want)
		}
	}
	if got := meanOf(ds); got != 50500*time.Microsecond {
		t.Errorf("mean = %v, want 50.5ms", got)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("percentile sorted its input in place")
	}
}
