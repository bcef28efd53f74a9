package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Errors of token verification. They are what the caller is told (in the
// 401 answer and the auth.reject event), so they name the check that
// failed and never echo the token.
var (
	ErrMalformed    = errors.New("token is not a compact JWS (header.payload.signature) with a JSON object of claims")
	ErrAlgorithm    = errors.New("token algorithm is not an accepted asymmetric one (RS, PS, ES 256/384/512 or EdDSA)")
	ErrUnknownKey   = errors.New("token is signed with a key the issuer's JWKS does not hold")
	ErrSignature    = errors.New("token signature does not verify")
	ErrIssuer       = errors.New("token issuer (iss) is not the route's issuer")
	ErrAudience     = errors.New("token audience (aud) does not include the route's audience")
	ErrMissingExp   = errors.New("token has no expiry (exp): the gateway only accepts tokens that expire")
	ErrExpired      = errors.New("token has expired (exp)")
	ErrNotYetValid  = errors.New("token is not valid yet (nbf)")
	ErrIssuedFuture = errors.New("token is issued in the future (iat)")
)

// Algorithms are the signature algorithms a token may use: asymmetric
// ones only, so "none" and HMAC keyed with the issuer's public key are
// refused before any key is looked at.
var Algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// Leeway is the clock skew allowed on exp, nbf and iat.
const Leeway = 30 * time.Second

// maxTokenLen bounds what is parsed: real tokens are a few KiB.
const maxTokenLen = 16 << 10

// Token is a parsed compact JWS. Its claims are those of the payload as
// parsed, unverified until Verify succeeds (which parses them again from
// the verified payload).
type Token struct {
	// Alg and Kid are from the header.
	Alg, Kid string
	// Claims are the payload.
	Claims map[string]any

	std jwt.Claims
	jws *jwt.JSONWebToken
}

// ParseToken parses a compact JWS and its claims without verifying it, so
// garbage is refused before the issuer's keys are fetched.
func ParseToken(s string) (*Token, error) {
	if len(s) > maxTokenLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxTokenLen)
	}
	tok, err := jwt.ParseSigned(s, Algorithms)
	if err != nil {
		if ua, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, fmt.Errorf("%w: %q", ErrAlgorithm, ua.Got)
		}
		return nil, ErrMalformed
	}
	if len(tok.Headers) != 1 {
		return nil, ErrMalformed
	}
	h := tok.Headers[0]
	if _, ok := h.ExtraHeaders["crit"]; ok {
		return nil, fmt.Errorf("%w: critical header extensions are not supported", ErrMalformed)
	}
	t := &Token{Alg: h.Algorithm, Kid: h.KeyID, jws: tok}
	if err := tok.UnsafeClaimsWithoutVerification(&t.Claims, &t.std); err != nil || t.Claims == nil {
		return nil, ErrMalformed
	}
	return t, nil
}

// Verify checks the signature with key (a public key from the issuer's
// JWKS) and takes the claims from the verified payload.
func (t *Token) Verify(key jose.JSONWebKey) error {
	if key.Algorithm != "" && key.Algorithm != t.Alg {
		// The JWKS says which algorithm the key is for; a token claiming
		// another one (RS256 on a PS256 key, say) is not the issuer's.
		return fmt.Errorf("%w: key %q is for %s, the token says %s", ErrSignature, t.Kid, key.Algorithm, t.Alg)
	}
	var claims map[string]any
	var std jwt.Claims
	if err := t.jws.Claims(key.Key, &claims, &std); err != nil {
		return ErrSignature
	}
	t.Claims, t.std = claims, std
	return nil
}

// CheckClaims checks iss, aud (when audience is set), exp (required), nbf
// and iat at now.
func (t *Token) CheckClaims(issuer, audience string, now time.Time) error {
	want := jwt.Expected{Issuer: issuer, Time: now}
	if audience != "" {
		want.AnyAudience = jwt.Audience{audience}
	}
	if t.std.Issuer != issuer {
		// Expected skips an empty issuer; the route's issuer is never
		// empty, but a token without iss must not pass a route with one.
		return ErrIssuer
	}
	if t.std.Expiry == nil {
		return ErrMissingExp
	}
	switch err := t.std.ValidateWithLeeway(want, Leeway); {
	case err == nil:
		return nil
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return ErrIssuer
	case errors.Is(err, jwt.ErrInvalidAudience):
		return ErrAudience
	case errors.Is(err, jwt.ErrExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrNotValidYet):
		return ErrNotYetValid
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return ErrIssuedFuture
	default:
		return fmt.Errorf("check token claims: %w", err)
	}
}

// Audience returns the aud claim.
func (t *Token) Audience() []string { return t.std.Audience }

// Scopes returns the scopes granted: the space-separated scope claim, else
// the scp claim (a string or a list).
func (t *Token) Scopes() []string {
	if s, ok := t.Claims["scope"].(string); ok {
		return strings.Fields(s)
	}
	switch v := t.Claims["scp"].(type) {
	case string:
		return strings.Fields(v)
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// Subject returns the sub claim.
func (t *Token) Subject() string { return t.std.Subject }
