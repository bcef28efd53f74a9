package control

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestScaleDecisionRoundTrip(t *testing.T) {
	want := ScaleDecision{Deployment: "orders", Function: "on-order", Version: "v1", From: 0, To: 2,
		Reason: ScaleReasonWake, Lag: 1500, Rate: 12.5, InFlight: 1, Partitions: 4, Min: 0, Max: 4,
		LagPerReplica: 1000, Replica: "lm-1", Time: time.Unix(1700000000, 0).UTC()}
	r, err := ScaleRecord("p._butter.scale", want)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Key) != "orders/on-order" || r.Topic != "p._butter.scale" {
		t.Fatalf("record key %q topic %q", r.Key, r.Topic)
	}
	got, err := DecodeScale(r)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
	bad := &kgo.Record{Key: []byte("other/on-order"), Value: r.Value}
	if _, err := DecodeScale(bad); !errors.Is(err, ErrBadScaleKey) {
		t.Fatalf("mismatched key: %v, want ErrBadScaleKey", err)
	}
	if _, err := DecodeScale(&kgo.Record{Key: r.Key, Value: []byte("{")}); err == nil {
		t.Fatal("bad JSON decoded")
	}
}
