package kit

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `quo"te\back`, "tab\tnl\ncr\r\x00\x1f", "<&>", "bad\xffutf8", "sep\u2028\u2029", "é中😀"} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if got := string(AppendJSONString(nil, s)); got != string(bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
			t.Errorf("AppendJSONString(%q) = %s, want %s", s, got, want.Bytes())
		}
	}
}
