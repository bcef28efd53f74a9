package commands

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
)

// UpBrokersEnv names an existing Kafka cluster for butter up alone, like
// up --brokers. BUTTER_BROKERS is the client commands' setting and never
// changes what up starts.
const UpBrokersEnv = "BUTTER_UP_BROKERS"

// upCluster decides where butter up's Kafka is: an existing cluster only
// when up itself is told so (--brokers, or BUTTER_UP_BROKERS), else the
// embedded broker. why says which setting decided, for the banner.
func (a *app) upCluster(cmd *cobra.Command) (external bool, why string) {
	// up writes the client context; it never reads one.
	a.cc, a.ccLoaded = &clientContext{}, true
	switch {
	case cmd.Flags().Changed("brokers"):
		a.kafka.Brokers, why = hostPorts(a.kafka.Brokers), "from --brokers"
	case os.Getenv(UpBrokersEnv) != "":
		a.kafka.Brokers, why = hostPorts(strings.Split(os.Getenv(UpBrokersEnv), ",")), "from "+UpBrokersEnv
	}
	if why != "" {
		// Said before connecting, so a cluster that cannot be reached
		// is not a mystery.
		fmt.Fprintf(a.io.Out, "using the existing Kafka cluster %s (%s)\n", strings.Join(a.kafka.Brokers, ","), why)
		return true, why
	}
	if v := os.Getenv("BUTTER_BROKERS"); v != "" {
		fmt.Fprintf(a.io.Out, "note: BUTTER_BROKERS=%s is the client commands' setting: up starts its embedded broker (up --brokers or %s uses an existing cluster)\n", v, UpBrokersEnv)
	}
	return false, "no --brokers"
}

// writeUpContext writes <data>/context.json with what up bound and returns
// its path; empty without a data dir (an in-memory broker).
func (a *app) writeUpContext(cfg broker.Config, external bool, addrs map[string]string) (string, error) {
	if cfg.DataDir == "" {
		return "", nil
	}
	login := a.clientConfig
	if !external && cfg.Secure {
		login = cfg.ClientPropertiesPath()
	}
	if cfg.AdminAddr != "" && !strings.HasSuffix(cfg.AdminAddr, ":0") {
		addrs["admin"] = cfg.AdminAddr
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return "", fmt.Errorf("find the data dir: %w", err)
	}
	if login != "" {
		if login, err = filepath.Abs(login); err != nil {
			return "", fmt.Errorf("find the client config: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("make the data dir: %w", err)
	}
	return writeContext(dir, upContext(a.kafka, login, addrs))
}

// pingCluster fails with one line when the existing cluster cannot be
// reached, rather than one error per internal topic.
func (a *app) pingCluster(ctx context.Context, cl *kgo.Client, why string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		return fmt.Errorf("reach the existing Kafka cluster %s (%s; without it butter up starts its embedded broker): %w",
			strings.Join(a.kafka.Brokers, ","), why, err)
	}
	return nil
}
