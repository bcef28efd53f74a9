package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// JWKS fetch policy: keys are cached for CacheTTL; a token naming an
// unknown kid triggers a refetch (the issuer rotated its keys), at most
// once per MinRefetch per URL so forged kids cannot make the gateway hammer
// the issuer. Discovery documents follow the same policy.
const (
	CacheTTL   = 10 * time.Minute
	MinRefetch = 10 * time.Second
)

// fetchTimeout bounds one fetch of a JWKS or discovery document.
const fetchTimeout = 10 * time.Second

// maxJWKSBody bounds a JWKS or discovery document.
const maxJWKSBody = 1 << 20

// KeySets fetches and caches JSON Web Key Sets by URL, and the jwks_uri of
// issuers by issuer. No lock is held while fetching: a fetch runs on its
// own, bounded by fetchTimeout, and every request that needs it waits for
// it (or for its own context), so a slow issuer holds up only the requests
// for that issuer, and only one fetch per URL is in flight.
type KeySets struct {
	client *http.Client
	// now is the clock of the cache; tests move it.
	now func() time.Time

	mu   sync.Mutex
	sets map[string]*entry[[]jose.JSONWebKey]
	// discovered caches jwks_uri by issuer, so discovery costs one fetch
	// per CacheTTL, not one per request.
	discovered map[string]*entry[string]
}

// entry is one cached document, guarded by KeySets.mu.
type entry[T any] struct {
	val     T
	has     bool      // val was fetched once
	fetched time.Time // when val was
	tried   time.Time // when the last fetch ended, good or bad
	err     error     // of the last fetch
	// inflight is closed when the running fetch ends; nil when none runs.
	inflight chan struct{}
}

// NewKeySets returns an empty cache using client (nil: a client with a 10s
// timeout).
func NewKeySets(client *http.Client) *KeySets {
	if client == nil {
		client = &http.Client{Timeout: fetchTimeout}
	}
	return &KeySets{client: client, now: time.Now,
		sets: map[string]*entry[[]jose.JSONWebKey]{}, discovered: map[string]*entry[string]{}}
}

// Key returns the signing key kid of the set at url. An empty kid matches
// the set's only key.
func (ks *KeySets) Key(ctx context.Context, url, kid string) (jose.JSONWebKey, error) {
	ks.mu.Lock()
	e, ok := ks.sets[url]
	if !ok {
		e = &entry[[]jose.JSONWebKey]{}
		ks.sets[url] = e
	}
	ks.mu.Unlock()
	keys, err := load(ctx, ks, e, func(ctx context.Context) ([]jose.JSONWebKey, error) { return ks.fetchKeys(ctx, url) },
		func(keys []jose.JSONWebKey) bool { _, ok := lookup(keys, kid); return !ok })
	if k, ok := lookup(keys, kid); ok {
		return k, nil
	}
	if len(keys) == 0 && err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("fetch JWKS %s: %w", url, err)
	}
	return jose.JSONWebKey{}, ErrUnknownKey
}

func lookup(keys []jose.JSONWebKey, kid string) (jose.JSONWebKey, bool) {
	if kid == "" && len(keys) == 1 {
		return keys[0], true
	}
	for _, k := range keys {
		if k.KeyID == kid {
			return k, true
		}
	}
	return jose.JSONWebKey{}, false
}

// Discover returns the jwks_uri of issuer's OpenID configuration.
func (ks *KeySets) Discover(ctx context.Context, issuer string) (string, error) {
	ks.mu.Lock()
	e, ok := ks.discovered[issuer]
	if !ok {
		e = &entry[string]{}
		ks.discovered[issuer] = e
	}
	ks.mu.Unlock()
	url, err := load(ctx, ks, e, func(ctx context.Context) (string, error) { return ks.discover(ctx, issuer) }, nil)
	if url == "" {
		return "", err
	}
	return url, nil
}

// load returns e's value, first fetching it when it was never fetched, is
// older than CacheTTL, or stale says it lacks what the caller needs; but
// never more than once per MinRefetch, so an unreachable issuer costs one
// try per MinRefetch, not one per request. The value returned may be an
// old one, with the error of the last fetch.
func load[T any](ctx context.Context, ks *KeySets, e *entry[T], fetch func(context.Context) (T, error), stale func(T) bool) (T, error) {
	for {
		ks.mu.Lock()
		now := ks.now()
		if e.inflight != nil {
			// Someone fetches it now: wait for that, not for a lock.
			ch := e.inflight
			ks.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				var zero T
				return zero, fmt.Errorf("wait for the issuer's keys: %w", ctx.Err())
			}
		}
		need := !e.has || now.Sub(e.fetched) > CacheTTL || (stale != nil && stale(e.val))
		if !need || (!e.tried.IsZero() && now.Sub(e.tried) < MinRefetch) {
			v, err := e.val, e.err
			ks.mu.Unlock()
			return v, err
		}
		ch := make(chan struct{})
		e.inflight = ch
		ks.mu.Unlock()

		// Detached from the caller: its impatience must not fail the
		// fetch every other waiter shares.
		go func() {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
			v, err := fetch(fctx)
			cancel()
			ks.mu.Lock()
			defer ks.mu.Unlock()
			e.tried, e.err = ks.now(), err
			if err == nil {
				e.val, e.has, e.fetched = v, true, e.tried
			}
			e.inflight = nil
			close(ch)
		}()
	}
}

func (ks *KeySets) discover(ctx context.Context, issuer string) (string, error) {
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
	return doc.JWKSURI, nil
}

func (ks *KeySets) getJSON(ctx context.Context, url string, v any) error {
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

// fetchKeys loads the public signing keys of the set at url. Each key is
// parsed on its own by go-jose: a key of a type it does not know, or an
// encryption key, is skipped rather than failing the whole set, as
// issuers publish such keys beside their signing ones.
func (ks *KeySets) fetchKeys(ctx context.Context, url string) ([]jose.JSONWebKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := ks.getJSON(ctx, url, &doc); err != nil {
		return nil, err
	}
	var keys []jose.JSONWebKey
	var errs []error
	for i, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			errs = append(errs, fmt.Errorf("key %d: %w", i, err))
			continue
		}
		if (k.Use != "" && k.Use != "sig") || !k.Valid() || !k.IsPublic() {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.Join(append(errs, errors.New("JWKS holds no public signing key"))...)
	}
	return keys, nil
}
