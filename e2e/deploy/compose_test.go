package deploy_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"sigs.k8s.io/yaml"

	"github.com/buttercompass/butter/proto/kit"
)

// composeEnv is what deploy/.env would hold, plus free host ports so runs
// never collide with each other or with a platform on the default ports.
func composeEnv(extra ...string) []string {
	return append(append(os.Environ(),
		"BUTTER_ADMIN_PASSWORD=e2e-admin-password",
		"BUTTER_TOKEN=e2e-token",
		"BUTTER_DEPLOYER_PASSWORD=e2e-deployer-password",
		"BUTTER_GATEWAY_PASSWORD=e2e-gateway-password",
		"BUTTER_TIMER_PASSWORD=e2e-timer-password",
		"BUTTER_LOADMON_PASSWORD=e2e-loadmon-password",
		"BUTTER_TRACER_PASSWORD=e2e-tracer-password",
		"BUTTER_BRIDGE_PASSWORD=e2e-bridge-password",
		"BUTTER_BRIDGE_PORT=0",
		"BUTTER_TRACER_PORT=0",
		"BUTTER_GATEWAY_PORT=0",
		"BUTTER_DEPLOYER_PORT=0",
	), extra...)
}

// compose runs docker-compose on deploy/compose.yaml and returns its
// standard output; a missing docker-compose fails the test.
func compose(t *testing.T, ctx context.Context, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "docker-compose", append([]string{"-f", filepath.Join(repo(t), "deploy", "compose.yaml")}, args...)...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		if _, lookErr := exec.LookPath("docker-compose"); lookErr != nil {
			t.Fatalf("docker-compose is needed (apt-get install docker-compose): %v", lookErr)
		}
		return out.String(), fmt.Errorf("docker-compose %s: %w\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

// composeConfig is the part of `docker-compose config` the checks read.
type composeConfig struct {
	Services map[string]struct {
		Image       string            `json:"image"`
		Environment map[string]string `json:"environment"`
		Volumes     []string          `json:"volumes"`
		User        string            `json:"user"`
		ReadOnly    bool              `json:"read_only"`
		CapDrop     []string          `json:"cap_drop"`
	} `json:"services"`
	Volumes map[string]any `json:"volumes"`
}

// TestComposeConfig: docker-compose accepts deploy/compose.yaml, refuses to
// start without the secrets, and the file runs the images make
// service-images builds, with the broker on a named volume and the deployer
// on the Docker socket.
func TestComposeConfig(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var noSecrets []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "BUTTER_ADMIN_PASSWORD" && k != "BUTTER_TOKEN" && !strings.HasSuffix(k, "_PASSWORD") {
			noSecrets = append(noSecrets, kv)
		}
	}
	if _, err := compose(t, ctx, noSecrets, "--project-directory", t.TempDir(), "config", "-q"); err == nil || !strings.Contains(err.Error(), "secrets.sh") {
		t.Errorf("config without BUTTER_ADMIN_PASSWORD: %v; want an error that says how to make it", err)
	}

	out, err := compose(t, ctx, composeEnv(), "config")
	if err != nil {
		t.Fatal(err)
	}
	var cfg composeConfig
	if err := yaml.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("parse docker-compose config: %v", err)
	}
	images := builtImages(t)
	used := map[string]bool{}
	var vars []string
	for name, s := range cfg.Services {
		if !slices.Contains(images, s.Image) {
			t.Errorf("service %s: image %q is not one make service-images builds (%v)", name, s.Image, images)
		}
		used[s.Image] = true
		if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
			t.Errorf("service %s: want read_only and cap_drop ALL", name)
		}
		for k, v := range s.Environment {
			vars = append(vars, k)
			vars = append(vars, butterVars(v)...)
		}
	}
	for _, img := range images {
		if !used[img] {
			t.Errorf("image %s runs in no compose service", img)
		}
	}
	if b := cfg.Services["broker"]; !slices.ContainsFunc(b.Volumes, func(v string) bool { return strings.HasPrefix(v, "broker-data:/data") }) || cfg.Volumes["broker-data"] == nil {
		t.Errorf("broker volumes %v: want the named volume broker-data on /data", b.Volumes)
	}
	d := cfg.Services["deployer"]
	if d.Environment["BUTTER_RUNTIME"] != "docker" || !slices.ContainsFunc(d.Volumes, func(v string) bool { return strings.HasPrefix(v, "/var/run/docker.sock:") }) {
		t.Errorf("deployer: runtime %q, volumes %v; want docker with the Docker socket", d.Environment["BUTTER_RUNTIME"], d.Volumes)
	}
	// Each service logs in as itself, with the password `principals` gave
	// its user; only the broker and principals know the admin's.
	for _, name := range []string{"deployer", "gateway", "timer", "loadmon", "tracer", "bridge"} {
		e := cfg.Services[name].Environment
		if e["BUTTER_SASL_USER"] != "butter-"+name || e["BUTTER_SASL_PASSWORD"] != cfg.Services["principals"].Environment[passwordEnv("butter-"+name)] {
			t.Errorf("%s logs in as %q with its password %v; want butter-%s with the password principals sets", name, e["BUTTER_SASL_USER"], e["BUTTER_SASL_PASSWORD"] != "", name)
		}
		if e["BUTTER_SASL_PASSWORD"] == "e2e-admin-password" {
			t.Errorf("%s has the admin password", name)
		}
	}
	if p := cfg.Services["principals"]; p.Image != "butter-cli:"+imageTag || p.Environment["BUTTER_SASL_USER"] != "butter-admin" {
		t.Errorf("principals: image %s as %s; want butter-cli as butter-admin", p.Image, p.Environment["BUTTER_SASL_USER"])
	}
	// The engine mounts instances' code from the deployer's data dir by
	// its path: the path must be the same on the host and inside.
	if dir := d.Environment["BUTTER_DATA"]; !slices.ContainsFunc(d.Volumes, func(v string) bool { return strings.HasPrefix(v, dir+":"+dir) }) {
		t.Errorf("deployer: BUTTER_DATA %q is not a host directory mounted at the same path (volumes %v)", dir, d.Volumes)
	}
	if d.Environment["BUTTER_DOCKER_NETWORK"] == "" || d.Environment["BUTTER_DOCKER_BROKERS"] != "broker:9092" {
		t.Errorf("deployer: BUTTER_DOCKER_NETWORK %q, BUTTER_DOCKER_BROKERS %q; want the compose network and broker:9092", d.Environment["BUTTER_DOCKER_NETWORK"], d.Environment["BUTTER_DOCKER_BROKERS"])
	}
	// The bridge opens what the deployer seals with the deployer's key:
	// the one in its data dir (or --secret-key-file), mounted read-only.
	deployerKey := d.Environment["BUTTER_SECRET_KEY_FILE"]
	if deployerKey == "" {
		deployerKey = path.Join(d.Environment["BUTTER_DATA"], "secret.key")
	}
	bridgeKey, found := cfg.Services["bridge"].Environment["BUTTER_SECRET_KEY_FILE"], false
	for _, v := range cfg.Services["bridge"].Volumes {
		src, rest, _ := strings.Cut(v, ":")
		dst, mode, _ := strings.Cut(rest, ":")
		if rel, ok := strings.CutPrefix(bridgeKey, strings.TrimSuffix(dst, "/")+"/"); ok {
			found = true
			if host := path.Join(src, rel); host != deployerKey || mode != "ro" {
				t.Errorf("bridge: key %s is %s on the host, mounted %q; want the deployer's key %s, read-only", bridgeKey, host, mode, deployerKey)
			}
		}
	}
	if !found {
		t.Errorf("bridge: BUTTER_SECRET_KEY_FILE %q is in no volume it mounts (%v)", bridgeKey, cfg.Services["bridge"].Volumes)
	}
	slices.Sort(vars)
	checkVarsKnown(t, "deploy/compose.yaml", slices.Compact(vars))
}

var (
	imagesOnce sync.Once
	imagesErr  error
)

// buildImages runs deploy/build-images.sh once per test binary: cached
// layers and Go's build cache make a rebuild of unchanged sources quick.
func buildImages(t *testing.T, services ...string) {
	t.Helper()
	imagesOnce.Do(func() {
		cmd := exec.Command(filepath.Join(repo(t), "deploy", "build-images.sh"), services...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			imagesErr = fmt.Errorf("deploy/build-images.sh: %w\n%s", err, out)
		}
	})
	if imagesErr != nil {
		t.Fatal(imagesErr)
	}
}

// projectPrefix names this package's compose projects; the pid after it
// tells a leftover of a dead run from a project a parallel run still uses.
const projectPrefix = "butter-e2e-deploy-"

// sweepProjects takes down the compose projects (containers, networks,
// volumes) of earlier runs that died before their cleanup.
func sweepProjects(t *testing.T, ctx context.Context) {
	t.Helper()
	out, err := exec.CommandContext(ctx, "docker", "ps", "-a", "--filter", "label=com.docker.compose.project",
		"--format", `{{.Label "com.docker.compose.project"}}`).Output()
	if err != nil {
		t.Fatalf("docker ps (is the Docker engine running?): %v", err)
	}
	// A network outlives its project's containers when a run died while
	// taking it down.
	nets, err := exec.CommandContext(ctx, "docker", "network", "ls", "--filter", "name="+projectPrefix, "--format", "{{.Name}}").Output()
	if err != nil {
		t.Fatalf("docker network ls: %v", err)
	}
	seen := map[string]bool{}
	for _, p := range append(strings.Fields(string(out)), strings.Fields(string(nets))...) {
		rest, ok := strings.CutPrefix(p, projectPrefix)
		if !ok || seen[p] {
			continue
		}
		seen[p] = true
		pid, _, _ := strings.Cut(rest, "-")
		if _, err := os.Stat("/proc/" + pid); err == nil {
			continue
		}
		removeInstances(ctx, deploymentPrefix+rest)
		if _, err := compose(t, ctx, composeEnv("BUTTER_NETWORK="+p), "-p", p, "down", "-v", "--remove-orphans"); err != nil {
			t.Logf("sweep %s: %v", p, err)
		}
	}
}

// deploymentPrefix names this package's deployments, whose fnbox
// containers the deployer labels butter.deployment=<name>.
const deploymentPrefix = "e2e-compose-"

// removeInstances removes the fnbox containers of a deployment.
func removeInstances(ctx context.Context, deployment string) {
	out, _ := exec.CommandContext(ctx, "docker", "ps", "-aq", "--filter", "label=butter.deployment="+deployment).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		_ = exec.CommandContext(ctx, "docker", append([]string{"rm", "-f"}, ids...)...).Run()
	}
}

// containerIP is a compose service's address on its project's network:
// the tests reach containers there, never through host ports.
func containerIP(t *testing.T, ctx context.Context, project, service string) string {
	t.Helper()
	out, err := exec.CommandContext(ctx, "docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
		project+"_"+service+"_1").Output()
	if err != nil {
		t.Fatalf("docker inspect %s: %v", service, err)
	}
	ip, _, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	return ip
}

// waitReady polls url until it answers 200 or ctx ends.
func waitReady(ctx context.Context, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %s", url, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestComposeUp brings the platform up from deploy/compose.yaml on a
// private network — broker, deployer (docker runtime), gateway, timer,
// loadmon and tracer — and waits for every /readyz over the
// containers' bridge addresses; deploys a python function behind a route,
// which the deployer runs in a container of its own and the gateway
// answers through; then restarts the broker on its volume and waits again:
// the admin password and the data survive, and the services reconnect.
func TestComposeUp(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	sweepProjects(t, ctx)

	services := map[string]int{"broker": 8085, "deployer": 8081, "gateway": 8080, "timer": 8083}
	for name, port := range map[string]int{"loadmon": 8084, "tracer": 8082, "bridge": 8085} {
		module := name
		if name == "bridge" {
			module = "broker-bridge"
		}
		if _, err := os.Stat(filepath.Join(repo(t), module, "cmd", "butter-"+name)); err == nil {
			services[name] = port
		}
	}
	var names []string
	for s := range services {
		names = append(names, s)
	}
	slices.Sort(names)
	buildImages(t, append([]string{"cli"}, names...)...) // cli: butter principals

	// The python function's image, from the docker runtime's build script.
	if out, err := exec.Command(filepath.Join(repo(t), "deploy", "images", "build.sh"), "python").CombinedOutput(); err != nil {
		t.Fatalf("deploy/images/build.sh python: %v\n%s", err, out)
	}

	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	run := strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(suffix)
	project := projectPrefix + run
	deployment := deploymentPrefix + run
	// The deployer's data dir is a host directory at the same path inside
	// its container (the engine mounts instances' code from it by path),
	// owned by the deployer's user.
	data := t.TempDir()
	if err := os.Chown(data, 65532, 65532); err != nil {
		t.Fatalf("give the deployer's data dir to its user 65532 (the test runs as root in CI): %v", err)
	}
	st, err := os.Stat("/var/run/docker.sock")
	if err != nil {
		t.Fatalf("Docker socket: %v", err)
	}
	gid := st.Sys().(*syscall.Stat_t).Gid
	env := composeEnv("BUTTER_NETWORK="+project, "BUTTER_DEPLOYER_DATA="+data, "DOCKER_GID="+strconv.Itoa(int(gid)))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if t.Failed() {
			logs, _ := compose(t, ctx, env, "-p", project, "logs", "--no-color", "--tail", "30")
			t.Logf("logs:\n%s", logs)
		}
		// The deployer's fnbox containers hold the network: stop the
		// deployer (which would replace them), remove them, then the rest.
		if _, err := compose(t, ctx, env, "-p", project, "stop", "-t", "5", "deployer"); err != nil {
			t.Errorf("stop the deployer: %v", err)
		}
		removeInstances(ctx, deployment)
		if _, err := compose(t, ctx, env, "-p", project, "down", "-v", "--remove-orphans", "-t", "5"); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	start := time.Now()
	if _, err := compose(t, ctx, env, append([]string{"-p", project, "up", "-d", "--no-build"}, names...)...); err != nil {
		t.Fatal(err)
	}
	waitAll := func(what string) {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
		defer wcancel()
		var wg sync.WaitGroup
		errs := make([]error, len(names))
		for i, s := range names {
			url := fmt.Sprintf("http://%s:%d/readyz", containerIP(t, ctx, project, s), services[s])
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = waitReady(wctx, url)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%s: %s: %v", what, names[i], err)
			}
		}
		t.Logf("%s: %v ready after %v", what, names, time.Since(start).Round(time.Millisecond))
	}
	waitAll("up")

	// A python function behind a route, run by the deployer in a container
	// of its own through the Docker socket, on the compose network.
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	for name, text := range map[string]string{
		"butter.yaml": "name: " + deployment + "\nplatform: python\nfunctions:\n  - fn: handler.py:double\n    bindings:\n      route: { context: /double, timeout: 10s }\n",
		"handler.py":  "import json\n\ndef double(event, context):\n    return {\"double\": 2 * json.loads(event[\"data\"][\"body\"])[\"n\"]}\n",
	} {
		w, _ := zw.Create(name)
		_, _ = w.Write([]byte(text))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	deployed := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://%s:8081/v1/deployments", containerIP(t, ctx, project, "deployer")), &zipped)
	req.Header.Set("Content-Type", "application/zip")
	req.Header.Set("Authorization", "Bearer e2e-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("deploy: %s: %s", resp.Status, body)
	}
	route := fmt.Sprintf("http://%s:8080/double", containerIP(t, ctx, project, "gateway"))
	var answer string
	var lastErr error
	pctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := kit.Poll(pctx, 250*time.Millisecond, func() bool {
		resp, err := (&http.Client{Timeout: 15 * time.Second}).Post(route, "application/json", strings.NewReader(`{"n":21}`))
		if lastErr = err; err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			answer = string(b)
		}
		return answer != ""
	}); err != nil {
		t.Fatalf("no 200 from the python function's route 3 minutes after the deploy (last: %v)", lastErr)
	}
	if !strings.Contains(answer, `"double":42`) && !strings.Contains(answer, `"double": 42`) {
		t.Fatalf("route answered %s, want double 42", answer)
	}
	ids, err := exec.CommandContext(ctx, "docker", "ps", "-q", "--filter", "label=butter.deployment="+deployment).Output()
	if err != nil || len(strings.Fields(string(ids))) == 0 {
		t.Fatalf("no container labelled butter.deployment=%s: %v", deployment, err)
	}
	t.Logf("python function in container %s answered %s %v after the deploy", strings.Fields(string(ids))[0], strings.TrimSpace(answer), time.Since(deployed).Round(time.Millisecond))

	// Events written before the restart are read after it, with the same
	// admin login: both live on the broker's volume.
	const events = 500
	kafka := func() *kgo.Client {
		k := kit.KafkaConfig{Brokers: []string{containerIP(t, ctx, project, "broker") + ":9092"},
			SASLMechanism: "SCRAM-SHA-256", SASLUser: "butter-admin", SASLPassword: "e2e-admin-password"}
		cl, err := k.NewClient(kgo.ConsumeTopics("e2e-compose"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	cl := kafka()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, "e2e-compose"); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	var recs []*kgo.Record
	for i := range events {
		recs = append(recs, &kgo.Record{Topic: "e2e-compose", Value: []byte(strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	cl.Close()

	start = time.Now()
	if _, err := compose(t, ctx, env, "-p", project, "restart", "-t", "10", "broker"); err != nil {
		t.Fatal(err)
	}
	waitAll("broker restarted")

	cl = kafka()
	defer cl.Close()
	seen := map[string]bool{}
	for len(seen) < events {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read back %d of %d events after the restart: %v", len(seen), events, fs.Errors())
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
}
