package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit/kittest"
)

// runEnv runs the butter binary with env added and nothing else: no
// --brokers, no --deployer, so only the client context can point it at a
// platform. Settings of the machine that would point elsewhere are
// cleared.
func runEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, butterBin, args...)
	cmd.Env = append(os.Environ(), "BUTTER_BROKERS=", "BUTTER_DEPLOYER=", "BUTTER_TIMER=", "BUTTER_TRACER=",
		"BUTTER_GATEWAY=", "BUTTER_LOADMON=", "BUTTER_CONTEXT=", "BUTTER_DATA=", "BUTTER_CLIENT_CONFIG=")
	cmd.Env = append(cmd.Env, env...)
	cmd.Dir = t.TempDir() // no ./.butter of the developer's
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

// jsonOut decodes a command's -o json output into v, failing the test
// with the output when it is not.
func jsonOut(t *testing.T, r result, v any) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
}

// TestClientContext starts butter up on other ports than the defaults,
// with BUTTER_BROKERS exported to a cluster that does not exist (a client
// setting up must not follow), and points client commands at it with one
// setting: BUTTER_CONTEXT, --context, or --data.
func TestClientContext(t *testing.T) {
	t.Parallel()
	p := startPlatformEnv(t, []string{"BUTTER_BROKERS=127.0.0.1:1"}, "--tracer-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
	path := filepath.Join(p.data, "context.json")
	var c struct {
		Brokers                  []string
		ClientConfig             string
		Deployer, Gateway, Timer string
		Tracer, Loadmon, Bridge  string
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("butter up wrote no context: %v", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("context.json: %v\n%s", err, b)
	}
	if len(c.Brokers) != 1 || c.Brokers[0] != p.broker || c.Deployer != "http://"+p.deployer || c.Gateway != "http://"+p.gateway || c.Bridge == "" ||
		c.ClientConfig != "client.properties" || !strings.HasPrefix(c.Timer, "http://127.0.0.1:") || !strings.HasPrefix(c.Tracer, "http://127.0.0.1:") {
		t.Fatalf("context.json says\n%s\nwant broker %s, deployer and gateway http://%s, http://%s", b, p.broker, p.deployer, p.gateway)
	}

	for _, how := range []struct {
		name string
		env  []string
		args []string
	}{
		{"BUTTER_CONTEXT", []string{"BUTTER_CONTEXT=" + path}, nil},
		{"--context", nil, []string{"--context", path}},
		{"--data", nil, []string{"--data", p.data}},
		{"BUTTER_DATA", []string{"BUTTER_DATA=" + p.data}, nil},
	} {
		t.Run(how.name, func(t *testing.T) {
			run := func(args ...string) result { return runEnv(t, how.env, append(args, how.args...)...) }
			stream := "ctx-" + strings.ToLower(strings.Trim(how.name, "-_"))
			stream = strings.ReplaceAll(stream, "_", "-")
			if r := run("stream", "create", stream); r.code != 0 {
				t.Fatalf("stream create (Kafka, with the context's login): exit %d\n%s", r.code, r.stderr)
			}
			if r := run("publish", stream, `{"n":1}`); r.code != 0 {
				t.Fatalf("publish: exit %d\n%s", r.code, r.stderr)
			}
			var deps []any
			jsonOut(t, run("ls", "-o", "json"), &deps) // the deployer
			var timers []any
			jsonOut(t, run("timers", "ls", "-o", "json"), &timers) // the timer
			var parts []struct {
				Part, Address string
				Ready         bool
				Detail        string
			}
			jsonOut(t, run("status", "-o", "json"), &parts)
			want := map[string]string{"broker": p.broker, "deployer": "http://" + p.deployer, "gateway": "http://" + p.gateway,
				"timer": c.Timer, "tracer": c.Tracer, "loadmon": c.Loadmon, "bridge": c.Bridge}
			for _, part := range parts {
				if !part.Ready {
					t.Errorf("status: %s at %s not ready: %s", part.Part, part.Address, part.Detail)
				}
				if w, ok := want[part.Part]; ok && part.Address != w {
					t.Errorf("status: %s at %s, want %s", part.Part, part.Address, w)
				}
				delete(want, part.Part)
			}
			if len(want) > 0 {
				t.Errorf("status left out %v", want)
			}
		})
	}

	// host:port is a URL too, and a flag beats the context.
	if r := runEnv(t, nil, "ls", "--data", p.data, "--deployer", p.deployer); r.code != 0 || !strings.Contains(r.stdout, "DEPLOYMENT") {
		t.Fatalf("ls --deployer host:port: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runEnv(t, []string{"BUTTER_CONTEXT=" + path}, "ls", "--deployer", "127.0.0.1:1"); r.code != 1 || !strings.Contains(r.stderr, "reach the deployer at http://127.0.0.1:1") {
		t.Fatalf("ls --deployer beats the context: exit %d\n%s", r.code, r.stderr)
	}
	// A part that does not answer makes status fail, naming it.
	r := runEnv(t, []string{"BUTTER_CONTEXT=" + path}, "status", "--timer", "127.0.0.1:1", "--timeout", "2s")
	if r.code != 1 || !strings.Contains(r.stdout, "NOT READY") || !strings.Contains(r.stderr, "not ready: timer") {
		t.Fatalf("status with the timer down: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// An explicit context that is not there is an error, not the defaults.
	if r := runEnv(t, nil, "ls", "--context", filepath.Join(p.data, "nosuch.json")); r.code != 1 || !strings.Contains(r.stderr, "nosuch.json") {
		t.Fatalf("ls --context missing: exit %d\n%s", r.code, r.stderr)
	}
}

// TestCommandsOutputAndNames runs the data commands with -o json against
// one platform, stream rm, the timers, deploy's replace message, and
// every unknown name, which must exit 1 with a message.
func TestCommandsOutputAndNames(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, "--tracer-addr", "127.0.0.1:0")
	env := []string{"BUTTER_CONTEXT=" + filepath.Join(p.data, "context.json")}
	run := func(args ...string) result { return runEnv(t, env, args...) }
	must := func(args ...string) result {
		t.Helper()
		r := run(args...)
		if r.code != 0 {
			t.Fatalf("butter %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		return r
	}

	t.Run("deploy says what it replaced", func(t *testing.T) {
		dir := t.TempDir()
		copyDir(t, filepath.Join("..", "..", "..", "examples", "http-hello"), dir)
		if r := must("deploy", dir, "--wait=false"); !strings.Contains(r.stdout, "deployed hello version ") || !strings.Contains(r.stdout, "(1 function)") {
			t.Fatalf("first deploy: %s", r.stdout)
		}
		if r := must("deploy", dir, "--wait=false"); !strings.Contains(r.stdout, "again (unchanged)") {
			t.Fatalf("same deploy again: %s", r.stdout)
		}
		f, err := os.OpenFile(filepath.Join(dir, "handler.js"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("\n// a change\n")
		f.Close()
		if r := must("deploy", dir, "--wait=false"); !strings.Contains(r.stdout, "deployed hello: replaced version ") {
			t.Fatalf("changed deploy: %s", r.stdout)
		}
	})

	t.Run("-o json", func(t *testing.T) {
		var deps []struct{ Name, Version string }
		jsonOut(t, run("ls", "-o", "json"), &deps)
		if len(deps) != 1 || deps[0].Name != "hello" || deps[0].Version == "" {
			t.Errorf("ls -o json: %+v", deps)
		}
		var dep struct{ Name string }
		jsonOut(t, run("get", "hello", "-o", "json"), &dep)
		if dep.Name != "hello" {
			t.Errorf("get -o json: %+v", dep)
		}
		must("stream", "create", "things", "--partitions", "2")
		must("publish", "things", `{"n":1}`, "--key", "k")
		var streams []struct {
			Name       string
			Partitions int
			Events     int64
		}
		jsonOut(t, run("stream", "ls", "-o", "json"), &streams)
		found := false
		for _, s := range streams {
			found = found || (s.Name == "things" && s.Partitions == 2 && s.Events == 1)
		}
		if !found {
			t.Errorf("stream ls -o json has no things with 2 partitions and 1 event: %+v", streams)
		}
		var ev struct {
			Stream string
			Event  struct{ Data map[string]int }
		}
		jsonOut(t, run("stream", "tail", "things", "--from", "first", "-n", "1", "-o", "json"), &ev)
		if ev.Stream != "things" || ev.Event.Data["n"] != 1 {
			t.Errorf("stream tail -o json: %+v", ev)
		}
		if r := run("stream", "tail", "things", "--from", "first", "-n", "1", "-o", "yaml"); r.code != 0 || !strings.HasPrefix(r.stdout, "---\n") || !strings.Contains(r.stdout, "stream: things") {
			t.Errorf("stream tail -o yaml: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		var key struct{ ID, Name, Secret string }
		jsonOut(t, run("apikey", "create", "ci", "--scope", "x:read", "-o", "json"), &key)
		if key.ID == "" || key.Name != "ci" || key.Secret == "" {
			t.Errorf("apikey create -o json: %+v", key)
		}
		var keys []struct{ ID, Name, Secret string }
		jsonOut(t, run("apikey", "ls", "-o", "json"), &keys)
		if len(keys) != 1 || keys[0].ID != key.ID || keys[0].Secret != "" {
			t.Errorf("apikey ls -o json: %+v", keys)
		}
		// logs: JSON lines, none yet or some; each one must decode.
		r := run("logs", "hello", "-o", "json")
		if r.code != 0 {
			t.Fatalf("logs -o json: exit %d\n%s", r.code, r.stderr)
		}
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var l struct{ Deployment string }
			if line != "" && (json.Unmarshal([]byte(line), &l) != nil || l.Deployment != "hello") {
				t.Errorf("logs -o json line %q", line)
			}
		}
		if r := run("ls", "-o", "xml"); r.code != 1 || !strings.Contains(r.stderr, `-o "xml"`) {
			t.Errorf("ls -o xml: exit %d\n%s", r.code, r.stderr)
		}
	})

	t.Run("stream rm", func(t *testing.T) {
		must("stream", "create", "scratch")
		if r := must("stream", "rm", "scratch"); !strings.Contains(r.stdout, "deleted stream scratch") {
			t.Fatalf("stream rm: %s", r.stdout)
		}
		kittest.Eventually(t, "scratch gone from stream ls", func() error {
			if r := must("stream", "ls"); strings.Contains(r.stdout, "scratch") {
				return fmt.Errorf("stream ls still lists scratch:\n%s", r.stdout)
			}
			return nil
		})
		if r := run("stream", "rm", "_butter.deployments"); r.code != 1 || !strings.Contains(r.stderr, "belongs to the platform") {
			t.Fatalf("stream rm _butter.deployments: exit %d\n%s", r.code, r.stderr)
		}
		if r := must("stream", "ls", "--all"); !strings.Contains(r.stdout, "_butter.deployments") {
			t.Fatalf("an internal stream went: %s", r.stdout)
		}
	})

	t.Run("timers", func(t *testing.T) {
		var tm struct{ ID, Schedule, Stream, Timezone, Source string }
		jsonOut(t, run("timers", "create", "every-sec", "--schedule", "@every 1s", "--stream", "ticks", "--data", `{"job":"x"}`, "-o", "json"), &tm)
		if tm.ID != "every-sec" || tm.Schedule != "@every 1s" || tm.Stream != "ticks" || tm.Timezone != "UTC" || tm.Source != "api" {
			t.Fatalf("timers create: %+v", tm)
		}
		var list []struct{ ID string }
		jsonOut(t, run("timers", "ls", "-o", "json"), &list)
		if len(list) != 1 || list[0].ID != "every-sec" {
			t.Fatalf("timers ls: %+v", list)
		}
		if r := must("timers", "ls"); !strings.Contains(r.stdout, "every-sec") || !strings.Contains(r.stdout, "@every 1s") {
			t.Fatalf("timers ls: %s", r.stdout)
		}
		// The timer ticks on its stream.
		var tick struct{ Event struct{ Type string } }
		jsonOut(t, run("stream", "tail", "ticks", "--from", "first", "-n", "1", "-o", "json"), &tick)
		if tick.Event.Type != "butter.timer.tick" {
			t.Fatalf("ticks: %+v", tick)
		}
		if r := run("timers", "create", "bad", "--schedule", "every so often", "--stream", "ticks"); r.code != 1 || !strings.Contains(r.stderr, "schedule") {
			t.Fatalf("timers create with a bad schedule: exit %d\n%s", r.code, r.stderr)
		}
		if r := must("timers", "rm", "every-sec"); !strings.Contains(r.stdout, "deleted timer every-sec") {
			t.Fatalf("timers rm: %s", r.stdout)
		}
		jsonOut(t, run("timers", "ls", "-o", "json"), &list)
		if len(list) != 0 {
			t.Fatalf("timers ls after rm: %+v", list)
		}
	})

	t.Run("unknown names", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"logs", "nosuch"}, "no deployment named nosuch"},
			{[]string{"logs", "hello/nosuch"}, "deployment hello has no function nosuch"},
			{[]string{"get", "nosuch"}, "no deployment named nosuch (butter ls lists them)"},
			{[]string{"rm", "nosuch"}, "no deployment named nosuch"},
			{[]string{"replay", "nosuch", "--from", "first"}, "no deployment named nosuch"},
			{[]string{"stream", "rm", "nosuch"}, `stream "nosuch" does not exist`},
			{[]string{"stream", "tail", "nosuch"}, `stream "nosuch" does not exist`},
			{[]string{"timers", "rm", "nosuch"}, "no timer named nosuch"},
			{[]string{"apikey", "revoke", "nosuch"}, "no api key named nosuch"},
		} {
			if r := run(tc.args...); r.code != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("butter %v: exit %d, stderr %q; want 1 and %q", tc.args, r.code, r.stderr, tc.want)
			}
		}
	})
}

// TestVersion reads the version from the binary's build info.
func TestVersion(t *testing.T) {
	r := butter(t, "", "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "butter ") || !strings.Contains(r.stdout, "go1.") {
		t.Fatalf("version: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var v struct{ Module, Version, Go string }
	jsonOut(t, butter(t, "", "version", "-o", "json"), &v)
	if v.Module != "github.com/buttercompass/butter/cli" || v.Version == "" || !strings.HasPrefix(v.Go, "go1.") {
		t.Fatalf("version -o json: %+v", v)
	}
}

// TestHelpOnNewCommands: the commands of the client context have --help.
func TestHelpOnNewCommands(t *testing.T) {
	for _, args := range [][]string{
		{"status", "--help"}, {"version", "--help"}, {"timers", "--help"}, {"timers", "ls", "--help"},
		{"timers", "create", "--help"}, {"timers", "rm", "--help"}, {"stream", "rm", "--help"}, {"apikey", "ls", "--help"},
	} {
		r := butter(t, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("butter %v: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
	if r := butter(t, "", "--help"); !strings.Contains(r.stdout, "--context") || !strings.Contains(r.stdout, "context.json") {
		t.Errorf("butter --help does not tell about the client context:\n%s", r.stdout)
	}
}

// TestUpExistingCluster: butter up uses an existing cluster only when told
// so itself (here BUTTER_UP_BROKERS, a broker of its own), says why, and
// its context gives client commands that cluster and its login.
func TestUpExistingCluster(t *testing.T) {
	t.Parallel()
	addr, kdata := freeAddr(t), t.TempDir()
	startButter(t, "broker listening on", "broker", "--addr", addr, "--data", kdata, "--admin", "")
	data := t.TempDir()
	props := filepath.Join(kdata, "client.properties")
	_, sc := startButterEnv(t, []string{"BUTTER_UP_BROKERS=" + addr, "BUTTER_CLIENT_CONFIG=" + props}, "  broker  ",
		"up", "--data", data, "--admin-addr", "", "--deployer-addr", "127.0.0.1:0", "--loadmon-addr", "127.0.0.1:0", "--tracer-addr", "127.0.0.1:0", "--bridge-addr", "127.0.0.1:0")
	if want := addr + " (existing cluster, from BUTTER_UP_BROKERS)"; !strings.Contains(sc.Text(), want) {
		t.Fatalf("up printed %q, want %q", sc.Text(), want)
	}
	ready := make(chan struct{})
	go func() {
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Ctrl-C stops") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(kittest.Timeout):
		t.Fatal("butter up on an existing cluster did not come up")
	}
	r := runEnv(t, nil, "stream", "ls", "--all", "--data", data)
	if r.code != 0 || !strings.Contains(r.stdout, "_butter.deployments") {
		t.Fatalf("stream ls through up's context: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runEnv(t, nil, "ls", "--data", data); r.code != 0 {
		t.Fatalf("ls through up's context: exit %d\n%s", r.code, r.stderr)
	}
}
