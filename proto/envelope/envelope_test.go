package envelope

import (
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
)

func TestNew(t *testing.T) {
	before := time.Now()
	e := New("/orders", "com.example.created")
	after := time.Now()
	if err := e.Validate(); err != nil {
		t.Fatalf("New gave an invalid event: %v", err)
	}
	if e.SpecVersion() != "1.0" || e.Source() != "/orders" || e.Type() != "com.example.created" {
		t.Errorf("New = specversion %q source %q type %q", e.SpecVersion(), e.Source(), e.Type())
	}
	if _, err := uuid.Parse(e.ID()); err != nil {
		t.Errorf("id %q is not a uuid: %v", e.ID(), err)
	}
	if e.ID() == New("/orders", "com.example.created").ID() {
		t.Error("two events got the same id")
	}
	if tm := e.Time(); tm.Before(before.Truncate(time.Microsecond)) || tm.After(after) || tm.Location() != time.UTC {
		t.Errorf("time = %v, want UTC between %v and %v", tm, before, after)
	}
}

func TestDeadline(t *testing.T) {
	e := New("/s", "t")
	if _, ok := Deadline(e); ok {
		t.Fatal("fresh event has a deadline")
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 600, time.FixedZone("X", 3600))
	SetDeadline(&e, at)
	if got := e.Extensions()[ExtDeadline]; got != "2030-01-02T02:04:05.0000006Z" {
		t.Errorf("deadline extension = %#v, want an RFC 3339 UTC string", got)
	}
	got, ok := Deadline(e)
	if !ok || !got.Equal(at) {
		t.Errorf("Deadline = %v, %v; want %v", got, ok, at)
	}

	// Through a record, as a string header.
	r, err := ToRecord("t", e)
	if err != nil {
		t.Fatalf("ToRecord: %v", err)
	}
	if got, ok := Deadline(FromRecord(r).Event); !ok || !got.Equal(at) {
		t.Errorf("decoded Deadline = %v, %v; want %v", got, ok, at)
	}

	SetDeadline(&e, time.Time{})
	if _, ok := Deadline(e); ok {
		t.Error("zero time did not remove the deadline")
	}

	e.SetExtension(ExtDeadline, "soon")
	if _, ok := Deadline(e); ok {
		t.Error("malformed deadline read as a time")
	}
	if _, ok := Deadline(event.Event{}); ok {
		t.Error("zero event has a deadline")
	}
}

func TestChild(t *testing.T) {
	root := New("/a", "t.root")
	root.SetExtension(ExtTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	root.SetExtension(ExtTracestate, "k=v")
	root.SetExtension(ExtReplyTo, "replies")

	child := Child(root, "/b", "t.child")
	grandchild := Child(child, "/c", "t.grandchild")
	if root.ID() == child.ID() || child.ID() == grandchild.ID() || root.ID() == grandchild.ID() {
		t.Fatalf("ids not fresh: %s %s %s", root.ID(), child.ID(), grandchild.ID())
	}

	for _, tc := range []struct {
		name              string
		e                 event.Event
		source, typ       string
		cause, correlates string
	}{
		{"child", child, "/b", "t.child", root.ID(), root.ID()},
		{"grandchild", grandchild, "/c", "t.grandchild", child.ID(), root.ID()},
	} {
		e := tc.e
		if err := e.Validate(); err != nil {
			t.Errorf("%s invalid: %v", tc.name, err)
		}
		if e.Source() != tc.source || e.Type() != tc.typ {
			t.Errorf("%s: source %q type %q, want %q %q", tc.name, e.Source(), e.Type(), tc.source, tc.typ)
		}
		ext := e.Extensions()
		if ext[ExtCausationID] != tc.cause || ext[ExtCorrelationID] != tc.correlates {
			t.Errorf("%s: causationid %v correlationid %v, want %v %v", tc.name, ext[ExtCausationID], ext[ExtCorrelationID], tc.cause, tc.correlates)
		}
		if ext[ExtTraceparent] != root.Extensions()[ExtTraceparent] || ext[ExtTracestate] != "k=v" {
			t.Errorf("%s: trace not carried over: %v", tc.name, ext)
		}
		if _, ok := ext[ExtReplyTo]; ok {
			t.Errorf("%s inherited replyto; replies go to the requester only", tc.name)
		}
	}
}

func TestExtension(t *testing.T) {
	t.Parallel()
	e := New("/s", "t")
	e.SetExtension(ExtPartitionKey, "k1")
	e.SetExtension("attempt", 3)
	e.SetExtension(ExtDeadline, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	for _, c := range []struct {
		e    event.Event
		name string
		want string
	}{
		{e, ExtPartitionKey, "k1"},
		{e, "PartitionKey", "k1"},                // names are case-insensitive
		{e, "attempt", "3"},                      // integers in decimal
		{e, ExtDeadline, "2026-01-02T03:04:05Z"}, // times in RFC 3339
		{e, "absent", ""},                        // absent
		{event.Event{}, ExtPartitionKey, ""},     // a zero Event does not panic
	} {
		if got := Extension(c.e, c.name); got != c.want {
			t.Errorf("Extension(%q) = %q, want %q", c.name, got, c.want)
		}
	}
}

// TestNewIDRandom checks that ids are version 4 (random) UUIDs, all
// different across more than one refill of the random buffer.
func TestNewIDRandom(t *testing.T) {
	seen := map[string]bool{}
	for range 3 * 256 {
		var b [36]byte
		newID(&b)
		id := string(b[:])
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 4 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("id %q: version %v variant %v (%v), want a random RFC 9562 UUID", id, u.Version(), u.Variant(), err)
		}
		if seen[id] {
			t.Fatalf("id %q repeated", id)
		}
		seen[id] = true
	}
}
