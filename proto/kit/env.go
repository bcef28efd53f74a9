package kit

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The Env* helpers turn BUTTER_* variables into flag defaults, so a service
// registers each setting once and gets "flag beats env beats default":
//
//	fs.DurationVar(&c.Grace, "grace", kit.EnvDuration("BUTTER_GRACE", 30*time.Second), "...")
//
// They return one value so they fit in a flag registration. A malformed value
// must still not pass silently (BUTTER_GRACE=30 without a unit would quietly
// mean the default), so it is remembered and reported by [EnvError], which a
// main calls after parsing flags.

// envErrs records malformed variables. The environment is process-wide, so
// the record of its mistakes is too.
var envErrs struct {
	sync.Mutex
	errs []error
}

func envFail(key, val string, err error) {
	envErrs.Lock()
	defer envErrs.Unlock()
	envErrs.errs = append(envErrs.errs, fmt.Errorf("parse env %s=%q: %w", key, val, err))
}

// EnvError returns every malformed variable an Env* helper has met so far,
// joined, or nil. Call it after flag parsing and refuse to start on error.
func EnvError() error {
	envErrs.Lock()
	defer envErrs.Unlock()
	return errors.Join(envErrs.errs...)
}

// EnvOr returns the value of the environment variable key, or def when it is
// unset or empty. Empty counts as unset because compose files and systemd
// units often define a variable with no value to mean "default".
func EnvOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// EnvDuration returns key parsed by time.ParseDuration ("30s", "5m"), or def
// when unset. A malformed value yields def and is reported by [EnvError].
func EnvDuration(key string, def time.Duration) time.Duration {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		envFail(key, v, err)
		return def
	}
	return d
}

// EnvInt returns key parsed as a base-10 integer, or def when unset. A
// malformed value yields def and is reported by [EnvError].
func EnvInt(key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		envFail(key, v, err)
		return def
	}
	return n
}

// EnvBool returns key parsed by strconv.ParseBool (1, t, true, 0, f,
// false...), or def when unset. A malformed value yields def and is reported
// by [EnvError].
func EnvBool(key string, def bool) bool {
	b, _ := envBool(key, def)
	return b
}

// envBool is EnvBool that also returns the parse error, for callers that
// keep it to report later themselves.
func envBool(key string, def bool) (bool, error) {
	v := os.Getenv(key)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		envFail(key, v, err)
		return def, fmt.Errorf("parse env %s=%q: %w", key, v, err)
	}
	return b, nil
}

// EnvList returns key split on commas with blanks trimmed and empty items
// dropped, or def when unset.
func EnvList(key string, def []string) []string {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	return splitList(v)
}

func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// ProcessName names this process among its replicas: hostname-pid, or
// fallback-pid when the hostname is unknown. Services use it as the
// default replica or instance id.
func ProcessName(fallback string) string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = fallback
	}
	return h + "-" + strconv.Itoa(os.Getpid())
}
