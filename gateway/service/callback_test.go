package service

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// newCallbackServer returns the URL of a server passing every POST body to
// got.
func newCallbackServer(t *testing.T, got chan<- []byte) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case got <- b:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
