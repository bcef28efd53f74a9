// Package auth decides who may call a route (DESIGN §7): API keys from
// the compacted _butter.apikeys topic, and OIDC/JWT bearer tokens checked
// against the issuer's JWKS, each with the route's required scopes.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/gateway/internal/httpevent"
	"github.com/buttercompass/butter/proto/apikey"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
)

// HeaderAPIKey carries an API key; "Authorization: Bearer <key>" works too.
const HeaderAPIKey = "X-API-Key"

// Keys is the live table of API keys, by hash.
type Keys struct {
	log *slog.Logger

	mu     sync.RWMutex
	byHash map[string]apikey.Key
	hashOf map[string]string // id → hash
}

// NewKeys returns an empty table.
func NewKeys(logger *slog.Logger) *Keys {
	return &Keys{log: logger, byHash: map[string]apikey.Key{}, hashOf: map[string]string{}}
}

// Apply applies one _butter.apikeys record.
func (k *Keys) Apply(r *kgo.Record) {
	key, deleted, err := apikey.Decode(r)
	if err != nil {
		k.log.Error("skip bad api key record", kit.KeyOffset, r.Offset, kit.KeyError, err)
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if h, ok := k.hashOf[key.ID]; ok {
		delete(k.byHash, h)
		delete(k.hashOf, key.ID)
	}
	if !deleted {
		k.byHash[key.Hash] = key
		k.hashOf[key.ID] = key.Hash
	}
}

// Lookup returns the key whose secret is secret. The map lookup by hash
// is safe against timing attacks: the attacker does not control the hash.
func (k *Keys) Lookup(secret string) (apikey.Key, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	key, ok := k.byHash[apikey.Hash(secret)]
	return key, ok
}

// Authenticator checks requests against a route's auth.
type Authenticator struct {
	Keys *Keys
	JWKS *KeySets
	// Now is the clock for token times; nil means time.Now.
	Now func() time.Time
}

// Decision is the outcome of Check.
type Decision struct {
	// Status is 0 when the request may pass, else 401 or 403.
	Status int
	// Reason says why not, for the caller and the auth.reject event.
	Reason string
	// Challenge is the WWW-Authenticate header of a refusal.
	Challenge string
	// Identity is the caller when the request passes an authenticated
	// route.
	Identity *httpevent.Identity
}

func unauthorized(reason string, invalid bool) Decision {
	c := `Bearer realm="butter"`
	if invalid {
		c += `, error="invalid_token", error_description="` + strings.ReplaceAll(reason, `"`, `'`) + `"`
	}
	return Decision{Status: http.StatusUnauthorized, Reason: reason, Challenge: c}
}

func forbidden(scopes []string) Decision {
	return Decision{Status: http.StatusForbidden,
		Reason:    "credential lacks a required scope: needs " + strings.Join(scopes, " "),
		Challenge: `Bearer realm="butter", error="insufficient_scope", scope="` + strings.Join(scopes, " ") + `"`}
}

// Check decides on r for a route with auth ra (nil: public).
func (a *Authenticator) Check(ctx context.Context, r *http.Request, ra *descriptor.RouteAuth) Decision {
	if ra == nil || (!ra.APIKey && ra.JWT == nil) {
		return Decision{}
	}
	key := strings.TrimSpace(r.Header.Get(HeaderAPIKey))
	bearer, hasBearer := "", false
	if h := strings.TrimSpace(r.Header.Get("Authorization")); h != "" {
		// Auth schemes are case-insensitive (RFC 9110 §11.1): bearer,
		// Bearer and BEARER are one scheme, for tokens and API keys alike.
		scheme, rest := h, ""
		if i := strings.IndexAny(h, " \t"); i >= 0 {
			scheme, rest = h[:i], h[i+1:]
		}
		if !strings.EqualFold(scheme, "Bearer") {
			return unauthorized("Authorization scheme "+scheme+" is not supported: send Bearer <token>", true)
		}
		bearer, hasBearer = strings.TrimSpace(rest), true
	}
	if key == "" && hasBearer && ra.APIKey && (ra.JWT == nil || strings.HasPrefix(bearer, apikey.SecretPrefix)) {
		key, hasBearer = bearer, false
	}
	switch {
	case key != "":
		if !ra.APIKey {
			return unauthorized("this route does not accept API keys", true)
		}
		return a.checkKey(key, ra.Scopes)
	case hasBearer && bearer != "":
		if ra.JWT == nil {
			return unauthorized("this route does not accept bearer tokens", true)
		}
		return a.checkJWT(ctx, bearer, ra.JWT, ra.Scopes)
	default:
		what := "an API key (X-API-Key or Authorization: Bearer)"
		if ra.JWT != nil {
			what = "a bearer token"
			if ra.APIKey {
				what += " or an API key"
			}
		}
		return unauthorized("missing credentials: send "+what, false)
	}
}

func (a *Authenticator) checkKey(secret string, scopes []string) Decision {
	k, ok := a.Keys.Lookup(secret)
	if !ok {
		return unauthorized("unknown or revoked API key", true)
	}
	if !k.Grants(scopes) {
		return forbidden(scopes)
	}
	return Decision{Identity: &httpevent.Identity{Type: "apikey", Subject: k.ID, Name: k.Name, Scopes: k.Scopes}}
}

func (a *Authenticator) checkJWT(ctx context.Context, raw string, j *descriptor.JWTAuth, scopes []string) Decision {
	t, err := ParseToken(raw)
	if err != nil {
		return unauthorized(err.Error(), true)
	}
	url := j.JWKS
	if url == "" {
		if url, err = a.JWKS.Discover(ctx, j.Issuer); err != nil {
			return unauthorized("cannot check tokens now: "+err.Error(), true)
		}
	}
	key, err := a.JWKS.Key(ctx, url, t.Kid)
	if err != nil {
		if !errors.Is(err, ErrUnknownKey) {
			err = fmt.Errorf("cannot check tokens now: %w", err)
		}
		return unauthorized(err.Error(), true)
	}
	if err := t.Verify(key); err != nil {
		return unauthorized(err.Error(), true)
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	if err := t.CheckClaims(j.Issuer, j.Audience, now()); err != nil {
		return unauthorized(err.Error(), true)
	}
	granted := t.Scopes()
	for _, s := range scopes {
		if !contains(granted, s) {
			return forbidden(scopes)
		}
	}
	return Decision{Identity: &httpevent.Identity{Type: "jwt", Subject: t.Subject(), Scopes: granted, Claims: t.Claims}}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
