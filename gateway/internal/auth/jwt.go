package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
)

// Errors of token verification. They are what the caller is told (in the
// 401 answer and the auth.reject event), so they name the check that
// failed and never echo the token.
var (
	ErrMalformed   = errors.New("token is not a compact JWS (header.payload.signature)")
	ErrAlgorithm   = errors.New("token algorithm is not RS256 or ES256")
	ErrUnknownKey  = errors.New("token is signed with a key the issuer's JWKS does not hold")
	ErrSignature   = errors.New("token signature does not verify")
	ErrIssuer      = errors.New("token issuer (iss) is not the route's issuer")
	ErrAudience    = errors.New("token audience (aud) does not include the route's audience")
	ErrExpired     = errors.New("token has expired (exp)")
	ErrNotYetValid = errors.New("token is not valid yet (nbf)")
)

// Leeway is the clock skew allowed on exp and nbf.
const Leeway = 30 * time.Second

// maxTokenLen bounds what is parsed: real tokens are a few KiB.
const maxTokenLen = 16 << 10

// Token is a parsed, not yet verified, compact JWS.
type Token struct {
	// Alg and Kid are from the header.
	Alg, Kid string
	// Claims are the payload.
	Claims map[string]any
	// signed is "header.payload", sig the decoded signature.
	signed string
	sig    []byte
}

// ParseToken splits and decodes a compact JWS without verifying it.
func ParseToken(s string) (*Token, error) {
	if len(s) > maxTokenLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxTokenLen)
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return nil, ErrMalformed
	}
	var hdr struct {
		Alg  string `json:"alg"`
		Kid  string `json:"kid"`
		Crit []any  `json:"crit"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if len(hdr.Crit) > 0 {
		return nil, fmt.Errorf("%w: critical header extensions are not supported", ErrMalformed)
	}
	t := &Token{Alg: hdr.Alg, Kid: hdr.Kid, signed: parts[0] + "." + parts[1]}
	if err := decodeSegment(parts[1], &t.Claims); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if t.Claims == nil {
		return nil, fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	}
	t.sig = sig
	return t, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// Verify checks the signature with key (an *rsa.PublicKey for RS256, an
// *ecdsa.PublicKey on P-256 for ES256).
func (t *Token) Verify(key crypto.PublicKey) error {
	sum := sha256.Sum256([]byte(t.signed))
	switch t.Alg {
	case "RS256":
		k, ok := key.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: key %q is not an RSA key", ErrSignature, t.Kid)
		}
		if err := rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], t.sig); err != nil {
			return ErrSignature
		}
		return nil
	case "ES256":
		k, ok := key.(*ecdsa.PublicKey)
		if !ok || k.Curve.Params().Name != "P-256" {
			return fmt.Errorf("%w: key %q is not a P-256 key", ErrSignature, t.Kid)
		}
		if len(t.sig) != 64 {
			return ErrSignature
		}
		r, s := new(big.Int).SetBytes(t.sig[:32]), new(big.Int).SetBytes(t.sig[32:])
		if !ecdsa.Verify(k, sum[:], r, s) {
			return ErrSignature
		}
		return nil
	default:
		return fmt.Errorf("%w: %q", ErrAlgorithm, t.Alg)
	}
}

// CheckClaims checks iss, aud (when audience is set), exp and nbf at now.
func (t *Token) CheckClaims(issuer, audience string, now time.Time) error {
	if iss, _ := t.Claims["iss"].(string); iss != issuer {
		return ErrIssuer
	}
	if audience != "" && !slices.Contains(t.Audience(), audience) {
		return ErrAudience
	}
	if exp, ok := t.numeric("exp"); !ok || now.After(exp.Add(Leeway)) {
		return ErrExpired
	}
	if nbf, ok := t.numeric("nbf"); ok && now.Add(Leeway).Before(nbf) {
		return ErrNotYetValid
	}
	return nil
}

// Audience returns the aud claim, a string or a list of strings.
func (t *Token) Audience() []string {
	switch a := t.Claims["aud"].(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, v := range a {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

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
func (t *Token) Subject() string {
	s, _ := t.Claims["sub"].(string)
	return s
}

// numeric reads a NumericDate claim (seconds since the epoch).
func (t *Token) numeric(name string) (time.Time, bool) {
	f, ok := t.Claims[name].(float64)
	if !ok {
		return time.Time{}, false
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), true
}
