package descriptor

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
		ok   bool
	}{
		{"0", 0, true},
		{"1048576", MiB, true},
		{"512Ki", 512 * KiB, true},
		{"256Mi", 256 * MiB, true},
		{"1.5Gi", 3 * GiB / 2, true},
		{"1MiB", MiB, true},
		{"10MB", 10e6, true},
		{"1k", 1000, true},
		{"2Ti", 2 << 40, true},
		{"100B", 100, true},
		{"", 0, false},
		{"Mi", 0, false},
		{"-1Mi", 0, false},
		{"1e3", 0, false},
		{"1 Mi", 0, false},
		{"1Pi", 0, false},
		{"9999999Ti", 0, false},
		{".", 0, false},
	} {
		got, err := ParseByteSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	for n, want := range map[ByteSize]string{0: "0", 1000: "1000", KiB: "1Ki", 3 * MiB: "3Mi", 1536: "1536", 2 * GiB: "2Gi", 1 << 40: "1Ti"} {
		if got := n.String(); got != want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", n, got, want)
		}
		if back, err := ParseByteSize(n.String()); err != nil || back != n {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", n.String(), back, err, n)
		}
	}
}

func TestParseMilliCPU(t *testing.T) {
	for in, want := range map[string]int64{"0.5": 500, "2": 2000, "500m": 500, "0.25": 250, "1500m": 1500} {
		if got, err := parseMilliCPU(in); err != nil || got != want {
			t.Errorf("parseMilliCPU(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "m", "fast", "-1", "1 core", "1k"} {
		if _, err := parseMilliCPU(in); err == nil {
			t.Errorf("parseMilliCPU(%q) succeeded", in)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	d := Duration(1500 * time.Millisecond)
	b, err := json.Marshal(d)
	if err != nil || string(b) != `"1.5s"` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	var back Duration
	if err := json.Unmarshal(b, &back); err != nil || back != d {
		t.Fatalf("Unmarshal(%s) = %v, %v", b, back, err)
	}
	if d.Std() != 1500*time.Millisecond || d.String() != "1.5s" {
		t.Errorf("Std/String = %v/%q", d.Std(), d.String())
	}
	for _, bad := range []string{`30`, `"30"`, `"soon"`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("Unmarshal(%s) succeeded", bad)
		}
	}
}
