package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/buttercompass/butter/broker-bridge/bridge/internal/mirror"
	"github.com/buttercompass/butter/broker-bridge/bridge/internal/sink"
	"github.com/buttercompass/butter/broker-bridge/bridge/internal/vcenter"
	"github.com/buttercompass/butter/proto/bridges"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

// runner is one running source or sink.
type runner struct {
	fingerprint string
	cancel      context.CancelFunc
	done        chan struct{}
}

// runners are the bridges this replica runs, by deployment/bridge.
type runners struct {
	m map[string]*runner
}

func (r *runners) stop(key string) {
	if x := r.m[key]; x != nil {
		x.cancel()
		<-x.done
		delete(r.m, key)
	}
}

func (r *runners) stopAll() {
	for k := range r.m {
		r.stop(k)
	}
}

// want is a bridge that should run: its fingerprint changes whenever
// anything it runs with does (spec, secrets), which restarts it.
type want struct {
	fingerprint string
	run         func(ctx context.Context) error
	stream      string
}

// reconcile starts the bridges that should run and are not, and stops
// the ones that should not or changed.
func (s *Service) reconcile(ctx context.Context, r *runners) {
	wants := s.wants()
	for k, x := range r.m {
		if w, ok := wants[k]; !ok || w.fingerprint != x.fingerprint {
			s.log.Info("bridge stops", "bridge", k)
			r.stop(k)
		}
	}
	for k, w := range wants {
		if r.m[k] != nil {
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		x := &runner{fingerprint: w.fingerprint, cancel: cancel, done: make(chan struct{})}
		r.m[k] = x
		s.log.Info("bridge starts", "bridge", k)
		go func() {
			defer close(x.done)
			s.supervise(rctx, k, w)
		}()
	}
}

// supervise runs w until ctx ends, starting it again after a failure.
func (s *Service) supervise(ctx context.Context, key string, w want) {
	for ctx.Err() == nil {
		err := s.ensureStream(ctx, w.stream)
		if err == nil {
			err = w.run(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, sink.ErrRefused) {
			// Only a new descriptor (which restarts the bridge) can change
			// the URL: say so once and wait for it.
			s.log.Error("bridge refused", "bridge", key, kit.KeyError, err)
			<-ctx.Done()
			return
		}
		wait := s.cfg.Retry
		if errors.Is(err, vcenter.ErrFenced) || errors.Is(err, mirror.ErrFenced) {
			// Another replica took the source over: it owns it until the
			// group says otherwise, so do not fence it back at once.
			wait = s.cfg.SessionTimeout
		}
		s.log.Warn("bridge failed; starting again", "bridge", key, kit.KeyError, err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// wants lists the bridges this replica should run now.
func (s *Service) wants() map[string]want {
	s.mu.Lock()
	descs := make([]*descriptor.Descriptor, 0, len(s.desired))
	for _, d := range s.desired {
		descs = append(descs, d)
	}
	s.mu.Unlock()
	owner := s.owner.Load()
	out := map[string]want{}
	for _, desc := range descs {
		for _, b := range desc.Bridges {
			key := bridges.CheckpointKey(desc.Name, b.Name)
			switch b.Kind() {
			case descriptor.BridgeVCenter:
				if !owner {
					continue
				}
				spec := *b.Source.VCenter
				var cfgs []vcenter.Config
				var secrets string
				for _, e := range spec.Endpoints() {
					password, err := s.key.Value(desc, e.PasswordFrom)
					if err != nil {
						s.log.Error("vcenter source cannot start", "bridge", key, "url", e.URL, kit.KeyError, err)
						cfgs = nil
						break
					}
					one := spec
					one.URL, one.Insecure, one.Username, one.PasswordFrom, one.VCenters = e.URL, e.Insecure, e.Username, e.PasswordFrom, nil
					secrets += password + "\x00"
					cfgs = append(cfgs, vcenter.Config{Deployment: desc.Name, Bridge: b.Name, Spec: one, Password: password,
						Stream: s.ns.Topic(b.Stream), Checkpoints: s.ns.Topic(topics.Checkpoints), Kafka: s.cfg.Kafka,
						TransactionalID: bridges.TransactionalID(s.ns, desc.Name, b.Name), Logger: s.log, Metrics: s.vcm, Retry: s.cfg.Retry,
						// The list form keys each vCenter's checkpoint by its
						// instance; the single form keeps the bridge's one.
						PerInstance: len(spec.VCenters) > 0})
				}
				if cfgs == nil {
					continue
				}
				out[key] = want{fingerprint: fingerprint(b, secrets), stream: b.Stream,
					run: func(ctx context.Context) error { return vcenter.RunAll(ctx, cfgs) }}
			case descriptor.BridgeKafka:
				if !owner {
					continue
				}
				spec := *b.Source.Kafka
				var password string
				if spec.PasswordFrom != "" {
					var err error
					if password, err = s.key.Value(desc, spec.PasswordFrom); err != nil {
						s.log.Error("kafka mirror cannot start", "bridge", key, kit.KeyError, err)
						continue
					}
				}
				cfg := mirror.Config{Deployment: desc.Name, Bridge: b.Name, Spec: spec, Password: password,
					Stream: s.ns.Topic(b.Stream), Checkpoints: s.ns.Topic(topics.Checkpoints), Kafka: s.cfg.Kafka,
					TransactionalID: bridges.TransactionalID(s.ns, desc.Name, b.Name), Logger: s.log, Mirrored: s.mirrorm}
				out[key] = want{fingerprint: fingerprint(b, password), stream: b.Stream,
					run: func(ctx context.Context) error { return mirror.Run(ctx, cfg) }}
			case descriptor.BridgeKafkaSink:
				spec := *b.Sink.Kafka
				if spec.CheckpointTopic != "" && !owner {
					// Exactly once reads the stream by partition from the
					// positions on the other cluster: one replica, fenced
					// like the sources.
					continue
				}
				var password string
				if spec.PasswordFrom != "" {
					var err error
					if password, err = s.key.Value(desc, spec.PasswordFrom); err != nil {
						s.log.Error("kafka sink cannot start", "bridge", key, kit.KeyError, err)
						continue
					}
				}
				cfg := mirror.SinkConfig{Deployment: desc.Name, Bridge: b.Name, Spec: spec, Password: password,
					Stream: s.ns.Topic(b.Stream), Group: bridges.SinkGroup(s.ns, desc.Name, b.Name),
					TransactionalID: bridges.TransactionalID(s.ns, desc.Name, b.Name),
					Kafka:           s.cfg.Kafka, Logger: s.log, Mirrored: s.ksinkm}
				out[key] = want{fingerprint: fingerprint(b, password), stream: b.Stream,
					run: func(ctx context.Context) error { return mirror.RunSink(ctx, cfg) }}
			case descriptor.BridgeHTTP:
				spec := *b.Sink.HTTP
				cfg := sink.Config{Deployment: desc.Name, Bridge: b.Name, Spec: spec, Topic: s.ns.Topic(b.Stream),
					DeadLetter: s.ns.Topic(spec.DeadLetter), Group: bridges.SinkGroup(s.ns, desc.Name, b.Name),
					Kafka: s.cfg.Kafka, Logger: s.log, Metrics: s.sinkm}
				out[key] = want{fingerprint: fingerprint(b, ""), stream: b.Stream,
					run: func(ctx context.Context) error {
						if err := s.ensureStream(ctx, spec.DeadLetter); err != nil {
							return err
						}
						return sink.Run(ctx, cfg)
					}}
			}
		}
	}
	return out
}

// fingerprint identifies what a bridge runs with, the secret only hashed.
func fingerprint(b descriptor.Bridge, secret string) string {
	h := sha256.New()
	_ = json.NewEncoder(h).Encode(b)
	h.Write([]byte(secret))
	return hex.EncodeToString(h.Sum(nil))
}
