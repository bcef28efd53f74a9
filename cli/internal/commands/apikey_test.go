package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAPIKeyCommands(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = append(got, r.Method+" "+r.URL.Path+" "+string(body))
		w.Header().Set("Content-Type", "application/json")
		switch r.Method {
		case "POST":
			w.WriteHeader(201)
			_ = json.NewEncoder(w).Encode(map[string]any{"id": "k1", "name": "ci", "scopes": []string{"a"}, "secret": "butter_s"})
		case "GET":
			_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]any{{"id": "k1", "name": "ci", "scopes": []string{"a", "b"}}}})
		case "DELETE":
			w.WriteHeader(204)
		}
	}))
	defer srv.Close()
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := Execute(context.Background(), append(args, "--deployer", srv.URL), IO{In: strings.NewReader(""), Out: &out, Err: io.Discard}); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out.String()
	}
	if out := run("apikey", "create", "ci", "--scope", "a,b"); !strings.Contains(out, "butter_s") {
		t.Errorf("create: %s", out)
	}
	if out := run("apikey", "ls"); !strings.Contains(out, "k1") || !strings.Contains(out, "a,b") {
		t.Errorf("ls: %s", out)
	}
	if out := run("apikey", "revoke", "k1"); !strings.Contains(out, "revoked") {
		t.Errorf("revoke: %s", out)
	}
	want := []string{`POST /v1/apikeys {"name":"ci","scopes":["a","b"]}`, "GET /v1/apikeys ", "DELETE /v1/apikeys/k1 "}
	for i, w := range want {
		if i >= len(got) || got[i] != w {
			t.Fatalf("requests %q, want %q", got, want)
		}
	}
}
