// Package authtest is a test OIDC issuer for the gateway's tests: an HTTP
// server with a discovery document and a JWKS, and tokens signed by
// go-jose with its keys. Test-only: never linked into a binary.
package authtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer serves /.well-known/openid-configuration and /jwks. Its JWKS
// starts with an RSA key "r1" (alg RS256) and a P-256 key "e1"; Rotate
// changes it.
type Issuer struct {
	// URL is the issuer (iss) and the base of its endpoints.
	URL string
	// JWKSURL is where its key set is served.
	JWKSURL string
	// Fetches counts the JWKS fetches.
	Fetches atomic.Int32

	mu      sync.Mutex
	private map[string]jose.JSONWebKey // kid → private key
	served  []string                   // kids in the JWKS
}

// NewIssuer starts an issuer, stopped at cleanup.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	is := &Issuer{private: map[string]jose.JSONWebKey{}}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is.private["r1"] = jose.JSONWebKey{Key: rk, KeyID: "r1", Algorithm: string(jose.RS256), Use: "sig"}
	is.private["e1"] = jose.JSONWebKey{Key: ek, KeyID: "e1"}
	is.served = []string{"r1", "e1"}
	srv := httptest.NewServer(http.HandlerFunc(is.serve))
	t.Cleanup(srv.Close)
	is.URL, is.JWKSURL = srv.URL, srv.URL+"/jwks"
	return is
}

func (is *Issuer) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": is.URL, "jwks_uri": is.JWKSURL})
	case "/jwks":
		is.Fetches.Add(1)
		_ = json.NewEncoder(w).Encode(is.JWKS())
	default:
		http.NotFound(w, r)
	}
}

// JWKS is the public key set served now.
func (is *Issuer) JWKS() jose.JSONWebKeySet {
	is.mu.Lock()
	defer is.mu.Unlock()
	var set jose.JSONWebKeySet
	for _, kid := range is.served {
		k := is.private[kid]
		set.Keys = append(set.Keys, k.Public())
	}
	return set
}

// Rotate makes the JWKS serve only kids, adding a new P-256 key for each
// kid it does not know.
func (is *Issuer) Rotate(t testing.TB, kids ...string) {
	t.Helper()
	is.mu.Lock()
	defer is.mu.Unlock()
	for _, kid := range kids {
		if _, ok := is.private[kid]; !ok {
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			is.private[kid] = jose.JSONWebKey{Key: k, KeyID: kid}
		}
	}
	is.served = kids
}

// Sign returns a compact JWT of claims signed with alg by the private key
// of keyKid, naming kid in its header ("" for none).
func (is *Issuer) Sign(t testing.TB, alg jose.SignatureAlgorithm, keyKid, kid string, claims any) string {
	t.Helper()
	is.mu.Lock()
	k, ok := is.private[keyKid]
	is.mu.Unlock()
	if !ok {
		t.Fatalf("issuer has no key %q", keyKid)
	}
	return SignWith(t, alg, k.Key, kid, claims)
}

// SignWith returns a compact JWT of claims signed with alg by key (any key
// go-jose signs with: a private key, or []byte for HMAC), naming kid in
// its header ("" for none).
func SignWith(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), kid)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(fmt.Errorf("make signer: %w", err))
	}
	s, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(fmt.Errorf("sign token: %w", err))
	}
	return s
}
