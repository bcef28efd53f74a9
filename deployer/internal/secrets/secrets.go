// Package secrets keeps the deployer's secret key and encrypts with it the
// secretEnv values of descriptors, which are stored in _butter.deployments
// and must be readable there by no one but the deployer.
//
// The key is 32 random bytes in a file (<data>/secret.key, created mode
// 0600 on first start, or --secret-key-file). It is never used directly:
// each use gets its own subkey, HMAC-SHA256 of the key over a purpose
// (Derive), so the encryption key and, say, derived Kafka passwords cannot
// be turned into each other.
//
// A sealed value is descriptor.SealedPrefix + "v1:" + the key's ID + ":" +
// base64url(nonce | AES-256-GCM ciphertext and tag). The nonce is random
// (12 bytes); the deployment and variable names are authenticated data, so
// a value sealed for one deployment's DB_PASSWORD does not open as
// another's (a sealed value sent back in a descriptor cannot be moved to a
// deployment that would print it).
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/buttercompass/butter/proto/descriptor"
)

// KeySize is the size of the secret key in bytes.
const KeySize = 32

// version names the sealed format; a new format gets a new one.
const version = "v1"

// Purposes of the subkeys the package derives itself; callers pick their
// own, such as "kafka-password/<deployment>".
const (
	purposeSeal  = "butter.secrets/aes-256-gcm/v1"
	purposeKeyID = "butter.secrets/key-id"
)

// Errors of Open, wrapped with the deployment and variable at fault.
var (
	// ErrWrongKey means the value was sealed under another key: the key
	// file was replaced or another deployer's data dir is used.
	ErrWrongKey = errors.New("sealed with another secret key: use the key file it was sealed with (--secret-key-file), or deploy the descriptor again with the secret in plain text")
	// ErrNotSealed means the value is not in the sealed format.
	ErrNotSealed = errors.New("not a sealed value (" + descriptor.SealedPrefix + "v1:<key id>:<data>)")
	// ErrTampered means the value does not authenticate: changed, cut, or
	// sealed for another deployment or variable.
	ErrTampered = errors.New("sealed value does not authenticate: it was changed, or sealed for another deployment or variable")
)

// Key is the deployer's secret key. The zero Key is not usable: get one
// from NewKey, LoadKey or LoadOrCreateKey. A Key is safe for concurrent
// use.
type Key struct {
	aead cipher.AEAD
	mac  [KeySize]byte // the key itself, only ever used as an HMAC key
	id   string
}

// NewKey returns the key made of b, which must be KeySize bytes.
func NewKey(b []byte) (*Key, error) {
	if len(b) != KeySize {
		return nil, fmt.Errorf("make secret key: %d bytes, want %d", len(b), KeySize)
	}
	k := &Key{}
	copy(k.mac[:], b)
	block, err := aes.NewCipher(k.Derive(purposeSeal))
	if err != nil {
		return nil, fmt.Errorf("make secret key: %w", err)
	}
	if k.aead, err = cipher.NewGCM(block); err != nil {
		return nil, fmt.Errorf("make secret key: %w", err)
	}
	k.id = hex.EncodeToString(k.Derive(purposeKeyID)[:4])
	return k, nil
}

// ID names the key without revealing it: 8 hex digits, stored in every
// value it seals so a wrong key is told apart from a damaged value.
func (k *Key) ID() string { return k.id }

// Derive returns a 32-byte subkey for purpose: HMAC-SHA256 of the key over
// purpose. The same key and purpose always give the same bytes, so a
// restarted deployer derives the same passwords; different purposes give
// unrelated bytes.
func (k *Key) Derive(purpose string) []byte {
	m := hmac.New(sha256.New, k.mac[:])
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// aad binds a sealed value to its deployment and variable.
func aad(deployment, name string) []byte {
	return []byte("butter-secret\x00" + version + "\x00" + deployment + "\x00" + name)
}

// Seal encrypts value, the secret name of deployment, with a fresh nonce.
func (k *Key) Seal(deployment, name, value string) string {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(value)+k.aead.Overhead())
	rand.Read(nonce) // never fails (crypto/rand panics instead)
	data := k.aead.Seal(nonce, nonce, []byte(value), aad(deployment, name))
	return descriptor.SealedPrefix + version + ":" + k.id + ":" + base64.RawURLEncoding.EncodeToString(data)
}

// Open decrypts sealed, the secret name of deployment.
func (k *Key) Open(deployment, name, sealed string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, descriptor.SealedPrefix+version+":")
	id, b64, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return "", fmt.Errorf("open secret %s of deployment %q: %w", name, deployment, ErrNotSealed)
	}
	if id != k.id {
		return "", fmt.Errorf("open secret %s of deployment %q: key %s, this deployer's is %s: %w", name, deployment, id, k.id, ErrWrongKey)
	}
	data, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil || len(data) < k.aead.NonceSize()+k.aead.Overhead() {
		return "", fmt.Errorf("open secret %s of deployment %q: %w", name, deployment, ErrTampered)
	}
	n := k.aead.NonceSize()
	plain, err := k.aead.Open(nil, data[:n], data[n:], aad(deployment, name))
	if err != nil {
		return "", fmt.Errorf("open secret %s of deployment %q: %w", name, deployment, ErrTampered)
	}
	return string(plain), nil
}

// IsSealed reports whether v is in a sealed form (it may still not open).
func IsSealed(v string) bool { return strings.HasPrefix(v, descriptor.SealedPrefix) }
