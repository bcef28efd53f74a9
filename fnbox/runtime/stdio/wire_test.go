package stdio

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// checkInvokeJSON checks appendJSON says what json.Marshal says, on one
// line.
func checkInvokeJSON(t *testing.T, m invokeMsg) {
	t.Helper()
	got := m.appendJSON(nil)
	if bytes.IndexByte(got, '\n') >= 0 {
		t.Fatalf("appendJSON wrote a newline: %s", got)
	}
	want, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("appendJSON wrote invalid JSON %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("appendJSON = %s\njson.Marshal = %s", got, want)
	}
}

func TestInvokeJSONMatchesMarshal(t *testing.T) {
	odd := "q\"b\\s\n\r\t\x00\x1f\x7f é 😀 \u2028\u2029 <&> \xff\xfe end"
	for _, data := range []string{`{"n":1}`, "{\n  \"pretty\": [1,\n 2]\n}", `"text"`, `null`, ``, `[1,"a\nb"]`} {
		data, _ := encodeData([]byte(data), "application/json")
		checkInvokeJSON(t, invokeMsg{ID: "1", Fn: "f", Events: []wireEvent{{
			ID: odd, Source: "/s", Type: "t", Subject: odd, Time: "2026-12-03T09:00:00Z", Data: data,
			DataContentType: "application/json", DataSchema: "https://x", Extensions: map[string]string{"b": odd, "a": "1", odd: "k"},
			Stream: "in", Partition: 3, Offset: 1 << 40,
		}}, Deadline: 1764752400000, TraceParent: "00-abc-def-01", TraceState: "k=v", Batch: true})
	}
	bin, b64 := encodeData([]byte{0xff, 0, 1}, "application/octet-stream")
	checkInvokeJSON(t, invokeMsg{ID: "2", Fn: "g", Events: []wireEvent{
		{Data: bin, DataBase64: b64, Extensions: map[string]string{}},
		{ID: "x", Data: nil, Extensions: map[string]string{}},
	}})
	checkInvokeJSON(t, invokeMsg{ID: "3", Set: odd, Fn: "h", Events: []wireEvent{}})
}

func FuzzInvokeJSON(f *testing.F) {
	f.Add("id", "subject", "ext", []byte(`{"a":1}`))
	f.Add("\u2028", "\xff", "\x00", []byte("{\n}"))
	f.Fuzz(func(t *testing.T, id, subject, ext string, data []byte) {
		d, b64 := encodeData(data, "")
		checkInvokeJSON(t, invokeMsg{ID: id, Fn: "f", Events: []wireEvent{{
			ID: id, Subject: subject, Data: d, DataBase64: b64, Extensions: map[string]string{ext: subject, "x": ext},
		}}})
	})
}
