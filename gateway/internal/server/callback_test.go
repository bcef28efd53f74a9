package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/buttercompass/butter/gateway/internal/httpevent"
)

func TestCheckCallback(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"http://127.0.0.1:8080/x", "http://localhost/", "https://10.1.2.3/", "http://192.168.0.1/",
		"http://172.16.0.1/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://[fe80::1]/",
		"http://0.0.0.0/", "http://[::ffff:127.0.0.1]/", "http://[fd00::1]/",
		"http://100.100.100.200/latest/meta-data/", "http://198.18.0.1/", "http://240.0.0.1/", "http://0.1.2.3/",
		"http://[64:ff9b::a9fe:a9fe]/", "http://[64:ff9b::7f00:1]/", "http://[2002:a9fe:a9fe::1]/", "http://[64:ff9b:1::1]/"} {
		if err := checkCallback(ctx, u, false); err == nil {
			t.Errorf("%s accepted", u)
		}
		if err := checkCallback(ctx, u, true); err != nil {
			t.Errorf("%s refused with private callbacks allowed: %v", u, err)
		}
	}
	for _, u := range []string{"http://93.184.216.34/hook", "https://[2606:4700::1111]:8443/", "http://[64:ff9b::5db8:d822]/", "http://[2002:5db8:d822::1]/"} {
		if err := checkCallback(ctx, u, false); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	for _, u := range []string{"not a url", "ftp://93.184.216.34/", "/relative"} {
		if err := checkCallback(ctx, u, true); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
}

// counter is a test server counting the requests it gets.
func counter(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func doneRec(url string) Async {
	resp := httpevent.Response{Status: 200, Body: []byte("{}"), Headers: http.Header{"Content-Type": {"application/json"}}}
	return Async{ID: "cb", State: stateDone, Accepted: time.Now(), Callback: url, Response: &resp}
}

// TestCallbackNoRedirect: a callback answered with a redirect is not
// followed (a public URL could redirect into the network).
func TestCallbackNoRedirect(t *testing.T) {
	target, hits := counter(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	redirect, first := counter(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	})
	s := New(Config{AllowPrivateCallbacks: true})
	s.async.callback(context.Background(), doneRec(redirect.URL))
	if first.Load() != 1 || hits.Load() != 0 {
		t.Fatalf("callback reached the first URL %d times, the redirect target %d times; want 1, 0", first.Load(), hits.Load())
	}
}

// TestCallbackDialsPublicOnly: by default the callback client refuses to
// connect to a loopback address, whatever the URL said when accepted.
func TestCallbackDialsPublicOnly(t *testing.T) {
	srv, hits := counter(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	New(Config{}).async.callback(context.Background(), doneRec(srv.URL))
	if hits.Load() != 0 {
		t.Fatalf("callback reached %s", srv.URL)
	}
	New(Config{AllowPrivateCallbacks: true}).async.callback(context.Background(), doneRec(srv.URL))
	if hits.Load() != 1 {
		t.Fatalf("allowed callback reached %s %d times", srv.URL, hits.Load())
	}
}
