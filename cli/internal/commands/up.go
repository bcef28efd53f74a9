package commands

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel"

	bridgesvc "github.com/buttercompass/butter/broker-bridge/bridge/service"
	"github.com/buttercompass/butter/broker-bridge/broker"
	deployersvc "github.com/buttercompass/butter/deployer/service"
	gatewaysvc "github.com/buttercompass/butter/gateway/service"
	loadmonsvc "github.com/buttercompass/butter/loadmon/service"
	"github.com/buttercompass/butter/proto/access"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
	timersvc "github.com/buttercompass/butter/timer/service"
	tracersvc "github.com/buttercompass/butter/tracer/service"
)

func (a *app) upCmd() *cobra.Command {
	var (
		cfg broker.Config
		dep = deployersvc.DefaultConfig()
		gw  = gatewaysvc.DefaultConfig()
		tm  = timersvc.DefaultConfig()
		lm  = loadmonsvc.DefaultConfig()
		tc  = tracersvc.DefaultConfig()
		br  = bridgesvc.DefaultConfig()
	)
	tfs := flag.NewFlagSet("telemetry", flag.ContinueOnError)
	traceSample := kit.RegisterTraceSample(tfs)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the whole platform in one process",
		Long: `Start Butter Compass in one process: the embedded broker (unless up's own
--brokers or BUTTER_UP_BROKERS points at an existing Kafka cluster;
BUTTER_BROKERS, the client commands' setting, does not) and every platform
service: deployer, gateway, timer, loadmon, tracer and bridge. Prints the endpoints
and writes them to <data>/context.json, where the other butter commands find
them; Ctrl-C stops cleanly.`,
		Example: `  butter up
  butter up --data /var/lib/butter
  butter up --runtime docker        # instances in containers (make images)
  butter up --brokers kafka-1:9092,kafka-2:9092   # an existing cluster`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			external, why := a.upCluster(cmd)
			where := "existing cluster, " + why
			if !external {
				cfg.Logger = a.logger()
				if dep.Runtime == deployersvc.RuntimeDocker && cfg.ContainerAddr == "" {
					// Containers cannot reach 127.0.0.1: the broker also
					// listens on their network's gateway (docs/docker.md).
					gw, err := deployersvc.DockerGateway(ctx, dep.DockerNetwork)
					if err != nil {
						return err
					}
					cfg.ContainerAddr = gw
				}
				b, err := broker.Start(cfg)
				if err != nil {
					return err
				}
				defer b.Close()
				if b.ContainerAddr() != "" && len(dep.DockerBrokers) == 0 {
					dep.DockerBrokers = []string{b.ContainerAddr()}
				}
				admin := b.Kafka()
				a.kafka.Brokers = admin.Brokers
				a.kafka.SASLMechanism, a.kafka.SASLUser, a.kafka.SASLPassword = admin.SASLMechanism, admin.SASLUser, admin.SASLPassword
				a.configured = true // the broker's own login, not a file's
				where = "embedded, data " + cfg.Where()
				if !cfg.Secure {
					where += ", INSECURE: no login, no ACLs"
				}
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			if external {
				if err := a.pingCluster(ctx, cl, why); err != nil {
					return err
				}
			}
			// Against an existing cluster nobody else creates the internal
			// topics; on the embedded broker this is a no-op.
			if err := kit.EnsureTopics(ctx, cl, kit.InNamespace(a.kafka.Namespace(), topics.Internal()...)...); err != nil {
				return fmt.Errorf("create internal topics: %w", err)
			}
			serveAdmin, err := broker.ListenAdmin(cfg.AdminAddr, a.io.Out, kit.KafkaReady(cl))
			if err != nil {
				return err
			}
			logins := map[string]kit.KafkaConfig{access.DeployerUser: a.kafka, access.GatewayUser: a.kafka, access.TimerUser: a.kafka, access.LoadmonUser: a.kafka, access.TracerUser: a.kafka, access.BridgeUser: a.kafka}
			if external || cfg.Secure {
				if logins, err = a.principals(ctx, cl, access.Services()...); err != nil {
					return err
				}
			}
			dep.Kafka, dep.DataDir, dep.Logger = logins[access.DeployerUser], cfg.DataDir, a.logger()
			if dep.FnboxBin == "" {
				// One binary: instances are this program's fnbox command.
				if dep.FnboxBin, err = os.Executable(); err != nil {
					return fmt.Errorf("find the butter binary to run fnbox instances: %w", err)
				}
				dep.FnboxArgs = []string{FnboxCommand}
			}
			// Instances die with this process, even on SIGKILL: a later
			// butter up must not find them consuming with old code.
			dep.DieWithDeployer = !dep.KeepInstances
			gw.Kafka, gw.Logger = logins[access.GatewayUser], a.logger()
			tm.Kafka, tm.Logger = logins[access.TimerUser], a.logger()
			lm.Kafka, lm.Logger = logins[access.LoadmonUser], a.logger()
			tc.Kafka, tc.Logger, tc.DataDir = logins[access.TracerUser], a.logger(), filepath.Join(cfg.DataDir, "tracer")
			// The bridge opens the secrets the deployer sealed: the same key.
			br.Kafka, br.Logger, br.SecretKeyFile = logins[access.BridgeUser], a.logger(), dep.SecretKeyFile
			if br.SecretKeyFile == "" {
				br.SecretKeyFile = filepath.Join(cfg.DataDir, "secret.key")
			}
			if cfg.DataDir == "" {
				// An in-memory broker: the tracer's index is as fleeting.
				if tc.DataDir, err = os.MkdirTemp("", "butter-tracer"); err != nil {
					return fmt.Errorf("make the tracer's index dir: %w", err)
				}
				defer os.RemoveAll(tc.DataDir)
			}
			if err := kit.ApplyTraceSample(*traceSample); err != nil {
				return err
			}
			tr, err := startTracers(ctx, logins, a.logger(), access.DeployerUser, access.GatewayUser, access.TimerUser)
			if err != nil {
				return err
			}
			defer func() {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				_ = tr.shutdown(sctx)
			}()
			gw.Tracer, tm.Tracer = tr.of(access.GatewayUser), tr.of(access.TimerUser)
			// The deployer's spans come from the global provider, which
			// in this process is the deployer's.
			otel.SetTracerProvider(tr.of(access.DeployerUser))
			otel.SetTextMapPropagator(kit.Propagator())
			deployer, err := deployersvc.New(dep)
			if err != nil {
				return err
			}
			gateway, err := gatewaysvc.New(gw)
			if err != nil {
				deployer.Close()
				return err
			}
			timer, err := timersvc.New(tm)
			if err != nil {
				deployer.Close()
				gateway.Close()
				return err
			}
			loadmon, err := loadmonsvc.New(lm)
			if err != nil {
				deployer.Close()
				gateway.Close()
				timer.Close()
				return err
			}
			tracer, err := tracersvc.New(tc)
			if err != nil {
				deployer.Close()
				gateway.Close()
				timer.Close()
				loadmon.Close()
				return err
			}
			bridge, err := bridgesvc.New(br)
			if err != nil {
				deployer.Close()
				gateway.Close()
				timer.Close()
				loadmon.Close()
				tracer.Close()
				return err
			}
			parts := []kit.Part{{Name: "up admin server", Run: serveAdmin}}
			// The bridge after the deployer, which makes the secret key.
			names := []string{"deployer", "gateway", "timer", "loadmon", "tracer", "bridge"}
			for i, s := range []kit.Service{deployer, gateway, timer, loadmon, tracer, bridge} {
				defer s.Close()
				if err := s.Provision(ctx); err != nil {
					return err
				}
				parts = append(parts, kit.Part{Name: names[i], Run: s.Serve})
			}
			ctxFile, err := a.writeUpContext(cfg, external, map[string]string{"deployer": deployer.Addr(), "gateway": gateway.Addr(),
				"timer": timer.Addr(), "loadmon": loadmon.Addr(), "tracer": tracer.Addr(), "bridge": bridge.Addr()})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.io.Out, "butter is up\n  broker    %s (%s)\n", strings.Join(a.kafka.Brokers, ","), where)
			if path := cfg.ClientPropertiesPath(); !external && cfg.Secure && path != "" {
				fmt.Fprintf(a.io.Out, "  login     kcat -F %s (the admin; butter commands find it)\n", path)
			}
			fmt.Fprintf(a.io.Out, "  deployer  http://%s/v1/deployments\n", deployer.Addr())
			fmt.Fprintf(a.io.Out, "  gateway   http://%s/\n", gateway.Addr())
			fmt.Fprintf(a.io.Out, "  timer     http://%s/v1/timers\n", timer.Addr())
			fmt.Fprintf(a.io.Out, "  loadmon   http://%s/metrics\n", loadmon.Addr())
			fmt.Fprintf(a.io.Out, "  tracer    http://%s/ (web UI; /v1/traces)\n", tracer.Addr())
			fmt.Fprintf(a.io.Out, "  bridge    http://%s/v1/webhooks/{deployment}/{bridge}\n", bridge.Addr())
			if ctxFile != "" {
				fmt.Fprintf(a.io.Out, "  context   %s (butter commands find every part here; elsewhere: BUTTER_CONTEXT=%s)\n", ctxFile, ctxFile)
			}
			fmt.Fprintln(a.io.Out, "Ctrl-C stops.")
			// Every part serves until ctx is done; the first to stop stops all.
			err = kit.Supervise(ctx, parts...)
			fmt.Fprintln(a.io.Out, "butter stopped")
			return err
		},
	}
	// Each service's own flags, namespaced under up (--deployer-addr,
	// --gateway-addr, --timer-addr, ...); Kafka and the data dir are shared
	// by the whole platform.
	cmd.Flags().AddGoFlagSet(tfs)
	addServiceFlags(cmd, "deployer", dep.RegisterFlags)
	addServiceFlags(cmd, "gateway", gw.RegisterFlags)
	addServiceFlags(cmd, "timer", tm.RegisterFlags)
	addServiceFlags(cmd, "loadmon", lm.RegisterFlags)
	addServiceFlags(cmd, "tracer", tc.RegisterFlags)
	addServiceFlags(cmd, "bridge", br.RegisterFlags)
	d := broker.DefaultConfig()
	cmd.Flags().StringVar(&cfg.DataDir, "data", kit.EnvOr("BUTTER_DATA", d.DataDir), "platform data `dir` (env BUTTER_DATA)")
	cmd.Flags().StringVar(&cfg.Addr, "broker-addr", kit.EnvOr("BUTTER_BROKER_ADDR", d.Addr), "embedded broker `host:port` (env BUTTER_BROKER_ADDR)")
	cmd.Flags().BoolVar(&cfg.Sync, "sync", false, "embedded broker fsyncs every produced batch")
	cmd.Flags().StringVar(&dep.Runtime, "runtime", kit.EnvOr("BUTTER_RUNTIME", dep.Runtime), "runs function instances: process, or docker (containers; make images first) (env BUTTER_RUNTIME)")
	cmd.Flags().StringVar(&cfg.ContainerAddr, "broker-container-addr", kit.EnvOr("BUTTER_BROKER_CONTAINER_ADDR", ""), "with --runtime docker, where the embedded broker also listens for containers: `host[:port]`; default the Docker network's gateway, port of --broker-addr (env BUTTER_BROKER_CONTAINER_ADDR)")
	cmd.Flags().BoolVar(&cfg.Repair, "repair", false, "if the embedded broker's data dir cannot be loaded, move what is broken to <data>/broker/quarantine/<time>/ and start without it (logged)")
	sec := flag.NewFlagSet("security", flag.ContinueOnError)
	cfg.RegisterSecurityFlags(sec)
	cmd.Flags().AddGoFlagSet(sec)
	// :8085 is the bridge's (DESIGN §9); up's own admin endpoint is :8086.
	cmd.Flags().StringVar(&cfg.AdminAddr, "admin-addr", kit.EnvOr("BUTTER_UP_ADMIN", "127.0.0.1:8086"), "serve up's /livez, /readyz, /metrics on `host:port`; empty for none (env BUTTER_UP_ADMIN)")
	cfg.Retention = d.Retention
	return cmd
}

// FnboxCommand is the first argument that makes the butter binary the
// function container (see cmd/butter): the deployer of butter up runs
// instances as `butter fnbox --code DIR ...` unless --deployer-fnbox names
// another fnbox.
const FnboxCommand = "fnbox"

// addServiceFlags adds a service's own flags to cmd, each named
// <prefix>-<flag>, except --data which the platform shares.
func addServiceFlags(cmd *cobra.Command, prefix string, register func(*flag.FlagSet)) {
	fs := flag.NewFlagSet(prefix, flag.ContinueOnError)
	register(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "data" {
			// One secret key serves the platform: --secret-key-file,
			// as for butter deployer.
			if f.Name != "secret-key-file" {
				f.Name = prefix + "-" + f.Name
			} else if cmd.Flags().Lookup(f.Name) != nil {
				return // the deployer's, which the bridge shares
			}
			cmd.Flags().AddGoFlag(f)
		}
	})
}
