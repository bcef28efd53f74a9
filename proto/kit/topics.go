package kit

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

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
	var refused []string
	for _, s := range specs {
		configs := make(map[string]*string, len(s.Configs()))
		for k, v := range s.Configs() {
			configs[k] = kadm.StringPtr(v)
		}
		resp, err := adm.CreateTopic(ctx, s.PartitionCount(), -1, configs, s.Name)
		switch {
		case err == nil, errors.Is(err, kerr.TopicAlreadyExists):
		case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed):
			// A principal that may use but not create the topic (a
			// function, the gateway) is fine if someone else made it.
			refused = append(refused, s.Name)
		case resp.ErrMessage != "":
			errs = append(errs, fmt.Errorf("create topic %s: %w: %s", s.Name, err, resp.ErrMessage))
		default:
			errs = append(errs, fmt.Errorf("create topic %s: %w", s.Name, err))
		}
	}
	if len(refused) > 0 {
		exist := existing(ctx, cl, refused)
		for _, name := range refused {
			if !exist[name] {
				errs = append(errs, fmt.Errorf("create topic %s: %w", name, kerr.TopicAuthorizationFailed))
			}
		}
	}
	return errors.Join(errs...)
}

// existing asks the cluster which of names exist, with a plain metadata
// request: kadm's answer may come from the client's metadata cache.
func existing(ctx context.Context, cl *kgo.Client, names []string) map[string]bool {
	req := kmsg.NewPtrMetadataRequest()
	for _, n := range names {
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, t)
	}
	exist := map[string]bool{}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return exist // then we try to create them all
	}
	for _, t := range resp.Topics {
		if t.Topic != nil && t.ErrorCode == 0 && len(t.Partitions) > 0 {
			exist[*t.Topic] = true
		}
	}
	return exist
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
