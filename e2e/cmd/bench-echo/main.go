// Command bench-echo is the Go echo server of the bench's peer rows: it
// answers every request with 200 and the request's body, as the function
// of-watchdog runs in http mode and as the direct HTTP baseline.
//
//	bench-echo -addr 127.0.0.1:8082
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8082", "listen on `host:port`")
	flag.Parse()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		_, _ = w.Write(body)
	})
	if err := http.ListenAndServe(*addr, h); err != nil {
		fmt.Fprintln(os.Stderr, "bench-echo:", err)
		os.Exit(1)
	}
}
