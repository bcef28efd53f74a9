package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestServices runs the gateway and timer measurements at a tiny size on a
// real broker, with a real gateway, fnbox (node) and timer in-process, a
// real `butter up` and the real of-watchdog and echo server beside, and
// checks each row is there, is compared with the right raw row (or none)
// and counted what it should.
func TestServices(t *testing.T) {
	// Minutes: butter is built for the run and `butter up` deploys a route.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cfg := QuickConfig()
	cfg.Events, cfg.Requests, cfg.Warmup = 200, 20, 2
	cfg.GatewayClients, cfg.GatewayLoad, cfg.TimerTicks = 8, 40, 2
	cfg.TempDir = t.TempDir()
	cfg.Extra = Services()
	cfg.Progress = &progressLog{t: t, start: time.Now()}

	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		name, limit string
		count       int
	}{
		{RowGatewayP50, RowReplyP50, cfg.Requests},
		{RowGatewayP99, RowReplyP99, cfg.Requests},
		{GatewayRateRow(cfg.GatewayClients), "", cfg.GatewayLoad},
		{GatewayLoadP50Row(cfg.GatewayClients), RowReplyP50, cfg.GatewayLoad},
		{GatewayLoadP99Row(cfg.GatewayClients), RowReplyP99, cfg.GatewayLoad},
		{RowUpP50, RowReplyP50, cfg.Requests},
		{RowUpP99, RowReplyP99, cfg.Requests},
		{UpRateRow(cfg.GatewayClients), "", cfg.GatewayLoad},
		{UpLoadP50Row(cfg.GatewayClients), RowReplyP50, cfg.GatewayLoad},
		{UpLoadP99Row(cfg.GatewayClients), RowReplyP99, cfg.GatewayLoad},
		{PeerP50Row(peerWatchdog), "", cfg.Requests},
		{PeerRateRow(peerWatchdog, cfg.GatewayClients), "", cfg.GatewayLoad},
		{PeerLoadP99Row(peerDirect, cfg.GatewayClients), "", cfg.GatewayLoad},
		{"gateway via butter up ÷ " + peerWatchdog + ", p50, 1 client", "", cfg.Requests},
		{"gateway via butter up ÷ " + peerDirect + ", requests/s, 8 clients", "", cfg.GatewayLoad},
		{RowTimerLagP50, "", cfg.TimerTicks},
		{RowTimerLagP99, "", cfg.TimerTicks},
		{RowTimerDeliveryP50, RowReplyP50, cfg.TimerTicks},
		{RowTimerDeliveryP99, RowReplyP99, cfg.TimerTicks},
	} {
		row, ok := rep.Row(w.name)
		switch {
		case !ok:
			t.Errorf("no row %q", w.name)
		case !(row.Value > 0):
			t.Errorf("%s: figure %v, want > 0", w.name, row.Value)
		case row.Limit != w.limit || row.NoLimit != (w.limit == ""):
			t.Errorf("%s compares with %q (no limit: %v), want %q", w.name, row.Limit, row.NoLimit, w.limit)
		case row.Count != w.count:
			t.Errorf("%s counted %d, want %d", w.name, row.Count, w.count)
		}
	}
	var md strings.Builder
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"| " + GatewayRateRow(cfg.GatewayClients) + " | ",
		" | requests/s | 40 | — | — |",
		"- **gateway request→response p50, p99**",
		"- **timer fire lag, tick delivery**",
	} {
		if !strings.Contains(md.String(), s) {
			t.Errorf("markdown lacks %q:\n%s", s, md.String())
		}
	}
	t.Log(md.String())
}
