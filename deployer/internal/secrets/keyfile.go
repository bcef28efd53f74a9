package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// KeyFile is the key's file name in the data directory.
const KeyFile = "secret.key"

// ErrKeyFileMode means the key file can be read by others than its owner
// (or, for a file root owns, by others than its owner and group).
var ErrKeyFileMode = errors.New("secret key file is readable by group or others: chmod 600 it (a file root owns may be 0640 or 0440)")

// LoadKey reads the key file at path: 32 bytes, as base64 (what
// LoadOrCreateKey writes, or `head -c 32 /dev/urandom | base64`), as 64 hex
// digits, or raw. Surrounding white space is ignored. The file must not be
// readable by group or others, as ssh requires of its keys; a file owned
// by root may be readable by its group (0640 or 0440), as PostgreSQL allows
// of its TLS key. That is what a Kubernetes Secret volume gives a pod with
// fsGroup: files owned by root, group fsGroup, and group read added to
// defaultMode; without it a non-root service could not read the key there.
func LoadKey(path string) (*Key, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read secret key: %w", err)
	}
	deny := fs.FileMode(0o077)
	if ownedByRoot(st) {
		deny = 0o037 // group may read, never write
	}
	if st.Mode().Perm()&deny != 0 {
		return nil, fmt.Errorf("read secret key %s (mode %04o): %w", path, st.Mode().Perm(), ErrKeyFileMode)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read secret key: %w", err)
	}
	raw, err := decodeKey(b)
	if err != nil {
		return nil, fmt.Errorf("read secret key %s: %w", path, err)
	}
	return NewKey(raw)
}

// decodeKey reads the key bytes out of a key file's content.
func decodeKey(b []byte) ([]byte, error) {
	if len(b) == KeySize {
		return b, nil
	}
	t := bytes.TrimSpace(b)
	for _, dec := range []func(string) ([]byte, error){
		base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString, hex.DecodeString,
	} {
		if raw, err := dec(string(t)); err == nil && len(raw) == KeySize {
			return raw, nil
		}
	}
	return nil, fmt.Errorf("want %d random bytes as base64, hex or raw, like `head -c 32 /dev/urandom | base64`; got %d bytes that are none of these", KeySize, len(b))
}

// LoadOrCreateKey reads the key file at path, creating it with a new
// random key (base64, mode 0600) if it does not exist. created reports a
// new key. The new file is written whole under another name and linked
// into place, so two deployers starting at once on one data dir end up
// with the same key, and a crash never leaves a half-written one.
func LoadOrCreateKey(path string) (k *Key, created bool, err error) {
	k, err = LoadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("create secret key: %w", err)
	}
	raw := make([]byte, KeySize)
	rand.Read(raw)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-key-*")
	if err != nil {
		return nil, false, fmt.Errorf("create secret key: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes it 0600 already; said again because it matters.
	err = errors.Join(tmp.Chmod(0o600),
		writeAll(tmp, []byte(base64.StdEncoding.EncodeToString(raw)+"\n")), tmp.Sync(), tmp.Close())
	if err != nil {
		return nil, false, fmt.Errorf("create secret key: %w", err)
	}
	switch err := os.Link(tmp.Name(), path); {
	case errors.Is(err, fs.ErrExist):
		k, err := LoadKey(path) // another process made it first
		return k, false, err
	case err != nil:
		return nil, false, fmt.Errorf("create secret key: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // the link survives a power cut
		d.Close()
	}
	k, err = NewKey(raw)
	return k, err == nil, err
}

func writeAll(f *os.File, b []byte) error {
	_, err := f.Write(b)
	return err
}
