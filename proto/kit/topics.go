package kit

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/topics"
)

// EnsureTopics creates every topic in specs that does not exist yet, with the
// spec's partition count and configs (retention, compaction). Topics that
// already exist are left as they are, whatever their configs: several
// services race to create the internal topics at start and an operator may
// have tuned them since.
//
// Spec names are used verbatim; pass specs through [InNamespace] first when
// a topic prefix is configured. The replication factor is the broker's
// default (-1), which needs Kafka 2.4 or newer.
func EnsureTopics(ctx context.Context, cl *kgo.Client, specs ...topics.Spec) error {
	adm := kadm.NewClient(cl)
	var errs []error
	// One request per spec, because kadm applies one config set and
	// partition count to all the topics of a request.
	for _, s := range specs {
		configs := make(map[string]*string, len(s.Configs()))
		for k, v := range s.Configs() {
			configs[k] = kadm.StringPtr(v)
		}
		resp, err := adm.CreateTopic(ctx, s.PartitionCount(), -1, configs, s.Name)
		switch {
		case err == nil, errors.Is(err, kerr.TopicAlreadyExists):
		case resp.ErrMessage != "":
			errs = append(errs, fmt.Errorf("create topic %s: %w: %s", s.Name, err, resp.ErrMessage))
		default:
			errs = append(errs, fmt.Errorf("create topic %s: %w", s.Name, err))
		}
	}
	return errors.Join(errs...)
}

// InNamespace returns copies of specs with their names mapped to topics of
// ns, for [EnsureTopics] on a cluster shared under a --topic-prefix.
func InNamespace(ns topics.Namespace, specs ...topics.Spec) []topics.Spec {
	out := make([]topics.Spec, len(specs))
	for i, s := range specs {
		s.Name = ns.Topic(s.Name)
		out[i] = s
	}
	return out
}
