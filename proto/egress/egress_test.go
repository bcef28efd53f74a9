package egress

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

func TestCheckURL(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"http://127.0.0.1:8080/x", "http://localhost/", "https://10.1.2.3/", "http://192.168.0.1/",
		"http://172.16.0.1/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://[fe80::1]/",
		"http://0.0.0.0/", "http://[::ffff:127.0.0.1]/", "http://[fd00::1]/",
		"http://100.100.100.200/latest/meta-data/", "http://198.18.0.1/", "http://240.0.0.1/", "http://0.1.2.3/",
		"http://[64:ff9b::a9fe:a9fe]/", "http://[64:ff9b::7f00:1]/", "http://[2002:a9fe:a9fe::1]/", "http://[64:ff9b:1::1]/"} {
		if err := CheckURL(ctx, u, false); !errors.Is(err, ErrPrivate) {
			t.Errorf("%s: %v, want ErrPrivate", u, err)
		}
		if err := CheckURL(ctx, u, true); err != nil {
			t.Errorf("%s refused with private addresses allowed: %v", u, err)
		}
	}
	for _, u := range []string{"http://93.184.216.34/hook", "https://[2606:4700::1111]:8443/", "http://[64:ff9b::5db8:d822]/", "http://[2002:5db8:d822::1]/"} {
		if err := CheckURL(ctx, u, false); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	for _, u := range []string{"not a url", "ftp://93.184.216.34/", "/relative"} {
		if err := CheckURL(ctx, u, true); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
}

// TestClientDialsPublicOnly: the client refuses to connect to a loopback
// address unless allowed, and never follows a redirect.
func TestClientDialsPublicOnly(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/target", http.StatusTemporaryRedirect)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	if _, err := Client(nil, false).Get(srv.URL); !errors.Is(err, ErrPrivate) {
		t.Fatalf("GET %s: %v, want ErrPrivate", srv.URL, err)
	}
	if hits.Load() != 0 {
		t.Fatalf("the guarded client reached %s", srv.URL)
	}
	resp, err := Client(nil, true).Get(srv.URL + "/redirect")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || hits.Load() != 1 {
		t.Fatalf("status %d after %d requests; want the redirect itself, 1 request", resp.StatusCode, hits.Load())
	}
}
