package descriptor

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

func TestJSONCompat(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"a": "x\/y"}`, `{"a": "x/y"}`},
		{`{"a": "\ud83d\ude00", "b": 1}`, `{"a": "\U0001F600", "b": 1}`},
		{`{"a": "\ud800"}`, `{"a": "\uFFFD"}`},
		{`{"a": "\ude00\ud83d"}`, `{"a": "\uFFFD\uFFFD"}`},
		{`{"a": "\\/"}`, `{"a": "\\/"}`},
		{`{"a": "\u00e9\n"}`, `{"a": "\u00e9\n"}`},
		{"{\"a\": \"\u0080\u007f\ufffe\"}", `{"a": "\u0080\u007F\uFFFE"}`},
		{`{"a": "no escapes"}`, `{"a": "no escapes"}`},
		{`a: "\/"`, `a: "\/"`},       // YAML, not JSON: left alone
		{`{"a": "\/"`, `{"a": "\/"`}, // not valid JSON: left alone
	} {
		out, _ := jsonCompat([]byte(tc.in))
		got := string(out)
		if got != tc.want {
			t.Errorf("jsonCompat(%s) = %s, want %s", tc.in, got, tc.want)
			continue
		}
		// What yaml.v3 reads from the rewrite is what encoding/json
		// reads from the original.
		var fromJSON, fromYAML any
		if json.Unmarshal([]byte(tc.in), &fromJSON) != nil {
			continue
		}
		if err := yaml.Unmarshal([]byte(got), &fromYAML); err != nil {
			t.Errorf("yaml.v3 cannot read %s: %v", got, err)
			continue
		}
		if a, b := mustJSON(t, fromJSON), mustJSON(t, fromYAML); a != b {
			t.Errorf("%s reads as %s in JSON but %s in YAML", tc.in, a, b)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestJSONCompatColumns checks that columns in the rewritten text map back
// to the text as sent, across lines and line endings.
func TestJSONCompatColumns(t *testing.T) {
	in := "{\"a\": \"\\/\\ud83d\\ude00\u0080\", \"b\": 1,\r\n \"c\": \"\\/\", \"d\": 2}"
	out, fix := jsonCompat([]byte(in))
	for _, tc := range []struct {
		key       string
		line, col int
	}{{`"b"`, 1, 26}, {`"c"`, 2, 2}, {`"d"`, 2, 13}} {
		// Find the key in both texts, counting characters as yaml.v3 does.
		wantLine, wantCol := position(in, tc.key)
		gotLine, gotCol := position(string(out), tc.key)
		if wantLine != tc.line || wantCol != tc.col {
			t.Fatalf("test is wrong: %s is at %d:%d in the input", tc.key, wantLine, wantCol)
		}
		if gotLine != wantLine || fix.column(gotLine, gotCol) != wantCol {
			t.Errorf("%s at %d:%d in the rewrite maps to %d:%d, want %d:%d",
				tc.key, gotLine, gotCol, gotLine, fix.column(gotLine, gotCol), wantLine, wantCol)
		}
	}
}

// position returns the 1-based line and character column of needle in s.
func position(s, needle string) (line, col int) {
	i := strings.Index(s, needle)
	before := strings.ReplaceAll(s[:i], "\r\n", "\n")
	line = strings.Count(before, "\n") + 1
	col = utf8.RuneCountInString(before[strings.LastIndex(before, "\n")+1:]) + 1
	return line, col
}
