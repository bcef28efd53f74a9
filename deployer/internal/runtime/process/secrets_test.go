package process

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/deployer/internal/secrets"
)

func TestSecretEnvDecryptsForTheInstanceOnly(t *testing.T) {
	key, _ := secrets.NewKey(bytes.Repeat([]byte{1}, secrets.KeySize))
	other, _ := secrets.NewKey(bytes.Repeat([]byte{2}, secrets.KeySize))
	sealed := "name: orders\nplatform: exec\nsecretEnv: {DB_PASSWORD: \"" + key.Seal("orders", "DB_PASSWORD", "hunter2") +
		"\", API_TOKEN: \"" + key.Seal("orders", "API_TOKEN", "t0k") + "\"}\nfunctions:\n  - fn: ./a.sh\n    bindings: { streams: [orders] }\n"
	spec := runtime.InstanceSpec{Deployment: "orders", Version: "v1", Descriptor: sealed}

	rt := &Runtime{cfg: Config{Secrets: key}}
	env, err := rt.secretEnv(spec)
	if err != nil || !slices.Equal(env, []string{"API_TOKEN=t0k", "DB_PASSWORD=hunter2"}) {
		t.Fatalf("secretEnv = %q, %v", env, err)
	}
	if env, err := rt.secretEnv(runtime.InstanceSpec{Deployment: "orders", Version: "v1", Descriptor: desc}); err != nil || env != nil {
		t.Fatalf("no secrets: %q, %v", env, err)
	}
	rt.cfg.Secrets = other
	if _, err := rt.secretEnv(spec); !errors.Is(err, secrets.ErrWrongKey) || !strings.Contains(err.Error(), `deployment "orders"`) {
		t.Fatalf("another key: %v, want ErrWrongKey naming the deployment", err)
	}
	rt.cfg.Secrets = nil
	if _, err := rt.secretEnv(spec); err == nil || !strings.Contains(err.Error(), "no secret key") {
		t.Fatalf("no key: %v", err)
	}
}
