package httpevent

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestFromResult(t *testing.T) {
	cases := []struct {
		name, data, ct string
		status         int
		body, wantCT   string
		bad            bool
	}{
		{"response object", `{"status":201,"headers":{"x-a":"1","content-type":"application/json"},"body":{"ok":true}}`, "application/json", 201, "{\"ok\":true}\n", "application/json", false},
		{"string body in response", `{"status":200,"body":"hi"}`, "application/json", 200, "hi", "text/plain; charset=utf-8", false},
		{"base64 body", `{"status":200,"bodyBase64":"AAEC"}`, "application/json", 200, "\x00\x01\x02", "application/octet-stream", false},
		{"plain object", `{"greeting":"hi"}`, "application/json", 200, "{\"greeting\":\"hi\"}\n", "application/json", false},
		{"object with string status is a body", `{"status":"ok"}`, "application/json", 200, "{\"status\":\"ok\"}\n", "application/json", false},
		{"object with extra keys is a body", `{"status":200,"count":3}`, "application/json", 200, "{\"count\":3,\"status\":200}\n", "application/json", false},
		{"json string", `"hello"`, "application/json", 200, "hello", "text/plain; charset=utf-8", false},
		{"text", `hello`, "text/plain", 200, "hello", "text/plain", false},
		{"empty", ``, "", 204, "", "", false},
		{"bad status", `{"status":99}`, "application/json", 0, "", "", true},
		{"bad header", `{"status":200,"headers":{"x":"a\r\nb"}}`, "application/json", 0, "", "", true},
		{"hop header", `{"status":200,"headers":{"Transfer-Encoding":"chunked"}}`, "application/json", 0, "", "", true},
		{"bad json", `{`, "application/json", 0, "", "", true},
	}
	for _, tc := range cases {
		resp, err := FromResult([]byte(tc.data), tc.ct)
		if tc.bad {
			if !errors.Is(err, ErrBadReply) {
				t.Errorf("%s: want ErrBadReply, got %v", tc.name, err)
			}
			continue
		}
		if err != nil || resp.Status != tc.status || string(resp.Body) != tc.body || resp.Headers.Get("Content-Type") != tc.wantCT {
			t.Errorf("%s: got %d %q %q %v", tc.name, resp.Status, resp.Body, resp.Headers.Get("Content-Type"), err)
		}
	}
}

func TestNewRequest(t *testing.T) {
	r := httptest.NewRequest("POST", "/a/b?x=1&x=2&y=3", strings.NewReader(""))
	r.Header.Set("Authorization", "Bearer s")
	r.Header.Set("X-Api-Key", "k")
	r.Header.Add("Accept", "a")
	r.Header.Add("Accept", "b")
	req := NewRequest(r, []byte{0xff, 0xfe}, true, nil)
	if req.Query["x"] != "1,2" || req.Query["y"] != "3" || req.Headers["accept"] != "a,b" || req.Body != nil || req.BodyBase64 != "//4=" {
		t.Fatalf("got %+v", req)
	}
	if _, ok := req.Headers["authorization"]; ok {
		t.Error("credentials forwarded")
	}
	if req := NewRequest(r, []byte("héllo"), false, nil); req.Body == nil || *req.Body != "héllo" || req.Headers["authorization"] == "" {
		t.Fatalf("got %+v", req)
	}
}

// FuzzFromResult checks that no function result crashes the gateway and
// that whatever it accepts is a writable response.
func FuzzFromResult(f *testing.F) {
	for _, s := range []string{`{"status":201,"headers":{"a":["b","c"]},"body":{"x":1}}`, `"s"`, `{"status":200,"bodyBase64":"AA=="}`, `[1,2]`, `null`, `{"status":1e309}`} {
		f.Add([]byte(s), "application/json")
	}
	f.Add([]byte("plain"), "text/plain")
	f.Fuzz(func(t *testing.T, data []byte, ct string) {
		resp, err := FromResult(data, ct)
		if err != nil {
			return
		}
		if resp.Status < 200 || resp.Status > 599 {
			t.Fatalf("status %d", resp.Status)
		}
		resp.Write(httptest.NewRecorder())
		for k, vs := range resp.Headers {
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n") || http.CanonicalHeaderKey(k) == "Content-Length" {
					t.Fatalf("header %q: %q", k, v)
				}
			}
		}
	})
}
