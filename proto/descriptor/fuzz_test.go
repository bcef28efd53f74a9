package descriptor

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"
)

// FuzzParse feeds Parse arbitrary bytes. Parse must never panic; it
// either returns a descriptor whose JSON parses back to the same JSON (the
// stored form is stable), or Problems that each say something and point
// inside the file.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		`{"name":"a","platform":"node","functions":[{"fn":"a.js:f","bindings":{"route":"\/a","streams":["s"]}}]}`,
		`{"name":"a","platform":"exec","description":"\ud83d\ude00 \ud800","functions":[{"fn":"x","bindings":{"timer":"@every 1s"}}]}`,
		"name: a\nplatform: go\nx-d: &d {retries: 0}\nfunctions: [{fn: x, bindings: {streams: [{name: s, offset: {\"0\": 1}}]}, delivery: *d}]\n",
		"name: a\nplatform: node\nfunctions: [{fn: a.js:f, bindings: {streams: [s]}, delivery: &d {<<: *d}}]\n",
		"name: a\nplatform: node\nfunctions: [{fn: a.js:f, bindings: {streams: [s]}}]\nbridges: {a: [1, .inf, ~, 2001-12-14]}\n",
		"TZ=",
		"name: a\nplatform: python\nisolation: shared\nfunctions: [{fn: a.py:f, bindings: {streams: [s]}}]\n",
		"name: a\nplatform: exec\nisolation: shared\nenv: {A: b}\nfunctions: [{fn: x, bindings: {streams: [s]}, limits: {cpu: 1}}]\n",
		"name: a\nplatform: node\nenv: {A: b}\nsecretEnv: {DB_PASSWORD: hunter2, K: \"x\\ny\"}\nfunctions: [{fn: a.js:f, bindings: {streams: [s]}}]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse("f.yaml", data)
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error is not a non-empty Problems: %#v", err)
			}
			lines := lineCount(data)
			for _, p := range ps {
				if p.Message == "" || p.File != "f.yaml" || p.Line < 0 || p.Line > lines || p.Column < 0 {
					t.Fatalf("bad problem %+v in a %d-line file", p, lines)
				}
			}
			return
		}
		if d == nil || len(d.Functions) == 0 {
			t.Fatalf("valid descriptor without functions: %+v", d)
		}
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		d2, err := Parse("f.json", b)
		if err != nil {
			t.Fatalf("stored form does not parse:\n%s\n%v", b, err)
		}
		b2, err := json.Marshal(d2)
		if err != nil {
			t.Fatalf("Marshal again: %v", err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("round trip changed the descriptor:\n%s\n%s", b, b2)
		}
	})
}

// lineCount counts lines as YAML does: "\r\n", "\r", "\n", NEL, LS and PS
// each end one, in UTF-8 or, after a byte order mark, UTF-16.
func lineCount(data []byte) int {
	s := string(data)
	if len(data) >= 2 && (data[0] == 0xFE && data[1] == 0xFF || data[0] == 0xFF && data[1] == 0xFE) {
		units := make([]uint16, 0, len(data)/2)
		for i := 2; i+1 < len(data); i += 2 {
			if data[0] == 0xFE {
				units = append(units, uint16(data[i])<<8|uint16(data[i+1]))
			} else {
				units = append(units, uint16(data[i+1])<<8|uint16(data[i]))
			}
		}
		s = string(utf16.Decode(units))
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return 1 + strings.Count(s, "\n") + strings.Count(s, "\r") +
		strings.Count(s, "\u0085") + strings.Count(s, "\u2028") + strings.Count(s, "\u2029")
}
