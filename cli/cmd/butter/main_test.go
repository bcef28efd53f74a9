package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit/kittest"
)

var butterBin, attackerBin string

func TestMain(m *testing.M) {
	// No fnbox binary is built: butter up's deployer runs instances as
	// `butter fnbox`, so every test here also proves that a lone butter
	// binary is the whole platform.
	kittest.MainWithBinaries(m,
		kittest.Binary{Pkg: ".", Name: "butter", Path: &butterBin},
		kittest.Binary{Pkg: "testdata/attacker", Name: "attacker", Path: &attackerBin})
}

// result is what one butter run printed and how it exited.
type result struct {
	stdout, stderr string
	code           int
}

// butter runs the butter binary with stdin and waits for it, a minute at
// most.
func butter(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runButter(t, time.Minute, stdin, args...)
}

// runButter runs the butter binary with stdin and waits for it, killing it
// after timeout.
func runButter(t *testing.T, timeout time.Duration, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, butterBin, args...)
	cmd.Env = append(os.Environ(), "BUTTER_BROKERS=") // only flags count
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run butter %v: %v", args, err)
	}
	return r
}

// platform is the `butter up` of one test: its addresses, its data dir
// and the process.
type platform struct {
	t                         *testing.T
	broker, deployer, gateway string
	data                      string
	up                        *exec.Cmd
}

// startPlatform starts butter up on free ports and a fresh data dir, with
// extra flags, and returns once it serves.
func startPlatform(t *testing.T, extra ...string) *platform {
	t.Helper()
	return startPlatformEnv(t, nil, extra...)
}

// startPlatformEnv is startPlatform with env added to butter up's
// environment.
func startPlatformEnv(t *testing.T, env []string, extra ...string) *platform {
	t.Helper()
	p := &platform{t: t, broker: freeAddr(t), deployer: freeAddr(t), gateway: freeAddr(t), data: t.TempDir()}
	p.up, _ = startButterEnv(t, env, "Ctrl-C stops", append([]string{"up", "--data", p.data, "--broker-addr", p.broker,
		"--admin-addr", "", "--deployer-addr", p.deployer, "--gateway-addr", p.gateway, "--loadmon-addr", "127.0.0.1:0", "--bridge-addr", "127.0.0.1:0"}, extra...)...)
	return p
}

// clientConfig is the admin login the platform wrote.
func (p *platform) clientConfig() string { return filepath.Join(p.data, "client.properties") }

// run runs a client command against the platform, logged in as its admin,
// killing it after timeout.
func (p *platform) run(timeout time.Duration, stdin string, args ...string) result {
	p.t.Helper()
	return runButter(p.t, timeout, stdin, append(args, "--brokers", p.broker, "--client-config", p.clientConfig())...)
}

// must runs a client command and fails the test unless it exits 0.
func (p *platform) must(stdin string, args ...string) result {
	p.t.Helper()
	r := p.run(time.Minute, stdin, args...)
	if r.code != 0 {
		p.t.Fatalf("butter %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// deployer runs a command of the deployer API (deploy, ls, get, rm,
// replay) and fails the test unless it exits 0.
func (p *platform) deployerCmd(args ...string) result {
	p.t.Helper()
	return p.must("", append(args, "--deployer", "http://"+p.deployer)...)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startButter starts a long-running butter command (up, broker), waits for
// the line containing ready on stdout and returns the process; it is
// stopped with SIGINT at cleanup.
func startButter(t *testing.T, ready string, args ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	return startButterEnv(t, nil, ready, args...)
}

// startButterEnv is startButter with env added to the environment.
func startButterEnv(t *testing.T, env []string, ready string, args ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(butterBin, args...)
	// Services a test does not place get random ports, so tests never
	// collide with each other or with a platform running on the machine.
	cmd.Env = append(os.Environ(), "BUTTER_BROKERS=", "BUTTER_GATEWAY_ADDR=127.0.0.1:0", "BUTTER_TIMER_ADDR=127.0.0.1:0", "BUTTER_TRACER_ADDR=127.0.0.1:0")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState != nil {
			return
		}
		// A clean stop stops the deployer's fnbox instances too; SIGKILL
		// would leave them running for a next deployer to adopt.
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(kittest.Timeout):
			t.Errorf("butter %v did not stop within %s of SIGINT; killing it", args, kittest.Timeout)
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
		}
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.Contains(sc.Text(), ready) {
			return cmd, sc
		}
	}
	t.Fatalf("butter %v exited before printing %q", args, ready)
	return nil, nil
}

func TestHelpOnEveryCommand(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"up", "--help"}, {"broker", "--help"}, {"stream", "--help"},
		{"stream", "create", "--help"}, {"stream", "ls", "--help"}, {"stream", "tail", "--help"},
		{"publish", "--help"}, {"validate", "--help"}, {"deploy", "--help"}, {"ls", "--help"},
		{"get", "--help"}, {"rm", "--help"}, {"replay", "--help"}, {"logs", "--help"}, {"fn", "test", "--help"},
	} {
		r := butter(t, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("butter %v: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
}

func TestErrorsExitNonZero(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nosuch"}, `unknown command "nosuch"`},
		{[]string{"stream", "create"}, "accepts 1 arg"},
		{[]string{"stream", "create", "Bad Name"}, "stream names are"},
		{[]string{"stream", "create", "_butter.mine"}, "belong to the platform"},
		{[]string{"stream", "create", "x", "--retention", "forever"}, "--retention"},
		{[]string{"stream", "tail", "x", "--from", "yesterday"}, `--from "yesterday"`},
		{[]string{"validate", "testdata/missing.yaml"}, "missing.yaml"},
	} {
		r := butter(t, "", tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("butter %v: exit %d, stderr %q, want non-zero and %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	r := butter(t, "", "validate", "testdata/design-example.yaml")
	if r.code != 0 || !strings.Contains(r.stdout, `deployment "orders" is valid`) {
		t.Fatalf("design example: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = butter(t, "", "validate", "testdata/bad.yaml")
	if r.code != 1 {
		t.Fatalf("bad descriptor: exit %d, want 1\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		"testdata/bad.yaml:1:7 name:",
		"testdata/bad.yaml:2:11 platform:",
		`testdata/bad.yaml:8:19 functions[0].bindings.streams[0].offset: "frist" is not first, latest, a number, an RFC 3339 time or a partition map`,
		"testdata/bad.yaml:9:12 functions[0].bindings.out:",
		"testdata/bad.yaml:10:26 functions[0].delivery.retries:",
		"testdata/bad.yaml:10:40 functions[0].delivery.ordering:",
		"testdata/bad.yaml:11:5 functions[0].colour:",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("missing problem %q in\n%s", want, r.stderr)
		}
	}
}

// TestExamplesValidate keeps every example descriptor in the repository
// valid.
func TestExamplesValidate(t *testing.T) {
	files, err := filepath.Glob("../../../examples/*/butter.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, f := range files {
		if r := butter(t, "", "validate", f); r.code != 0 {
			t.Errorf("%s: exit %d\n%s", f, r.code, r.stderr)
		}
	}
}

// TestPublishTailKcat round-trips CloudEvents through publish and tail on
// the embedded broker, and checks that kcat, an outside Kafka client, sees
// the attributes as ce_* headers.
func TestPublishTailKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is needed as the outside Kafka client: apt-get install -y kcat")
	}
	addr := freeAddr(t)
	data := t.TempDir()
	props := filepath.Join(data, "client.properties")
	startButter(t, "broker listening on", "broker", "--addr", addr, "--data", data, "--admin", "")
	b := func(stdin string, args ...string) result {
		return butter(t, stdin, append(args, "--brokers", addr, "--client-config", props)...)
	}

	if r := b("", "publish", "orders", "{}"); r.code == 0 || !strings.Contains(r.stderr, `stream "orders" does not exist`) {
		t.Fatalf("publish to a missing stream: %+v", r)
	}
	if r := b("", "stream", "create", "orders", "--partitions", "2"); r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	if r := b("", "stream", "create", "orders"); r.code == 0 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("create twice: %+v", r)
	}
	r := b("", "publish", "orders", `{"total":42}`, "--type", "com.example.order.created",
		"--source", "/shop", "--subject", "order-7", "--key", "customer-1")
	if r.code != 0 || !strings.Contains(r.stdout, "published ") {
		t.Fatalf("publish: %+v", r)
	}
	id := strings.Fields(r.stdout)[1]

	r = b("", "stream", "tail", "orders", "--from", "first", "-n", "1", "-o", "json")
	if r.code != 0 {
		t.Fatalf("tail: %+v", r)
	}
	var line struct {
		Stream    string `json:"stream"`
		Partition int32  `json:"partition"`
		Offset    int64  `json:"offset"`
		Event     struct {
			ID, Source, Type, Subject, Datacontenttype, Partitionkey string
			Data                                                     map[string]int
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &line); err != nil {
		t.Fatalf("tail -o json: %v\n%s", err, r.stdout)
	}
	ev := line.Event
	if line.Stream != "orders" || line.Offset != 0 || ev.ID != id || ev.Source != "/shop" || ev.Type != "com.example.order.created" ||
		ev.Subject != "order-7" || ev.Partitionkey != "customer-1" || ev.Datacontenttype != "application/json" || ev.Data["total"] != 42 {
		t.Fatalf("tail returned %+v", line)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kcat, "-F", props, "-C", "-t", "orders", "-p", fmt.Sprint(line.Partition),
		"-o", "beginning", "-c", "1", "-e", "-f", "%k|%h|%s\n").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat consume: %v\n%s", err, out)
	}
	for _, want := range []string{"customer-1|", "ce_specversion=1.0", "ce_id=" + id, "ce_source=/shop",
		"ce_type=com.example.order.created", "ce_subject=order-7", "ce_partitionkey=customer-1",
		"content-type=application/json", `|{"total":42}`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kcat output lacks %q:\n%s", want, out)
		}
	}

	// JSON lines on stdin: the bad line is reported by number, the others
	// are still written.
	r = b("{\"n\":1}\nnot json\n{\"n\":2}\n\n{\"n\":3}\n", "publish", "orders", "-")
	if r.code == 0 || !strings.Contains(r.stdout, "3 events acknowledged on orders, 1 rejected") || !strings.Contains(r.stderr, "stdin:2:") {
		t.Fatalf("publish -: %+v", r)
	}
	r = b("", "stream", "ls")
	if r.code != 0 || !regexp.MustCompile(`(?m)^orders\s+2\s+4\s+`).MatchString(r.stdout) || strings.Contains(r.stdout, "_butter.") {
		t.Fatalf("stream ls: %+v", r)
	}
	if r = b("", "stream", "ls", "--all"); !strings.Contains(r.stdout, "_butter.deployments") {
		t.Fatalf("stream ls --all: %+v", r)
	}
}

// TestUp starts the platform the way `make run` does and stops it with
// Ctrl-C (SIGINT).
func TestUp(t *testing.T) {
	addr := freeAddr(t)
	data := t.TempDir()
	cmd, sc := startButter(t, "admin on http://", "up", "--data", data, "--broker-addr", addr, "--admin-addr", "127.0.0.1:0", "--deployer-addr", "127.0.0.1:0", "--bridge-addr", "127.0.0.1:0")
	admin := strings.Fields(strings.TrimPrefix(sc.Text(), "admin on "))[0]
	if !sc.Scan() || sc.Text() != "butter is up" {
		t.Fatalf("up printed %q, want butter is up", sc.Text())
	}
	if !sc.Scan() || !strings.Contains(sc.Text(), "broker    "+addr+" (embedded, data "+filepath.Join(data, "broker")+")") {
		t.Fatalf("up printed %q, want the broker address", sc.Text())
	}
	if r := butter(t, "", "stream", "ls", "--all", "--brokers", addr, "--client-config", filepath.Join(data, "client.properties")); r.code != 0 || !strings.Contains(r.stdout, "_butter.events") {
		t.Fatalf("stream ls against butter up: %+v", r)
	}
	for path, want := range map[string]string{"/livez": "", "/readyz": `"ready"`, "/metrics": "go_goroutines"} {
		resp, err := http.Get(admin + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
		}
	}
	cmd.Process.Signal(os.Interrupt)
	for sc.Scan() {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("butter up after Ctrl-C: %v", err)
	}
}
