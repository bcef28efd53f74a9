// Package secret opens the secretEnv values a bridge spec refers to
// (passwordFrom, tokenFrom, secretFrom). The deployer seals them with its
// secret key (docs/security.md); the bridge is given the same key file
// (--secret-key-file) and opens them with the same format: AES-256-GCM
// under HMAC-SHA256(key, "butter.secrets/aes-256-gcm/v1"), the deployment
// and variable names as authenticated data.
//
// It repeats the deployer's opener because services share only proto;
// the format is the deployer's (deployer/internal/secrets) and this
// package's test seals with an independent copy of it.
package secret

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/buttercompass/butter/proto/descriptor"
)

// Key opens sealed values.
type Key struct {
	aead cipher.AEAD
	id   string
}

// ErrNoKey means a sealed value was met and no key file was given.
var ErrNoKey = errors.New("the value is sealed and the bridge has no secret key: give it the deployer's key file (--secret-key-file, env BUTTER_SECRET_KEY_FILE)")

// New returns the key made of the 32 bytes raw.
func New(raw []byte) (*Key, error) {
	if len(raw) != 32 {
		return nil, fmt.Errorf("make secret key: %d bytes, want 32", len(raw))
	}
	derive := func(purpose string) []byte {
		m := hmac.New(sha256.New, raw)
		m.Write([]byte(purpose))
		return m.Sum(nil)
	}
	block, err := aes.NewCipher(derive("butter.secrets/aes-256-gcm/v1"))
	if err != nil {
		return nil, fmt.Errorf("make secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("make secret key: %w", err)
	}
	return &Key{aead: aead, id: hex.EncodeToString(derive("butter.secrets/key-id")[:4])}, nil
}

// Load reads the deployer's key file: 32 bytes as base64, hex or raw. A
// missing file is no key (nil, nil): only sealed values then fail.
func Load(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read secret key: %w", err)
	}
	if len(b) == 32 {
		return New(b)
	}
	t := string(bytes.TrimSpace(b))
	for _, dec := range []func(string) ([]byte, error){base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString, hex.DecodeString} {
		if raw, err := dec(t); err == nil && len(raw) == 32 {
			return New(raw)
		}
	}
	return nil, fmt.Errorf("read secret key %s: want 32 bytes as base64, hex or raw", path)
}

// Value returns the secretEnv entry name of deployment desc, opened. A
// value not sealed (a descriptor the deployer did not store) is returned
// as is.
func (k *Key) Value(desc *descriptor.Descriptor, name string) (string, error) {
	v, ok := desc.SecretEnv[name]
	if !ok {
		return "", fmt.Errorf("secret %s of deployment %q: not in secretEnv", name, desc.Name)
	}
	if !strings.HasPrefix(v, descriptor.SealedPrefix) {
		return v, nil
	}
	if k == nil {
		return "", fmt.Errorf("open secret %s of deployment %q: %w", name, desc.Name, ErrNoKey)
	}
	rest, _ := strings.CutPrefix(v, descriptor.SealedPrefix+"v1:")
	id, b64, ok := strings.Cut(rest, ":")
	if !ok {
		return "", fmt.Errorf("open secret %s of deployment %q: not a sealed value", name, desc.Name)
	}
	if id != k.id {
		return "", fmt.Errorf("open secret %s of deployment %q: sealed with key %s, the bridge has %s: give it the deployer's key file", name, desc.Name, id, k.id)
	}
	data, err := base64.RawURLEncoding.DecodeString(b64)
	n := k.aead.NonceSize()
	if err != nil || len(data) < n+k.aead.Overhead() {
		return "", fmt.Errorf("open secret %s of deployment %q: damaged", name, desc.Name)
	}
	plain, err := k.aead.Open(nil, data[:n], data[n:], []byte("butter-secret\x00v1\x00"+desc.Name+"\x00"+name))
	if err != nil {
		return "", fmt.Errorf("open secret %s of deployment %q: does not authenticate", name, desc.Name)
	}
	return string(plain), nil
}
