package commands

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

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
		a.kafka.Brokers = hostPorts(a.kafka.Brokers)
		return true, "from --brokers"
	case os.Getenv(UpBrokersEnv) != "":
		a.kafka.Brokers = hostPorts(strings.Split(os.Getenv(UpBrokersEnv), ","))
		return true, "from " + UpBrokersEnv
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
