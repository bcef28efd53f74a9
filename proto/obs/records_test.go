package obs

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestLogRoundTrip(t *testing.T) {
	in := Log{
		Deployment: "orders", Function: "on-order", Instance: "h-1", EventID: "e1",
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Level: LevelWarn,
		Message: "low stock", Origin: OriginContext, Time: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
	}
	r, err := in.Record("_butter.logs")
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Key) != "orders/on-order" {
		t.Errorf("key = %q", r.Key)
	}
	out, err := ParseLog(r)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
	}
}

func TestHeartbeatRoundTrip(t *testing.T) {
	in := Heartbeat{
		Deployment: "orders", Function: "on-order", Instance: "h-1",
		Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), InFlight: 3, Processed: 10, Errors: 1, P95Ms: 12.5,
		Partitions: []Partition{{Stream: "orders", Partition: 2}},
	}
	r, err := in.Record("_butter.heartbeats")
	if err != nil {
		t.Fatal(err)
	}
	out, err := ParseHeartbeat(r)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
	}
	if _, err := ParseLog(r); !errors.Is(err, ErrNotObs) {
		t.Errorf("ParseLog(heartbeat) = %v, want ErrNotObs", err)
	}
}

func TestParseRaw(t *testing.T) {
	if _, err := ParseHeartbeat(&kgo.Record{Topic: "t", Value: []byte("{}")}); !errors.Is(err, ErrNotObs) {
		t.Errorf("ParseHeartbeat(raw) = %v, want ErrNotObs", err)
	}
}
