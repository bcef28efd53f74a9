package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Peers of the gateway, measured with the same load client in the same
// run: OpenFaaS's of-watchdog in http mode in front of a Go echo server
// (e2e/cmd/bench-echo), and that echo server called directly.
const (
	peerWatchdog = "of-watchdog → Go echo"
	peerDirect   = "direct Go echo"
	// watchdogModule is the vendored of-watchdog, its own module, relative
	// to the e2e module's directory.
	watchdogModule = "third_party/of-watchdog"
	// unitTimes is the unit of the ratio rows.
	unitTimes = "×"
)

// PeerP50Row names the 1-client p50 row of peer.
func PeerP50Row(peer string) string { return peer + " p50, 1 client" }

// PeerP99Row names the 1-client p99 row of peer.
func PeerP99Row(peer string) string { return peer + " p99, 1 client" }

// PeerRateRow names the throughput row of peer with clients clients.
func PeerRateRow(peer string, clients int) string {
	return fmt.Sprintf("%s, %d clients", peer, clients)
}

// PeerLoadP99Row names the p99 row of peer with clients clients.
func PeerLoadP99Row(peer string, clients int) string {
	return fmt.Sprintf("%s p99, %d clients", peer, clients)
}

// measurePeers builds of-watchdog (vendored under e2e/third_party) and the
// Go echo server, runs the bench's load client against of-watchdog in http
// mode in front of the echo server, and against a second echo server
// directly, and writes their rows; when the butter up rows are in the
// report (measured just before) it adds gateway ÷ peer ratios.
func measurePeers(ctx context.Context, env *Env, rep *Report) error {
	cfg := env.Config
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.FnTimeout+time.Minute,
		fmt.Errorf("the peer measurement took longer than %s (Config.FnTimeout and a minute to build)", cfg.FnTimeout+time.Minute))
	defer cancel()
	echo, err := env.build(ctx, "bench-echo", "github.com/buttercompass/butter/e2e/cmd/bench-echo")
	if err != nil {
		return err
	}
	watchdog, err := env.buildWatchdog(ctx)
	if err != nil {
		return err
	}

	direct, err := measurePeer(ctx, cfg, peerDirect, func(port int) *exec.Cmd {
		return exec.Command(echo, "-addr", fmt.Sprintf("127.0.0.1:%d", port))
	})
	if err != nil {
		return err
	}
	metrics, err := freePort()
	if err != nil {
		return err
	}
	upstream, err := freePort()
	if err != nil {
		return err
	}
	wd, err := measurePeer(ctx, cfg, peerWatchdog, func(port int) *exec.Cmd {
		cmd := exec.Command(watchdog)
		cmd.Env = append(os.Environ(), "mode=http", fmt.Sprintf("port=%d", port), fmt.Sprintf("metrics_port=%d", metrics),
			fmt.Sprintf("upstream_url=http://127.0.0.1:%d", upstream),
			fmt.Sprintf("fprocess=%s -addr 127.0.0.1:%d", echo, upstream),
			"exec_timeout=10s", "read_timeout=10s", "write_timeout=10s",
			// Stop within moments of SIGTERM (the default waits
			// write_timeout before draining).
			"healthcheck_interval=100ms")
		return cmd
	})
	if err != nil {
		return err
	}

	rep.Note(fmt.Sprintf("**%s**, **%s**: peers run beside the gateway with the same load client and counts. "+
		"`of-watchdog` is OpenFaaS's of-watchdog (vendored at `e2e/%s`, built with the Go toolchain for the run) "+
		"in http mode (`mode=http`, `upstream_url` and `fprocess` naming a Go echo server, `e2e/cmd/bench-echo`, which "+
		"it starts and forwards every request to); `direct` calls such an echo server itself. The ratio rows divide the "+
		"butter up gateway's figure by the peer's, from the same run: for latencies below 1 the gateway is faster, for "+
		"the rate above 1 it serves more.", peerWatchdog, peerDirect, watchdogModule))
	rows := append(peerRows(cfg, peerWatchdog, wd), peerRows(cfg, peerDirect, direct)...)
	if err := rep.Add(rows...); err != nil {
		return err
	}
	return rep.Add(ratioRows(rep, cfg, []string{peerWatchdog, peerDirect})...)
}

// peerRows are the rows of one peer: nothing bounds them, they are
// compared with the gateway in the ratio rows.
func peerRows(cfg Config, peer string, f loadFigures) []Row {
	return []Row{
		{Name: PeerP50Row(peer), Value: ms(percentile(f.one, 0.50)), Unit: UnitMilliseconds, NoLimit: true, Count: len(f.one)},
		{Name: PeerP99Row(peer), Value: ms(percentile(f.one, 0.99)), Unit: UnitMilliseconds, NoLimit: true, Count: len(f.one)},
		{Name: PeerRateRow(peer, cfg.GatewayClients), Value: f.rate(), Unit: UnitRequestsPerSecond, NoLimit: true, Count: len(f.load)},
		{Name: PeerLoadP99Row(peer, cfg.GatewayClients), Value: ms(percentile(f.load, 0.99)), Unit: UnitMilliseconds, NoLimit: true, Count: len(f.load)},
	}
}

// ratioRows divide the butter up gateway's rows by each peer's, for the
// rows both have; none when butter up was not measured in this run.
func ratioRows(rep *Report, cfg Config, peers []string) []Row {
	pairs := []struct{ what, gateway string }{
		{"p50, 1 client", RowUpP50},
		{"p99, 1 client", RowUpP99},
		{fmt.Sprintf("requests/s, %d clients", cfg.GatewayClients), UpRateRow(cfg.GatewayClients)},
		{fmt.Sprintf("p99, %d clients", cfg.GatewayClients), UpLoadP99Row(cfg.GatewayClients)},
	}
	var rows []Row
	for _, peer := range peers {
		names := []string{PeerP50Row(peer), PeerP99Row(peer), PeerRateRow(peer, cfg.GatewayClients), PeerLoadP99Row(peer, cfg.GatewayClients)}
		for i, p := range pairs {
			g, ok := rep.Row(p.gateway)
			pr, ok2 := rep.Row(names[i])
			if !ok || !ok2 || pr.Value == 0 {
				continue
			}
			rows = append(rows, Row{Name: fmt.Sprintf("gateway via butter up ÷ %s, %s", peer, p.what),
				Value: g.Value / pr.Value, Unit: unitTimes, NoLimit: true, Count: g.Count})
		}
	}
	return rows
}

// measurePeer starts the server cmd(port) makes on a free port, waits
// until it echoes, measures it with the load client and stops it.
func measurePeer(ctx context.Context, cfg Config, peer string, cmd func(port int) *exec.Cmd) (loadFigures, error) {
	port, err := freePort()
	if err != nil {
		return loadFigures{}, err
	}
	p, err := startGroup(peer, cmd(port), 20)
	if err != nil {
		return loadFigures{}, err
	}
	figs, err := func() (loadFigures, error) {
		c := newCaller(fmt.Sprintf("http://127.0.0.1:%d/", port), cfg.GatewayClients, cfg.ReplyTimeout, []byte(gatewayBody))
		defer c.hc.CloseIdleConnections()
		if err := c.waitRoute(ctx, cfg.ReplyTimeout); err != nil {
			return loadFigures{}, fmt.Errorf("%s: %w%s", peer, err, p.logs)
		}
		figs, err := measureLoad(ctx, cfg, c)
		if err != nil {
			return loadFigures{}, fmt.Errorf("%s: %w%s", peer, err, p.logs)
		}
		return figs, nil
	}()
	return figs, errors.Join(err, p.stop())
}

// buildWatchdog builds the vendored of-watchdog, once per run. It is a
// module of its own with its dependencies in its vendor directory, outside
// the workspace, so it builds with GOWORK=off and -mod=vendor.
func (e *Env) buildWatchdog(ctx context.Context) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if bin, ok := e.built["of-watchdog"]; ok {
		return bin, nil
	}
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/buttercompass/butter/e2e").Output()
	if err != nil {
		return "", fmt.Errorf("find the e2e module (run the bench inside the butter workspace, with Go on PATH): %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), watchdogModule)
	bin := filepath.Join(e.work, "bin", "of-watchdog")
	cmd := exec.CommandContext(ctx, "go", "build", "-mod=vendor", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build of-watchdog in %s: %w\n%s", dir, err, out)
	}
	if e.built == nil {
		e.built = map[string]string{}
	}
	e.built["of-watchdog"] = bin
	return bin, nil
}

// freePort returns a TCP port of 127.0.0.1 nothing listened on a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
