package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/buttercompass/butter/gateway/internal/auth/authtest"
)

func seg(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// claims are valid claims of issuer "i" for audience "a" at time.Now.
func claims(mod func(map[string]any)) map[string]any {
	now := time.Now().Unix()
	m := map[string]any{"iss": "i", "aud": "a", "exp": now + 300, "nbf": now - 10, "iat": now - 10, "scp": "x y", "sub": "s"}
	if mod != nil {
		mod(m)
	}
	return m
}

// verified parses raw and verifies it with the issuer's key kid.
func verified(t *testing.T, is *authtest.Issuer, raw, kid string) (*Token, error) {
	t.Helper()
	tok, err := ParseToken(raw)
	if err != nil {
		return nil, err
	}
	k, err := NewKeySets(nil).Key(context.Background(), is.JWKSURL, kid)
	if err != nil {
		t.Fatal(err)
	}
	return tok, tok.Verify(k)
}

func TestTokenClaims(t *testing.T) {
	is := authtest.NewIssuer(t)
	tok, err := verified(t, is, is.Sign(t, jose.RS256, "r1", "r1", claims(nil)), "r1")
	if err != nil {
		t.Fatal(err)
	}
	if tok.Alg != "RS256" || tok.Kid != "r1" || tok.Subject() != "s" || len(tok.Scopes()) != 2 || tok.Audience()[0] != "a" {
		t.Fatalf("got %+v", tok)
	}
	now := time.Now()
	for _, tc := range []struct {
		name          string
		iss, aud      string
		mod           func(map[string]any)
		want          error
		wantNotString string
	}{
		{name: "valid", iss: "i", aud: "a"},
		{name: "no audience required", iss: "i"},
		{name: "audience list", iss: "i", aud: "a", mod: func(m map[string]any) { m["aud"] = []string{"b", "a"} }},
		{name: "wrong audience", iss: "i", aud: "b", want: ErrAudience},
		{name: "wrong issuer", iss: "j", aud: "a", want: ErrIssuer},
		{name: "no issuer", iss: "i", mod: func(m map[string]any) { delete(m, "iss") }, want: ErrIssuer},
		{name: "expired", iss: "i", mod: func(m map[string]any) { m["exp"] = now.Add(-time.Hour).Unix() }, want: ErrExpired},
		{name: "expired within leeway", iss: "i", mod: func(m map[string]any) { m["exp"] = now.Add(-Leeway / 2).Unix() }},
		{name: "no exp", iss: "i", mod: func(m map[string]any) { delete(m, "exp") }, want: ErrMissingExp, wantNotString: "expired"},
		{name: "not yet valid", iss: "i", mod: func(m map[string]any) { m["nbf"] = now.Add(time.Hour).Unix() }, want: ErrNotYetValid},
		{name: "issued in the future", iss: "i", mod: func(m map[string]any) { m["iat"] = now.Add(time.Hour).Unix() }, want: ErrIssuedFuture},
	} {
		tok, err := verified(t, is, is.Sign(t, jose.ES256, "e1", "e1", claims(tc.mod)), "e1")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		err = tok.CheckClaims(tc.iss, tc.aud, now)
		if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
		if err != nil && tc.wantNotString != "" && strings.Contains(strings.ToLower(err.Error()), tc.wantNotString) {
			t.Errorf("%s: %q says %q", tc.name, err, tc.wantNotString)
		}
	}
}

// TestTokenSignatures: only the issuer's key, under the algorithm it is
// for, verifies a token; "none", HMAC and unknown algorithms are refused
// at parse, before any key is fetched.
func TestTokenSignatures(t *testing.T) {
	is := authtest.NewIssuer(t)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := verified(t, is, authtest.SignWith(t, jose.ES256, other, "e1", claims(nil)), "e1"); !errors.Is(err, ErrSignature) {
		t.Errorf("signed by another key: %v", err)
	}
	if _, err := verified(t, is, is.Sign(t, jose.PS256, "r1", "r1", claims(nil)), "r1"); !errors.Is(err, ErrSignature) {
		t.Errorf("PS256 on an RS256 key: %v", err)
	}
	if _, err := verified(t, is, is.Sign(t, jose.ES256, "e1", "r1", claims(nil)), "r1"); !errors.Is(err, ErrSignature) {
		t.Errorf("EC signature naming the RSA key: %v", err)
	}
	// HMAC keyed with the issuer's public key, the classic confusion.
	pub, _ := is.JWKS().Keys[0].MarshalJSON()
	if _, err := ParseToken(authtest.SignWith(t, jose.HS256, pub, "r1", claims(nil))); !errors.Is(err, ErrAlgorithm) {
		t.Errorf("HS256: %v", err)
	}
	none := seg(`{"alg":"none","typ":"JWT"}`) + "." + seg(`{"iss":"i","exp":4102444800}`) + "."
	if _, err := ParseToken(none); err == nil {
		t.Error(`alg "none" parsed`)
	}
	for _, bad := range []string{"", "a.b", "a.b.c.d", "not.a.token",
		seg(`{"alg":"RS256"}`) + "." + seg("[]") + "." + seg("sig"),
		seg(`{"alg":"RS256"}`) + "." + seg(`{"exp":"soon"}`) + "." + seg("sig"),
		seg(`{"alg":"RS256","crit":["x"],"x":1}`) + "." + seg("{}") + "." + seg("sig"),
	} {
		if _, err := ParseToken(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	long := make([]byte, maxTokenLen+1)
	if _, err := ParseToken(string(long)); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized token: %v", err)
	}
}

// FuzzParseToken checks that no input crashes the parser or the claim
// checks, and that a token parsed from arbitrary bytes never verifies with
// the issuer's key unless it is one the issuer signed.
func FuzzParseToken(f *testing.F) {
	f.Add(seg(`{"alg":"RS256","kid":"k"}`) + "." + seg(`{"iss":"i","aud":["a"],"exp":1e10,"scope":"x"}`) + "." + seg("sig"))
	f.Add(seg(`{"alg":"ES256"}`) + "." + seg(`{"exp":"soon","nbf":-1e300,"scp":[1,"a"]}`) + ".")
	f.Add(seg(`{"alg":"ES256"}`) + "." + seg(`{"exp":9.3e18,"nbf":1e19,"aud":7}`) + "." + seg("sig"))
	f.Add("..")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := jose.JSONWebKey{Key: &key.PublicKey, KeyID: "e1"}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		_ = tok.CheckClaims("i", "a", time.Now())
		_ = tok.Scopes()
		_ = tok.Audience()
		_ = tok.Subject()
		if err := tok.Verify(pub); err == nil {
			t.Fatalf("a fuzzed token verified with a fresh key: %q", s)
		}
		if err := tok.Verify(jose.JSONWebKey{}); err == nil {
			t.Fatal("verified without a key")
		}
	})
}
