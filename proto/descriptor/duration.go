package descriptor

import (
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration written the Go way in descriptors ("200ms",
// "30s", "1m30s"). A bare number is refused rather than guessed at: "30"
// could mean seconds or milliseconds, and guessing wrong fails silently.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d the way it is written in descriptors.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a duration string, so stored descriptors stay
// readable and parse back.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string, for code that decodes a stored
// descriptor with encoding/json instead of Parse.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("decode duration: %w", err)
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// parseDuration parses a Go duration and explains a missing unit.
func parseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		if isDigits(s) {
			return 0, fmt.Errorf("%s is not a duration: add a unit, like %ss or %sms", s, s, s)
		}
		return 0, fmt.Errorf("%q is not a duration: write it like 200ms, 30s or 1m30s", s)
	}
	return Duration(v), nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
