// Package vcenter is the vCenter source: it reads a vCenter's event
// history through an EventHistoryCollector on the root folder and writes
// each event to a stream as a CloudEvent, exactly once.
//
// Exactly once comes from one Kafka transaction per page: the page's
// events and the checkpoint {instanceUuid, lastKey, lastCreatedTime} that
// covers them commit together or not at all. A restarted source fences
// its predecessor with the bridge's transactional id, reads the last
// committed checkpoint, opens a collector a little before lastCreatedTime
// and skips keys up to lastKey: nothing is lost (the collector starts
// early) and nothing repeats (the keys are skipped).
package vcenter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/event"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/buttercompass/butter/broker-bridge/bridge/internal/txn"
	"github.com/buttercompass/butter/proto/bridges"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
)

// Overlap is how far before the checkpoint's lastCreatedTime a resumed
// collector starts: events created in the same second as the last one
// read, or with a clock step back, are read again and skipped by key.
const Overlap = 5 * time.Minute

// Config is one vCenter source.
type Config struct {
	Deployment, Bridge string
	Spec               descriptor.VCenterSource
	// Password is the opened passwordFrom secret.
	Password string
	// Stream is the topic written (namespaced).
	Stream string
	// Checkpoints is the _butter.checkpoints topic (namespaced).
	Checkpoints string
	// Kafka reaches the cluster; TransactionalID is the bridge's.
	Kafka           kit.KafkaConfig
	TransactionalID string
	Logger          *slog.Logger
	Metrics         *Metrics
	// Retry is the wait after a vCenter error before reconnecting.
	// Default 1s.
	Retry time.Duration
	// Refresh replaces a collector that has returned only empty pages
	// for this long with a new one from the checkpoint: vCenter (and
	// vcsim) have collectors that stop seeing new events, and a new one
	// costs one call and finds them (keys already read are skipped).
	// Default 5m.
	Refresh time.Duration
	// PerInstance keys the checkpoint and the transactional id by the
	// vCenter's About.InstanceUuid (<deployment>/<bridge>/<uuid>,
	// <TransactionalID>.<uuid>), learnt by logging in before taking the
	// source over: how one bridge reads several vCenters (RunAll), each
	// with a position of its own. Off, a bridge has one checkpoint.
	PerInstance bool
}

// Metrics of every vCenter source of a process.
type Metrics struct {
	Events *prometheus.CounterVec // produced, by deployment and bridge
	Lag    *prometheus.GaugeVec   // seconds from the last event's creation to its commit
	Errors *prometheus.CounterVec // vCenter or Kafka errors that restarted the reading
	// Refreshes counts collectors replaced after Refresh of empty pages.
	Refreshes *prometheus.CounterVec
	// Gaps counts event keys never read: between two events read one
	// after the other, the keys in between (vCenter purged them from its
	// history before the bridge read them, during a long outage, or the
	// bridge's user may not see them).
	Gaps *prometheus.CounterVec
}

// NewMetrics registers the source metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Events:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "butter_bridge_vcenter_events_total", Help: "vCenter events written to their stream."}, []string{"deployment", "bridge"}),
		Lag:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "butter_bridge_vcenter_lag_seconds", Help: "Age of the last vCenter event when its page committed."}, []string{"deployment", "bridge"}),
		Errors:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "butter_bridge_vcenter_errors_total", Help: "Errors that made a vCenter source reconnect."}, []string{"deployment", "bridge"}),
		Gaps:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "butter_bridge_vcenter_key_gaps_total", Help: "vCenter event keys skipped between two events read one after the other (purged from vCenter's history before they were read)."}, []string{"deployment", "bridge"}),
		Refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "butter_bridge_vcenter_collector_refreshes_total", Help: "Event collectors replaced after returning only empty pages for the refresh period."}, []string{"deployment", "bridge"}),
	}
	if reg != nil {
		reg.MustRegister(m.Events, m.Lag, m.Errors, m.Refreshes, m.Gaps)
	}
	return m
}

// Run runs the source until ctx is done. It returns when ctx is done,
// when the source is fenced by another instance (ErrFenced), when its
// Kafka producer cannot be made, or, PerInstance, when its URL comes to
// reach another vCenter instance; vCenter errors it handles itself
// (reconnecting after Retry).
func Run(ctx context.Context, cfg Config) error {
	if cfg.Retry == 0 {
		cfg.Retry = time.Second
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = 5 * time.Minute
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	s := &source{cfg: cfg, log: cfg.Logger.With("deployment", cfg.Deployment, "bridge", cfg.Bridge)}
	tid, cpBridge := cfg.TransactionalID, cfg.Bridge
	if cfg.PerInstance {
		for {
			uuid, err := s.instance(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				s.uuid = uuid
				break
			}
			cfg.Metrics.Errors.WithLabelValues(cfg.Deployment, cfg.Bridge).Inc()
			s.log.Warn("vcenter unreachable", "url", cfg.Spec.URL, kit.KeyError, err, "retry_in", cfg.Retry.String())
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(cfg.Retry):
			}
		}
		tid, cpBridge = tid+"."+s.uuid, cpBridge+"/"+s.uuid
		s.log = s.log.With("instance", s.uuid)
	}
	w, err := txn.New(cfg.Kafka, tid, cfg.Checkpoints, cfg.Deployment, cpBridge)
	if err != nil {
		return err
	}
	defer w.Close()
	s.w = w
	for {
		err := s.resume(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrFenced) || errors.Is(err, errInstanceChanged) {
			return err
		}
		cfg.Metrics.Errors.WithLabelValues(cfg.Deployment, cfg.Bridge).Inc()
		s.log.Warn("vcenter source restarts", kit.KeyError, err, "retry_in", cfg.Retry.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(cfg.Retry):
		}
	}
}

// ErrFenced means another instance of the source took it over.
var ErrFenced = txn.ErrFenced

type source struct {
	cfg  Config
	log  *slog.Logger
	w    *txn.Writer
	cp   *bridges.Checkpoint // last committed, nil before the first
	uuid string              // with PerInstance, the instance the writer is keyed by
}

// errInstanceChanged ends a PerInstance source whose URL now reaches
// another vCenter instance: a new Run keys it by the new one.
var errInstanceChanged = errors.New("vcenter instance changed")

// login logs in to the vCenter.
func (s *source) login(ctx context.Context) (*govmomi.Client, error) {
	u, err := url.Parse(s.cfg.Spec.URL)
	if err != nil {
		return nil, fmt.Errorf("parse vcenter url: %w", err)
	}
	u.User = url.UserPassword(s.cfg.Spec.Username, s.cfg.Password)
	vc, err := govmomi.NewClient(ctx, u, s.cfg.Spec.Insecure)
	if err != nil {
		return nil, fmt.Errorf("log in to %s: %w", s.cfg.Spec.URL, err)
	}
	return vc, nil
}

// logout ends vc's session, bounded.
func logout(ctx context.Context, vc *govmomi.Client) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = vc.Logout(lctx)
}

// instance returns the vCenter's About.InstanceUuid.
func (s *source) instance(ctx context.Context) (string, error) {
	vc, err := s.login(ctx)
	if err != nil {
		return "", err
	}
	defer logout(ctx, vc)
	return vc.ServiceContent.About.InstanceUuid, nil
}

// resume takes the source over (once per process), then reads the vCenter
// from the checkpoint until an error.
func (s *source) resume(ctx context.Context) error {
	if s.cp == nil {
		raw, err := s.w.TakeOver(ctx)
		if err != nil {
			return err
		}
		cp := &bridges.Checkpoint{LastKey: -1}
		if raw != nil {
			if err := json.Unmarshal(raw, cp); err != nil {
				s.log.Warn("unreadable checkpoint; starting from the vCenter's now", kit.KeyError, err)
				cp = &bridges.Checkpoint{LastKey: -1}
			}
		}
		s.log.Info("vcenter source owned", "instance", cp.InstanceUUID, "last_key", cp.LastKey)
		s.cp = cp
	}
	// Every error of the vCenter (NotAuthenticated after a session
	// expired, a collector the server dropped) ends here: a new login and
	// a new collector from the checkpoint.
	vc, err := s.login(ctx)
	if err != nil {
		return err
	}
	defer logout(ctx, vc)
	sc := vc.ServiceContent
	a := about{url: s.cfg.Spec.URL, instanceUUID: sc.About.InstanceUuid, apiVersion: sc.About.ApiVersion}
	if s.uuid != "" && a.instanceUUID != s.uuid {
		return fmt.Errorf("%w: %s now reaches %s, was %s", errInstanceChanged, s.cfg.Spec.URL, a.instanceUUID, s.uuid)
	}
	cp := *s.cp
	if cp.InstanceUUID != a.instanceUUID {
		if cp.InstanceUUID != "" {
			s.log.Warn("vcenter instance changed; its event keys start again", "was", cp.InstanceUUID, "now", a.instanceUUID)
		}
		// A first start reads from the vCenter's now (its clock, not ours).
		now, err := methods.GetCurrentTime(ctx, vc.Client)
		if err != nil {
			return fmt.Errorf("read vcenter time: %w", err)
		}
		cp = bridges.Checkpoint{InstanceUUID: a.instanceUUID, LastKey: -1, LastCreatedTime: now.Add(Overlap)}
	}
	for {
		err := s.collect(ctx, vc, a, &cp)
		if !errors.Is(err, errQuiet) {
			return err
		}
		s.cfg.Metrics.Refreshes.WithLabelValues(s.cfg.Deployment, s.cfg.Bridge).Inc()
		s.log.Debug("vcenter collector quiet; replacing it", "after", s.cfg.Refresh.String(), "last_key", cp.LastKey)
	}
}

// errQuiet ends a collector that returned only empty pages for Refresh.
var errQuiet = errors.New("collector quiet")

// collect opens a collector from cp and reads it until an error, moving
// cp with every committed page.
func (s *source) collect(ctx context.Context, vc *govmomi.Client, a about, cp *bridges.Checkpoint) error {
	begin := cp.LastCreatedTime.Add(-Overlap)
	mgr := event.NewManager(vc.Client)
	hc, err := mgr.CreateCollectorForEvents(ctx, types.EventFilterSpec{
		Entity: &types.EventFilterSpecByEntity{Entity: vc.ServiceContent.RootFolder, Recursion: types.EventFilterSpecRecursionOptionAll},
		Time:   &types.EventFilterSpecByTime{BeginTime: &begin},
	})
	if err != nil {
		return fmt.Errorf("create event collector: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = hc.Destroy(dctx)
	}()
	s.log.Info("vcenter source reading", "url", s.cfg.Spec.URL, "instance", a.instanceUUID, "after_key", cp.LastKey, "since", begin)
	page := int32(s.cfg.Spec.PageSize)
	lastEvents := time.Now()
	for {
		evs, err := hc.ReadNextEvents(ctx, page)
		if err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		if err := s.commit(ctx, a, cp, evs); err != nil {
			return err
		}
		if len(evs) == int(page) {
			continue // drain: full pages come back to back
		}
		if len(evs) > 0 {
			lastEvents = time.Now()
		} else if time.Since(lastEvents) >= s.cfg.Refresh {
			return errQuiet
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(s.cfg.Spec.Poll)):
		}
	}
}

// commit writes the page's new events and the checkpoint covering them in
// one transaction; cp moves only once it committed.
func (s *source) commit(ctx context.Context, a about, cp *bridges.Checkpoint, evs []types.BaseEvent) error {
	slices.SortFunc(evs, func(x, y types.BaseEvent) int { return int(x.GetEvent().Key - y.GetEvent().Key) })
	next := *cp
	var recs []*kgo.Record
	var gaps int64
	for _, e := range evs {
		ev := e.GetEvent()
		if ev.Key <= next.LastKey {
			continue
		}
		if next.LastKey >= 0 && ev.Key > next.LastKey+1 {
			gaps += int64(ev.Key - next.LastKey - 1)
		}
		next.LastKey, next.LastCreatedTime = ev.Key, ev.CreatedTime
		name, _ := eventName(e)
		if len(s.cfg.Spec.Types) > 0 && !slices.Contains(s.cfg.Spec.Types, name) && !slices.Contains(s.cfg.Spec.Types, className(e)) {
			continue
		}
		ce, err := toEvent(a, e)
		if err != nil {
			return err
		}
		r, err := envelope.ToRecord(s.cfg.Stream, ce)
		if err != nil {
			return err
		}
		recs = append(recs, r)
	}
	if next.LastKey == cp.LastKey {
		return nil
	}
	next.Updated = time.Now().UTC()
	if err := s.w.Commit(ctx, recs, next); err != nil {
		return err
	}
	*cp = next
	s.cp = &next
	s.cfg.Metrics.Events.WithLabelValues(s.cfg.Deployment, s.cfg.Bridge).Add(float64(len(recs)))
	if gaps > 0 {
		s.cfg.Metrics.Gaps.WithLabelValues(s.cfg.Deployment, s.cfg.Bridge).Add(float64(gaps))
		s.log.Warn("vcenter event keys skipped: vCenter no longer had them when the bridge read on (its history is bounded)", "missing", gaps, "through_key", next.LastKey)
	}
	s.cfg.Metrics.Lag.WithLabelValues(s.cfg.Deployment, s.cfg.Bridge).Set(time.Since(next.LastCreatedTime).Seconds())
	return nil
}
