package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/fnbox/box"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

// announceReady waits until the box is ready, then writes the ready file
// (when one is asked for) and logs control.ReadyMessage. The file is what
// the deployer waits for: the log line is not written at
// BUTTER_LOG_LEVEL=warn, and a log is no channel to signal on.
func announceReady(ctx context.Context, b *box.Box, readyFile string, rf control.ReadyFile, log *slog.Logger) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if b.Ready(ctx) != nil {
			continue
		}
		if readyFile != "" {
			if err := writeReadyFile(readyFile, rf); err != nil {
				// The deployer would count this instance as starting forever
				// and never retire the version it replaces: say so loudly.
				log.Error("write ready file", "path", readyFile, kit.KeyError, err)
			}
		}
		log.Info(control.ReadyMessage)
		return
	}
}

// writeReadyFile writes rf to path (see writeJSONFile).
func writeReadyFile(path string, rf control.ReadyFile) error { return writeJSONFile(path, rf) }

// writeJSONFile writes v as JSON to path under a temporary name first
// (a dot file beside it), so the file never exists half written.
func writeJSONFile(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// errOrphan ends fnbox with control.ExitCodeOrphan.
var errOrphan = errors.New("orphaned")

// watchOrphan returns an error wrapping errOrphan once the broker has
// been unreachable, or the deployment deleted from _butter.deployments,
// for longer than grace; nil when ctx ends first. An instance outliving
// its platform (a deployer killed with no successor, a broker that is
// gone) would otherwise retry forever, and join the groups of whatever
// platform comes up next at the same address with its old code.
//
// A deployment counts as deleted only once it was seen and then
// tombstoned: fnbox run by hand, with no deployer, never exits for it. A
// principal not allowed to read _butter.deployments leaves only the broker
// check.
func watchOrphan(ctx context.Context, kafka kit.KafkaConfig, deployment string, grace time.Duration, log *slog.Logger) error {
	if grace <= 0 {
		return nil
	}
	cl, err := kafka.NewClient()
	if err != nil {
		return fmt.Errorf("watch broker: %w", err)
	}
	defer cl.Close()
	dep := &presence{}
	deployments := kafka.Namespace().Topic(topics.Deployments)
	f, err := kit.NewFollower(kafka, []string{deployments}, func(r *kgo.Record) {
		if string(r.Key) == deployment {
			dep.set(r.Value != nil)
		}
	}, log, kgo.ClientID("butter-fnbox-orphan-watch"))
	if err != nil {
		return fmt.Errorf("watch deployment: %w", err)
	}
	defer f.Close()
	go func() {
		if err := f.Run(ctx); err != nil && ctx.Err() == nil {
			log.Info("not watching for the deployment's deletion (its principal may not read deployments); only the broker's absence ends this instance", kit.KeyError, err)
		}
	}()
	return watchBroker(ctx, cl.Ping, deployment, dep, grace, log)
}

// watchBroker is watchOrphan's loop: ping reaches the broker, dep says
// whether deployment was deleted.
func watchBroker(ctx context.Context, ping func(context.Context) error, deployment string, dep *presence, grace time.Duration, log *slog.Logger) error {
	every := min(max(grace/4, 50*time.Millisecond), 5*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	var brokerLost time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, max(every, time.Second))
		err := ping(pctx)
		cancel()
		now := time.Now()
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			brokerLost = time.Time{}
		case brokerLost.IsZero():
			brokerLost = now
			log.Warn("broker unreachable; this instance exits if it stays so", "grace", grace, kit.KeyError, err)
		case now.Sub(brokerLost) > grace:
			return fmt.Errorf("%w: the broker has been unreachable for %s: %v", errOrphan, now.Sub(brokerLost).Round(time.Second), err)
		}
		if gone := dep.goneSince(); !gone.IsZero() && now.Sub(gone) > grace {
			return fmt.Errorf("%w: deployment %s was deleted %s ago", errOrphan, deployment, now.Sub(gone).Round(time.Second))
		}
	}
}

// orphanStop bounds how long an orphaned fnbox waits for its box to stop:
// with the broker gone, commits and leaving the group cannot finish, and
// with it up (a deleted deployment) the box stops well within this.
const orphanStop = 3 * time.Second

// runBox runs b until ctx (the supervisor's, cancelled after life) is
// done. When life, the instance's context, was cancelled for being
// orphaned, it returns at most orphanStop later, whether or not b stopped:
// exiting ends the function processes too.
func runBox(ctx, life context.Context, b *box.Box, log *slog.Logger) error {
	return runOrphanable(ctx, life, b.Run, log)
}

// runOrphanable is runBox for any run: a box or a pool of them.
func runOrphanable(ctx, life context.Context, run func(context.Context) error, log *slog.Logger) error {
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	if !errors.Is(context.Cause(life), errOrphan) {
		return <-done
	}
	t := time.NewTimer(orphanStop)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		log.Warn("orphaned instance did not stop in time; exiting anyway", "waited", orphanStop)
		return nil
	}
}

// presence tracks whether a deployment record exists.
type presence struct {
	mu   sync.Mutex
	seen bool
	gone time.Time // when a tombstone followed a record; zero while present
}

func (p *presence) set(present bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case present:
		p.seen, p.gone = true, time.Time{}
	case p.seen && p.gone.IsZero():
		p.gone = time.Now()
	}
}

func (p *presence) goneSince() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gone
}
