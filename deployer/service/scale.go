package service

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/buttercompass/butter/deployer/internal/reconcile"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

// provisionScale makes the reconciler apply loadmon's decisions: it
// follows _butter.scale (read to its end before returning, so a restarted
// deployer starts the counts loadmon decided, not scale.min) and pins the
// start positions of functions at zero instances. The follower stops with
// the store's context (Close).
func (s *Service) provisionScale(ctx context.Context, kcfg kit.KafkaConfig) error {
	ns := kcfg.Namespace()
	dec, err := reconcile.NewDecisions(kcfg, ns.Topic(topics.Scale), s.log)
	if err != nil {
		return err
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	prev := s.cancel
	s.cancel = func() {
		cancel()
		if prev != nil {
			prev()
		}
	}
	done := make(chan error, 1)
	go func() {
		done <- dec.Run(fctx)
		dec.Close()
	}()
	select {
	case <-dec.Ready():
	case err := <-done:
		return fmt.Errorf("read scale decisions from %s: %w", ns.Topic(topics.Scale), err)
	case <-ctx.Done():
		return fmt.Errorf("read scale decisions from %s: %w", ns.Topic(topics.Scale), ctx.Err())
	}
	s.rec.UseScale(dec, reconcile.GroupPositions{Admin: kadm.NewClient(s.kafka), Namespace: ns})
	return nil
}
