package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/buttercompass/butter/proto/kit/kittest"
)

// TestWebhookExample runs examples/webhook on butter up as its README
// does: a signed webhook is accepted, summarised by the python function
// and posted by the bridge's HTTP sink to a receiver as a CloudEvent; an
// unsigned one is refused with 401 and reaches nobody.
func TestWebhookExample(t *testing.T) {
	t.Parallel()
	var (
		mu  sync.Mutex
		got []http.Header
		raw []string
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, raw = append(got, r.Header.Clone()), append(raw, string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)

	// The example, its sink pointed at the receiver.
	dir := t.TempDir()
	copyDir(t, "../../../examples/webhook", dir)
	desc := filepath.Join(dir, "butter.yaml")
	b, err := os.ReadFile(desc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "http://127.0.0.1:9999/in") {
		t.Fatalf("examples/webhook no longer posts to http://127.0.0.1:9999/in:\n%s", b)
	}
	writeFile(t, desc, strings.ReplaceAll(string(b), "http://127.0.0.1:9999/in", receiver.URL+"/in"))

	bridge := freeAddr(t)
	p := startPlatform(t, "--bridge-addr", bridge)
	p.deployerCmd("deploy", dir)

	url := "http://" + bridge + "/v1/webhooks/hooks/github"
	body := `{"ref":"refs/heads/main","commits":[{},{}]}`
	post := func(sign bool) (int, string) {
		body := body
		if !sign {
			body = `{"ref":"refs/heads/unsigned","commits":[]}`
		}
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if sign {
			mac := hmac.New(sha256.New, []byte("change-me"))
			mac.Write([]byte(body))
			req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	kittest.Eventually(t, "the bridge accepts the signed webhook", func() error {
		if code, msg := post(true); code != http.StatusAccepted {
			return fmt.Errorf("signed POST = %d %s", code, msg)
		}
		return nil
	})
	if code, msg := post(false); code != http.StatusUnauthorized {
		t.Errorf("unsigned POST = %d %s, want 401", code, msg)
	}

	kittest.Eventually(t, "the receiver gets the summary as a CloudEvent", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) == 0 {
			return fmt.Errorf("nothing received yet")
		}
		var summary struct {
			Type    string
			Ref     string
			Commits int
		}
		if err := json.Unmarshal([]byte(raw[0]), &summary); err != nil || summary.Ref != "refs/heads/main" || summary.Commits != 2 ||
			summary.Type != "com.github.push" || got[0].Get("Ce-Specversion") != "1.0" || got[0].Get("Ce-Id") == "" {
			return fmt.Errorf("received %s with headers %v", raw[0], got[0])
		}
		return nil
	})
	// Besides the 401: no summary of the unsigned webhook reached the
	// receiver by the time the signed one's did.
	mu.Lock()
	defer mu.Unlock()
	for _, r := range raw {
		if strings.Contains(r, "unsigned") {
			t.Errorf("the receiver got the unsigned webhook's summary: %s", r)
		}
	}
}
