package secrets

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/buttercompass/butter/proto/descriptor"
)

func newKey(t *testing.T) *Key {
	t.Helper()
	b := make([]byte, KeySize)
	rand.Read(b)
	k, err := NewKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := newKey(t)
	for _, v := range []string{"hunter2", "", strings.Repeat("é\x00\n", 1000)} {
		s := k.Seal("orders", "DB_PASSWORD", v)
		if !IsSealed(s) || !strings.HasPrefix(s, descriptor.SealedPrefix+"v1:"+k.ID()+":") {
			t.Fatalf("sealed form %q", s)
		}
		if v != "" && strings.Contains(s, v) {
			t.Fatalf("plain text in %q", s)
		}
		got, err := k.Open("orders", "DB_PASSWORD", s)
		if err != nil || got != v {
			t.Fatalf("Open = %q, %v; want %q", got, err, v)
		}
	}
	if a, b := k.Seal("o", "A", "x"), k.Seal("o", "A", "x"); a == b {
		t.Fatalf("two seals of one value are equal: the nonce is not fresh")
	}
}

func TestOpenRefuses(t *testing.T) {
	k, other := newKey(t), newKey(t)
	s := k.Seal("orders", "DB_PASSWORD", "hunter2")
	for _, c := range []struct {
		name             string
		key              *Key
		deployment, vari string
		sealed           string
		want             error
	}{
		{"other key", other, "orders", "DB_PASSWORD", s, ErrWrongKey},
		{"other deployment", k, "billing", "DB_PASSWORD", s, ErrTampered},
		{"other variable", k, "orders", "API_TOKEN", s, ErrTampered},
		{"changed", k, "orders", "DB_PASSWORD", s[:len(s)-2] + "AA", ErrTampered},
		{"cut", k, "orders", "DB_PASSWORD", s[:len(s)-30], ErrTampered},
		{"not base64", k, "orders", "DB_PASSWORD", descriptor.SealedPrefix + "v1:" + k.ID() + ":!!", ErrTampered},
		{"plain", k, "orders", "DB_PASSWORD", "hunter2", ErrNotSealed},
		{"other version", k, "orders", "DB_PASSWORD", strings.Replace(s, ":v1:", ":v9:", 1), ErrNotSealed},
	} {
		_, err := c.key.Open(c.deployment, c.vari, c.sealed)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if err != nil && !strings.Contains(err.Error(), `deployment "`+c.deployment+`"`) {
			t.Errorf("%s: error does not name the deployment: %v", c.name, err)
		}
	}
}

func TestDerive(t *testing.T) {
	raw := bytes.Repeat([]byte{7}, KeySize)
	k1, _ := NewKey(raw)
	k2, _ := NewKey(raw)
	a, b := k1.Derive("kafka-password/orders"), k2.Derive("kafka-password/orders")
	if len(a) != 32 || !bytes.Equal(a, b) {
		t.Fatalf("Derive is not 32 stable bytes: %x %x", a, b)
	}
	if bytes.Equal(a, k1.Derive("kafka-password/billing")) || bytes.Equal(a, raw) {
		t.Fatalf("Derive does not depend on its purpose")
	}
	// It is plain HMAC-SHA256 of the key over the purpose, so another
	// implementation (a script rotating passwords) can derive the same.
	m := hmac.New(sha256.New, raw)
	m.Write([]byte("kafka-password/orders"))
	if !bytes.Equal(a, m.Sum(nil)) {
		t.Fatalf("Derive is not HMAC-SHA256(key, purpose)")
	}
	if _, err := NewKey(raw[:16]); err == nil {
		t.Fatal("a 16-byte key was accepted")
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", KeyFile)
	k, created, err := LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreateKey = %v, created %v", err, created)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, st.Mode())
	}
	again, created, err := LoadOrCreateKey(path)
	if err != nil || created || again.ID() != k.ID() {
		t.Fatalf("second LoadOrCreateKey = %v, created %v, id %s vs %s", err, created, again.ID(), k.ID())
	}
	if got, err := again.Open("a", "B", k.Seal("a", "B", "c")); err != nil || got != "c" {
		t.Fatalf("reloaded key does not open: %q %v", got, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
}

func TestLoadOrCreateKeyRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), KeyFile)
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			k, _, err := LoadOrCreateKey(path)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = k.ID()
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("deployers starting at once got different keys: %v", ids)
		}
	}
}

func TestLoadKeyFormats(t *testing.T) {
	dir := t.TempDir()
	raw := bytes.Repeat([]byte{0xab}, KeySize)
	want, _ := NewKey(raw)
	for name, content := range map[string][]byte{
		"raw":    raw,
		"hex":    []byte(hex.EncodeToString(raw) + "\n"),
		"base64": []byte("  q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n"),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := LoadKey(p)
		if err != nil || k.ID() != want.ID() {
			t.Errorf("%s: %v", name, err)
		}
	}
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("c2hvcnQ=\n"), 0o600)
	if _, err := LoadKey(short); err == nil || !strings.Contains(err.Error(), short) {
		t.Errorf("short key: %v, want an error naming the file", err)
	}
	open := filepath.Join(dir, "open")
	os.WriteFile(open, raw, 0o644)
	if _, err := LoadKey(open); !errors.Is(err, ErrKeyFileMode) {
		t.Errorf("world-readable key: %v, want ErrKeyFileMode", err)
	}
}

// TestLoadKeyRootOwnedGroupReadable: a Kubernetes Secret volume in a pod
// with fsGroup holds files owned by root, group fsGroup, mode defaultMode
// plus group read (0440 for defaultMode 0400). The deployer must take such
// a key; a group-readable key owned by anyone else, a group-writable or a
// world-readable one stays refused.
func TestLoadKeyRootOwnedGroupReadable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to make files owned by root and by another user (the tests run as root here and in CI)")
	}
	dir := t.TempDir()
	raw := bytes.Repeat([]byte{0xcd}, KeySize)
	for _, tc := range []struct {
		name string
		uid  int
		mode os.FileMode
		ok   bool
	}{
		{"root 0440 (Secret volume, fsGroup)", 0, 0o440, true},
		{"root 0640", 0, 0o640, true},
		{"root 0400", 0, 0o400, true},
		{"root 0460 (group may write)", 0, 0o460, false},
		{"root 0444 (others may read)", 0, 0o444, false},
		{"user 0440", 65532, 0o440, false},
		{"user 0400", 65532, 0o400, true},
	} {
		p := filepath.Join(dir, strings.NewReplacer(" ", "_", "(", "", ")", "", ",", "").Replace(tc.name))
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(os.Chown(p, tc.uid, 65532), os.Chmod(p, tc.mode)); err != nil {
			t.Fatal(err)
		}
		_, err := LoadKey(p)
		if tc.ok && err != nil {
			t.Errorf("%s: %v, want the key", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, ErrKeyFileMode) {
			t.Errorf("%s: %v, want ErrKeyFileMode", tc.name, err)
		}
	}
}
