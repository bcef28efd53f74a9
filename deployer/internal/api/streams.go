package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

// createBatch is the most topics one CreateTopics or DeleteTopics request
// carries: one request per topic made a descriptor of 3,000 streams a
// flood the broker answered by refusing connections.
const createBatch = 100

// streamSpecs returns the specs, in the namespace, of the streams desc
// names; internal streams exist already and are not the deploy's to make.
func (a *API) streamSpecs(desc *descriptor.Descriptor) []topics.Spec {
	var specs []topics.Spec
	seen := map[string]bool{}
	for i := range desc.Functions {
		for _, s := range desc.Functions[i].StreamNames() {
			if !seen[s] && !topics.IsInternal(s) {
				seen[s] = true
				specs = append(specs, topics.Stream(s))
			}
		}
	}
	return kit.InNamespace(a.cfg.Namespace, specs...)
}

// createStreams makes the streams of desc, at most createBatch per
// request, and returns the topics it made: those that existed answer
// TOPIC_ALREADY_EXISTS and are left alone. When any of them cannot be
// made it deletes the ones it made and returns the error: a deploy that
// fails leaves no topic behind. A topic someone else makes meanwhile is
// used, never deleted.
//
// There is no look-up first: a metadata request through the deployer's
// client would leave "unknown topic" in its metadata cache, and the next
// admin call (a replay listing offsets) would believe it.
func (a *API) createStreams(ctx context.Context, desc *descriptor.Descriptor) (created []string, err error) {
	specs := a.streamSpecs(desc)
	// kadm gives all topics of one request the same partition count and
	// configs: batch specs that share them.
	type shape struct {
		partitions int32
		configs    string
	}
	batches := map[shape][]topics.Spec{}
	var order []shape
	for _, s := range specs {
		k := shape{s.PartitionCount(), configKey(s.Configs())}
		if _, ok := batches[k]; !ok {
			order = append(order, k)
		}
		batches[k] = append(batches[k], s)
	}
	var errs []error
	for _, k := range order {
		for chunk := range slices.Chunk(batches[k], createBatch) {
			configs := map[string]*string{}
			for key, v := range chunk[0].Configs() {
				configs[key] = kadm.StringPtr(v)
			}
			var batch []string
			for _, s := range chunk {
				batch = append(batch, s.Name)
			}
			resp, err := a.cfg.Admin.CreateTopics(ctx, k.partitions, -1, configs, batch...)
			if err != nil {
				errs = append(errs, fmt.Errorf("create %d topics: %w", len(batch), err))
				break
			}
			for _, name := range batch {
				r, ok := resp[name]
				switch {
				case !ok:
					errs = append(errs, fmt.Errorf("create topic %s: no answer", name))
				case r.Err == nil:
					created = append(created, name)
				case errors.Is(r.Err, kerr.TopicAlreadyExists):
				case r.ErrMessage != "":
					errs = append(errs, fmt.Errorf("create topic %s: %w: %s", name, r.Err, r.ErrMessage))
				default:
					errs = append(errs, fmt.Errorf("create topic %s: %w", name, r.Err))
				}
			}
		}
		if len(errs) > 0 {
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		if derr := a.dropStreams(ctx, created); derr != nil {
			err = errors.Join(err, derr)
		}
		return nil, err
	}
	return created, nil
}

// dropStreams deletes topics a failed deploy made, at most createBatch per
// request, with a context of its own: the deploy's may be what ran out.
func (a *API) dropStreams(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var errs []error
	for chunk := range slices.Chunk(names, createBatch) {
		resp, err := a.cfg.Admin.DeleteTopics(ctx, chunk...)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("delete the topics this deploy made (%s): %w", strings.Join(chunk, ", "), err))
		}
	}
	if len(errs) == 0 {
		a.log.Info("deleted the topics a failed deploy made", "topics", len(names))
	}
	return errors.Join(errs...)
}

// configKey is a comparable form of a topic config set.
func configKey(c map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(c)) {
		b.WriteString(k + "=" + c[k] + "\n")
	}
	return b.String()
}
