package service

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit/kittest"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/buttercompass/butter/gateway/internal/httpevent"
	"github.com/buttercompass/butter/gateway/internal/testutil"
	"github.com/buttercompass/butter/proto/apikey"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/topics"
)

// whoami answers with the caller's identity as the gateway passed it.
func whoami(req httpevent.Request, _ event.Event) (any, error) {
	return map[string]any{"auth": req.Auth, "authorization": req.Headers["authorization"], "apikey": req.Headers["x-api-key"]}, nil
}

func TestAPIKeyRoute(t *testing.T) {
	c := testutil.NewCluster(t)
	c.Deploy("keyed", `name: keyed
platform: node
functions:
  - fn: h.js:h
    bindings:
      route: { context: /keyed, auth: { apiKey: true, scopes: [orders:write] } }
`)
	c.Respond("keyed", "h", "fn", whoami)
	writer, wsecret, err := apikey.New("writer", []string{"orders:write", "orders:read"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	reader, rsecret, _ := apikey.New("reader", []string{"orders:read"}, "test")
	for _, k := range []apikey.Key{writer, reader} {
		rec, _ := apikey.Record(topics.APIKeys, k)
		if err := c.Client.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	g := startGateway(t, c)
	url := g.url + "/keyed/x"

	cases := []struct {
		name string
		hdr  map[string]string
		code int
	}{
		{"no key", nil, 401},
		{"unknown key", map[string]string{"X-API-Key": "butter_nope"}, 401},
		{"basic auth", map[string]string{"Authorization": "Basic eDp5"}, 401},
		{"missing scope", map[string]string{"X-API-Key": rsecret}, 403},
		{"header", map[string]string{"X-API-Key": wsecret}, 200},
		{"bearer", map[string]string{"Authorization": "Bearer " + wsecret}, 200},
	}
	for _, tc := range cases {
		r := call(t, "POST", url, nil, tc.hdr)
		if r.code != tc.code {
			t.Errorf("%s: got %d %s", tc.name, r.code, r.body)
			continue
		}
		if tc.code == 401 && !strings.HasPrefix(r.hdr.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, r.hdr.Get("WWW-Authenticate"))
		}
		if tc.code == 200 {
			var out struct {
				Auth          httpevent.Identity
				Authorization string
				APIKey        string
			}
			_ = json.Unmarshal(r.body, &out)
			if out.Auth.Type != "apikey" || out.Auth.Subject != writer.ID || out.Authorization != "" || out.APIKey != "" {
				t.Errorf("%s: function saw %s", tc.name, r.body)
			}
		}
	}

	// Revoking takes effect live.
	if err := c.Client.ProduceSync(context.Background(), apikey.Tombstone(topics.APIKeys, writer.ID)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	kittest.Eventually(t, "revoked key refused", func() error {
		if r := call(t, "POST", url, nil, map[string]string{"X-API-Key": wsecret}); r.code != 401 {
			return fmt.Errorf("got %d", r.code)
		}
		return nil
	})
	waitAuthReject(t, c)
}

// waitAuthReject waits for an auth.reject platform event of the gateway.
func waitAuthReject(t *testing.T, c *testutil.Cluster) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Broker.Addr()), kgo.ConsumeTopics(topics.Events),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Timeout)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("no auth.reject event")
		}
		found := false
		fs.EachRecord(func(r *kgo.Record) {
			e := envelope.FromRecord(r).Event
			if e.Type() == control.TypeAuthReject && e.Source() == SourceGateway {
				var ar control.AuthReject
				found = json.Unmarshal(e.Data(), &ar) == nil && ar.Reason != ""
			}
		})
		if found {
			return
		}
	}
}

// issuer is a test OIDC issuer with an RSA and an EC key.
type issuer struct {
	url string
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "r1", "use": "sig", "alg": "RS256", "n": b64(rk.N.Bytes()), "e": b64(big.NewInt(int64(rk.E)).Bytes())},
		{"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64(ek.X.FillBytes(make([]byte, 32))), "y": b64(ek.Y.FillBytes(make([]byte, 32)))},
	}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			fmt.Fprintf(w, `{"issuer":"http://%s","jwks_uri":"http://%s/jwks"}`, r.Host, r.Host)
		case "/jwks":
			_, _ = w.Write(jwks)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return &issuer{url: srv.URL, rsa: rk, ec: ek}
}

// token signs claims with alg (RS256 or ES256) under kid.
func (is *issuer) token(t *testing.T, alg, kid string, claims map[string]any) string {
	t.Helper()
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	h, _ := json.Marshal(map[string]string{"alg": alg, "kid": kid, "typ": "JWT"})
	p, _ := json.Marshal(claims)
	signed := b64(h) + "." + b64(p)
	sum := sha256.Sum256([]byte(signed))
	var sig []byte
	switch alg {
	case "RS256":
		s, err := rsa.SignPKCS1v15(rand.Reader, is.rsa, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = s
	case "ES256":
		r, s, err := ecdsa.Sign(rand.Reader, is.ec, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	}
	return signed + "." + b64(sig)
}

func TestJWTRoute(t *testing.T) {
	c := testutil.NewCluster(t)
	is := newIssuer(t)
	c.Deploy("jwt", fmt.Sprintf(`name: jwt
platform: node
functions:
  - fn: h.js:h
    bindings:
      route: { context: /jwt, auth: { jwt: { issuer: %q, audience: api, jwks: %q }, scopes: [read] } }
  - fn: h.js:d
    bindings:
      route: { context: /discovered, auth: { jwt: { issuer: %q } } }
`, is.url, is.url+"/jwks", is.url))
	c.Respond("jwt", "h", "fn", whoami)
	c.Respond("jwt", "d", "fn", whoami)
	g := startGateway(t, c)

	now := time.Now().Unix()
	claims := func(mod func(map[string]any)) map[string]any {
		m := map[string]any{"iss": is.url, "aud": []string{"api", "other"}, "sub": "user-1", "exp": now + 300, "nbf": now - 10, "scope": "read write"}
		if mod != nil {
			mod(m)
		}
		return m
	}
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	cases := []struct {
		name string
		url  string
		hdr  map[string]string
		code int
	}{
		{"no token", "/jwt", nil, 401},
		{"garbage", "/jwt", bearer("not.a.token"), 401},
		{"rs256", "/jwt", bearer(is.token(t, "RS256", "r1", claims(nil))), 200},
		{"es256 with scp list", "/jwt", bearer(is.token(t, "ES256", "e1", claims(func(m map[string]any) { delete(m, "scope"); m["scp"] = []string{"read"} }))), 200},
		{"unknown kid", "/jwt", bearer(is.token(t, "RS256", "r9", claims(nil))), 401},
		{"wrong key for kid", "/jwt", bearer(is.token(t, "ES256", "r1", claims(nil))), 401},
		{"expired", "/jwt", bearer(is.token(t, "RS256", "r1", claims(func(m map[string]any) { m["exp"] = now - 3600 }))), 401},
		{"not yet valid", "/jwt", bearer(is.token(t, "RS256", "r1", claims(func(m map[string]any) { m["nbf"] = now + 3600 }))), 401},
		{"wrong issuer", "/jwt", bearer(is.token(t, "RS256", "r1", claims(func(m map[string]any) { m["iss"] = "http://evil" }))), 401},
		{"wrong audience", "/jwt", bearer(is.token(t, "RS256", "r1", claims(func(m map[string]any) { m["aud"] = "web" }))), 401},
		{"missing scope", "/jwt", bearer(is.token(t, "RS256", "r1", claims(func(m map[string]any) { m["scope"] = "write" }))), 403},
		{"api key on a jwt route", "/jwt", map[string]string{"X-API-Key": "butter_x"}, 401},
		{"discovered jwks", "/discovered", bearer(is.token(t, "RS256", "r1", claims(nil))), 200},
	}
	for _, tc := range cases {
		r := call(t, "GET", g.url+tc.url, nil, tc.hdr)
		if r.code != tc.code {
			t.Errorf("%s: got %d %s", tc.name, r.code, r.body)
			continue
		}
		switch tc.code {
		case 401:
			if !strings.HasPrefix(r.hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: WWW-Authenticate %q", tc.name, r.hdr.Get("WWW-Authenticate"))
			}
		case 403:
			if !strings.Contains(r.hdr.Get("WWW-Authenticate"), "insufficient_scope") {
				t.Errorf("%s: WWW-Authenticate %q", tc.name, r.hdr.Get("WWW-Authenticate"))
			}
		case 200:
			var out struct{ Auth httpevent.Identity }
			_ = json.Unmarshal(r.body, &out)
			if out.Auth.Type != "jwt" || out.Auth.Subject != "user-1" {
				t.Errorf("%s: function saw %s", tc.name, r.body)
			}
		}
	}

	// Only its caller may poll an async request: a token naming no caller
	// cannot make one.
	nosub := is.token(t, "RS256", "r1", claims(func(m map[string]any) { delete(m, "sub") }))
	if r := call(t, "GET", g.url+"/jwt", nil, bearer(nosub)); r.code != 200 {
		t.Errorf("sync without sub: got %d %s", r.code, r.body)
	}
	hdr := bearer(nosub)
	hdr["Prefer"] = "respond-async"
	if r := call(t, "GET", g.url+"/jwt", nil, hdr); r.code != http.StatusBadRequest {
		t.Errorf("async without sub: got %d %s, want 400", r.code, r.body)
	}
	waitAuthReject(t, c)
}
