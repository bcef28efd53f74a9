package service

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit/kittest"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/buttercompass/butter/gateway/internal/auth/authtest"
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
		{"lowercase bearer", map[string]string{"Authorization": "bearer " + wsecret}, 200},
		{"uppercase bearer, spaces", map[string]string{"Authorization": "  BEARER   " + wsecret + " "}, 200},
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

func TestJWTRoute(t *testing.T) {
	c := testutil.NewCluster(t)
	is := authtest.NewIssuer(t)
	c.Deploy("jwt", fmt.Sprintf(`name: jwt
platform: node
functions:
  - fn: h.js:h
    bindings:
      route: { context: /jwt, auth: { jwt: { issuer: %q, audience: api, jwks: %q }, scopes: [read] } }
  - fn: h.js:d
    bindings:
      route: { context: /discovered, auth: { jwt: { issuer: %q } } }
`, is.URL, is.JWKSURL, is.URL))
	c.Respond("jwt", "h", "fn", whoami)
	c.Respond("jwt", "d", "fn", whoami)
	g := startGateway(t, c)

	now := time.Now().Unix()
	claims := func(mod func(map[string]any)) map[string]any {
		m := map[string]any{"iss": is.URL, "aud": []string{"api", "other"}, "sub": "user-1", "exp": now + 300, "nbf": now - 10, "scope": "read write"}
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
		{"rs256", "/jwt", bearer(is.Sign(t, jose.RS256, "r1", "r1", claims(nil))), 200},
		{"es256 with scp list", "/jwt", bearer(is.Sign(t, jose.ES256, "e1", "e1", claims(func(m map[string]any) { delete(m, "scope"); m["scp"] = []string{"read"} }))), 200},
		{"unknown kid", "/jwt", bearer(is.Sign(t, jose.RS256, "r1", "r9", claims(nil))), 401},
		{"wrong key for kid", "/jwt", bearer(is.Sign(t, jose.ES256, "e1", "r1", claims(nil))), 401},
		{"expired", "/jwt", bearer(is.Sign(t, jose.RS256, "r1", "r1", claims(func(m map[string]any) { m["exp"] = now - 3600 }))), 401},
		{"not yet valid", "/jwt", bearer(is.Sign(t, jose.RS256, "r1", "r1", claims(func(m map[string]any) { m["nbf"] = now + 3600 }))), 401},
		{"wrong issuer", "/jwt", bearer(is.Sign(t, jose.RS256, "r1", "r1", claims(func(m map[string]any) { m["iss"] = "http://evil" }))), 401},
		{"wrong audience", "/jwt", bearer(is.Sign(t, jose.RS256, "r1", "r1", claims(func(m map[string]any) { m["aud"] = "web" }))), 401},
		{"missing scope", "/jwt", bearer(is.Sign(t, jose.RS256, "r1", "r1", claims(func(m map[string]any) { m["scope"] = "write" }))), 403},
		{"api key on a jwt route", "/jwt", map[string]string{"X-API-Key": "butter_x"}, 401},
		{"discovered jwks", "/discovered", bearer(is.Sign(t, jose.RS256, "r1", "r1", claims(nil))), 200},
		{"lowercase scheme", "/jwt", map[string]string{"Authorization": "bearer " + is.Sign(t, jose.ES256, "e1", "e1", claims(nil))}, 200},
		{"uppercase scheme, tab", "/jwt", map[string]string{"Authorization": "BEARER\t" + is.Sign(t, jose.ES256, "e1", "e1", claims(nil))}, 200},
		{"no exp", "/jwt", bearer(is.Sign(t, jose.RS256, "r1", "r1", claims(func(m map[string]any) { delete(m, "exp") }))), 401},
		{"hmac with the public key", "/jwt", bearer(authtest.SignWith(t, jose.HS256, jwksJSON(t, is), "r1", claims(nil))), 401},
	}
	for _, tc := range cases {
		r := call(t, "GET", g.url+tc.url, nil, tc.hdr)
		if r.code != tc.code {
			t.Errorf("%s: got %d %s", tc.name, r.code, r.body)
			continue
		}
		if tc.name == "no exp" && (!strings.Contains(string(r.body), "no expiry (exp)") || strings.Contains(string(r.body), "expired")) {
			t.Errorf("no exp: answered %s, want it reported as missing", r.body)
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
	nosub := is.Sign(t, jose.RS256, "r1", "r1", claims(func(m map[string]any) { delete(m, "sub") }))
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

// jwksJSON is the issuer's public key set as JSON: what an attacker
// would use as an HMAC secret.
func jwksJSON(t *testing.T, is *authtest.Issuer) []byte {
	t.Helper()
	b, err := json.Marshal(is.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	return b
}
