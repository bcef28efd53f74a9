package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/buttercompass/butter/deployer/internal/archive"
	"github.com/buttercompass/butter/deployer/internal/secrets"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
)

// Redacted stands for every secret value in what the API answers: the
// names of a deployment's secrets are shown, their values never.
const Redacted = "(secret)"

// sealSecrets replaces the secretEnv values of an upload by their sealed
// form, in the descriptor and in the archive's copy of it, so that only
// ciphertext is stored. A value equal to the one prev stores keeps its
// sealed form: sending the same descriptor again changes nothing, not
// even the content version. A value sent already sealed must open with
// this deployer's key for this deployment. It answers and returns false
// on failure.
func (a *API) sealSecrets(w http.ResponseWriter, r *http.Request, desc *descriptor.Descriptor, up archive.Upload, prev control.Deployment, hasPrev bool) (archive.Upload, bool) {
	if len(desc.SecretEnv) == 0 {
		return up, true
	}
	key := a.cfg.Secrets
	if key == nil {
		kit.WriteProblem(w, kit.Problem{Status: http.StatusInternalServerError, Title: "no secret key",
			Detail: "the descriptor has secretEnv but this deployer has no secret key to encrypt it with; nothing was deployed", Instance: r.URL.Path})
		return up, false
	}
	var stored map[string]string
	if hasPrev {
		if p, err := prev.Parse(); err == nil {
			stored = p.SecretEnv
		}
	}
	src, _, err := descriptor.SealSecrets(control.DescriptorFile, up.Descriptor, func(name, value string) (string, error) {
		if secrets.IsSealed(value) {
			if _, err := key.Open(desc.Name, name, value); err != nil {
				return "", err
			}
			return value, nil
		}
		if old, ok := stored[name]; ok {
			if v, err := key.Open(desc.Name, name, old); err == nil && v == value {
				return old, nil
			}
		}
		return key.Seal(desc.Name, name, value), nil
	})
	var probs descriptor.Problems
	switch {
	case errors.As(err, &probs):
		p := kit.Problem{Status: http.StatusBadRequest, Title: "invalid descriptor",
			Detail: fmt.Sprintf("%d problem(s) with the secrets in %s; nothing was deployed", len(probs), control.DescriptorFile), Instance: r.URL.Path}
		for _, pr := range probs {
			p.Errors = append(p.Errors, pr.String())
		}
		kit.WriteProblem(w, p)
		return up, false
	case err != nil:
		a.log.Error("seal secrets", kit.KeyDeployment, desc.Name, kit.KeyError, err)
		kit.WriteProblem(w, kit.Problem{Status: http.StatusInternalServerError, Title: "cannot encrypt the secrets",
			Detail: err.Error() + "; nothing was deployed", Instance: r.URL.Path})
		return up, false
	}
	out := archive.Upload{Descriptor: src, Code: up.Code}
	if len(up.Code) > 0 {
		if out.Code, err = archive.WithDescriptor(up.Code, src); err != nil {
			kit.WriteProblem(w, kit.Problem{Status: http.StatusBadRequest, Title: "invalid archive",
				Detail: err.Error() + "; nothing was deployed", Instance: r.URL.Path})
			return up, false
		}
	}
	return out, true
}

// secretNames returns the names of desc's secrets, each mapped to
// Redacted, or nil.
func secretNames(desc *descriptor.Descriptor) map[string]string {
	if len(desc.SecretEnv) == 0 {
		return nil
	}
	out := make(map[string]string, len(desc.SecretEnv))
	for k := range desc.SecretEnv {
		out[k] = Redacted
	}
	return out
}
