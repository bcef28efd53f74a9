package kit

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

func TestWriteProblem(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteProblem(rec, Problem{
		Type:   "https://butter.dev/problems/invalid-descriptor",
		Status: http.StatusUnprocessableEntity,
		Detail: "descriptor has 2 errors",
		Errors: []string{"fn.yaml:3: name: required", "fn.yaml:7: runtime: unknown"},
	})
	if rec.Code != http.StatusUnprocessableEntity {
		t.Fatalf("status = %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type = %q", ct)
	}
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	if p.Title != "Unprocessable Entity" || p.Status != 422 || len(p.Errors) != 2 || p.Type == "" {
		t.Fatalf("body = %+v", p)
	}
}

func TestWriteProblemDefaults(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteProblem(rec, Problem{})
	var raw map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 500 || raw["type"] != "about:blank" || raw["title"] != "Internal Server Error" || raw["status"] != 500.0 {
		t.Fatalf("defaults = %d %v", rec.Code, raw)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"status", "title", "type"}) {
		t.Fatalf("empty optional members are written: %v", keys)
	}
	if got := (Problem{Status: 404, Detail: "no stream orders"}).Error(); got != "Not Found: no stream orders" {
		t.Fatalf("Error() = %q", got)
	}
}
