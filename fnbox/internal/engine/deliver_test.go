package engine

import (
	"testing"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

const basic = `
name: shop
platform: go
functions:
  - fn: ./score
    name: score
    bindings:
      streams: [{name: orders, offset: first}]
      out: scored
`

func TestResultsReachOut(t *testing.T) {
	e := newEnv(t)
	e.stream("orders", 4)
	e.stream("scored", 4)
	in := events("o", "com.example.order", 1000)
	in[0].SetExtension(envelope.ExtTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	in[1].SetExtension(envelope.ExtCorrelationID, "root-1")
	e.produce("orders", 4, in...)
	rec := newRecorder()
	e.start(parse(t, basic), runtime.Funcs{"score": echo(rec)})

	out := e.read("scored", 1000, false)
	got := causes(out)
	for _, ev := range in {
		if got[ev.ID()] != 1 {
			t.Fatalf("event %s reached out %d times, want 1", ev.ID(), got[ev.ID()])
		}
	}
	for _, d := range out {
		ev := d.Event
		if ev.Type() != obs.TypeResult || ev.Subject() != envelope.Extension(ev, envelope.ExtCausationID) {
			t.Fatalf("result %s: type %q subject %q", ev.ID(), ev.Type(), ev.Subject())
		}
		switch cause := envelope.Extension(ev, envelope.ExtCausationID); cause {
		case "o-0":
			if tp := envelope.Extension(ev, envelope.ExtTraceparent); len(tp) != 55 || tp[3:35] != "4bf92f3577b34da6a3ce929d0e0e4736" {
				t.Errorf("traceparent of o-0's result = %q, want trace 4bf92f...", tp)
			}
			if c := envelope.Extension(ev, envelope.ExtCorrelationID); c != "o-0" {
				t.Errorf("correlationid = %q, want o-0", c)
			}
		case "o-1":
			if c := envelope.Extension(ev, envelope.ExtCorrelationID); c != "root-1" {
				t.Errorf("correlationid = %q, want root-1 carried", c)
			}
		}
	}
	waitFor(t, "all offsets committed", func() bool {
		c := e.committed(topics.Namespace("").ConsumerGroup("shop", "score"), "orders")
		return c[0]+c[1]+c[2]+c[3] == 1000
	})
}
