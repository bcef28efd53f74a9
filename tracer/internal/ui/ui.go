// Package ui is the tracer's web UI: plain HTML, CSS and JavaScript
// embedded in the binary (no build step), reading the JSON API of the
// same origin and following logs and platform events as server-sent
// events.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the UI. Every path that is not a file gets index.html:
// the UI routes by the URL's hash, so links to a page survive a reload.
func Handler() http.Handler {
	sub, _ := fs.Sub(static, "static")
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if _, err := fs.Stat(sub, trimSlash(r.URL.Path)); err != nil || r.URL.Path == "/" {
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/"
			files.ServeHTTP(w, r2)
			return
		}
		files.ServeHTTP(w, r)
	})
}

func trimSlash(p string) string {
	if len(p) > 0 && p[0] == '/' {
		return p[1:]
	}
	return p
}
