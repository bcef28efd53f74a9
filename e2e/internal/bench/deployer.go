package bench

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	deployersvc "github.com/buttercompass/butter/deployer/service"
	loadmonsvc "github.com/buttercompass/butter/loadmon/service"
	"github.com/buttercompass/butter/proto/descriptor"
)

// Images the docker runtime runs functions in, built by `make images`
// (deploy/images/build.sh); nothing is ever pulled.
var dockerImages = []string{"butter-fnbox:latest", "butter-node:latest", "butter-python:latest"}

// labelDeployment is the label the docker runtime puts on every container
// with its deployment's name.
const labelDeployment = "butter.deployment"

// errNoDocker is wrapped when a measurement that runs containers cannot:
// the bench fails rather than leaving the rows out.
var errNoDocker = errors.New("the docker rows need a Docker engine and the runtime images")

// dockerClient connects to the Docker engine, negotiating the API version
// (the engine here speaks 1.41).
func dockerClient(ctx context.Context) (*client.Client, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("%w: docker client: %v", errNoDocker, err)
	}
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("%w: reach the Docker engine (is dockerd running and its socket readable? DOCKER_HOST): %v; "+
			"with an engine, build the images with `make images`; or leave the docker rows out with -only", errNoDocker, err)
	}
	return cli, nil
}

// dockerGateway returns the address of the default bridge's gateway, where
// the run's broker also listens so containers reach it.
func dockerGateway(ctx context.Context) (string, error) {
	cli, err := dockerClient(ctx)
	if err != nil {
		return "", err
	}
	cli.Close()
	gw, err := deployersvc.DockerGateway(ctx, "bridge")
	if err != nil {
		return "", fmt.Errorf("%w: %v", errNoDocker, err)
	}
	return gw, nil
}

// needImages fails, saying how to make them, when a runtime image is
// missing.
func needImages(ctx context.Context, cli *client.Client) error {
	var missing []string
	for _, img := range dockerImages {
		if _, err := cli.ImageInspect(ctx, img); err != nil {
			missing = append(missing, img)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: image %s missing: build them with `make images` (deploy/images/build.sh) at the repository root",
			errNoDocker, strings.Join(missing, ", "))
	}
	return nil
}

// platform is a deployer served in-process on the run's broker, with its
// own data directory, and optionally a loadmon beside it.
type platform struct {
	url      string // the deployer's API, http://host:port
	deployer *inProcess
	loadmon  *inProcess
	hc       *http.Client
	deployed []string // names deployed, deleted by stop
}

// startPlatform provisions a deployer whose default runtime is rt
// (process or docker) and serves it until stop; with withLoadmon a loadmon
// decides replicas beside it. The deployer's fnbox is the binary of the
// run, so runtime: process works with either. If either stops on its own,
// cancel is called with the reason.
func startPlatform(ctx context.Context, env *Env, name, rt string, withLoadmon bool, cancel context.CancelCauseFunc) (*platform, error) {
	bin, err := env.build(ctx, "fnbox", fnboxPackage)
	if err != nil {
		return nil, err
	}
	dir, err := env.workDir(name)
	if err != nil {
		return nil, err
	}
	logs := &tailWriter{max: 20}
	cfg := deployersvc.DefaultConfig()
	cfg.Addr, cfg.DataDir, cfg.Runtime, cfg.FnboxBin = "127.0.0.1:0", dir, rt, bin
	cfg.Kafka = env.Kafka
	cfg.Kafka.ClientID = "butter-bench-deployer"
	if rt == deployersvc.RuntimeDocker {
		if env.containerBroker == "" {
			return nil, fmt.Errorf("%w: the run's broker does not listen for containers (a docker measurement must set Measurement.Docker)", errNoDocker)
		}
		cfg.DockerBrokers = []string{env.containerBroker}
	}
	cfg.Grace, cfg.BackoffBase, cfg.BackoffMax = 5*time.Second, 200*time.Millisecond, 2*time.Second
	cfg.DieWithDeployer = true
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := deployersvc.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := d.Provision(ctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("provision deployer: %w%s", err, logs)
	}
	// No client timeout: each measurement bounds its calls with its
	// context, and a deploy can wait long on a Docker engine busy
	// starting containers.
	p := &platform{url: "http://" + d.Addr(), hc: &http.Client{},
		deployer: serve(ctx, "deployer", d.Addr(), d.Serve, d.Close, logs, cancel)}
	if !withLoadmon {
		return p, nil
	}
	if p.loadmon, err = startLoadmon(ctx, env, cancel); err != nil {
		return nil, errors.Join(err, p.deployer.stop())
	}
	return p, nil
}

// startLoadmon provisions a loadmon with its default rule (interval,
// cooldown, drain) and waits until it is the replica deciding.
func startLoadmon(ctx context.Context, env *Env, cancel context.CancelCauseFunc) (*inProcess, error) {
	logs := &tailWriter{max: 20}
	cfg := loadmonsvc.DefaultConfig()
	cfg.Addr, cfg.Replica = "127.0.0.1:0", "butter-bench"
	cfg.Kafka = env.Kafka
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := loadmonsvc.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Provision(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("provision loadmon: %w%s", err, logs)
	}
	lm := serve(ctx, "loadmon", s.Addr(), s.Serve, s.Close, logs, cancel)
	if err := until(ctx, "loadmon decides", 20*time.Millisecond, func() error {
		if !s.Owner() {
			return errors.New("not the deciding replica yet")
		}
		return nil
	}); err != nil {
		return nil, errors.Join(fmt.Errorf("%w%s", err, logs), lm.stop())
	}
	return lm, nil
}

// stop stops loadmon, deletes what the platform deployed, and stops the
// deployer, which stops every instance. The deletions matter: desired
// state lives on the run's broker, and the next platform's deployer would
// otherwise start every deployment of this one again.
func (p *platform) stop() error {
	var err error
	if p.loadmon != nil {
		err = p.loadmon.stop()
	}
	err = errors.Join(err, p.deleteAll())
	return errors.Join(err, p.deployer.stop())
}

// deleteAll deletes every deployment the platform deployed, a few at a
// time.
func (p *platform) deleteAll() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	errs := make([]error, len(p.deployed))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, name := range p.deployed {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = p.remove(ctx, name)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// remove deletes deployment name: DELETE /v1/deployments/{name}.
func (p *platform) remove(ctx context.Context, name string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, p.url+"/v1/deployments/"+name, nil)
	if err != nil {
		return err
	}
	res, err := p.hc.Do(req)
	if err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode/100 != 2 && res.StatusCode != http.StatusNotFound {
		return fmt.Errorf("delete %s: %s %s", name, res.Status, bytes.TrimSpace(body))
	}
	return nil
}

// logs returns what the deployer and loadmon logged, for an error.
func (p *platform) logs() string {
	s := p.deployer.logs.String()
	if p.loadmon != nil {
		s += strings.Replace(p.loadmon.logs.String(), "fnbox logged", "loadmon logged", 1)
	}
	return strings.Replace(s, "fnbox logged", "deployer logged", 1)
}

// deploy sends the code files (butter.yaml among them) to the deployer as
// `butter deploy` does: POST /v1/deployments of a tar.gz.
func (p *platform) deploy(ctx context.Context, files map[string]string) error {
	name, err := deploymentName(files)
	if err != nil {
		return err
	}
	p.deployed = append(p.deployed, name)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url+"/v1/deployments", bytes.NewReader(tarGz(files)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/gzip")
	res, err := p.hc.Do(req)
	if err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("deploy: %s %s%s", res.Status, bytes.TrimSpace(body), p.logs())
	}
	return nil
}

// deploymentName reads the name of the deployment from its butter.yaml.
func deploymentName(files map[string]string) (string, error) {
	desc, err := descriptor.Parse("butter.yaml", []byte(files["butter.yaml"]))
	if err != nil {
		return "", fmt.Errorf("bench descriptor: %w", err)
	}
	return desc.Name, nil
}

// deployment is what GET /v1/deployments/{name} says of a deployment,
// as far as the bench needs.
type deployment struct {
	Functions []struct {
		Name      string `json:"name"`
		Desired   int    `json:"desired"`
		Running   int    `json:"running"`
		LastError string `json:"lastError"`
		// Scaled is loadmon's latest decision, shown in errors.
		Scaled json.RawMessage `json:"scaled,omitempty"`
	} `json:"functions"`
	Instances []struct {
		ID    string `json:"id"`
		PID   int    `json:"pid"`
		State string `json:"state"`
		Ready bool   `json:"ready"`
	} `json:"instances"`
}

// status returns the deployer's view of deployment name.
func (p *platform) status(ctx context.Context, name string) (*deployment, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/v1/deployments/"+name, nil)
	if err != nil {
		return nil, err
	}
	res, err := p.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		return nil, fmt.Errorf("get %s: %s %s", name, res.Status, bytes.TrimSpace(body))
	}
	var d deployment
	if err := json.NewDecoder(res.Body).Decode(&d); err != nil {
		return nil, fmt.Errorf("decode status of %s: %w", name, err)
	}
	return &d, nil
}

// ready reports nil when every function of deployment name runs as many
// instances as desired (at least want) and every instance is ready.
func (p *platform) ready(ctx context.Context, name string, want int) error {
	d, err := p.status(ctx, name)
	if err != nil {
		return err
	}
	ready := 0
	for _, in := range d.Instances {
		if in.State == "running" && in.Ready {
			ready++
		}
	}
	for _, f := range d.Functions {
		if f.Running < f.Desired || f.Running < want {
			return fmt.Errorf("%s: %d of %d instances running (want %d) %s", name, f.Running, f.Desired, want, f.LastError)
		}
	}
	if ready < len(d.Instances) || ready < want {
		return fmt.Errorf("%s: %d of %d instances ready", name, ready, len(d.Instances))
	}
	return nil
}

// until calls cond every interval until it returns nil, or fails with its
// last error when ctx is done.
func until(ctx context.Context, what string, interval time.Duration, cond func() error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait until %s: %w (last: %v)", what, context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

// tarGz packs files as a deployment's code archive.
func tarGz(files map[string]string) []byte {
	var buf bytes.Buffer
	gw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gw)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		body := files[name]
		_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
		_, _ = tw.Write([]byte(body)) // writes to a bytes.Buffer do not fail
	}
	_ = tw.Close()
	_ = gw.Close()
	return buf.Bytes()
}

// sweepContainers removes the containers of the deployments whose name
// starts with prefix, should the deployer have left any behind.
func sweepContainers(cli *client.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", labelDeployment)})
	if err != nil {
		return
	}
	for _, c := range res.Items {
		if strings.HasPrefix(c.Labels[labelDeployment], prefix) {
			_, _ = cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
		}
	}
}

// runPrefix starts the name of every deployment of the run: a docker
// measurement sweeps the containers of all of them, should one be left.
func (e *Env) runPrefix() string { return "bench-" + e.tag + "-" }
