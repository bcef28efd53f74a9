package app

import (
	"io"
	"os"
	"testing"
	"time"
)

// TestParseFlagsMemberEnv: a pool member's Env stands for its
// environment: it fills the flags the command line leaves out, loses to
// those it gives, and never reaches the process environment.
func TestParseFlagsMemberEnv(t *testing.T) {
	env := map[string]string{
		"BUTTER_BROKERS":        "from-env:9092",
		"BUTTER_SASL_PASSWORD":  "secret",
		"BUTTER_ORPHAN_GRACE":   "5s",
		"BUTTER_INSTANCE":       "env-instance",
		"BUTTER_SOMETHING_ELSE": "ignored",
	}
	c, err := parseFlags([]string{"--instance", "flag-instance", "--code", "/code"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.kafka.Brokers[0] != "from-env:9092" || c.kafka.SASLPassword != "secret" || c.orphanGrace != 5*time.Second {
		t.Errorf("brokers %v, password %q, grace %s: want the member's env", c.kafka.Brokers, c.kafka.SASLPassword, c.orphanGrace)
	}
	if c.instance != "flag-instance" || c.kafka.ClientID != "butter-fnbox-flag-instance" {
		t.Errorf("instance %q, client id %q: want the flag's, which beats env", c.instance, c.kafka.ClientID)
	}
	if v, ok := os.LookupEnv("BUTTER_SASL_PASSWORD"); ok {
		t.Errorf("the process environment got BUTTER_SASL_PASSWORD=%q", v)
	}

	// Without Env, the same args mean what they mean alone.
	c, err = parseFlags([]string{"--code", "/code"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.kafka.SASLPassword != "" || c.orphanGrace != time.Minute {
		t.Errorf("password %q, grace %s without env: want the defaults", c.kafka.SASLPassword, c.orphanGrace)
	}

	if _, err := parseFlags(nil, map[string]string{"BUTTER_ORPHAN_GRACE": "5"}, io.Discard); err == nil {
		t.Error("a malformed duration in a member's env parsed")
	}
}
