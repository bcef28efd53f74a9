package vcenter

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/buttercompass/butter/proto/kit"
)

// RunAll runs one source per vCenter of a bridge (cfgs, PerInstance when
// there are several) until ctx is done, starting each again after an
// error of its own, so one unreachable vCenter does not stop the others.
// It returns when ctx is done, or with ErrFenced as soon as any of them
// is fenced: another replica took the bridge over.
func RunAll(ctx context.Context, cfgs []Config) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg     sync.WaitGroup
		once   sync.Once
		fenced error
	)
	for _, cfg := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				err := Run(ctx, cfg)
				if ctx.Err() != nil {
					return
				}
				if errors.Is(err, ErrFenced) {
					once.Do(func() { fenced = err })
					cancel()
					return
				}
				retry := cfg.Retry
				if retry == 0 {
					retry = time.Second
				}
				cfg.Logger.Warn("vcenter source starts again", "deployment", cfg.Deployment, "bridge", cfg.Bridge,
					"url", cfg.Spec.URL, kit.KeyError, err, "retry_in", retry.String())
				select {
				case <-ctx.Done():
					return
				case <-time.After(retry):
				}
			}
		}()
	}
	wg.Wait()
	return fenced
}
