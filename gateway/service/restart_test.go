package service

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/buttercompass/butter/gateway/internal/httpevent"
	"github.com/buttercompass/butter/gateway/internal/testutil"
	"github.com/buttercompass/butter/proto/kit/kittest"
)

// TestAsyncAnsweredWhileDown: a request answered while the gateway was
// down, and past its deadline when it comes back, is stored with its
// reply, not expired with a 504 before the replies are read again.
func TestAsyncAnsweredWhileDown(t *testing.T) {
	c := testutil.NewCluster(t)
	c.Deploy("hello", helloYAML)
	// A takeover delay longer than the janitor's tick: the request was
	// accepted by another incarnation, so before the fix its reply waited
	// the delay while the janitor expired it.
	long := func(cfg *Config) { cfg.Takeover = 2 * time.Second }
	g := startGateway(t, c, long)
	ready(t, g.url+"/hello/slow") // 504s: nobody answers yet

	r := call(t, "POST", g.url+"/hello/slow", []byte("hi"), map[string]string{"Prefer": "respond-async"})
	if r.code != http.StatusAccepted {
		t.Fatalf("accept: got %d %s", r.code, r.body)
	}
	accepted := time.Now()
	g.stop()

	answered := make(chan struct{}, 1)
	c.Respond("hello", "slow", "fn", func(httpevent.Request, event.Event) (any, error) {
		defer func() {
			select {
			case answered <- struct{}{}:
			default:
			}
		}()
		return map[string]any{"status": 200, "body": "late but real"}, nil
	})
	select {
	case <-answered:
	case <-time.After(testutil.Timeout):
		t.Fatal("no reply")
	}
	// Past the deadline (300ms) and the takeover delay.
	kittest.Eventually(t, "deadline and takeover passed", func() error {
		if time.Since(accepted) < 2500*time.Millisecond {
			return errors.New("not yet")
		}
		return nil
	})

	g2 := startGateway(t, c, long)
	p := pollAsync(t, g2.url+r.hdr.Get("Location"))
	if p.code != 200 || !strings.Contains(string(p.body), "late but real") {
		t.Fatalf("polled %d %s", p.code, p.body)
	}
}
