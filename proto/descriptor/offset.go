package descriptor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// OffsetKind says which form an Offset takes.
type OffsetKind uint8

// Offset kinds. Latest is the zero value because it is the default: a
// function deployed today sees events from now on, as a new Kafka consumer
// group does with auto.offset.reset=latest.
const (
	// OffsetLatest starts after the last event present.
	OffsetLatest OffsetKind = iota
	// OffsetFirst starts at the oldest retained event.
	OffsetFirst
	// OffsetAt starts every partition at offset At.
	OffsetAt
	// OffsetTime starts each partition at its first event with a
	// timestamp at or after Time.
	OffsetTime
	// OffsetPartitions starts each partition in Partitions at its offset;
	// partitions not listed start at latest.
	OffsetPartitions
)

// String names the kind as written in descriptors.
func (k OffsetKind) String() string {
	switch k {
	case OffsetLatest:
		return "latest"
	case OffsetFirst:
		return "first"
	case OffsetAt:
		return "at"
	case OffsetTime:
		return "time"
	case OffsetPartitions:
		return "partitions"
	}
	return "OffsetKind(" + strconv.Itoa(int(k)) + ")"
}

// Offset is where a consumer group with no committed position starts
// (DESIGN §4). Offsets past a partition's end start at its end, and ones
// before its start (deleted by retention) at its first event.
type Offset struct {
	// Kind says which of the other fields is meaningful.
	Kind OffsetKind
	// At is the offset applied to every partition, for OffsetAt.
	At int64
	// Time is the start time, for OffsetTime.
	Time time.Time
	// Partitions maps partition number to offset, for OffsetPartitions.
	Partitions map[int32]int64
}

// errBadOffset is the message for a value that is no form of offset at all.
const errBadOffset = "%s is not first, latest, a number, an RFC 3339 time or a partition map"

// ParseOffset parses the scalar forms of an offset: first, latest, a
// non-negative number or an RFC 3339 time. The CLI uses it for replay
// positions; descriptors also allow the partition map form.
func ParseOffset(s string) (Offset, error) {
	switch s {
	case "first":
		return Offset{Kind: OffsetFirst}, nil
	case "latest":
		return Offset{Kind: OffsetLatest}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return Offset{}, fmt.Errorf("offset %d is negative: use first, latest or a number from 0", n)
		}
		return Offset{Kind: OffsetAt, At: n}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return Offset{Kind: OffsetTime, Time: t}, nil
	}
	return Offset{}, fmt.Errorf(errBadOffset, strconv.Quote(s))
}

// parsePartition parses a partition map key.
func parsePartition(s string) (int32, error) {
	p, err := strconv.ParseInt(s, 10, 32)
	if err != nil || p < 0 {
		return 0, fmt.Errorf("%q is not a partition number: use 0, 1, 2, ...", s)
	}
	return int32(p), nil
}

// String writes the offset as in a descriptor (the map form as JSON).
func (o Offset) String() string {
	b, _ := o.MarshalJSON()
	return strings.Trim(string(b), `"`)
}

// MarshalJSON writes the offset in its descriptor form, so a stored
// descriptor parses back to the same value.
func (o Offset) MarshalJSON() ([]byte, error) {
	switch o.Kind {
	case OffsetLatest, OffsetFirst:
		return json.Marshal(o.Kind.String())
	case OffsetAt:
		return json.Marshal(o.At)
	case OffsetTime:
		return json.Marshal(o.Time.Format(time.RFC3339Nano))
	case OffsetPartitions:
		var b bytes.Buffer
		b.WriteByte('{')
		for i, p := range slices.Sorted(maps.Keys(o.Partitions)) {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"%d":%d`, p, o.Partitions[p])
		}
		b.WriteByte('}')
		return b.Bytes(), nil
	}
	return nil, fmt.Errorf("marshal offset: unknown kind %v", o.Kind)
}

// UnmarshalJSON reads any descriptor form of an offset, for code that
// decodes a stored descriptor with encoding/json instead of Parse.
func (o *Offset) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '{':
		var m map[string]int64
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("decode offset: %w", err)
		}
		parts := make(map[int32]int64, len(m))
		for k, v := range m {
			p, err := parsePartition(k)
			if err != nil {
				return err
			}
			if v < 0 {
				return fmt.Errorf("offset %d of partition %d is negative", v, p)
			}
			parts[p] = v
		}
		*o = Offset{Kind: OffsetPartitions, Partitions: parts}
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("decode offset: %w", err)
		}
		v, err := ParseOffset(s)
		if err != nil {
			return err
		}
		*o = v
		return nil
	}
	v, err := ParseOffset(string(b))
	if err != nil {
		return err
	}
	*o = v
	return nil
}
