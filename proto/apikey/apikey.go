// Package apikey is the contract of gateway API keys (DESIGN §7): the
// records of the compacted _butter.apikeys topic, how secrets are made and
// hashed, and the platform event types of creating and revoking keys.
//
// The deployer writes keys (POST/DELETE /v1/apikeys); the gateway follows
// the topic and admits requests whose key hashes to a stored one. Only the
// hash is stored: the secret is shown once, when the key is created.
package apikey

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// SecretPrefix starts every secret, so leaked keys are easy to spot in
// logs and by secret scanners.
const SecretPrefix = "butter_"

// Platform events of key management (DESIGN §8), each followed by its
// .completed or .failed outcome.
const (
	// Kind is the resource kind of keys: resources read "apikey/<id>".
	Kind = "apikey"
	// TypeCreate records a key being created; data is Event.
	TypeCreate = "apikey.create"
	// TypeRevoke records a key being revoked; data is Event.
	TypeRevoke = "apikey.revoke"
)

// Event is the data of TypeCreate and TypeRevoke events. It never holds the
// secret or its hash.
type Event struct {
	ID     string   `json:"id"`
	Name   string   `json:"name,omitempty"`
	Scopes []string `json:"scopes,omitempty"`
}

// MaxNameLen bounds a key's name.
const MaxNameLen = 128

// Errors of Validate and Decode.
var (
	// ErrName means the key name is empty or too long.
	ErrName = fmt.Errorf("key name must be 1-%d characters", MaxNameLen)
	// ErrScope means a scope is empty or holds white space (scopes travel
	// space-separated in tokens, so a space would split one in two).
	ErrScope = errors.New("scopes are non-empty and hold no white space")
	// ErrIDMismatch means a record's key and the id in its value differ.
	ErrIDMismatch = errors.New("record key does not match the key id")
)

// Key is a stored API key: the JSON value of a _butter.apikeys record whose
// record key is ID. A tombstone (nil value) means the key was revoked.
type Key struct {
	// ID names the key in the API and the CLI; it is not secret.
	ID string `json:"id"`
	// Name says what the key is for.
	Name string `json:"name"`
	// Hash is the hex SHA-256 of the secret. Secrets are 256 random bits,
	// so a fast hash is enough: there is nothing to brute-force.
	Hash string `json:"hash"`
	// Scopes are granted to requests that present the key.
	Scopes []string `json:"scopes,omitempty"`
	// Created is when the key was made.
	Created time.Time `json:"created"`
	// Actor is who made it.
	Actor string `json:"actor,omitempty"`
}

// New makes a key with a fresh id and secret and returns both; the secret
// is not kept anywhere, so show it to the user now.
func New(name string, scopes []string, actor string) (Key, string, error) {
	k := Key{Name: strings.TrimSpace(name), Scopes: scopes, Created: time.Now().UTC(), Actor: actor}
	if err := k.Validate(); err != nil {
		return Key{}, "", err
	}
	id := make([]byte, 8)
	secret := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return Key{}, "", fmt.Errorf("generate key id: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return Key{}, "", fmt.Errorf("generate key secret: %w", err)
	}
	k.ID = hex.EncodeToString(id)
	s := SecretPrefix + base64.RawURLEncoding.EncodeToString(secret)
	k.Hash = Hash(s)
	return k, s, nil
}

// Validate checks the name and scopes.
func (k Key) Validate() error {
	var errs []error
	if n := strings.TrimSpace(k.Name); n == "" || len(n) > MaxNameLen {
		errs = append(errs, fmt.Errorf("check name %q: %w", k.Name, ErrName))
	}
	for _, s := range k.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			errs = append(errs, fmt.Errorf("check scope %q: %w", s, ErrScope))
		}
	}
	return errors.Join(errs...)
}

// Hash returns the hex SHA-256 of secret, as stored in Key.Hash.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Matches reports whether secret is this key's secret, in constant time.
func (k Key) Matches(secret string) bool {
	return subtle.ConstantTimeCompare([]byte(Hash(secret)), []byte(k.Hash)) == 1
}

// Grants reports whether the key holds every scope of want.
func (k Key) Grants(want []string) bool {
	for _, s := range want {
		if !slices.Contains(k.Scopes, s) {
			return false
		}
	}
	return true
}

// Record returns the record storing k on topic (the namespaced
// _butter.apikeys).
func Record(topic string, k Key) (*kgo.Record, error) {
	v, err := json.Marshal(k)
	if err != nil {
		return nil, fmt.Errorf("encode api key %q: %w", k.ID, err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(k.ID), Value: v}, nil
}

// Tombstone returns the record revoking key id.
func Tombstone(topic, id string) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: []byte(id)}
}

// Decode decodes a _butter.apikeys record. deleted is true for a
// tombstone, with k holding only the id.
func Decode(r *kgo.Record) (k Key, deleted bool, err error) {
	id := string(r.Key)
	if r.Value == nil {
		return Key{ID: id}, true, nil
	}
	if err := json.Unmarshal(r.Value, &k); err != nil {
		return Key{}, false, fmt.Errorf("decode api key record %q at offset %d: %w", id, r.Offset, err)
	}
	if k.ID != id {
		return Key{}, false, fmt.Errorf("decode api key record %q at offset %d: value names %q: %w", id, r.Offset, k.ID, ErrIDMismatch)
	}
	return k, false, nil
}

// ReadAll reads topic from its start to its current end and returns the
// live keys by id. base supplies the connection options (brokers, SASL,
// TLS); ReadAll makes and closes a consumer of its own. The topic is small
// (one record per key), so reading it whole per call is cheap and always
// current: a key created or revoked a moment ago is seen.
func ReadAll(ctx context.Context, base *kgo.Client, topic string) (map[string]Key, error) {
	ends, err := kadm.NewClient(base).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	want := map[int32]int64{}
	start := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			start[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	keys := map[string]Key{}
	if len(want) == 0 {
		return keys, nil
	}
	cl, err := kgo.NewClient(append(base.Opts(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}))...)
	if err != nil {
		return nil, fmt.Errorf("create consumer of %s: %w", topic, err)
	}
	defer cl.Close()
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w", topic, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, fmt.Errorf("read %s: %w", topic, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if k, deleted, err := Decode(r); err == nil {
				if deleted {
					delete(keys, k.ID)
				} else {
					keys[k.ID] = k
				}
			}
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return keys, nil
}
