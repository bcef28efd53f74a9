package kit

import (
	"encoding/json"
	"net/http"
	"strings"
)

// ProblemContentType is the media type of RFC 9457 problem details.
const ProblemContentType = "application/problem+json"

// Problem is an RFC 9457 problem details body, the error answer of every
// Butter Compass HTTP API, so clients parse one error shape everywhere.
type Problem struct {
	// Type is a URI naming the kind of problem; empty means "about:blank"
	// (the problem is just its HTTP status).
	Type string `json:"type"`
	// Title is a short human summary of the kind of problem; empty means
	// the status text.
	Title string `json:"title"`
	// Status is the HTTP status code; 0 means 500.
	Status int `json:"status"`
	// Detail explains this occurrence, e.g. which field is wrong and how to
	// fix it.
	Detail string `json:"detail,omitempty"`
	// Instance is a URI for this occurrence, e.g. the request path.
	Instance string `json:"instance,omitempty"`
	// Errors lists every validation error, so a client fixes a descriptor
	// in one round trip instead of one error per request.
	Errors []string `json:"errors,omitempty"`
}

// Error makes a Problem usable as an error inside a service, so handlers can
// return one and have it written unchanged.
func (p Problem) Error() string {
	p = p.withDefaults()
	var b strings.Builder
	b.WriteString(p.Title)
	if p.Detail != "" {
		b.WriteString(": " + p.Detail)
	}
	for _, e := range p.Errors {
		b.WriteString("; " + e)
	}
	return b.String()
}

func (p Problem) withDefaults() Problem {
	if p.Status == 0 {
		p.Status = http.StatusInternalServerError
	}
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	return p
}

// WriteProblem writes p with Content-Type application/problem+json and p's
// status, filling in the RFC 9457 defaults for empty Type, Title and Status.
func WriteProblem(w http.ResponseWriter, p Problem) {
	p = p.withDefaults()
	w.Header().Set("Content-Type", ProblemContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
