// Package principal gives every deployment its own Kafka principal
// (DESIGN §8a): a SCRAM user `butter-fn.<deployment>` whose ACLs allow
// exactly what its descriptor needs (proto/access), made before its first
// instance starts, kept in step with each new version, and revoked once
// the deployment is gone.
//
// Passwords are not stored anywhere: each is an HMAC of the deployer's
// secret key over the deployment name, so a restarted deployer hands
// adopted and new instances the same login without a topic of passwords
// for an attacker to read.
package principal

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/buttercompass/butter/proto/access"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit"
)

// Config configures a Manager.
type Config struct {
	// Kafka is the deployer's own login; instances get a copy with their
	// deployment's user and password instead.
	Kafka kit.KafkaConfig
	// Client is the deployer's client, which manages users and ACLs.
	Client *kgo.Client
	// Secret derives the password of a purpose (an HMAC of the secret key).
	Secret func(purpose string) []byte
	Logger *slog.Logger
}

// Manager makes, updates and revokes deployment principals.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu sync.Mutex
	// made maps a deployment to the fingerprint of the grants it last
	// got, so a pass does not talk to the cluster for what is done.
	made map[string]string
	// shared is set once the cluster refused to let the deployer manage
	// principals: instances then log in as the deployer.
	shared bool
	swept  bool
}

// New returns a Manager.
// Without a login of its own the deployer cannot hand out any: every
// instance then connects as it does.
func New(cfg Config) *Manager {
	return &Manager{cfg: cfg, log: cfg.Logger.With("component", "principals"), made: map[string]string{},
		shared: cfg.Kafka.SASLMechanism == ""}
}

// Ensure makes d's principal and grants before its instances start. On a
// cluster where the deployer may not manage principals it logs that once
// and lets instances share the deployer's login.
func (m *Manager) Ensure(ctx context.Context, d control.Deployment) error {
	desc, err := d.Parse()
	if err != nil {
		return err
	}
	grants := access.Function(m.cfg.Kafka.Namespace(), desc)
	fp := fingerprint(grants)
	m.mu.Lock()
	done := m.shared || m.made[d.Name] == fp
	m.mu.Unlock()
	if done {
		return nil
	}
	user := access.FunctionUser(d.Name)
	err = access.SetUser(ctx, m.cfg.Client, user, m.password(d.Name))
	if err == nil {
		err = access.Grants(ctx, m.cfg.Client, user, grants)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case errors.Is(err, access.ErrNotAllowed):
		m.shared = true
		m.log.Warn("the cluster does not let the deployer manage principals: every instance logs in as the deployer, so deployments are not kept apart on the cluster", kit.KeyError, err)
		return nil
	case err != nil:
		return fmt.Errorf("make the principal of deployment %s: %w", d.Name, err)
	}
	m.made[d.Name] = fp
	return nil
}

// Login returns the Kafka settings an instance of deployment logs in with.
func (m *Manager) Login(deployment string) kit.KafkaConfig {
	k := m.cfg.Kafka
	m.mu.Lock()
	shared := m.shared
	m.mu.Unlock()
	if !shared {
		k.SASLMechanism, k.SASLUser, k.SASLPassword = access.Mechanism, access.FunctionUser(deployment), m.password(deployment)
	}
	return k
}

// Sweep revokes the principal of every deployment keep does not want:
// the ones deleted since the last pass, and, on the first pass, the ones
// deleted while no deployer ran (found by their ACLs on the cluster).
func (m *Manager) Sweep(ctx context.Context, keep func(deployment string) bool) error {
	m.mu.Lock()
	if m.shared {
		m.mu.Unlock()
		return nil
	}
	gone := map[string]bool{}
	for name := range m.made {
		if !keep(name) {
			gone[name] = true
		}
	}
	first := !m.swept
	m.mu.Unlock()
	if first {
		names, err := m.onCluster(ctx)
		if err != nil {
			return err
		}
		for _, name := range names {
			if !keep(name) {
				gone[name] = true
			}
		}
	}
	var errs []error
	for name := range gone {
		if err := access.Revoke(ctx, m.cfg.Client, access.FunctionUser(name)); err != nil {
			errs = append(errs, err)
			continue
		}
		m.log.Info("revoked the principal of a deleted deployment", kit.KeyDeployment, name)
		m.mu.Lock()
		delete(m.made, name)
		m.mu.Unlock()
	}
	if first && len(errs) == 0 {
		m.mu.Lock()
		m.swept = true
		m.mu.Unlock()
	}
	return errors.Join(errs...)
}

// onCluster lists the deployments that have a principal with ACLs.
func (m *Manager) onCluster(ctx context.Context) ([]string, error) {
	req := kmsg.NewPtrDescribeACLsRequest()
	req.ResourceType, req.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	req.Operation, req.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	resp, err := req.RequestWith(ctx, m.cfg.Client)
	if err != nil {
		return nil, fmt.Errorf("list principals: %w", err)
	}
	prefix := access.Principal(access.FunctionUser(""))
	seen := map[string]bool{}
	var names []string
	for _, r := range resp.Resources {
		for _, a := range r.ACLs {
			if name, ok := strings.CutPrefix(a.Principal, prefix); ok && !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	return names, nil
}

func (m *Manager) password(deployment string) string {
	return base64.RawURLEncoding.EncodeToString(m.cfg.Secret("kafka-principal:" + deployment))
}

func fingerprint(gs []access.Grant) string {
	h := sha256.New()
	for _, g := range gs {
		fmt.Fprintf(h, "%d/%s/%d/%v/%v;", g.Resource, g.Name, g.Pattern, g.Ops, g.Deny)
	}
	return hex.EncodeToString(h.Sum(nil))
}
