package apikey

import (
	"errors"
	"strings"
	"testing"
)

func TestNewAndDecode(t *testing.T) {
	k, secret, err := New(" ci ", []string{"a", "b"}, "token")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, SecretPrefix) || k.Name != "ci" || k.ID == "" || strings.Contains(k.Hash, secret) {
		t.Fatalf("got %+v %q", k, secret)
	}
	if !k.Matches(secret) || k.Matches(secret+"x") || !k.Grants([]string{"a"}) || k.Grants([]string{"c"}) {
		t.Fatal("matches or grants")
	}
	rec, err := Record("_butter.apikeys", k)
	if err != nil {
		t.Fatal(err)
	}
	got, deleted, err := Decode(rec)
	if err != nil || deleted || got.Hash != k.Hash {
		t.Fatalf("decode: %+v %v %v", got, deleted, err)
	}
	if _, deleted, _ := Decode(Tombstone("t", k.ID)); !deleted {
		t.Fatal("tombstone not deleted")
	}
	rec.Key = []byte("other")
	if _, _, err := Decode(rec); !errors.Is(err, ErrIDMismatch) {
		t.Fatalf("mismatch: %v", err)
	}
	if _, _, err := New("", []string{"a b"}, ""); !errors.Is(err, ErrName) || !errors.Is(err, ErrScope) {
		t.Fatalf("validate: %v", err)
	}
}
