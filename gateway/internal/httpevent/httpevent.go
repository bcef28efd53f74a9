// Package httpevent maps HTTP to events and back (DESIGN §5): a request
// becomes the data of a butter.http.request event, and a function's reply
// event becomes the HTTP response.
package httpevent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// TypeRequest is the type of request events.
const TypeRequest = "butter.http.request"

// Source returns the CloudEvents source of a route's request events.
func Source(context string) string { return "/butter/gateway" + context }

// Request is the data of a TypeRequest event.
type Request struct {
	// Method is the HTTP method, upper case.
	Method string `json:"method"`
	// Path is the full request path, context included.
	Path string `json:"path"`
	// Query holds the query parameters; repeated ones are joined with
	// commas, as AWS Lambda does. RawQuery has them as sent.
	Query    map[string]string `json:"query,omitempty"`
	RawQuery string            `json:"rawQuery,omitempty"`
	// Headers holds the request headers, names lower case, repeated ones
	// joined with commas. Credentials the gateway checked (Authorization,
	// X-API-Key) are removed: streams are persistent.
	Headers map[string]string `json:"headers"`
	// Body is the body when it is UTF-8 text; BodyBase64 is set instead
	// for anything else. Neither is set for an empty body.
	Body       *string `json:"body,omitempty"`
	BodyBase64 string  `json:"bodyBase64,omitempty"`
	// Auth says who called, on authenticated routes.
	Auth *Identity `json:"auth,omitempty"`
}

// Identity is the caller of an authenticated route.
type Identity struct {
	// Type is "apikey" or "jwt".
	Type string `json:"type"`
	// Subject is the key id or the token's sub claim.
	Subject string `json:"subject"`
	// Name is the key's name, for API keys.
	Name string `json:"name,omitempty"`
	// Scopes are the caller's scopes.
	Scopes []string `json:"scopes,omitempty"`
	// Claims are the token's claims, for JWTs.
	Claims map[string]any `json:"claims,omitempty"`
}

// credentialHeaders are dropped from requests of authenticated routes.
var credentialHeaders = []string{"authorization", "x-api-key"}

// NewRequest builds the event data of r with body (already read and
// limited). dropCredentials removes the headers the gateway authenticated
// with.
func NewRequest(r *http.Request, body []byte, dropCredentials bool, id *Identity) Request {
	req := Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Headers: map[string]string{}, Auth: id}
	if q, err := url.ParseQuery(r.URL.RawQuery); err == nil && len(q) > 0 {
		req.Query = make(map[string]string, len(q))
		for k, vs := range q {
			req.Query[k] = strings.Join(vs, ",")
		}
	}
	for k, vs := range r.Header {
		name := strings.ToLower(k)
		if dropCredentials && slices.Contains(credentialHeaders, name) {
			continue
		}
		req.Headers[name] = strings.Join(vs, ",")
	}
	if r.Host != "" {
		req.Headers["host"] = r.Host
	}
	switch {
	case len(body) == 0:
	case utf8.Valid(body):
		s := string(body)
		req.Body = &s
	default:
		req.BodyBase64 = base64.StdEncoding.EncodeToString(body)
	}
	return req
}

// Response is an HTTP response as stored and written.
type Response struct {
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Headers are the response headers.
	Headers http.Header `json:"headers,omitempty"`
	// Body is the body (base64 in JSON).
	Body []byte `json:"body,omitempty"`
}

// Write writes the response to w.
func (resp Response) Write(w http.ResponseWriter) {
	for k, vs := range resp.Headers {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}

// ErrBadReply is wrapped by FromResult for results that cannot become an
// HTTP response; the gateway answers them 502.
var ErrBadReply = errors.New("function result is not a valid HTTP response")

// hopHeaders are set by the server, never by a function.
var hopHeaders = []string{"Connection", "Content-Length", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// FromResult turns a function's result (data of content type ct) into a
// response. A JSON object with a numeric status and no keys besides
// status, headers, body and bodyBase64 sets the response; any other value
// is the body: a JSON string as text, anything else as JSON. No data at all
// is 204 No Content.
func FromResult(data []byte, ct string) (Response, error) {
	resp := Response{Status: http.StatusOK, Headers: http.Header{}}
	if len(bytes.TrimSpace(data)) == 0 {
		resp.Status = http.StatusNoContent
		return resp, nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || strings.ContainsAny(ct, "\r\n\x00") {
		// An unreadable label is no label: never copy it into a header.
		ct, mt = "", ""
	}
	isJSON := mt == "application/json" || strings.HasSuffix(mt, "+json") || (ct == "" && json.Valid(data))
	if !isJSON {
		if ct == "" {
			ct = "application/octet-stream"
		}
		resp.Headers.Set("Content-Type", ct)
		resp.Body = data
		return resp, nil
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return Response{}, fmt.Errorf("%w: result is labelled JSON but does not parse: %v", ErrBadReply, err)
	}
	if obj, ok := v.(map[string]any); ok && isResponse(obj) {
		return fromObject(obj)
	}
	if err := setBody(&resp, v, true); err != nil {
		return Response{}, err
	}
	return resp, nil
}

// isResponse reports whether obj is a {status, headers, body} result.
func isResponse(obj map[string]any) bool {
	if _, ok := obj["status"].(float64); !ok {
		return false
	}
	for k := range obj {
		switch k {
		case "status", "headers", "body", "bodyBase64":
		default:
			return false
		}
	}
	return true
}

func fromObject(obj map[string]any) (Response, error) {
	resp := Response{Headers: http.Header{}}
	st := obj["status"].(float64)
	if st != float64(int(st)) || st < 200 || st > 599 {
		return Response{}, fmt.Errorf("%w: status %v: use an HTTP status code from 200 to 599", ErrBadReply, st)
	}
	resp.Status = int(st)
	if hs, ok := obj["headers"]; ok && hs != nil {
		m, ok := hs.(map[string]any)
		if !ok {
			return Response{}, fmt.Errorf("%w: headers must be an object of names to strings", ErrBadReply)
		}
		for k, v := range m {
			if !validHeaderName(k) || slices.Contains(hopHeaders, http.CanonicalHeaderKey(k)) {
				return Response{}, fmt.Errorf("%w: header %q cannot be set by a function", ErrBadReply, k)
			}
			var vals []string
			switch v := v.(type) {
			case string:
				vals = []string{v}
			case float64, bool:
				vals = []string{fmt.Sprint(v)}
			case []any:
				for _, e := range v {
					s, ok := e.(string)
					if !ok {
						return Response{}, fmt.Errorf("%w: header %q: list values must be strings", ErrBadReply, k)
					}
					vals = append(vals, s)
				}
			default:
				return Response{}, fmt.Errorf("%w: header %q: value must be a string or a list of strings", ErrBadReply, k)
			}
			for _, s := range vals {
				if strings.ContainsAny(s, "\r\n\x00") {
					return Response{}, fmt.Errorf("%w: header %q: value holds a line break", ErrBadReply, k)
				}
				resp.Headers.Add(k, s)
			}
		}
	}
	if b64, ok := obj["bodyBase64"]; ok && b64 != nil {
		s, ok := b64.(string)
		if !ok {
			return Response{}, fmt.Errorf("%w: bodyBase64 must be a string", ErrBadReply)
		}
		body, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return Response{}, fmt.Errorf("%w: bodyBase64: %v", ErrBadReply, err)
		}
		resp.Body = body
		if resp.Headers.Get("Content-Type") == "" {
			resp.Headers.Set("Content-Type", "application/octet-stream")
		}
		return resp, nil
	}
	if body, ok := obj["body"]; ok && body != nil {
		if err := setBody(&resp, body, resp.Headers.Get("Content-Type") == ""); err != nil {
			return Response{}, err
		}
	}
	return resp, nil
}

// setBody sets v as the body: a string as text, anything else as JSON.
func setBody(resp *Response, v any, setType bool) error {
	if s, ok := v.(string); ok {
		resp.Body = []byte(s)
		if setType {
			resp.Headers.Set("Content-Type", "text/plain; charset=utf-8")
		}
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: encode body: %v", ErrBadReply, err)
	}
	resp.Body = append(b, '\n')
	if setType {
		resp.Headers.Set("Content-Type", "application/json")
	}
	return nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
