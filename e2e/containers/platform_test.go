package containers_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/kit"
)

const (
	dockerSocket  = "/var/run/docker.sock"
	adminPassword = "e2e-admin-password"
	token         = "e2e-token"
	imageTag      = "dev"
)

// platform is the platform's containers on a network of their own.
type platform struct {
	network string
	volume  string // the broker's data
	broker  *testcontainers.DockerContainer
	// brokerAddr is the current broker container's ip:9092, for clients
	// that outlive a broker replacement (see follow).
	brokerAddr atomic.Pointer[string]
	// services are the other containers by name (deployer, gateway).
	services map[string]*testcontainers.DockerContainer
	// deployments is the prefix of this platform's deployment names.
	deployments string
}

// kafkaEnv is how a service reaches the broker and logs in: as its own
// user, which principals made.
func kafkaEnv(service string, extra map[string]string) map[string]string {
	env := map[string]string{
		"BUTTER_BROKERS":        "broker:9092",
		"BUTTER_SASL_MECHANISM": "SCRAM-SHA-256",
		"BUTTER_SASL_USER":      "butter-" + service,
		"BUTTER_SASL_PASSWORD":  service + "-password",
		"BUTTER_TOKEN":          token,
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// makePrincipals runs `butter principals` as the admin, as deploy/compose.yaml
// does: the services' users with their passwords and ACLs.
func (p *platform) makePrincipals(t *testing.T, ctx context.Context, services ...string) {
	t.Helper()
	env := map[string]string{
		"BUTTER_BROKERS":        "broker:9092",
		"BUTTER_SASL_MECHANISM": "SCRAM-SHA-256",
		"BUTTER_SASL_USER":      "butter-admin",
		"BUTTER_SASL_PASSWORD":  adminPassword,
	}
	for _, s := range services {
		env["BUTTER_"+strings.ToUpper(s)+"_PASSWORD"] = s + "-password"
	}
	c := p.run(t, ctx, "cli", env, testcontainers.WithCmd("principals"), testcontainers.WithWaitStrategy(wait.ForExit().WithExitTimeout(2*time.Minute)))
	st, err := c.State(ctx)
	if err != nil || st.ExitCode != 0 {
		t.Fatalf("butter principals: exit %v, %v", st, err)
	}
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
	p := &platform{network: nw.Name, volume: "butter-e2e-broker-" + hex.EncodeToString(suffix), services: map[string]*testcontainers.DockerContainer{},
		deployments: deploymentPrefix + hex.EncodeToString(suffix)}
	// Function containers hold the network: removed after the deployer
	// (cleanups run last first) and before the network.
	t.Cleanup(func() { removeInstances(p.deployments) })
	docker(t, "volume", "create", "--label", label, p.volume)
	t.Cleanup(func() {
		// After the containers (cleanups run last first): a volume in use
		// cannot be removed.
		_ = dockerQuiet("volume", "rm", "-f", p.volume)
	})
	p.broker = p.startBroker(t, ctx)

	// The deployer runs functions with the docker runtime: containers on
	// this network, reaching the broker by its alias. The engine mounts
	// their code from the deployer's data dir by path, so that dir is a
	// host directory at the same path inside, owned by the deployer's user.
	data := t.TempDir()
	if err := os.Chown(data, 65532, 65532); err != nil {
		t.Fatalf("give the deployer's data dir to its user 65532 (the tests run as root in CI): %v", err)
	}
	st, err := os.Stat(dockerSocket)
	if err != nil {
		t.Fatalf("Docker socket: %v", err)
	}
	gid := strconv.Itoa(int(st.Sys().(*syscall.Stat_t).Gid))
	ports := map[string]int{"deployer": 8081, "gateway": 8080, "loadmon": 8084}
	env := map[string]map[string]string{
		"deployer": {"BUTTER_DEPLOYER_ADDR": "0.0.0.0:8081", "BUTTER_RUNTIME": "docker", "BUTTER_DATA": data,
			"BUTTER_DOCKER_NETWORK": p.network, "BUTTER_DOCKER_BROKERS": "broker:9092"},
		"gateway": {"BUTTER_GATEWAY_ADDR": "0.0.0.0:8080", "BUTTER_GATEWAY_GRACE": "2s"},
		// A short tick and cooldown, as docs/loadmon.md measures with, so
		// scale tests see 0 → 4 → 0 in seconds, not minutes.
		"loadmon": {"BUTTER_LOADMON_ADDR": "0.0.0.0:8084", "BUTTER_LOADMON_INTERVAL": "250ms", "BUTTER_LOADMON_COOLDOWN": "2s"},
	}
	opts := map[string][]testcontainers.CustomizeRequestOption{
		"deployer": {testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.Binds = append(hc.Binds, dockerSocket+":"+dockerSocket, data+":"+data)
			hc.GroupAdd = append(hc.GroupAdd, gid)
		})},
	}
	p.makePrincipals(t, ctx, services...)
	for _, s := range services {
		c := p.run(t, ctx, s, kafkaEnv(s, env[s]), opts[s]...)
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
	ip, err := c.ContainerIP(ctx)
	if err != nil {
		t.Fatal(err)
	}
	addr := ip + ":9092"
	p.brokerAddr.Store(&addr)
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
