package e2etest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/buttercompass/butter/proto/kit/kittest"

	"github.com/buttercompass/butter/gateway/internal/testutil"
	"github.com/buttercompass/butter/proto/control"
)

// fnboxBin is the real fnbox, built by TestMain.
var fnboxBin string

func TestMain(m *testing.M) {
	kittest.MainWithBinaries(m, kittest.Binary{Pkg: "../../../fnbox/cmd/fnbox", Name: "fnbox", Path: &fnboxBin})
}

func TestHTTPHelloWithRealFnbox(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed: the gateway's end-to-end test runs examples/http-hello on it (.ci/run installs nodejs)")
	}
	_, file, _, _ := runtime.Caller(0)
	example := filepath.Join(filepath.Dir(file), "..", "..", "..", "examples", "http-hello")
	code := t.TempDir()
	for _, f := range []string{control.DescriptorFile, "handler.js"} {
		b, err := os.ReadFile(filepath.Join(example, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(code, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	desc, _ := os.ReadFile(filepath.Join(code, control.DescriptorFile))

	c := testutil.NewCluster(t)
	c.Deploy("hello", string(desc))

	logs := startFnbox(t, code, "hello", "e2e-1", c)

	base := startGateway(t, c)

	kittest.Eventually(t, "fnbox ready", func() error {
		if !strings.Contains(logs.String(), control.ReadyMessage) {
			return fmt.Errorf("no %q yet", control.ReadyMessage)
		}
		return nil
	})
	var res *http.Response
	var body []byte
	kittest.Eventually(t, "POST /hello answered by node", func() error {
		var err error
		res, err = http.Post(base+"/hello", "application/json", strings.NewReader(`{"name":"ada"}`))
		if err != nil {
			return err
		}
		defer res.Body.Close()
		body, _ = io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			return fmt.Errorf("got %d %s", res.StatusCode, body)
		}
		return nil
	})
	var out struct{ Greeting string }
	if err := json.Unmarshal(body, &out); err != nil || out.Greeting != "hello ada" || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %v %s: %v", res.Header, body, err)
	}
	r2, err := http.Get(base + "/hello?name=grace")
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if r2.StatusCode != 200 || !strings.Contains(string(b2), "hello grace") {
		t.Fatalf("GET: %d %s", r2.StatusCode, b2)
	}
	// 200 callers at once: each gets the answer to its own request.
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			name := fmt.Sprintf("caller-%d", i)
			r, err := http.Post(base+"/hello", "application/json", strings.NewReader(`{"name":"`+name+`"}`))
			if err != nil {
				errs <- err
				return
			}
			defer r.Body.Close()
			b, _ := io.ReadAll(r.Body)
			var got struct{ Greeting string }
			if err := json.Unmarshal(b, &got); r.StatusCode != 200 || err != nil || got.Greeting != "hello "+name {
				errs <- fmt.Errorf("%s got %d %s", name, r.StatusCode, b)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	r3, err := http.Post(base+"/hello", "application/json", strings.NewReader(`{not json`))
	if err != nil {
		t.Fatal(err)
	}
	r3.Body.Close()
	if r3.StatusCode != 400 {
		t.Fatalf("bad JSON: %d", r3.StatusCode)
	}
}
