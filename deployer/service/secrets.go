package service

import (
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"

	"github.com/buttercompass/butter/deployer/internal/secrets"
	"github.com/buttercompass/butter/proto/kit"
)

// loadSecretKey reads the key that seals secretEnv values: the
// --secret-key-file, which must exist, else <data>/secret.key, created
// (mode 0600) on first start.
func (c Config) loadSecretKey(log *slog.Logger) (*secrets.Key, error) {
	if c.SecretKeyFile != "" {
		k, err := secrets.LoadKey(c.SecretKeyFile)
		if err != nil {
			return nil, fmt.Errorf("check --secret-key-file: %w", err)
		}
		return k, nil
	}
	path := filepath.Join(c.DataDir, secrets.KeyFile)
	k, created, err := secrets.LoadOrCreateKey(path)
	if err != nil {
		return nil, fmt.Errorf("load the secret key of the data dir: %w", err)
	}
	if created {
		// Only its path and ID: the key itself is never logged.
		log.Info("created the secret key that encrypts descriptor secrets: back it up with the data dir, secrets cannot be read without it",
			"path", path, "key_id", k.ID())
	}
	return k, nil
}

// checkSecrets logs an error for each stored deployment whose secrets do
// not open with key (the key file or the data dir was replaced): its
// instances cannot start, and saying so at start names the deployments
// before their first failed start does.
func (s *Service) checkSecrets(key *secrets.Key) {
	for _, d := range s.store.List() {
		desc, err := d.Parse()
		if err != nil {
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(desc.SecretEnv)) {
			if _, err := key.Open(d.Name, name, desc.SecretEnv[name]); err != nil {
				s.log.Error("a deployment's secrets do not open with this deployer's secret key: its instances cannot start until it is deployed again with its secrets in plain text, or the deployer gets the key they were sealed with",
					kit.KeyDeployment, d.Name, "key_id", key.ID(), kit.KeyError, err)
				break
			}
		}
	}
}
