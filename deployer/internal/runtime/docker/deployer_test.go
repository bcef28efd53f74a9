package docker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/deployer/internal/archive"
	"github.com/buttercompass/butter/deployer/internal/runtime/docker"
	"github.com/buttercompass/butter/deployer/service"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/topics"
)

const countYAML = `name: count
platform: python
runtime: docker
functions:
  - fn: handler.py:handle
    bindings:
      streams: [{ name: numbers, offset: first }]
      out: counted
`

// TestDeployerReplacesKilledContainer: a deployer with --runtime docker
// on a secure embedded broker runs a python function in a container
// (logged in as the deployment's own principal); docker kill of the
// container mid-stream gets it replaced and every event has its result;
// a restarted deployer adopts the running container.
func TestDeployerReplacesKilledContainer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	gw, err := docker.NetworkGateway(ctx, cli, "bridge")
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", ContainerAddr: gw, DataDir: filepath.Join(data, "b"), Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	for _, s := range []topics.Spec{{Name: "numbers", Partitions: 2}, {Name: "counted", Partitions: 1}} {
		if err := b.CreateTopic(s); err != nil {
			t.Fatal(err)
		}
	}
	platform := docker.PlatformID(data)
	t.Cleanup(func() { sweep(cli, platform) })

	start := func() (url string, stop func()) {
		cfg := service.DefaultConfig()
		cfg.Addr, cfg.DataDir, cfg.Runtime, cfg.FnboxBin = "127.0.0.1:0", data, service.RuntimeDocker, docker.FnboxBin
		cfg.Kafka = b.Kafka()
		cfg.DockerBrokers = []string{b.ContainerAddr()}
		cfg.Grace, cfg.BackoffBase, cfg.BackoffMax = 2*time.Second, 200*time.Millisecond, time.Second
		cfg.KeepInstances = true // the second deployer adopts
		cfg.Logger, _ = kit.NewLogger(io.Discard, "info")
		s, err := service.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		stop = kittest.Serve(t, s)
		return "http://" + s.Addr(), stop
	}
	url, stop := start()
	code := archive.TarGz(map[string]string{"butter.yaml": countYAML, "handler.py": "def handle(event, context):\n    return {\"n\": event[\"data\"][\"n\"]}\n"})
	deployed := time.Now()
	res, err := http.Post(url+"/v1/deployments", "application/gzip", bytes.NewReader(code))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("deploy: %d %s", res.StatusCode, body)
	}

	cl, err := b.Kafka().NewClient(kgo.ConsumeTopics("counted"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produceErr := func(from, to int) error {
		for n := from; n < to; n++ {
			rec := &kgo.Record{Topic: "numbers", Key: []byte(strconv.Itoa(n)), Value: fmt.Appendf(nil, `{"n":%d}`, n)}
			if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
				return err
			}
		}
		return nil
	}
	produce := func(from, to int) {
		t.Helper()
		if err := produceErr(from, to); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[int]bool{}
	await := func(total int) {
		t.Helper()
		deadline := time.Now().Add(kittest.Timeout)
		for len(seen) < total {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d results after %s", len(seen), total, kittest.Timeout)
			}
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
				var v struct{ N int }
				if json.Unmarshal(r.Value, &v) == nil {
					seen[v.N] = true
				}
			})
			cancel()
		}
	}
	produce(0, 1)
	await(1)
	t.Logf("deploy → first event handled (docker, warm image): %s", time.Since(deployed).Round(time.Millisecond))

	// runtime: process on a docker deployer runs as a process beside it.
	procYAML := strings.NewReplacer("name: count", "name: local", "runtime: docker", "runtime: process", "out: counted", "out: counted-local").Replace(countYAML)
	if err := b.CreateTopic(topics.Spec{Name: "counted-local", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	res, err = http.Post(url+"/v1/deployments", "application/gzip", bytes.NewReader(archive.TarGz(map[string]string{
		"butter.yaml": procYAML, "handler.py": "def handle(event, context):\n    return event[\"data\"]\n"})))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("deploy local: %d %s", res.StatusCode, body)
	}
	kittest.Eventually(t, "runtime: process deployment running as a process", func() error {
		res, err := http.Get(url + "/v1/deployments/local")
		if err != nil {
			return err
		}
		defer res.Body.Close()
		var st struct {
			Instances []struct {
				PID   int  `json:"pid"`
				Ready bool `json:"ready"`
			} `json:"instances"`
		}
		if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
			return err
		}
		if len(st.Instances) != 1 || st.Instances[0].PID == 0 || !st.Instances[0].Ready {
			return fmt.Errorf("instances %+v", st.Instances)
		}
		return nil
	})
	if c := containers(t, cli, platform, "local"); len(c) != 0 {
		t.Fatalf("runtime: process deployment has containers %v", c)
	}
	produce(1, 100)
	await(100)

	first := containers(t, cli, platform, "count")
	if len(first) != 1 {
		t.Fatalf("containers of count: %v, want 1", first)
	}
	// Mid-stream: kill while events keep coming.
	produced := make(chan error, 1)
	go func() { produced <- produceErr(100, 200) }()
	killed := time.Now()
	if _, err := cli.ContainerKill(ctx, first[0], client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatal(err)
	}
	kittest.Eventually(t, "killed container replaced", func() error {
		now := containers(t, cli, platform, "count")
		if len(now) != 1 || now[0] == first[0] {
			return fmt.Errorf("running containers %v (killed %s)", now, first[0])
		}
		return nil
	})
	t.Logf("docker kill → replacement running: %s", time.Since(killed).Round(time.Millisecond))
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	await(200)

	// A restarted deployer adopts the container instead of starting one.
	second := containers(t, cli, platform, "count")
	stop()
	url, stop = start()
	defer stop()
	produce(200, 220)
	await(220)
	var st struct {
		Instances []struct {
			ID      string `json:"id"`
			Adopted bool   `json:"adopted"`
			State   string `json:"state"`
		} `json:"instances"`
	}
	kittest.Eventually(t, "adopted instance in status", func() error {
		res, err := http.Get(url + "/v1/deployments/count")
		if err != nil {
			return err
		}
		defer res.Body.Close()
		st.Instances = nil
		if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
			return err
		}
		if len(st.Instances) != 1 || !st.Instances[0].Adopted || st.Instances[0].State != "running" {
			return fmt.Errorf("instances %+v", st.Instances)
		}
		return nil
	})
	if now := containers(t, cli, platform, "count"); len(now) != 1 || now[0] != second[0] {
		t.Fatalf("after the deployer restart: containers %v, want the adopted %v", now, second)
	}

	// Deleting the deployments stops the process and removes the container.
	for _, name := range []string{"count", "local"} {
		req, _ := http.NewRequest(http.MethodDelete, url+"/v1/deployments/"+name, nil)
		if res, err := http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		} else if res.Body.Close(); res.StatusCode/100 != 2 {
			t.Fatalf("DELETE %s: %d", name, res.StatusCode)
		}
	}
	kittest.Eventually(t, "process instance stopped with its deployment", func() error {
		res, err := http.Get(url + "/v1/deployments/local")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			return fmt.Errorf("GET local: %d", res.StatusCode)
		}
		entries, _ := os.ReadDir(filepath.Join(data, "instances"))
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".json") {
				return fmt.Errorf("instance record %s left", e.Name())
			}
		}
		return nil
	})
	kittest.Eventually(t, "container removed with its deployment", func() error {
		res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", docker.LabelPlatform+"="+platform)})
		if err != nil {
			return err
		}
		if len(res.Items) != 0 {
			return fmt.Errorf("%d containers left", len(res.Items))
		}
		return nil
	})
}

// TestProcessDeployerRefusesDockerDescriptor: runtime: docker on a
// deployer without the docker runtime is refused at deploy, saying how.
func TestProcessDeployerRefusesDockerDescriptor(t *testing.T) {
	t.Parallel()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cfg := service.DefaultConfig()
	cfg.Addr, cfg.DataDir, cfg.FnboxBin = "127.0.0.1:0", t.TempDir(), "/nonexistent/fnbox"
	cfg.Kafka = kit.KafkaConfig{Brokers: []string{b.Addr()}}
	cfg.Logger, _ = kit.NewLogger(io.Discard, "info")
	s, err := service.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer kittest.Serve(t, s)()
	res, err := http.Post("http://"+s.Addr()+"/v1/deployments", "application/yaml", strings.NewReader(countYAML))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "--runtime docker") {
		t.Fatalf("deploy = %d %s, want 400 saying --runtime docker", res.StatusCode, body)
	}
}

// containers returns the ids of the running containers of a deployment.
func containers(t *testing.T, cli *client.Client, platform, deployment string) []string {
	t.Helper()
	res, err := cli.ContainerList(context.Background(), client.ContainerListOptions{
		Filters: make(client.Filters).Add("label", docker.LabelDeployment+"="+deployment, docker.LabelPlatform+"="+platform)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range res.Items {
		ids = append(ids, c.ID)
	}
	return ids
}

// sweep removes every container of a platform: tests leave none behind.
func sweep(cli *client.Client, platform string) {
	ctx := context.Background()
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", docker.LabelPlatform+"="+platform)})
	if err != nil {
		return
	}
	for _, c := range res.Items {
		_, _ = cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
	}
}
