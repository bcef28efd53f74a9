package service

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/buttercompass/butter/gateway/internal/testutil"
	"github.com/buttercompass/butter/proto/apikey"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/topics"
)

const keyedYAML = `name: keyed
platform: node
functions:
  - fn: h.js:h
    bindings:
      route: { context: /keyed, auth: { apiKey: true, scopes: [orders:write] } }
`

// TestPollAuth: an async request made on an authenticated route is
// polled only by its caller, and only while the route still exists with
// the same auth.
func TestPollAuth(t *testing.T) {
	c := testutil.NewCluster(t)
	c.Deploy("keyed", keyedYAML)
	var secrets []string
	for _, name := range []string{"alice", "bob"} {
		k, secret, err := apikey.New(name, []string{"orders:write"}, "test")
		if err != nil {
			t.Fatal(err)
		}
		rec, _ := apikey.Record(topics.APIKeys, k)
		if err := c.Client.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, secret)
	}
	alice, bob := map[string]string{"X-API-Key": secrets[0]}, map[string]string{"X-API-Key": secrets[1]}
	async := func(hdr map[string]string) map[string]string {
		out := map[string]string{"Prefer": "respond-async"}
		for k, v := range hdr {
			out[k] = v
		}
		return out
	}
	g := startGateway(t, c)
	var loc string
	kittest.Eventually(t, "accepted", func() error {
		r := call(t, "POST", g.url+"/keyed/x", nil, async(alice))
		if r.code != http.StatusAccepted {
			return fmt.Errorf("got %d %s", r.code, r.body)
		}
		loc = r.hdr.Get("Location")
		return nil
	})

	for _, tc := range []struct {
		name string
		hdr  map[string]string
		code int
	}{
		{"no key", nil, http.StatusUnauthorized},
		{"another caller", bob, http.StatusForbidden},
		{"the caller", alice, http.StatusAccepted},
	} {
		if r := call(t, "GET", g.url+loc, nil, tc.hdr); r.code != tc.code {
			t.Errorf("%s: got %d %s", tc.name, r.code, r.body)
		}
	}

	// The route loses its auth: the stored response is not served to
	// anyone any more.
	c.Deploy("keyed", `name: keyed
platform: node
functions:
  - fn: h.js:h
    bindings:
      route: { context: /keyed }
`)
	kittest.Eventually(t, "route open", func() error {
		if r := call(t, "POST", g.url+"/keyed/x", nil, async(nil)); r.code != http.StatusAccepted {
			return fmt.Errorf("got %d", r.code)
		}
		return nil
	})
	for _, hdr := range []map[string]string{nil, alice} {
		if r := call(t, "GET", g.url+loc, nil, hdr); r.code != http.StatusNotFound {
			t.Errorf("auth removed, poll with %v: got %d %s", hdr, r.code, r.body)
		}
	}

	// The route is gone.
	c.Undeploy("keyed")
	kittest.Eventually(t, "route removed", func() error {
		if r := call(t, "POST", g.url+"/keyed/x", nil, async(nil)); r.code != http.StatusNotFound {
			return fmt.Errorf("got %d", r.code)
		}
		return nil
	})
	if r := call(t, "GET", g.url+loc, nil, nil); r.code != http.StatusNotFound {
		t.Errorf("route gone: got %d %s", r.code, r.body)
	}
}
