package engine

import "testing"

// TestMarkerRoundTrip: an in-flight marker reads back as written, and
// metadata that is not one (kgo's default, the member id; a torn or older
// format) is not taken for one, so it never counts as a crash.
func TestMarkerRoundTrip(t *testing.T) {
	for _, m := range []marker{
		{start: 0, end: 499, at: -1},
		{start: 472, end: 486, at: 485, crashes: 2},
	} {
		got, ok := parseMarker(m.String())
		if !ok || got != m {
			t.Errorf("parseMarker(%q) = %+v, %v; want %+v", m.String(), got, ok, m)
		}
	}
	for _, s := range []string{
		"", "butter-fnbox-35a1", "butter.inflight/1 0 10 0",
		"butter.inflight/2 10 5 -1 0",  // end before start
		"butter.inflight/2 0 10 11 0",  // event outside the range
		"butter.inflight/2 0 10 5 -1",  // negative count
		"butter.inflight/2 0 10 x 0",   // not a number
		"butter.inflight/2 0 10 5 0 7", // extra field
	} {
		if m, ok := parseMarker(s); ok {
			t.Errorf("parseMarker(%q) = %+v, want no marker", s, m)
		}
	}
}
