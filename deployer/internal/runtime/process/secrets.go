package process

import (
	"fmt"
	"maps"
	"slices"

	"github.com/buttercompass/butter/deployer/internal/runtime"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
)

// secretEnv returns spec's secretEnv decrypted, as NAME=value entries
// for the instance's environment: fnbox passes its environment on to the
// function. This is the only place a stored secret is decrypted. The
// descriptor fnbox reads (butter.yaml in the code dir) keeps the sealed
// values, and fnbox has no key, so the process environment is the only
// way in; it is readable by the instance's own user only.
func (r *Runtime) secretEnv(spec runtime.InstanceSpec) ([]string, error) {
	desc, err := descriptor.Parse(control.DescriptorFile, []byte(spec.Descriptor))
	if err != nil {
		return nil, fmt.Errorf("parse descriptor of deployment %q version %s: %w", spec.Deployment, spec.Version, err)
	}
	if len(desc.SecretEnv) == 0 {
		return nil, nil
	}
	if r.cfg.Secrets == nil {
		return nil, fmt.Errorf("start deployment %q: it has secretEnv, and the runtime has no secret key to decrypt it", spec.Deployment)
	}
	env := make([]string, 0, len(desc.SecretEnv))
	for _, k := range slices.Sorted(maps.Keys(desc.SecretEnv)) {
		v, err := r.cfg.Secrets.Open(spec.Deployment, k, desc.SecretEnv[k])
		if err != nil {
			return nil, fmt.Errorf("start deployment %q version %s: %w", spec.Deployment, spec.Version, err)
		}
		env = append(env, k+"="+v)
	}
	return env, nil
}
