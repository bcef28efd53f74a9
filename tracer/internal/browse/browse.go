// Package browse reads streams for the stream browser: their partitions
// and offsets, and a page of events from an offset, straight from Kafka
// (the index keeps attributes only, never data).
package browse

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
	"github.com/buttercompass/butter/tracer/api"
)

// ErrNoStream is returned for a stream or partition that does not exist.
var ErrNoStream = errors.New("no such stream or partition")

// readWait bounds how long a read waits for records that are not there.
const readWait = 2 * time.Second

// Browser reads streams of a namespace.
type Browser struct {
	kafka kit.KafkaConfig
	adm   *kadm.Client
}

// New returns a browser using adm for offsets and kafka for readers.
func New(kafka kit.KafkaConfig, adm *kadm.Client) *Browser {
	return &Browser{kafka: kafka, adm: adm}
}

// Streams lists the streams of the namespace with their partitions.
func (b *Browser) Streams(ctx context.Context) ([]api.Stream, error) {
	ns := b.kafka.Namespace()
	td, err := b.adm.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var names []string
	for name, t := range td {
		stream, ok := ns.Stream(name)
		if t.Err == nil && ok && topics.ValidateStreamName(stream) == nil {
			names = append(names, name)
		}
	}
	out := []api.Stream{}
	if len(names) == 0 {
		return out, nil
	}
	starts, err := b.adm.ListStartOffsets(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("list start offsets: %w", err)
	}
	ends, err := b.adm.ListEndOffsets(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		stream, _ := ns.Stream(name)
		s := api.Stream{Stream: stream, Internal: topics.IsInternal(stream), Partitions: []api.Partition{}}
		for _, p := range slices.Sorted(func(yield func(int32) bool) {
			for p := range td[name].Partitions {
				if !yield(p) {
					return
				}
			}
		}) {
			st, _ := starts.Lookup(name, p)
			en, _ := ends.Lookup(name, p)
			s.Partitions = append(s.Partitions, api.Partition{Partition: p, Start: st.Offset, End: en.Offset})
			s.Events += max(0, en.Offset-st.Offset)
		}
		out = append(out, s)
	}
	return out, nil
}

// Read returns up to limit events of stream's partition from offset (a
// negative offset counts back from the end), read_committed, stopping at
// the partition's end.
func (b *Browser) Read(ctx context.Context, stream string, partition int32, offset int64, limit int) ([]api.StreamEvent, error) {
	topic := b.kafka.Namespace().Topic(stream)
	ends, err := b.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", stream, err)
	}
	end, ok := ends.Lookup(topic, partition)
	if !ok || end.Err != nil {
		return nil, fmt.Errorf("stream %s partition %d: %w", stream, partition, ErrNoStream)
	}
	if offset < 0 {
		offset = max(0, end.Offset+offset)
	}
	out := []api.StreamEvent{}
	if offset >= end.Offset {
		return out, nil
	}
	kcfg := b.kafka
	kcfg.ClientID = "butter-tracer-browse"
	cl, err := kcfg.NewClient(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(offset)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxPartitionBytes(control.MaxRecordBytes),
		kgo.FetchMaxBytes(control.MaxRecordBytes),
		kgo.BrokerMaxReadBytes(2*control.MaxRecordBytes),
	)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, readWait)
	defer cancel()
	for len(out) < limit {
		fs := cl.PollRecords(rctx, limit-len(out))
		if rctx.Err() != nil {
			break // what is there has been read
		}
		var last int64 = -1
		fs.EachRecord(func(r *kgo.Record) {
			if len(out) < limit {
				out = append(out, event(r))
			}
			last = r.Offset
		})
		if err := fs.Err0(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("read %s/%d: %w", stream, partition, err)
		}
		if last+1 >= end.Offset {
			break
		}
	}
	return out, nil
}

func event(r *kgo.Record) api.StreamEvent {
	d := envelope.FromRecord(r)
	e := d.Event
	ev := api.StreamEvent{Partition: r.Partition, Offset: r.Offset, Key: string(r.Key), Timestamp: r.Timestamp.UTC(),
		Raw: d.Raw, Attributes: map[string]string{
			"id": e.ID(), "type": e.Type(), "source": e.Source(), "specversion": e.SpecVersion(),
		}}
	if s := e.Subject(); s != "" {
		ev.Attributes["subject"] = s
	}
	if t := e.Time(); !t.IsZero() {
		ev.Attributes["time"] = t.UTC().Format(time.RFC3339Nano)
	}
	if ct := e.DataContentType(); ct != "" {
		ev.Attributes["datacontenttype"] = ct
	}
	for name := range e.Extensions() {
		ev.Attributes[name] = envelope.Extension(e, name)
	}
	data := e.Data()
	switch {
	case len(data) == 0:
	case json.Valid(data):
		ev.Data = json.RawMessage(data)
	case utf8.Valid(data):
		ev.DataText = string(data)
	default:
		ev.DataText, ev.DataBase64 = base64.StdEncoding.EncodeToString(data), true
	}
	return ev
}
