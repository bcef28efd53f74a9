package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/buttercompass/butter/proto/descriptor"
)

// seal is the deployer's Seal, written out from docs/security.md.
func seal(raw []byte, deployment, name, value string) string {
	mac := func(p string) []byte { m := hmac.New(sha256.New, raw); m.Write([]byte(p)); return m.Sum(nil) }
	block, _ := aes.NewCipher(mac("butter.secrets/aes-256-gcm/v1"))
	aead, _ := cipher.NewGCM(block)
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	data := aead.Seal(nonce, nonce, []byte(value), []byte("butter-secret\x00v1\x00"+deployment+"\x00"+name))
	return descriptor.SealedPrefix + "v1:" + hex.EncodeToString(mac("butter.secrets/key-id")[:4]) + ":" + base64.RawURLEncoding.EncodeToString(data)
}

func TestValue(t *testing.T) {
	raw := make([]byte, 32)
	rand.Read(raw)
	path := filepath.Join(t.TempDir(), "secret.key")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(raw)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := Load(path)
	if err != nil || k == nil {
		t.Fatalf("Load = %v, %v", k, err)
	}
	desc := &descriptor.Descriptor{Name: "vc", SecretEnv: map[string]string{
		"VC_PASSWORD": seal(raw, "vc", "VC_PASSWORD", "pass"),
		"PLAIN":       "text",
		"MOVED":       seal(raw, "other", "MOVED", "x"),
	}}
	if v, err := k.Value(desc, "VC_PASSWORD"); err != nil || v != "pass" {
		t.Errorf("VC_PASSWORD = %q, %v", v, err)
	}
	if v, err := k.Value(desc, "PLAIN"); err != nil || v != "text" {
		t.Errorf("PLAIN = %q, %v", v, err)
	}
	if _, err := k.Value(desc, "MOVED"); err == nil {
		t.Error("a value sealed for another deployment opened")
	}
	if _, err := (*Key)(nil).Value(desc, "VC_PASSWORD"); err == nil {
		t.Error("opened without a key")
	}
	if k, err := Load(filepath.Join(t.TempDir(), "none")); k != nil || err != nil {
		t.Errorf("missing file: %v, %v", k, err)
	}
}
