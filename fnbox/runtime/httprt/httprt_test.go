package httprt_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/fnbox/runtime/httprt"
	"github.com/buttercompass/butter/fnbox/runtime/runtimetest"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
)

// envServer makes the test binary a function server: TestMain serves the
// function named in BUTTER_FUNCTION instead of running the tests, so these
// tests need no language but Go.
const envServer = "HTTPRT_TEST_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(envServer) != "" {
		serve()
		return
	}
	os.Exit(m.Run())
}

// serve is the test server: headers answers the request's headers, status
// answers the status in the body, die exits mid-call.
func serve() {
	fn := os.Getenv("BUTTER_FUNCTION")
	if serveCloudEvents(fn) {
		return
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch fn {
		case "headers":
			h := map[string]string{"body": string(body)}
			for k := range r.Header {
				h[strings.ToLower(k)] = r.Header.Get(k)
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(h)
		case "status":
			code, _ := strconv.Atoi(string(body))
			w.WriteHeader(code)
			fmt.Fprintf(w, "answered %d", code)
		case "die":
			fmt.Fprintln(os.Stderr, "dying on purpose")
			os.Exit(3)
		}
	})
	if err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func start(t *testing.T, fns ...string) runtime.Runtime {
	t.Helper()
	desc := &descriptor.Descriptor{Name: "t", Platform: descriptor.PlatformHTTP}
	for _, f := range fns {
		desc.Functions = append(desc.Functions, descriptor.Function{Name: f, Fn: strconv.Quote(os.Args[0])})
	}
	t.Setenv(envServer, "1")
	rt, err := httprt.Start(t.Context(), runtime.Spec{Deployment: desc, Dir: t.TempDir(), Stderr: io.Discard})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // generous: processes stop slowly on a loaded machine
		defer cancel()
		if err := rt.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return rt
}

func invoke(rt runtime.Runtime, fn, contentType, data string) (runtime.Result, error) {
	e := envelope.New("/test", "com.example.test")
	e.SetExtension("tenant", "acme ünïcode")
	if err := e.SetData(contentType, []byte(data)); err != nil {
		panic(err)
	}
	d := envelope.Delivery{Event: e, Stream: "orders", Partition: 2, Offset: 42}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return rt.Invoke(ctx, runtime.Invocation{Function: fn, Events: []envelope.Delivery{d}, Deadline: time.Now().Add(5 * time.Second)}, runtimetest.NewTestHost(nil))
}

func TestBinaryMode(t *testing.T) {
	rt := start(t, "headers")
	res, err := invoke(rt, "headers", "text/csv", "a,b")
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	var h map[string]string
	if err := json.Unmarshal(res.Data, &h); err != nil {
		t.Fatalf("result %s: %v", res.Data, err)
	}
	want := map[string]string{
		"body": "a,b", "content-type": "text/csv", "ce-specversion": "1.0", "ce-source": "/test",
		"ce-type": "com.example.test", "ce-stream": "orders", "ce-partition": "2", "ce-offset": "42",
		"ce-tenant": "acme %C3%BCn%C3%AFcode",
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("header %s = %q, want %q", k, h[k], v)
		}
	}
	if h["butter-invocation"] == "" {
		t.Error("no Butter-Invocation header")
	}
	if _, err := time.Parse(time.RFC3339Nano, h["butter-deadline"]); err != nil {
		t.Errorf("Butter-Deadline %q: %v", h["butter-deadline"], err)
	}
}

func TestStatus(t *testing.T) {
	rt := start(t, "status")
	for _, tc := range []struct {
		code      int
		fail      bool
		permanent bool
	}{{200, false, false}, {204, false, false}, {422, true, true}, {404, true, true}, {500, true, false}, {503, true, false}} {
		res, err := invoke(rt, "status", "text/plain", strconv.Itoa(tc.code))
		var fe *runtime.FunctionError
		switch {
		case !tc.fail && err != nil:
			t.Errorf("%d: error %v", tc.code, err)
		case !tc.fail && tc.code == 204 && res.Data != nil:
			t.Errorf("204 gave result %q", res.Data)
		case tc.fail && !errors.As(err, &fe):
			t.Errorf("%d: error %v, want a FunctionError", tc.code, err)
		case tc.fail && (fe.Permanent != tc.permanent || !strings.Contains(fe.Message, "answered")):
			t.Errorf("%d: %+v, want permanent %v and the body as message", tc.code, fe, tc.permanent)
		}
	}
}

func TestRestartAfterDeath(t *testing.T) {
	rt := start(t, "die")
	for i := range 2 {
		_, err := invoke(rt, "die", "text/plain", "x")
		var fe *runtime.FunctionError
		if !errors.As(err, &fe) || fe.Permanent || !strings.Contains(fe.Message, "dying on purpose") {
			t.Fatalf("call %d: error %v, want a retryable FunctionError with the last stderr line", i, err)
		}
	}
}
