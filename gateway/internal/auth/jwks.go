package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"
)

// JWKS fetch policy: keys are cached for CacheTTL; a token naming an
// unknown kid triggers a refetch (the issuer rotated its keys), at most
// once per MinRefetch per URL so forged kids cannot make the gateway hammer
// the issuer.
const (
	CacheTTL   = 10 * time.Minute
	MinRefetch = 10 * time.Second
)

// maxJWKSBody bounds a JWKS or discovery document.
const maxJWKSBody = 1 << 20

// KeySets fetches and caches JSON Web Key Sets by URL.
type KeySets struct {
	client *http.Client

	mu   sync.Mutex
	sets map[string]*keySet
	// discovered caches jwks_uri by issuer, so discovery costs one fetch
	// per CacheTTL, not one per request.
	discovered map[string]discovery
}

type discovery struct {
	url string
	at  time.Time
}

type keySet struct {
	mu      sync.Mutex
	keys    map[string]crypto.PublicKey // kid → key
	fetched time.Time
	tried   time.Time
	err     error
}

// NewKeySets returns an empty cache using client (nil: a client with a 10s
// timeout).
func NewKeySets(client *http.Client) *KeySets {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return &KeySets{client: client, sets: map[string]*keySet{}, discovered: map[string]discovery{}}
}

// Key returns the key kid of the set at url. An empty kid matches the set's
// only key.
func (ks *KeySets) Key(ctx context.Context, url, kid string) (crypto.PublicKey, error) {
	ks.mu.Lock()
	s, ok := ks.sets[url]
	if !ok {
		s = &keySet{}
		ks.sets[url] = s
	}
	ks.mu.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.keys == nil || now.Sub(s.fetched) > CacheTTL {
		// Also while no set was ever fetched: an unreachable issuer costs
		// one try per MinRefetch, not one per request.
		if now.Sub(s.tried) > MinRefetch {
			ks.refetch(ctx, url, s, now)
		}
	}
	if k, ok := s.lookup(kid); ok {
		return k, nil
	}
	if now.Sub(s.tried) > MinRefetch {
		ks.refetch(ctx, url, s, now)
		if k, ok := s.lookup(kid); ok {
			return k, nil
		}
	}
	if s.keys == nil && s.err != nil {
		return nil, fmt.Errorf("fetch JWKS %s: %w", url, s.err)
	}
	return nil, ErrUnknownKey
}

func (s *keySet) lookup(kid string) (crypto.PublicKey, bool) {
	if kid == "" && len(s.keys) == 1 {
		for _, k := range s.keys {
			return k, true
		}
	}
	k, ok := s.keys[kid]
	return k, ok
}

// refetch loads the set; on failure the old keys stay.
func (ks *KeySets) refetch(ctx context.Context, url string, s *keySet, now time.Time) {
	s.tried = now
	keys, err := ks.fetch(ctx, url)
	if err != nil {
		s.err = err
		return
	}
	s.keys, s.fetched, s.err = keys, now, nil
}

// Discover returns the jwks_uri of issuer's OpenID configuration.
func (ks *KeySets) Discover(ctx context.Context, issuer string) (string, error) {
	ks.mu.Lock()
	d, ok := ks.discovered[issuer]
	ks.mu.Unlock()
	if ok && time.Since(d.at) < CacheTTL {
		return d.url, nil
	}
	var doc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	u := strings.TrimRight(issuer, "/") + "/.well-known/openid-configuration"
	if err := ks.getJSON(ctx, u, &doc); err != nil {
		return "", fmt.Errorf("discover JWKS of issuer %s: %w", issuer, err)
	}
	if doc.JWKSURI == "" {
		return "", fmt.Errorf("discover JWKS of issuer %s: %s has no jwks_uri", issuer, u)
	}
	ks.mu.Lock()
	ks.discovered[issuer] = discovery{url: doc.JWKSURI, at: time.Now()}
	ks.mu.Unlock()
	return doc.JWKSURI, nil
}

func (ks *KeySets) getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := ks.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s answered %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBody))
	if err != nil {
		return err
	}
	return json.Unmarshal(body, v)
}

// jwk is the part of a JSON Web Key the gateway uses.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func (ks *KeySets) fetch(ctx context.Context, url string) (map[string]crypto.PublicKey, error) {
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := ks.getJSON(ctx, url, &doc); err != nil {
		return nil, err
	}
	return parseKeys(doc.Keys)
}

// parseKeys converts RSA and P-256 EC keys; others (and encryption keys)
// are skipped.
func parseKeys(keys []jwk) (map[string]crypto.PublicKey, error) {
	out := map[string]crypto.PublicKey{}
	var errs []error
	for _, k := range keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		switch k.Kty {
		case "RSA":
			n, err1 := base64.RawURLEncoding.DecodeString(k.N)
			e, err2 := base64.RawURLEncoding.DecodeString(k.E)
			if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
				errs = append(errs, fmt.Errorf("key %q: bad RSA n or e", k.Kid))
				continue
			}
			out[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		case "EC":
			if k.Crv != "P-256" {
				continue
			}
			x, err1 := base64.RawURLEncoding.DecodeString(k.X)
			y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
			if err1 != nil || err2 != nil {
				errs = append(errs, fmt.Errorf("key %q: bad EC x or y", k.Kid))
				continue
			}
			pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
			out[k.Kid] = pub
		}
	}
	if len(out) == 0 {
		return nil, errors.Join(append(errs, errors.New("JWKS holds no RSA or P-256 signing key"))...)
	}
	return out, nil
}
