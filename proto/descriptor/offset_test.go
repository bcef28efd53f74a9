package descriptor

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestParseOffset(t *testing.T) {
	t0 := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in      string
		want    Offset
		wantErr string
	}{
		{in: "first", want: Offset{Kind: OffsetFirst}},
		{in: "latest", want: Offset{Kind: OffsetLatest}},
		{in: "0", want: Offset{Kind: OffsetAt, At: 0}},
		{in: "9223372036854775807", want: Offset{Kind: OffsetAt, At: 1<<63 - 1}},
		{in: "2024-06-01T00:00:00Z", want: Offset{Kind: OffsetTime, Time: t0}},
		{in: "frist", wantErr: `"frist" is not first, latest, a number, an RFC 3339 time or a partition map`},
		{in: "First", wantErr: `"First" is not first, latest, a number, an RFC 3339 time or a partition map`},
		{in: "", wantErr: `"" is not first, latest, a number, an RFC 3339 time or a partition map`},
		{in: "-1", wantErr: "offset -1 is negative: use first, latest or a number from 0"},
		{in: "2024-06-01", wantErr: `"2024-06-01" is not first, latest, a number, an RFC 3339 time or a partition map`},
	} {
		got, err := ParseOffset(tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("ParseOffset(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !got.Time.Equal(tc.want.Time) || got.Kind != tc.want.Kind || got.At != tc.want.At {
			t.Errorf("ParseOffset(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestOffsetJSON(t *testing.T) {
	for _, tc := range []struct {
		o    Offset
		json string
	}{
		{Offset{}, `"latest"`},
		{Offset{Kind: OffsetFirst}, `"first"`},
		{Offset{Kind: OffsetAt, At: 42}, `42`},
		{Offset{Kind: OffsetTime, Time: time.Date(2024, 6, 1, 8, 0, 0, 5e8, time.FixedZone("", 7200))}, `"2024-06-01T08:00:00.5+02:00"`},
		{Offset{Kind: OffsetPartitions, Partitions: map[int32]int64{10: 1, 2: 0}}, `{"2":0,"10":1}`},
	} {
		b, err := json.Marshal(tc.o)
		if err != nil || string(b) != tc.json {
			t.Errorf("Marshal(%+v) = %s, %v; want %s", tc.o, b, err, tc.json)
			continue
		}
		var back Offset
		if err := json.Unmarshal(b, &back); err != nil {
			t.Errorf("Unmarshal(%s): %v", b, err)
			continue
		}
		if back.Kind != tc.o.Kind || back.At != tc.o.At || !back.Time.Equal(tc.o.Time) ||
			(tc.o.Partitions != nil && !reflect.DeepEqual(back.Partitions, tc.o.Partitions)) {
			t.Errorf("Unmarshal(%s) = %+v, want %+v", b, back, tc.o)
		}
		if s := tc.o.String(); s == "" {
			t.Errorf("String of %+v is empty", tc.o)
		}
	}
	for _, bad := range []string{`"frist"`, `-1`, `{"x": 1}`, `{"0": -1}`, `[1]`, `{"0": "a"}`} {
		var o Offset
		if err := json.Unmarshal([]byte(bad), &o); err == nil {
			t.Errorf("Unmarshal(%s) = %+v, want an error", bad, o)
		}
	}
	if _, err := json.Marshal(Offset{Kind: 99}); err == nil {
		t.Errorf("Marshal of an unknown kind succeeded")
	}
}

func TestOffsetKindString(t *testing.T) {
	for k, want := range map[OffsetKind]string{
		OffsetLatest: "latest", OffsetFirst: "first", OffsetAt: "at", OffsetTime: "time",
		OffsetPartitions: "partitions", 9: "OffsetKind(9)",
	} {
		if got := k.String(); got != want {
			t.Errorf("OffsetKind(%d).String() = %q, want %q", k, got, want)
		}
	}
}
