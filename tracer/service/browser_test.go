package service

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
	"github.com/buttercompass/butter/tracer/api"
	"github.com/buttercompass/butter/tracer/internal/testutil"
)

// browser starts Debian's chromium headless and returns a tab's context.
// The test fails without chromium: .ci/run installs it.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the web UI tests need Debian's chromium (apt-get install chromium; .ci/run installs it): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 820), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, 4*kittest.Timeout)
	t.Cleanup(cancelT)
	return ctx
}

// waitText waits until the element sel shows text.
func waitText(t *testing.T, ctx context.Context, sel, text string) {
	t.Helper()
	expr := fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText.includes(%q)`, sel, text)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(kittest.Timeout))); err != nil {
		var now string
		now, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("main").innerText`))
		t.Fatalf("%s never showed %q: %v\npage:\n%s", sel, text, err, now)
	}
}

func goTo(t *testing.T, ctx context.Context, hash string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`location.hash = %q`, hash))); err != nil {
		t.Fatal(err)
	}
}

// screenshot saves the viewport to $BUTTER_SCREENSHOTS/name when set
// (how docs/tracer-*.png are made).
func screenshot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("BUTTER_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWebUIInChromium drives the web UI in chromium against a tracer
// indexing real records: the overview, a deployment with live logs, a
// trace waterfall used with the keyboard, a lineage tree, the
// platform-event timeline and the trace list.
func TestWebUIInChromium(t *testing.T) {
	t.Parallel()
	brokers := testutil.Broker(t)
	seed := testutil.Produce(t, brokers, testutil.Sizes{Traces: 4, Chains: 2, Logs: 20})
	url := start(t, brokers)
	// Pages that load once (a trace, a lineage) need their data indexed.
	kittest.Eventually(t, "the seed is indexed", func() error {
		var tr api.Trace
		var l api.Lineage
		var pes api.Page[api.PlatformEvent]
		testutil.Get(t, url+"/v1/traces/"+seed.ErrorTrace, &tr)
		testutil.Get(t, url+"/v1/lineage?stream=priced&id="+seed.Chains[0][1], &l)
		testutil.Get(t, url+"/v1/platform-events", &pes)
		if len(tr.Spans) != 3 || len(l.Descendants) != 2 || len(l.Ancestors) != 1 || len(pes.Items) != 2 {
			return fmt.Errorf("%d spans, %d ancestors and %d descendants, %d platform events", len(tr.Spans), len(l.Ancestors), len(l.Descendants), len(pes.Items))
		}
		return nil
	})
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(url+"/")); err != nil {
		t.Fatal(err)
	}

	waitText(t, ctx, "main table", "shop")
	waitText(t, ctx, "main table", "orders → priced")
	waitText(t, ctx, "main table", "priced → shipped")
	screenshot(t, ctx, "tracer-overview.png")

	goTo(t, ctx, "#/deployment/shop")
	waitText(t, ctx, "main", "priced.dlq")
	waitText(t, ctx, "main", "TypeError: price is undefined")
	cl := testutil.Client(t, brokers)
	r, err := obs.Log{Deployment: "shop", Function: "ship", Level: obs.LevelWarn, Message: "a line logged while the page is open",
		Time: time.Now()}.Record(topics.Logs)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "ol.log", "a line logged while the page is open")

	goTo(t, ctx, "#/trace/"+seed.ErrorTrace)
	waitText(t, ctx, ".waterfall", "invoke price")
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(".waterfall tbody tr").length`))
	if err != nil || rows != 3 {
		t.Errorf("waterfall rows = %d (%v), want 3 spans", rows, err)
	}
	// Keyboard: focus the span's button and press Enter for its attributes.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
		`[...document.querySelectorAll(".waterfall button")].find((b) => b.textContent === "invoke price").focus() || true`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, `section[aria-label="Span details"]`, "butter.deployment")
	waitText(t, ctx, `section[aria-label="Span details"]`, "exception")
	screenshot(t, ctx, "tracer-trace.png")

	goTo(t, ctx, "#/lineage?stream=priced&id="+seed.Chains[0][1])
	waitText(t, ctx, "ul.tree", "dead letter of shop/ship: TypeError: price is undefined")
	waitText(t, ctx, "ul.tree", seed.Chains[0][2])
	waitText(t, ctx, "ul.tree", seed.Chains[0][0])

	goTo(t, ctx, "#/events")
	waitText(t, ctx, "main", "deployment.create.completed")
	waitText(t, ctx, "main", "deployment/shop")

	goTo(t, ctx, "#/traces?status=error")
	waitText(t, ctx, "main table", "POST /orders")

	// The stream browser: streams, then the dead letter's attributes and
	// data, opened with the keyboard.
	goTo(t, ctx, "#/streams")
	waitText(t, ctx, "main table", "priced.dlq")
	var l api.Lineage
	testutil.Get(t, url+"/v1/lineage?stream=priced&id="+seed.Chains[0][1], &l)
	var part int32
	for _, d := range l.Descendants {
		if d.Stream == "priced.dlq" {
			part = d.Partition
		}
	}
	goTo(t, ctx, fmt.Sprintf("#/stream/priced.dlq?partition=%d&offset=0", part))
	waitText(t, ctx, "main table", seed.Chains[0][1])
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("main table tbody button").focus() || true`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, `section[aria-label="Event details"]`, "butterdlqerror")
	waitText(t, ctx, `section[aria-label="Event details"]`, `"id": "`+seed.Chains[0][1]+`"`)
}
