package kit

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestEnvHelpers(t *testing.T) {
	t.Setenv("KIT_TEST_S", "x")
	t.Setenv("KIT_TEST_EMPTY", "")
	t.Setenv("KIT_TEST_D", "90s")
	t.Setenv("KIT_TEST_N", "42")
	t.Setenv("KIT_TEST_B", "true")
	t.Setenv("KIT_TEST_L", "a, b,,c")
	if EnvOr("KIT_TEST_S", "d") != "x" || EnvOr("KIT_TEST_EMPTY", "d") != "d" || EnvOr("KIT_TEST_UNSET", "d") != "d" {
		t.Error("EnvOr")
	}
	if EnvDuration("KIT_TEST_D", time.Second) != 90*time.Second || EnvDuration("KIT_TEST_UNSET", time.Second) != time.Second {
		t.Error("EnvDuration")
	}
	if EnvInt("KIT_TEST_N", 1) != 42 || !EnvBool("KIT_TEST_B", false) {
		t.Error("EnvInt/EnvBool")
	}
	if got := EnvList("KIT_TEST_L", nil); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("EnvList = %q", got)
	}
}

func TestEnvMalformedIsReported(t *testing.T) {
	t.Setenv("KIT_TEST_BAD_D", "30") // no unit
	if got := EnvDuration("KIT_TEST_BAD_D", time.Minute); got != time.Minute {
		t.Fatalf("EnvDuration = %s, want the default", got)
	}
	err := EnvError()
	if err == nil || !strings.Contains(err.Error(), `KIT_TEST_BAD_D="30"`) {
		t.Fatalf("EnvError = %v, want one naming KIT_TEST_BAD_D", err)
	}
}
