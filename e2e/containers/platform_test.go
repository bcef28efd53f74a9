package containers_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/kit"
)

const (
	adminPassword = "e2e-admin-password"
	token         = "e2e-token"
	imageTag      = "dev"
)

// platform is the platform's containers on a network of their own.
type platform struct {
	network string
	volume  string // the broker's data
	broker  *testcontainers.DockerContainer
	// services are the other containers by name (deployer, gateway).
	services map[string]*testcontainers.DockerContainer
}

// kafkaEnv is how the services reach and log in to the broker.
func kafkaEnv(extra map[string]string) map[string]string {
	env := map[string]string{
		"BUTTER_BROKERS":        "broker:9092",
		"BUTTER_SASL_MECHANISM": "SCRAM-SHA-256",
		"BUTTER_SASL_USER":      "butter-admin",
		"BUTTER_SASL_PASSWORD":  adminPassword,
		"BUTTER_TOKEN":          token,
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// start brings up the broker on a fresh volume and the given services
// (deployer, gateway), each waited for on its /readyz.
func start(t *testing.T, ctx context.Context, services ...string) *platform {
	t.Helper()
	nw, err := network.New(ctx, network.WithLabels(map[string]string{"butter.e2e": "containers"}))
	if err != nil {
		t.Fatalf("network: %v", err)
	}
	t.Cleanup(func() { _ = nw.Remove(context.Background()) })
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	p := &platform{network: nw.Name, volume: "butter-e2e-broker-" + hex.EncodeToString(suffix), services: map[string]*testcontainers.DockerContainer{}}
	docker(t, "volume", "create", "--label", label, p.volume)
	t.Cleanup(func() {
		// After the containers (cleanups run last first): a volume in use
		// cannot be removed.
		_ = dockerQuiet("volume", "rm", "-f", p.volume)
	})
	p.broker = p.startBroker(t, ctx)

	ports := map[string]int{"deployer": 8081, "gateway": 8080}
	env := map[string]map[string]string{
		"deployer": {"BUTTER_DEPLOYER_ADDR": "0.0.0.0:8081", "BUTTER_RUNTIME": "process"},
		"gateway":  {"BUTTER_GATEWAY_ADDR": "0.0.0.0:8080", "BUTTER_GATEWAY_GRACE": "2s"},
	}
	for _, s := range services {
		c := p.run(t, ctx, s, kafkaEnv(env[s]))
		p.services[s] = c
		p.waitReady(t, ctx, c, ports[s])
	}
	return p
}

// run starts a container of butter-<service> on the platform's network,
// removed when the test ends (its logs shown if the test failed).
func (p *platform) run(t *testing.T, ctx context.Context, service string, env map[string]string, opts ...testcontainers.CustomizeRequestOption) *testcontainers.DockerContainer {
	t.Helper()
	req := testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:          "butter-" + service + ":" + imageTag,
			Env:            env,
			Labels:         map[string]string{"butter.e2e": "containers"},
			Networks:       []string{p.network},
			NetworkAliases: map[string][]string{p.network: {service}},
			Tmpfs:          map[string]string{"/tmp": "rw"},
		},
		Started: true,
	}
	for _, o := range opts {
		if err := o.Customize(&req); err != nil {
			t.Fatal(err)
		}
	}
	c, err := testcontainers.GenericContainer(ctx, req)
	if err != nil {
		t.Fatalf("start %s: %v", service, err)
	}
	dc := c.(*testcontainers.DockerContainer)
	t.Cleanup(func() {
		if t.Failed() {
			if r, err := dc.Logs(context.Background()); err == nil {
				b, _ := io.ReadAll(r)
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("%s logs (tail):\n%s", service, b)
			}
		}
		_ = dc.Terminate(context.Background(), testcontainers.StopTimeout(2*time.Second))
	})
	return dc
}

// startBroker starts a broker container on the platform's volume.
func (p *platform) startBroker(t *testing.T, ctx context.Context) *testcontainers.DockerContainer {
	t.Helper()
	c := p.run(t, ctx, "broker", map[string]string{
		"BUTTER_BROKER_ADDR":           "broker:9092",
		"BUTTER_BRIDGE_ADMIN":          "0.0.0.0:8085",
		"BUTTER_BROKER_ADMIN_PASSWORD": adminPassword,
	}, testcontainers.WithMounts(testcontainers.VolumeMount(p.volume, "/data")))
	p.waitReady(t, ctx, c, 8085)
	return c
}

func (p *platform) waitReady(t *testing.T, ctx context.Context, c *testcontainers.DockerContainer, port int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := waitReady(ctx, p.url(t, ctx, c, port, "/readyz")); err != nil {
		t.Fatal(err)
	}
}

// url is a container's address on the network: the tests reach containers
// there, never through published ports.
func (p *platform) url(t *testing.T, ctx context.Context, c *testcontainers.DockerContainer, port int, path string) string {
	t.Helper()
	ip, err := c.ContainerIP(ctx)
	if err != nil || ip == "" {
		t.Fatalf("container address: %q, %v", ip, err)
	}
	return fmt.Sprintf("http://%s:%d%s", ip, port, path)
}

// kafka is an admin client of the current broker container.
func (p *platform) kafka(t *testing.T, ctx context.Context, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	ip, err := p.broker.ContainerIP(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k := kit.KafkaConfig{Brokers: []string{ip + ":9092"}, SASLMechanism: "SCRAM-SHA-256", SASLUser: "butter-admin", SASLPassword: adminPassword}
	cl, err := k.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
