package service

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"

	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/deployer/internal/runtime/docker"
	"github.com/buttercompass/butter/deployer/internal/secrets"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
)

// provisionRuntimes makes the runtimes instances run with, after the
// process runtime: the process runtime always (it also prepares every
// version's code dir), and with --runtime docker the docker runtime as
// the default, so descriptors choose with runtime: process | docker.
func (s *Service) provisionRuntimes(ctx context.Context, kcfg kit.KafkaConfig, login func(string) kit.KafkaConfig, key *secrets.Key) error {
	s.mux = &runtime.Mux{Default: s.cfg.Runtime, Runtimes: map[string]runtime.Runtime{descriptor.RuntimeProcess: s.runtime}}
	if s.cfg.Runtime != RuntimeDocker {
		return nil
	}
	d, err := docker.New(ctx, docker.Config{DataDir: s.cfg.DataDir, Prepare: s.runtime.Prepare, CodeDir: s.runtime.CodeDir,
		Kafka: kcfg, Login: login, Brokers: s.cfg.DockerBrokers, Network: s.cfg.DockerNetwork, Grace: s.cfg.Grace,
		Secrets: key, Logger: s.log.With("runtime", "docker")})
	if err != nil {
		return err
	}
	s.docker = d
	s.mux.Runtimes[descriptor.RuntimeDocker] = d
	return nil
}

// admit refuses at deploy a descriptor its runtime cannot run: a runtime
// this deployer lacks, limits the process runtime cannot enforce, a
// missing docker image.
func (s *Service) admit(d *descriptor.Descriptor) error {
	name, err := s.mux.For(d)
	if err != nil {
		return err
	}
	if name == descriptor.RuntimeDocker {
		return s.docker.Admit(context.Background(), d)
	}
	return s.runtime.Admit(d)
}

// DockerGateway returns the gateway address of a Docker network, where
// containers on it reach the host: butter up's embedded broker listens
// there for the docker runtime's instances (docs/docker.md).
func DockerGateway(ctx context.Context, network string) (string, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return "", fmt.Errorf("docker client: %w", err)
	}
	defer cli.Close()
	return docker.NetworkGateway(ctx, cli, network)
}
