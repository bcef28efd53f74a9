package commands

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/access"
	"github.com/buttercompass/butter/proto/kit"
)

// useClientConfig points the client commands at the platform they are
// meant for: --client-config FILE (BUTTER_CLIENT_CONFIG) when given, else
// <data>/client.properties (BUTTER_DATA, default ./.butter) when it exists
// and names the brokers the command already targets (or none were given),
// so the embedded broker's admin login never goes to another cluster.
// Flags and env settings beat the file.
func (a *app) useClientConfig() error {
	path, explicit := a.clientConfig, a.clientConfig != ""
	if !explicit {
		path = filepath.Join(a.dataDir(), kit.ClientPropertiesFile)
	}
	p, err := kit.ReadClientProperties(path)
	switch {
	case err == nil:
	case !explicit && errors.Is(err, fs.ErrNotExist):
		return nil
	default:
		return fmt.Errorf("check --client-config: %w", err)
	}
	given := strings.Join(a.kafka.Brokers, ",")
	if !explicit && given != kit.DefaultBrokers && given != strings.Join(p.Brokers, ",") {
		return nil
	}
	a.kafka.UseClientProperties(p)
	return nil
}

// principals creates the platform services' users on the cluster, each
// with a fresh password and exactly its grants (proto/access), and returns
// the Kafka settings each service logs in with. A cluster where admin may
// not manage users (an existing cluster without SCRAM, or a principal
// without ALTER on the cluster) gets every service on admin's login, which
// gives up the separation between them; that is said on out.
func (a *app) principals(ctx context.Context, admin *kgo.Client, users ...string) (map[string]kit.KafkaConfig, error) {
	logins := map[string]kit.KafkaConfig{}
	if a.kafka.SASLMechanism == "" {
		// Without a login of its own the platform cannot hand any out:
		// the cluster's listener speaks no SASL.
		fmt.Fprintln(a.io.Out, "note: the cluster is used without a login, so every service connects the same way and ACLs keep nothing apart")
		for _, u := range users {
			logins[u] = a.kafka
		}
		return logins, nil
	}
	for _, u := range users {
		pass := broker.RandomPassword()
		err := access.SetUser(ctx, admin, u, pass)
		if err == nil {
			err = access.Grants(ctx, admin, u, access.Service(a.kafka.Namespace(), u))
		}
		if errors.Is(err, access.ErrNotAllowed) {
			fmt.Fprintf(a.io.Out, "note: the cluster does not let %s manage users or ACLs (%v); every service uses that login\n", a.kafka.SASLUser, err)
			for _, u := range users {
				logins[u] = a.kafka
			}
			return logins, nil
		}
		if err != nil {
			return nil, fmt.Errorf("make the platform principal %s: %w", u, err)
		}
		k := a.kafka
		k.SASLMechanism, k.SASLUser, k.SASLPassword = access.Mechanism, u, pass
		logins[u] = k
	}
	return logins, nil
}
