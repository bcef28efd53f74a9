package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandlerServesTheEmbeddedPages(t *testing.T) {
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)
	for path, want := range map[string]struct{ ctype, body string }{
		"/":           {"text/html", `<main id="main"`},
		"/app.js":     {"text/javascript", "function route()"},
		"/app.css":    {"text/css", ".waterfall"},
		"/no/such/ui": {"text/html", `<main id="main"`},
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), want.ctype) || !strings.Contains(string(b), want.body) {
			t.Errorf("GET %s = %d %s, want %s holding %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), want.ctype, want.body)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q, want scripts from self only", path, csp)
		}
	}
}
