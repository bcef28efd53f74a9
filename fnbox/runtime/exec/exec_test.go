package exec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit/kittest"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/fnbox/runtime/runtimetest"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
)

func TestSplit(t *testing.T) {
	cases := map[string][]string{
		`a b  c`:                {"a", "b", "c"},
		`sh -c 'echo "$X" | y'`: {"sh", "-c", `echo "$X" | y`},
		`a "b \"c\" \$d \n"`:    {"a", `b "c" $d \n`},
		`a\ b ''`:               {"a b", ""},
		`x"y"'z'`:               {"xyz"},
		"  ":                    nil,
	}
	for in, want := range cases {
		got, err := Split(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Split(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`a 'b`, `a "b`, `a\`} {
		if _, err := Split(bad); err == nil {
			t.Errorf("Split(%q) succeeded", bad)
		}
	}
}

func TestResult(t *testing.T) {
	cases := []struct{ out, data, ct string }{
		{"", "", ""},
		{" \n", "", ""},
		{`{"a":1}` + "\n", `{"a":1}`, "application/json"},
		{"42", "42", "application/json"},
		{"hello\n", "hello", "text/plain; charset=utf-8"},
		{"two\nlines\n", "two\nlines", "text/plain; charset=utf-8"},
	}
	for _, c := range cases {
		r := result([]byte(c.out))
		if string(r.Data) != c.data || r.ContentType != c.ct || (c.data == "") != (r.Data == nil) {
			t.Errorf("result(%q) = %q (%s), want %q (%s)", c.out, r.Data, r.ContentType, c.data, c.ct)
		}
	}
}

// start starts a runtime for one function fn.
func start(t *testing.T, fn string, env map[string]string) (runtime.Runtime, error) {
	t.Helper()
	desc, err := descriptor.Parse("unit.yaml", []byte("name: unit\nplatform: exec\nfunctions:\n  - { fn: "+strconv.Quote(fn)+", name: f, bindings: { streams: [in] } }\n"))
	if err != nil {
		t.Fatalf("parse descriptor: %v", err)
	}
	rt, err := Start(context.Background(), runtime.Spec{Deployment: desc, Dir: "testdata", Env: env})
	if err == nil {
		t.Cleanup(func() { rt.Close(context.Background()) })
	}
	return rt, err
}

func TestLoadErrors(t *testing.T) {
	for fn, want := range map[string]string{
		"./missing.sh":             "missing.sh: command not found",
		"./plain.txt":              "not an executable",
		"no-such-program-anywhere": "not found on PATH",
		"sh -c 'unterminated":      "unterminated",
	} {
		_, err := start(t, fn, nil)
		if !errors.Is(err, runtime.ErrLoad) || !strings.Contains(err.Error(), want) {
			t.Errorf("Start(%q) = %v, want ErrLoad saying %q", fn, err, want)
		}
	}
}

// TestTimeoutKillsGroup checks that the deadline kills the command's
// children too, not just the command.
func TestTimeoutKillsGroup(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	rt, err := start(t, "./spawn.sh", map[string]string{"PIDFILE": pidfile})
	if err != nil {
		t.Fatal(err)
	}
	e := envelope.New("/unit", "t")
	_, err = rt.Invoke(context.Background(), runtime.Invocation{Function: "f", Events: []envelope.Delivery{{Event: e}}, Deadline: time.Now().Add(2 * time.Second)}, runtimetest.NewTestHost(nil)) // time for a loaded machine to start sh and its child
	if !errors.Is(err, runtime.ErrTimeout) {
		t.Fatalf("error %v, want ErrTimeout", err)
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatalf("the script did not start its child: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) }) // if the test fails
	kittest.Eventually(t, "the grandchild dies with its invocation", func() error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("grandchild %d outlived the deadline", pid)
		}
		return nil
	})
}

// TestStdinAndEnv checks the structured event on stdin and the variables
// a command gets.
func TestStdinAndEnv(t *testing.T) {
	rt, err := start(t, `sh -c 'printf "{\"in\":%s,\"fn\":\"%s\",\"dl\":\"%s\"}" "$(cat)" "$BUTTER_FUNCTION" "$BUTTER_DEADLINE_MS"'`, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := envelope.New("/unit", "com.example.t")
	e.SetExtension("tenant", "acme")
	if err := e.SetData("application/octet-stream", []byte{0xff}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	res, err := rt.Invoke(context.Background(), runtime.Invocation{Function: "f", Events: []envelope.Delivery{{Event: e, Stream: "in", Partition: 3, Offset: 9}}, Deadline: deadline}, runtimetest.NewTestHost(nil))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		In map[string]any
		Fn string
		DL string
	}
	if err := json.Unmarshal(res.Data, &got); err != nil {
		t.Fatalf("result %s: %v", res.Data, err)
	}
	for k, want := range map[string]any{"specversion": "1.0", "id": e.ID(), "type": "com.example.t", "tenant": "acme",
		"stream": "in", "partition": 3.0, "offset": 9.0, "data_base64": "/w==", "datacontenttype": "application/octet-stream"} {
		if got.In[k] != want {
			t.Errorf("stdin %s = %#v, want %#v", k, got.In[k], want)
		}
	}
	if got.Fn != "f" || got.DL != strconv.FormatInt(deadline.UnixMilli(), 10) {
		t.Errorf("BUTTER_FUNCTION %q BUTTER_DEADLINE_MS %q", got.Fn, got.DL)
	}
}

func TestExitCode(t *testing.T) {
	rt, err := start(t, `sh -c 'exit 4'`, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = rt.Invoke(context.Background(), runtime.Invocation{Function: "f", Events: []envelope.Delivery{{Event: envelope.New("/u", "t")}}}, runtimetest.NewTestHost(nil))
	var fe *runtime.FunctionError
	if !errors.As(err, &fe) || !strings.Contains(fe.Message, "exit status 4") {
		t.Errorf("error %v, want a FunctionError naming exit status 4", err)
	}
}
